"""Worker processes: several share the port, die and come back, reload on SIGHUP, stop on TERM."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from dnstest import Skydns
from etcdtest import wait_for
from proctest import children


def names_asked(pid: int) -> dict[str, int]:
    """Per-name query counts from a worker's own stats snapshot (written each second)."""
    env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    stats_dir = next(v.split(b"=", 1)[1] for v in env if v.startswith(b"SKYDNS_STATS_DIR="))
    try:
        return json.loads((Path(stats_dir.decode()) / f"worker-{pid}.json").read_text())["names"]
    except (OSError, ValueError):
        return {}  # not written yet, or being replaced


def test_workers_share_port_and_answer_alike(etcd):
    for i in range(1, 6):
        etcd.put(f"/skydns/test/example/h/i{i}", {"host": f"10.3.0.{i}"})
    srv = Skydns(etcd.endpoint, Dns={"workers": 2}, Fun={"hone-one": True}).start()
    try:
        wait_for(lambda: len(children(srv.proc.pid)) == 2, timeout=10)
        workers = children(srv.proc.pid)
        sources = [f"127.0.0.{n}" for n in range(7, 13)]
        picks: dict[str, set] = {source: set() for source in sources}

        def both_answered():
            # each query has a fresh socket (source port), so the kernel spreads them
            for source in sources:
                for _ in range(5):
                    picks[source].add(tuple(srv.addresses("h.example.test.", source=source)))
            return all(names_asked(pid).get("h.example.test.", 0) > 0 for pid in workers)

        wait_for(both_answered, timeout=15, interval=0.2, message="one worker took everything")
        # and they answered alike: one address per client, whichever worker it reached
        for source, got in picks.items():
            assert len(got) == 1 and len(next(iter(got))) == 1, (source, got)
    finally:
        assert srv.stop() == 0
    assert not children(srv.proc.pid)


def test_dead_worker_is_restarted(etcd):
    etcd.put("/skydns/test/example/api/x", {"host": "10.0.0.1"})
    srv = Skydns(etcd.endpoint, Dns={"workers": 2}).start()
    try:
        wait_for(lambda: len(children(srv.proc.pid)) == 2, timeout=10)
        victim = min(children(srv.proc.pid))
        os.kill(victim, signal.SIGKILL)
        wait_for(
            lambda: victim not in children(srv.proc.pid) and len(children(srv.proc.pid)) == 2,
            timeout=10,
            message="worker not restarted",
        )
        wait_for(
            lambda: all(srv.addresses("api.example.test.") == ["10.0.0.1"] for _ in range(20)),
            timeout=10,
        )
    finally:
        srv.stop()


def test_sighup_reloads_config(etcd):
    etcd.put("/skydns/test/example/api/x", {"host": "10.0.0.1"})
    srv = Skydns(etcd.endpoint, Dns={"ttl": 30}).start()
    try:
        assert srv.query("api.example.test.").answer[0].ttl == 30
        before = children(srv.proc.pid)
        srv.config.write_text(srv.config.read_text().replace("ttl = 30", "ttl = 77"))
        srv.proc.send_signal(signal.SIGHUP)
        wait_for(
            lambda: (
                srv.query("api.example.test.").answer[0].ttl == 77
                and not (children(srv.proc.pid) & before)
            ),
            timeout=15,
            message="new TTL not served after SIGHUP",
        )
        # a broken config is refused and the running one stays
        srv.config.write_text(srv.config.read_text() + "\n[Bogus]\nx = 1\n")
        srv.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload refused" in srv.logs(), timeout=10)
        assert srv.proc.poll() is None
        assert srv.query("api.example.test.").answer[0].ttl == 77
    finally:
        srv.stop()


def test_port_in_use_exits_nonzero(etcd):
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        srv = Skydns(etcd.endpoint)
        srv.port = taken.getsockname()[1]
        srv.config.write_text(
            srv.config.read_text().replace(
                "dns-addr = 127.0.0.1:", f"dns-addr = 127.0.0.1:{srv.port}  # was "
            )
        )
        srv.start(wait_ready=False)
        assert srv.proc.wait(timeout=20) == 1
    # one line naming the address and who holds it (this test's process)
    line = srv.logs().strip()
    assert "\n" not in line and f"127.0.0.1:{srv.port} is in use by pid {os.getpid()}" in line
