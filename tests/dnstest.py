"""Helpers for end-to-end DNS tests: run `skydns` as a real process, query it for real.

A stand-in upstream resolver (a real UDP/TCP DNS server on 127.0.0.1 built on dnslib's
server) lets forwarding be tested without any traffic leaving the machine.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
from dnslib import QTYPE, RR
from dnslib.server import BaseResolver, DNSServer

from proctest import ROOT as ROOT  # re-exported: tests take the checkout root from here
from proctest import Process


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on `host` (skydns binds both); "::" binds both
    families (dual-stack), so a port another process holds on 127.0.0.1 is not taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    while True:
        with socket.socket(family) as tcp, socket.socket(family, socket.SOCK_DGRAM) as udp:
            tcp.bind((host, 0))
            port = tcp.getsockname()[1]
            try:
                udp.bind((host, port))
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


class Skydns(Process):
    """A `skydns` process on a free port, stopped with SIGTERM."""

    module, what = "dnsserver", "skydns"
    host = "127.0.0.1"  # where it is asked (subclasses that write their own config keep it)

    def __init__(self, etcd_endpoint: str, host: str = "127.0.0.1", **sections):
        """`host`: where it listens ("::1"; "::" is dual-stack, asked on 127.0.0.1)."""
        super().__init__("skydns-test-", "skydns.log")
        self.port = free_port(host)  # "::": free on every address of both families
        self.host = "127.0.0.1" if host in ("127.0.0.1", "::") else host
        if host != "127.0.0.1":
            sections.setdefault("Dns", {}).setdefault("dns-addr", f"[{host}]:{self.port}")
        self.config = write_config(self.dir / "skydns.conf", etcd_endpoint, self.port, **sections)

    def ready(self) -> bool:
        self.assert_running()
        try:
            reply = self.query("example.test.", "SOA", timeout=0.5)
        except (OSError, dns.exception.Timeout):
            return False
        return reply.rcode() == dns.rcode.NOERROR

    def query(self, name, rdtype="A", timeout=2.0, source=None, tcp=False, **kw):
        q = dns.message.make_query(name, rdtype, **kw)
        source = source or self.host
        if tcp:
            return dns.query.tcp(q, self.host, port=self.port, timeout=timeout, source=source)
        return dns.query.udp(
            q, self.host, port=self.port, timeout=timeout, source=source, ignore_trailing=False
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
