"""Probes against real sockets on 127.0.0.0/8 (and ICMP to loopback where allowed)."""

import asyncio
import errno
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from scanner import probes
from scanner.probes import Prober, detect_icmp_mode

from etcdtest import run_async, wait_for
from healthtest import ROOT, BareNetns, Listener, NetnsUnavailable, closed_port


def prober(**kw) -> Prober:
    args = {"tcp_timeout": 0.5, "icmp_mode": None, "ping_count": 1, "ping_timeout": 0.5,
            "max_concurrency": 16}
    args.update(kw)
    return Prober(**args)


def test_tcp_open_and_refused():
    with Listener("127.0.0.21") as backend:
        p = prober()
        assert run_async(p.tcp("127.0.0.21", backend.port)) is True
        refused = closed_port("127.0.0.21")
        assert run_async(p.tcp("127.0.0.21", refused)) is False
        assert run_async(p.check("127.0.0.21", [refused, backend.port])) is True
        assert run_async(p.check("127.0.0.21", [refused])) is False
    assert (p.probes, p.checks, p.unreachable) == (5, 2, 1)



def test_outcomes_and_latency_hook_count_verdicts():
    seen = []
    p = prober()
    p.observe = lambda kind, seconds: seen.append((kind, seconds))
    with Listener("127.0.0.22") as backend:
        assert run_async(p.tcp("127.0.0.22", backend.port)) is True
        assert run_async(p.tcp("127.0.0.22", closed_port("127.0.0.22"))) is False
    assert p.outcomes == {("tcp", True): 1, ("tcp", False): 1,
                          ("icmp", True): 0, ("icmp", False): 0,
                          ("http", True): 0, ("http", False): 0,
                          ("https", True): 0, ("https", False): 0}
    assert [kind for kind, _ in seen] == ["tcp", "tcp"]
    assert all(seconds >= 0 for _, seconds in seen)

def test_tcp_ipv6_loopback():
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this kernel")
    try:
        backend = Listener("::1").start()
    except OSError as exc:
        pytest.skip(f"cannot listen on ::1: {exc}")
    try:
        assert run_async(prober().tcp("::1", backend.port)) is True
    finally:
        backend.stop()


def _connected(sock: socket.socket) -> bool:
    # A non-blocking connect is writable once it ended; SO_ERROR says whether it succeeded.
    _, writable, _ = select.select([], [sock], [], 0)
    return bool(writable) and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0


def _full_backlog(ip: str):
    """A listener that never accepts, its queue filled: further SYNs are dropped, so a
    connect hangs until the probe's timeout (a backend that is wedged, not down)."""
    server = socket.socket()
    server.bind((ip, 0))
    server.listen(0)  # room for one connection: the first filler that connects fills it
    port = server.getsockname()[1]
    fillers = []
    for _ in range(4):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex((ip, port))
        fillers.append(c)
    # The rest of the fillers stay in SYN_SENT, their SYNs dropped like the probe's will be.
    wait_for(lambda: any(_connected(c) for c in fillers), timeout=5,
             message="a filler connection fills the accept queue")
    return server, port, fillers


def test_tcp_timeout_counts_as_failure():
    server, port, fillers = _full_backlog("127.0.0.22")
    try:
        p = prober(tcp_timeout=0.2)
        start = time.monotonic()
        assert run_async(p.tcp("127.0.0.22", port)) is False
        assert time.monotonic() - start >= 0.2
    finally:
        for s in fillers + [server]:
            s.close()


def test_concurrency_is_bounded():
    server, port, fillers = _full_backlog("127.0.0.23")
    p = prober(tcp_timeout=0.2, max_concurrency=5)
    peak = 0

    async def watch():
        nonlocal peak
        while True:
            peak = max(peak, p.in_flight)
            await asyncio.sleep(0.005)

    async def main():
        watcher = asyncio.create_task(watch())
        start = time.monotonic()
        results = await asyncio.gather(*(p.check("127.0.0.23", [port]) for _ in range(20)))
        elapsed = time.monotonic() - start
        watcher.cancel()
        return results, elapsed

    try:
        results, elapsed = run_async(main())
    finally:
        for s in fillers + [server]:
            s.close()
    assert results == [False] * 20
    assert peak == 5
    assert elapsed >= 4 * 0.2  # 20 hanging probes, 5 at a time


def test_local_errors_are_unknown_not_down(monkeypatch, caplog):
    def no_fds(*args, **kwargs):
        raise OSError(errno.EMFILE, "Too many open files")

    async def main():
        # Patched inside the loop: the loop itself needs sockets to start and stop.
        with monkeypatch.context() as patch:
            patch.setattr(probes.socket, "socket", no_fds)
            return await p.check("127.0.0.24", [80])

    p = prober()
    assert run_async(main()) is None
    assert p.local_errors == 1 and p.unreachable == 0
    assert "probe could not run" in caplog.text


def test_no_probe_configured_is_unknown():
    assert run_async(prober().check("127.0.0.25", [])) is None


def test_icmp_mode_and_loopback_echo():
    mode = detect_icmp_mode()
    if mode is None:
        pytest.skip("no ICMP sockets allowed here: " + probes.icmp_unavailable_reason())
    p = prober(icmp_mode=mode, ping_count=2, ping_timeout=0.5)
    # Loopback answers echo: with ICMP on, an address with no open port is still UP.
    assert run_async(p.check("127.0.0.26", [closed_port("127.0.0.26")])) is True


def test_icmp_reason_names_the_sysctl():
    reason = probes.icmp_unavailable_reason()
    try:
        with open("/proc/sys/net/ipv4/ping_group_range") as f:
            low, high = f.read().split()
    except OSError:
        assert "unprivileged ICMP sockets are not supported here" in reason
    else:
        # The range as the kernel has it now: what an operator has to change.
        assert f"net.ipv4.ping_group_range is '{low} {high}'" in reason
    assert "CAP_NET_RAW" in reason and f"our group is {os.getgid()}" in reason
    assert "enable-icmp = false" in reason


_UNPRIVILEGED_PROBE = """
import asyncio, sys
sys.path.insert(0, sys.argv[1])
from scanner.probes import Prober, detect_icmp_mode
mode = detect_icmp_mode()
ok = None
if mode:
    ok = asyncio.run(Prober(tcp_timeout=0.5, icmp_mode=mode, ping_timeout=1.0).icmp("127.0.0.1"))
print(mode, ok)
"""


_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "env", "-i"]


def _readable_probe_code() -> str:
    """A copy of what the probe imports (scanner, skydns, icmplib) that uid 65534 can read:
    the checkout may live where it cannot (a `mktemp -d` directory is 0700)."""
    import icmplib

    import skydns

    where = tempfile.mkdtemp(prefix="skydns-nobody-")
    os.chmod(where, 0o755)
    skip = shutil.ignore_patterns("__pycache__")
    for package in (ROOT / "scanner", Path(skydns.__file__).parent,
                    Path(icmplib.__file__).parent):
        shutil.copytree(package, os.path.join(where, package.name), ignore=skip)
    for dirpath, dirnames, filenames in os.walk(where):
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), 0o755)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)
    return where


def _python_for_nobody() -> str | None:
    """An interpreter uid 65534 can run: ours, unless it lives in a directory nobody may
    enter (a venv under `mktemp -d`, a pyenv under /root), else the system's."""
    for python in (sys.executable, os.path.realpath(sys.executable), sys._base_executable,
                   f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}"):
        done = subprocess.run([*_NOBODY, python, "-c", "import sys; print(sys.version_info[:2])"],
                              capture_output=True, text=True, timeout=30)
        if done.returncode == 0 and done.stdout.strip() == str(tuple(sys.version_info[:2])):
            return python
    return None


_PING_RANGE = "/proc/sys/net/ipv4/ping_group_range"  # per network namespace


def test_icmp_modes_of_an_unprivileged_scanner():
    """As nobody, in a namespace of our own: no ICMP at all under the kernel's default
    ping_group_range, datagram sockets once the range includes our group."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    python = _python_for_nobody()
    if python is None:
        pytest.skip(f"no Python {sys.version_info[0]}.{sys.version_info[1]} that uid 65534 "
                    "can run")
    try:
        netns = BareNetns().__enter__()
    except NetnsUnavailable as exc:
        pytest.skip(f"cannot make a network namespace: {exc}")
    code = _readable_probe_code()
    as_nobody = [*_NOBODY, python, "-I", "-c", _UNPRIVILEGED_PROBE, code]
    try:
        # written through /proc, not sysctl: procps is not on every fresh machine
        netns.run("sh", "-c", f"echo 1 0 > {_PING_RANGE}", check=True)
        out = netns.run(*as_nobody)
        assert out.stdout.split() == ["None", "None"], out.stderr
        netns.run("sh", "-c", f"echo 0 2147483647 > {_PING_RANGE}", check=True)
        out = netns.run(*as_nobody)
        assert out.stdout.split() == ["datagram", "True"], out.stderr
    finally:
        netns.__exit__()
        shutil.rmtree(code, ignore_errors=True)
