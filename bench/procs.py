"""Processes under test: start, pin to cores, read their CPU time and memory, stop.

Everything is read from /proc, so this is Linux only, like SO_REUSEPORT workers themselves.
Children get their own session: a Ctrl-C reaches the harness only, which then stops them in
order.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

from dnslib import QTYPE, DNSRecord

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from dnstest import free_port, write_config  # noqa: E402  (tests/ is not a package)
from proctest import children  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def spawn(cmd: list[str], log: Path, cpus: list[int] | None = None, **kw) -> subprocess.Popen:
    """Start `cmd` in its own session, output to `log`, on `cpus` when given (taskset)."""
    if cpus:
        cmd = ["taskset", "-c", ",".join(map(str, cpus)), *cmd]
    with open(log, "ab") as out:
        return subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=ROOT, **kw,
        )


def stop(proc: subprocess.Popen, sig=signal.SIGTERM, grace: float = 15.0) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def kill_pids(pids) -> None:
    """Last resort for grandchildren (workers) that outlived their supervisor."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def cpu_seconds(pids) -> float:
    """utime + stime of the processes (all their threads), in seconds."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / CLK_TCK


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / CLK_TCK, sum(fields) / CLK_TCK


def memory_kib(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def pin(pid: int, cpu: int) -> None:
    """All threads of `pid` onto one core (threads started later inherit it)."""
    subprocess.run(["taskset", "-a", "-p", "-c", str(cpu), str(pid)], check=True,
                   stdout=subprocess.DEVNULL)


def udp_sockets_on(port: int) -> int:
    """How many UDP sockets are bound to 127.0.0.1:port (one per ready skydns worker)."""
    local = f"0100007F:{port:04X}"
    with open("/proc/net/udp") as f:
        return sum(1 for line in f if line.split()[1:2] == [local])


def query(sock: socket.socket, name: str, qtype: str = "A") -> DNSRecord | None:
    """One query on a connected UDP socket; None on timeout or ICMP unreachable."""
    qid = random.getrandbits(16)
    packet = DNSRecord.question(name, qtype)
    packet.header.id = qid
    try:
        sock.send(packet.pack())
        while True:
            data = sock.recv(65535)
            if struct.unpack("!H", data[:2])[0] == qid:  # else a late reply to an earlier query
                return DNSRecord.parse(data)
    except OSError:  # TimeoutError, ConnectionRefusedError (port not bound yet)
        return None


def udp_client(port: int, timeout: float = 0.5) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(timeout)
    sock.connect(("127.0.0.1", port))
    return sock


def addresses(reply: DNSRecord) -> set[str]:
    return {str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A}


def wait_answer(port: int, name: str, deadline: float, proc: subprocess.Popen | None = None,
                interval: float = 0.005, qtype: str = "A", any_rcode: bool = False) -> DNSRecord:
    """Poll until `name qtype` is answered NOERROR (or at all, with `any_rcode`); RuntimeError
    if `proc` dies or time runs out."""
    with udp_client(port, timeout=0.2) as sock:
        while True:
            reply = query(sock, name, qtype)
            if reply is not None and (any_rcode or reply.header.rcode == 0):
                return reply
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{proc.args} exited with status {proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no NOERROR answer for {name} on port {port}")
            time.sleep(interval)


class Skydns:
    """`skydns --config-file` (the worker supervisor) with `workers` workers on a free port."""

    def __init__(self, workdir: Path, etcd: str, workers: int, name: str = "", **sections):
        self.workdir = workdir
        self.workers = workers
        self.name = name or f"{workers}w"  # names the config and log files
        self.port = free_port()
        self.config = write_config(
            workdir / f"skydns-{self.name}.conf", etcd, self.port,
            Dns={"dns-domain": "skydns.local.", "workers": workers, **sections.pop("Dns", {})},
            Log={"log-level": "warning", **sections.pop("Log", {})}, **sections,
        )
        self.proc: subprocess.Popen | None = None
        self.worker_pids: list[int] = []

    def start(self, cpus: list[int] | None, probe_name: str, timeout: float = 120.0) -> None:
        self.proc = spawn(
            [sys.executable, "-m", "dnsserver", "--config-file", str(self.config)],
            self.workdir / f"skydns-{self.name}.log", cpus,
        )
        deadline = time.monotonic() + timeout
        while udp_sockets_on(self.port) < self.workers:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"skydns did not come up; see {self.proc.args[-1]} and its log")
            time.sleep(0.05)
        wait_answer(self.port, probe_name, deadline, self.proc)
        self.worker_pids = [p for p in sorted(children(self.proc.pid))
                            if b"--worker" in _cmdline(p)]

    def pin(self, cpus: list[int]) -> None:
        """Workers round-robin over `cpus`."""
        for n, pid in enumerate(self.worker_pids):
            pin(pid, cpus[n % len(cpus)])

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            # Only pids that still run our config: a pid may have been reused meanwhile.
            kill_pids(p for p in self.worker_pids if str(self.config).encode() in _cmdline(p))


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
