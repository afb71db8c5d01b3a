"""A real PowerDNS Recursor (Debian's pdns-recursor) for the janitor tests, and the janitor as a
process. The recursor runs unprivileged: its config and control socket in a temp dir, on
127.0.0.1:<free port>, forwarding the test zone (and in-addr.arpa.) to a real skydns, its
webserver/API on another free port with an api-key. No root hints, no security poll, no
DNSSEC: it never sends a query anywhere but to that skydns.
"""

from __future__ import annotations

import secrets
import urllib.request
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype

from devup.recursor import binary

from dnstest import free_port
from proctest import Process


def recursor_missing() -> str | None:
    if binary() is None:
        return "pdns_recursor not installed (Debian: apt-get install pdns-recursor)"
    return None


def recursor_conf(port: int, web_port: int, api_key: str, forward_port: int, zones,
                  socket_dir: Path) -> str:
    forwards = ", ".join(f"{zone.rstrip('.')}=127.0.0.1:{forward_port}" for zone in zones)
    return "\n".join([
        "local-address=127.0.0.1",
        f"local-port={port}",
        f"forward-zones={forwards}",
        f"socket-dir={socket_dir}",
        "daemon=no",
        "disable-syslog=yes",
        "hint-file=no",  # no root priming: nothing leaves 127.0.0.1
        "security-poll-suffix=",
        "dnssec=off",
        "qname-minimization=no",
        "serve-rfc1918=no",  # or 10.in-addr.arpa. is answered locally, not forwarded
        "threads=1",
        "webserver=yes",
        "webserver-address=127.0.0.1",
        f"webserver-port={web_port}",
        "webserver-allow-from=127.0.0.0/8",
        "webserver-loglevel=none",
        f"api-key={api_key}",
        "",
    ])


class PdnsRecursor(Process):
    """pdns_recursor --config-dir=<tmp>, stopped with SIGTERM."""

    what = "pdns_recursor"

    def __init__(self, forward_port: int, zones=("example.test.", "in-addr.arpa.")):
        super().__init__("skydns-recursor-", "recursor.log")
        self.port = free_port()
        self.web_port = free_port()
        self.api_key = secrets.token_hex(8)
        self.url = f"http://127.0.0.1:{self.web_port}"
        (self.dir / "recursor.conf").write_text(
            recursor_conf(self.port, self.web_port, self.api_key, forward_port, zones, self.dir))

    def command(self) -> list[str]:
        return [binary(), f"--config-dir={self.dir}"]

    def ready(self) -> bool:
        assert self.proc.poll() is None, f"pdns_recursor exited: {self.logs()}"
        request = urllib.request.Request(f"{self.url}/api/v1/servers/localhost",
                                         headers={"X-API-Key": self.api_key})
        try:
            with urllib.request.urlopen(request, timeout=1) as resp:
                return resp.status == 200
        except OSError:
            return False

    def query(self, name: str, rdtype: str = "A", timeout: float = 2.0):
        q = dns.message.make_query(name, rdtype)
        return dns.query.udp(q, "127.0.0.1", port=self.port, timeout=timeout)

    def answer(self, name: str, rdtype: str = "A") -> list[str]:
        """The sorted rdata texts of `rdtype` in the recursor's answer for `name`."""
        reply = self.query(name, rdtype)
        return sorted(rr.to_text() for rrset in reply.answer
                      if rrset.rdtype == dns.rdatatype.from_text(rdtype) for rr in rrset)


class Janitor(Process):
    """`skydns-janitor` (python -m janitor) purging `recursors`, ready once it logs so."""

    module, what = "janitor", "skydns-janitor"

    def __init__(self, etcd_endpoint: str, recursors: list[PdnsRecursor], domain="example.test.",
                 **janitor):
        super().__init__("skydns-janitor-", "janitor.log")
        settings = {"recursors": ", ".join(r.url for r in recursors) or "http://127.0.0.1:1",
                    "api-key": recursors[0].api_key if recursors else "x", "domain": domain,
                    **janitor}
        lines = ["[Janitor]", *(f"{k} = {v}" for k, v in settings.items()),
                 "[Etcd]", f"etcd-servers = {etcd_endpoint}", "[Log]", "log-level = debug"]
        self.config = self.dir / "skydns-janitor.conf"
        self.config.write_text("\n".join(lines) + "\n")

    def ready(self) -> bool:
        self.assert_running()
        return 'msg="janitor ready"' in self.logs()
