"""Helpers for end-to-end DNS tests: run `skydns` as a real process, query it for real.

A stand-in upstream resolver (a real UDP/TCP DNS server on 127.0.0.1 built on dnslib's
server) lets forwarding be tested without any traffic leaving the machine.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
from dnslib import QTYPE, RR
from dnslib.server import BaseResolver, DNSServer

from etcdtest import wait_for

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (skydns binds both)."""
    while True:
        with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def write_config(path: Path, etcd_endpoint: str, port: int, **sections) -> Path:
    """An INI file for skydns; `sections` maps "Dns" etc. to {key: value} overrides."""
    conf = {
        "Dns": {
            "dns-domain": "example.test.",
            "dns-addr": f"127.0.0.1:{port}",
            "ttl": 30,
            "min-ttl": 10,
            "workers": 1,
            "forward-timeout": 1.0,
        },
        "Etcd": {"etcd-servers": etcd_endpoint},
        "Log": {"log-level": "info"},
        "Fun": {},
    }
    for section, values in sections.items():
        conf.setdefault(section, {}).update(values)
    lines = []
    for section, values in conf.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            if isinstance(value, bool):
                value = "true" if value else "false"
            lines.append(f"{key} = {value}")
    path.write_text("\n".join(lines) + "\n")
    return path


class Skydns:
    """A `skydns` process on a free port, stopped with SIGTERM."""

    def __init__(self, etcd_endpoint: str, **sections):
        self.dir = Path(tempfile.mkdtemp(prefix="skydns-test-"))
        # Removed at exit, not in stop(): a failing test still reads the log after stopping.
        atexit.register(shutil.rmtree, self.dir, ignore_errors=True)
        self.port = free_port()
        self.config = write_config(self.dir / "skydns.conf", etcd_endpoint, self.port, **sections)
        self.log = self.dir / "skydns.log"
        self.proc: subprocess.Popen | None = None

    def start(self, wait_ready: bool = True) -> Skydns:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dnsserver", "--config-file", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        if wait_ready:
            wait_for(self.ready, timeout=20, message=f"skydns did not come up: {self.logs()}")
        return self

    def ready(self) -> bool:
        assert self.proc.poll() is None, f"skydns exited: {self.logs()}"
        try:
            reply = self.query("example.test.", "SOA", timeout=0.5)
        except (OSError, dns.exception.Timeout):
            return False
        return reply.rcode() == dns.rcode.NOERROR

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def query(self, name, rdtype="A", timeout=2.0, source="127.0.0.1", tcp=False, **kw):
        q = dns.message.make_query(name, rdtype, **kw)
        if tcp:
            return dns.query.tcp(q, "127.0.0.1", port=self.port, timeout=timeout, source=source)
        return dns.query.udp(
            q, "127.0.0.1", port=self.port, timeout=timeout, source=source, ignore_trailing=False
        )

    def addresses(self, name, rdtype="A", **kw) -> list[str]:
        reply = self.query(name, rdtype, **kw)
        return sorted(
            rr.address for rrset in reply.answer if rrset.rdtype in (1, 28) for rr in rrset
        )


class StaticResolver(BaseResolver):
    """Answers A queries for names in `table`, NXDOMAIN otherwise; counts what it was asked."""

    def __init__(self, table: dict[str, str]):
        self.table = {k.lower().rstrip(".") + ".": v for k, v in table.items()}
        self.asked: list[str] = []

    def resolve(self, request, handler):
        reply = request.reply()
        qname = str(request.q.qname).lower()
        self.asked.append(qname)
        if qname in self.table and request.q.qtype == QTYPE.A:
            reply.add_answer(*RR.fromZone(f"{qname} 300 IN A {self.table[qname]}"))
        elif qname not in self.table:
            reply.header.rcode = 3
        return reply


class Upstream:
    """A real DNS server on 127.0.0.1 (UDP and TCP) answering from a static table."""

    def __init__(self, table: dict[str, str]):
        self.port = free_port()
        self.resolver = StaticResolver(table)
        self.servers = [
            DNSServer(self.resolver, address="127.0.0.1", port=self.port, tcp=tcp, logger=_Quiet())
            for tcp in (False, True)
        ]

    def __enter__(self) -> Upstream:
        for server in self.servers:
            server.start_thread()
        return self

    def __exit__(self, *exc) -> None:
        for server in self.servers:
            server.stop()


class _Quiet:
    def __getattr__(self, name):
        return lambda *a, **k: None


def send_raw(port: int, payload: bytes, timeout: float = 0.3) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(payload, ("127.0.0.1", port))
        try:
            return sock.recv(65535)
        except TimeoutError:
            return None


def measure(fn, *args):
    start = time.monotonic()
    fn(*args)
    return time.monotonic() - start
