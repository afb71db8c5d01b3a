"""`skydns-pdns-backend` as a process on a real unix socket, fed from a real etcd."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import time
import urllib.request

import pytest

from pdnsbackend.server import DEFAULT_SOCKET, pdns_settings
from skydns.config import ConfigError, load_config

from dnstest import free_port
from etcdtest import wait_for
from pdnstest import Backend, Client

RECORDS = {
    "/skydns/test/example/api/i1": {"host": "10.0.0.1", "ttl": 60},
    "/skydns/test/example/api/i2": {"host": "10.0.0.2", "ttl": 60},
}


@pytest.fixture
def backend(etcd):
    for key, value in RECORDS.items():
        etcd.put(key, value)
    be = Backend(etcd.endpoint).start()
    yield be
    be.cleanup()


def line(method: str, **params) -> bytes:
    return json.dumps({"method": method, "parameters": params}).encode() + b"\n"


def addresses(reply: dict) -> list[str]:
    return sorted(r["content"] for r in reply["result"] if r["qtype"] == "A")


def test_socket_created_with_mode_and_parent_dir(backend):
    st = os.stat(backend.socket)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert backend.socket.parent.name == "run"  # created by the backend


def test_request_in_pieces_over_the_socket(backend):
    request = line("lookup", qname="api.example.test.", qtype="ANY", remote="127.0.0.1")
    with backend.client() as client:
        for i in range(0, len(request), 7):
            client.send_raw(request[i : i + 7])
            time.sleep(0.002)  # separate writes, so the backend sees separate reads
        assert addresses(client.reply()) == ["10.0.0.1", "10.0.0.2"]


def test_pipelined_requests_garbage_unknown_methods_on_one_connection(backend):
    with backend.client() as client:
        client.send_raw(
            line("initialize", path=str(backend.socket))
            + b"{not json\n"
            + b"[]\n"
            + line("fooBar")
            + line("LOOKUP", qname="api.example.test.", qtype="A")
            + line("getalldomains")
            + line("GetDomainInfo", name="example.test.")
        )
        got = [client.reply() for _ in range(7)]
        assert got[0] == {"result": True}
        assert got[1]["result"] is False and got[1]["log"]
        assert got[2]["result"] is False and got[2]["log"]
        assert got[3] == {"result": False}
        assert addresses(got[4]) == ["10.0.0.1", "10.0.0.2"]
        assert [d["zone"] for d in got[5]["result"]] == ["example.test."]
        assert got[6]["result"]["zone"] == "example.test."
        # still usable afterwards
        assert client.call("lookup", qname="example.test.", qtype="SOA")["result"]


def test_many_connections_at_once(backend):
    clients = [backend.client() for _ in range(25)]
    try:
        # Every connection has a request in flight before any reply is read: a backend that
        # served one connection at a time would never get past the first.
        for i, client in enumerate(clients):
            client.send_raw(line("lookup", qname=f"i{1 + i % 2}.api.example.test.", qtype="A"))
        for i, client in enumerate(clients):
            assert addresses(client.reply()) == [f"10.0.0.{1 + i % 2}"]
    finally:
        for client in clients:
            client.close()


def test_overlong_line_closes_only_that_connection(backend):
    other = backend.client()
    with backend.client() as client:
        client.send_raw(line("initialize"))
        assert client.reply() == {"result": True}
        chunk = b"x" * 65536
        try:
            for _ in range(17):  # 1 MiB + 64 KiB without a newline
                client.send_raw(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the backend may close before all of it is written
        assert client.read_line() == b""
    assert other.call("initialize") == {"result": True}
    other.close()
    with backend.client() as client:
        assert client.call("initialize") == {"result": True}


def test_answers_follow_etcd(backend, etcd):
    with backend.client() as client:
        etcd.put("/skydns/test/example/api/i3", {"host": "10.0.0.3"})
        revision = etcd.revision()
        wait_for(lambda: len(addresses(client.call("lookup", qname="api.example.test.",
                                                   qtype="ANY"))) == 3, timeout=5)
        soa = client.call("lookup", qname="example.test.", qtype="SOA")["result"][0]
        assert int(soa["content"].split()[2]) == revision
        etcd.put("/skydns/monitor/status/10.0.0.3", {"status": "DOWN"})
        wait_for(lambda: addresses(client.call("lookup", qname="api.example.test.",
                                               qtype="ANY")) == ["10.0.0.1", "10.0.0.2"],
                 timeout=5)
        # DOWN addresses are left out of the served zone (and its transfers): a health change
        # is a zone change, the serial moves with it so secondaries transfer again.
        soa2 = client.call("lookup", qname="example.test.", qtype="SOA")["result"][0]
        assert int(soa2["content"].split()[2]) > int(soa["content"].split()[2])
        etcd.put("/skydns/arpa/in-addr/10/0/0/1", {"host": "api.example.test"})
        wait_for(lambda: [d["zone"] for d in client.call("getAllDomains")["result"]]
                 == ["example.test.", "in-addr.arpa."], timeout=5)


def test_stale_socket_replaced_and_removed_on_stop(etcd, tmp_path):
    path = tmp_path / "pdns.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: what a killed backend leaves
    be = Backend(etcd.endpoint, socket_path=path).start()
    try:
        with Client(path) as client:
            assert client.call("initialize") == {"result": True}
        assert be.stop() == 0
        assert not path.exists()
    finally:
        be.cleanup()


def test_live_socket_and_other_files_are_not_taken_over(etcd, tmp_path):
    first = Backend(etcd.endpoint, socket_path=tmp_path / "pdns.sock").start()
    second = Backend(etcd.endpoint, socket_path=tmp_path / "pdns.sock")
    regular = tmp_path / "not-a-socket"
    regular.write_text("keep me")
    third = Backend(etcd.endpoint, socket_path=regular)
    try:
        for be, reason in ((second, f"in use by another running backend, pid {first.proc.pid}"),
                           (third, "not a socket")):
            be.start(wait_ready=False)
            assert be.proc.wait(timeout=30) == 1
            assert [line for line in be.logs().splitlines() if reason in line] \
                == [be.logs().strip()], be.logs()  # one line, and before touching etcd
        assert regular.read_text() == "keep me"
        with Client(first.socket) as client:
            assert client.call("initialize") == {"result": True}
    finally:
        for be in (first, second, third):
            be.cleanup()


def test_backends_started_together_on_a_stale_socket_leave_one_serving(etcd, tmp_path):
    """Both find the file stale; without the lock the second unlinked the first's live
    socket and took its path. Now one serves and the other exits 1 naming it."""
    path = tmp_path / "pdns.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()
    both = [Backend(etcd.endpoint, socket_path=path) for _ in range(2)]
    try:
        for be in both:
            be.start(wait_ready=False)
        wait_for(lambda: any(be.proc.poll() == 1 for be in both), timeout=30)
        loser = next(be for be in both if be.proc.poll() == 1)
        winner = next(be for be in both if be is not loser)
        wait_for(winner.ready, timeout=30)
        assert f"in use by another running backend, pid {winner.proc.pid}" in loser.logs()
        with Client(path) as client:
            assert client.call("initialize") == {"result": True}
        winner.kill()  # SIGKILL: the socket file stays, the lock goes with the process
        again = Backend(etcd.endpoint, socket_path=path).start()
        both.append(again)
        with Client(path) as client:
            assert client.call("initialize") == {"result": True}
    finally:
        for be in both:
            be.cleanup()


def test_pdns_settings_defaults_section_and_command_line(tmp_path):
    assert pdns_settings(load_config(None, "dns"), None) == (DEFAULT_SOCKET, 0o660)
    conf = tmp_path / "skydns.conf"
    conf.write_text("[Pdns]\nsocket = /tmp/x/p.sock\nsocket-mode = 0600\n")
    cfg = load_config(str(conf), "dns")
    assert pdns_settings(cfg, None) == ("/tmp/x/p.sock", 0o600)
    assert pdns_settings(cfg, "/tmp/y.sock") == ("/tmp/y.sock", 0o600)
    for bad in ("rw", "0999", "10000", ""):  # the config layer's rule, the only one
        conf.write_text(f"[Pdns]\nsocket-mode = {bad}\n")
        with pytest.raises(ConfigError, match=r"\[Pdns\] socket-mode"):
            load_config(str(conf), "dns")


def test_without_etcd_it_listens_after_a_while_and_fails_data_requests(tmp_path):
    be = Backend(f"http://127.0.0.1:{free_port()}", socket_path=tmp_path / "pdns.sock")
    try:
        be.start(wait_ready=False)
        wait_for(be.ready, timeout=20, message=f"backend did not listen: {be.logs()}")
        with be.client() as client:
            reply = client.call("lookup", qname="example.test.", qtype="SOA")
            assert reply["result"] is False and "not loaded" in reply["log"][0]
            assert client.call("getAllDomainMetadata", name="example.test.") == {"result": {}}
    finally:
        be.cleanup()


def test_sighup_reloads_log_settings_and_nothing_else(backend):
    """systemd's habit of `kill -HUP` for reload must not take down what pdns depends on."""
    backend.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "restart to apply other changes" in backend.logs(), timeout=10,
             message="no log line for SIGHUP")
    assert backend.proc.poll() is None
    with backend.client() as client:
        reply = client.call("lookup", qname="api.example.test.", qtype="ANY", remote="127.0.0.1")
        assert addresses(reply) == ["10.0.0.1", "10.0.0.2"]


def test_metrics_count_requests_by_method_and_result(etcd):
    for key, value in RECORDS.items():
        etcd.put(key, value)
    port = free_port()
    be = Backend(etcd.endpoint, Pdns={"metrics-addr": f"127.0.0.1:{port}"}).start()
    try:
        with be.client() as client:
            client.call("initialize")
            client.call("lookup", qname="api.example.test.", qtype="ANY", remote="127.0.0.1")
            client.call("lookup", qname="api.example.test.", qtype="ANY", remote="127.0.0.1")
            client.call("noSuchMethod-" + "x" * 40)
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        lines = set(text.decode().splitlines())
        assert 'skydns_pdns_requests_total{method="lookup",result="ok"} 2.0' in lines
        # initialize: ours plus the readiness checks of the test helper
        assert any(line.startswith('skydns_pdns_requests_total{method="initialize",result="ok"}')
                   for line in lines)
        assert 'skydns_pdns_requests_total{method="unknown",result="fail"} 1.0' in lines
        assert "skydns_pdns_records 2.0" in lines
        assert "skydns_pdns_etcd_loaded 1.0" in lines
        assert "skydns_pdns_connections 1.0" in lines
    finally:
        be.cleanup()
