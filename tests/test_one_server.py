"""One server per address (issue 24): a second `skydns` on the same dns-addr exits 1 with one
line naming the address and the first's pid instead of joining the port (SO_REUSEPORT would
let it take half of the queries); the workers of one server still share it; a server killed
with SIGKILL does not keep a restarted one out. The same for the API's address."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import dns.rcode

from apitest import KubeApi
from dnstest import ROOT, Skydns
from etcdtest import wait_for
from proctest import children


def same_address(first: Skydns, etcd, **sections) -> Skydns:
    """Another skydns (its own config file and log) with the first one's dns-addr."""
    other = Skydns(etcd.endpoint, **sections)
    other.port = first.port
    other.config.write_text(other.config.read_text().replace(
        "dns-addr = 127.0.0.1:", f"dns-addr = 127.0.0.1:{first.port}  # was "))
    return other


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"  # an orphan reaped by no one in a container: dead all the same


def test_second_server_on_the_same_address_exits_1_naming_the_first(etcd):
    etcd.put("/skydns/test/example/h", {"host": "10.9.0.1"})
    first = Skydns(etcd.endpoint, Dns={"workers": 2}).start()
    try:
        wait_for(lambda: len(children(first.proc.pid)) == 2, timeout=10)
        workers = children(first.proc.pid)
        second = same_address(first, etcd, Dns={"workers": 2, "ttl": 77})
        second.start(wait_ready=False)
        assert second.proc.wait(timeout=30) == 1
        lines = second.logs().strip().splitlines()
        assert len(lines) == 1, lines
        assert f"127.0.0.1:{first.port}" in lines[0] and f"pid {first.proc.pid}" in lines[0]
        assert "serving" not in second.logs()
        # every query is answered by the first (ttl 30), none by a joiner (ttl 77)
        for _ in range(40):
            reply = first.query("h.example.test.")
            assert reply.rcode() == dns.rcode.NOERROR and reply.answer[0].ttl == 30
        assert children(first.proc.pid) == workers
    finally:
        first.stop()


def test_restart_after_sigkill(etcd):
    etcd.put("/skydns/test/example/h", {"host": "10.9.0.1"})
    first = Skydns(etcd.endpoint, Dns={"workers": 2}).start()
    wait_for(lambda: len(children(first.proc.pid)) == 2, timeout=10)
    old_workers = children(first.proc.pid)
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(timeout=10)
    again = same_address(first, etcd, Dns={"workers": 2})
    try:
        again.start(wait_ready=False)
        # its workers serve, and the orphans of the killed one are gone (they die with it)
        wait_for(lambda: len(children(again.proc.pid)) == 2 and again.ready(), timeout=30,
                 message=f"restart did not serve: {again.logs()}")
        wait_for(lambda: all(gone(pid) for pid in old_workers), timeout=15,
                 message="the killed server's workers kept running")
        assert again.proc.poll() is None and "serving" in again.logs()
        assert again.query("h.example.test.").answer
    finally:
        again.stop()


def test_second_api_on_the_same_address_exits_1_naming_the_first(etcd):
    first = KubeApi(etcd.endpoint).start()
    try:
        done = subprocess.run([sys.executable, "-m", "kubeapi", "--config-file",
                               str(first.config)], capture_output=True, text=True, cwd=ROOT,
                              timeout=30)
        assert done.returncode == 1
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
        assert f"cannot listen on 127.0.0.1:{first.port}: in use by pid {first.proc.pid}" \
            in done.stderr
        assert first.ready()
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(timeout=10)
        first.start()  # a restart after SIGKILL listens again
    finally:
        first.stop()
