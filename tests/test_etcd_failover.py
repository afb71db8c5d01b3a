"""Several etcd-servers: one gRPC channel over all members that moves to the next member
when the one in use goes away (skydns/store.py channel_target)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess

import pytest

from devup.localetcd import find_binary
from skydns.store import channel_target, make_client

from dnstest import Skydns, free_port
from etcdtest import EtcdServer, _clean_env, run_async, wait_for


def test_channel_target_for_one_and_several_endpoints():
    assert channel_target(["http://10.0.0.1:2379"]) == ("10.0.0.1:2379", False, "10.0.0.1")
    assert channel_target(["https://etcd.example:2379"]) == (
        "etcd.example:2379", True, "etcd.example")
    assert channel_target(["http://10.0.0.1:2379", "http://10.0.0.2"]) == (
        "ipv4:10.0.0.1:2379,10.0.0.2:2379", False, "10.0.0.1")
    # One family per target: IPv4 members become v4-mapped when an IPv6 one is present.
    assert channel_target(["https://10.0.0.1:2379", "https://[fd00::2]:2379"]) == (
        "ipv6:[::ffff:10.0.0.1]:2379,[fd00::2]:2379", True, "10.0.0.1")
    # A member listed twice is dialled once.
    assert channel_target(["10.0.0.1:2379", "10.0.0.1:2379", "10.0.0.3:2379"])[0] == (
        "ipv4:10.0.0.1:2379,10.0.0.3:2379")


def test_tls_over_several_members_checks_the_first_name(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_bytes(b"not read until a handshake")
    client = make_client({"etcd-servers": ["https://127.0.0.1:2379", "https://127.0.0.2:2379"],
                          "etcd-cafile": str(ca)})
    assert client.tls and client.target == "ipv4:127.0.0.1:2379,127.0.0.2:2379"
    assert client._options["grpc.ssl_target_name_override"] == "127.0.0.1"


def test_dead_first_endpoint_is_skipped(etcd):
    """The first member listed is down from the start: skydns loads from the next one."""
    etcd.put("/skydns/test/example/api/i1", {"host": "10.0.0.1"})
    dead = f"http://127.0.0.1:{free_port()}"
    srv = Skydns(f"{dead}, {etcd.endpoint}").start()
    try:
        assert srv.addresses("api.example.test.") == ["10.0.0.1"]
    finally:
        srv.stop()


class Cluster:
    """Three etcd members on loopback, a real raft cluster (quorum 2)."""

    def __init__(self, root):
        self.root = root
        self.members = [(f"m{i}", free_port(), free_port()) for i in range(3)]
        self.procs: dict[str, subprocess.Popen] = {}

    def client_url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.members[i][1]}"

    def start(self) -> Cluster:
        initial = ",".join(f"{n}=http://127.0.0.1:{peer}" for n, _, peer in self.members)
        for name, client, peer in self.members:
            log = open(self.root / f"{name}.log", "ab")
            self.procs[name] = subprocess.Popen(
                [find_binary("etcd"), "--name", name, "--data-dir", str(self.root / name),
                 "--listen-client-urls", f"http://127.0.0.1:{client}",
                 "--advertise-client-urls", f"http://127.0.0.1:{client}",
                 "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                 "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                 "--initial-cluster", initial, "--initial-cluster-state", "new",
                 "--heartbeat-interval", "50", "--election-timeout", "500"],
                stdout=log, stderr=subprocess.STDOUT, env=_clean_env(), start_new_session=True)
            log.close()
        wait_for(lambda: all(self.healthy(i) for i in range(3)), timeout=30,
                 message="etcd cluster not healthy")
        return self

    def ctl(self, i: int, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([find_binary("etcdctl"), "--endpoints", self.client_url(i),
                               "--command-timeout=3s", *args], input=input,
                              capture_output=True, env=_clean_env(), timeout=10)

    def healthy(self, i: int) -> bool:
        return self.ctl(i, "endpoint", "health").returncode == 0

    def kill(self, i: int) -> None:
        proc = self.procs[self.members[i][0]]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    try:
        yield c.start()
    finally:
        c.stop()


def test_member_in_use_dies_and_skydns_follows_the_cluster(cluster):
    """Killing the member skydns talks to (the first listed) must not freeze its copy: a
    record written through the surviving quorum is answered."""
    put = cluster.ctl(1, "put", "/skydns/test/example/api/i1", '{"host":"10.0.0.1"}')
    assert put.returncode == 0, put.stderr
    endpoints = ", ".join(cluster.client_url(i) for i in range(3))
    srv = Skydns(endpoints).start()
    try:
        assert srv.addresses("api.example.test.") == ["10.0.0.1"]
        cluster.kill(0)
        wait_for(lambda: cluster.ctl(1, "put", "/skydns/test/example/api/i2",
                                     '{"host":"10.0.0.2"}').returncode == 0,
                 timeout=20, message="the two surviving members did not take the write")
        wait_for(lambda: srv.addresses("api.example.test.") == ["10.0.0.1", "10.0.0.2"],
                 timeout=30, message=f"skydns did not move to a live member: {srv.logs()}")
        assert srv.proc.poll() is None
    finally:
        srv.stop()


def test_etcd_server_name_overrides_the_checked_name(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_bytes(b"not read until a handshake")
    client = make_client({"etcd-servers": ["https://10.0.0.1:2379", "https://10.0.0.2:2379"],
                          "etcd-cafile": str(ca), "etcd-server-name": "etcd.skydns.internal"})
    assert client._options["grpc.ssl_target_name_override"] == "etcd.skydns.internal"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make certificates")
def test_tls_over_several_endpoints_with_a_dead_first_one(tmp_path):
    from test_store import make_certs

    tls = make_certs(tmp_path)
    server_tls = {**tls, "cert": str(tmp_path / "server.pem"), "key": str(tmp_path / "server.key")}
    with EtcdServer(tmp_path / "etcd", tls=server_tls) as server:
        server.put("/skydns/x", "over tls")
        live = server.etcd_section()["etcd-servers"][0]
        section = {"etcd-servers": [f"https://127.0.0.1:{free_port()}", live],
                   "etcd-cafile": tls["ca"], "etcd-certfile": tls["cert"],
                   "etcd-keyfile": tls["key"], "etcd-timeout": 5}

        async def main():
            async with make_client(section) as client:
                return (await client.get(b"/skydns/x")).value

        assert run_async(main()) == b"over tls"
