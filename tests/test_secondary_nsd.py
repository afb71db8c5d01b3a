"""A real NSD secondary of skydns answers like skydns, and follows a DOWN flip through NOTIFY.

NSD runs unprivileged from a temp dir on 127.0.0.<n>:<port>: it transfers the zone from a real
skydns (with two workers: only worker 0 sends NOTIFYs), then both are asked the same questions
and must give the same rcode and answer RRsets (TTLs and order aside). Skipped without nsd
(CI installs it).
"""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from dnstest import Skydns, free_port
from pdnstest import wait_until

NSD = shutil.which("nsd") or ("/usr/sbin/nsd" if Path("/usr/sbin/nsd").exists() else None)
pytestmark = pytest.mark.skipif(NSD is None, reason="nsd is not installed")

RECORDS = {
    "/skydns/test/example/web/a1": {"host": "10.1.0.1"},
    "/skydns/test/example/web/a2": {"host": "10.1.0.2"},
    "/skydns/test/example/alias/x": {"host": "web.example.test"},
    "/skydns/test/example/c1/x": {"host": "alias.example.test"},
    "/skydns/test/example/east/staging/s1": {"host": "10.2.0.1", "port": 80},
    "/skydns/test/example/east/staging/s2": {"host": "10.2.0.2", "port": 8080, "weight": 30},
    "/skydns/test/example/east/prod/p1": {"host": "web.example.test", "port": 443},
    "/skydns/test/example/mail/mx1": {"host": "web.example.test", "mail": True, "priority": 10},
    "/skydns/test/example/motd/x": {"text": "maintenance at 02:00"},
    "/skydns/test/example/v6/x": {"host": "2001:db8::1"},
    "/skydns/test/example/dns/ns/ns1": {"host": "10.0.9.1"},
    "/skydns/test/example/wild/*": {"host": "10.3.0.1"},
}

QUESTIONS = [
    ("example.test.", "SOA"), ("example.test.", "NS"), ("example.test.", "A"),
    ("web.example.test.", "A"), ("web.example.test.", "AAAA"), ("web.example.test.", "TXT"),
    ("a1.web.example.test.", "A"), ("alias.example.test.", "A"),
    ("alias.example.test.", "CNAME"), ("c1.example.test.", "A"),
    ("staging.east.example.test.", "SRV"), ("east.example.test.", "SRV"),
    ("east.example.test.", "A"), ("s2.staging.east.example.test.", "SRV"),
    ("prod.east.example.test.", "SRV"), ("mail.example.test.", "MX"),
    ("mail.example.test.", "A"), ("motd.example.test.", "TXT"), ("v6.example.test.", "AAAA"),
    ("v6.example.test.", "A"), ("ns1.ns.dns.example.test.", "A"), ("dns.example.test.", "A"),
    ("nope.example.test.", "A"), ("x.nope.example.test.", "TXT"),
    ("wild.example.test.", "A"), ("any.wild.example.test.", "A"),
]


class Nsd:
    def __init__(self, key: tuple[str, str] | None = None):
        self.key = key  # (name, base64 secret): hmac-sha256 TSIG for the transfers
        self.dir = Path(tempfile.mkdtemp(prefix="nsd-"))
        self.host = f"127.0.0.{random.randrange(2, 250)}"
        self.port = free_port()
        self.proc = None

    def start(self, primary_port: int | None, zone: str | None = None) -> Nsd:
        """A secondary of skydns on `primary_port`, or (None) a primary of the `zone` text;
        the key, if any, is NSD's to check on every message."""
        conf = self.dir / "nsd.conf"
        if zone is not None:
            (self.dir / "example.test.zone").write_text(zone)
        key = "NOKEY"
        key_clause = ""
        if self.key:
            key = self.key[0]
            key_clause = (f"key:\n    name: {self.key[0]}\n    algorithm: hmac-sha256\n"
                          f"    secret: \"{self.key[1]}\"\n")
        conf.write_text(key_clause + 
            f"""server:
    username: ""
    chroot: ""
    zonesdir: "{self.dir}"
    database: ""
    pidfile: "{self.dir}/nsd.pid"
    xfrdfile: "{self.dir}/xfrd.state"
    zonelistfile: "{self.dir}/zone.list"
    xfrdir: "{self.dir}"
    logfile: "{self.dir}/nsd.log"
    ip-address: {self.host}
    port: {self.port}
    verbosity: 2
    server-count: 1
    xfrd-reload-timeout: 0
remote-control:
    control-enable: no
zone:
    name: example.test
    zonefile: "example.test.zone"
"""
            + ("" if primary_port is None else f"""    request-xfr: 127.0.0.1@{primary_port} {key}
    allow-notify: 127.0.0.1 NOKEY
""")
        )
        self.proc = subprocess.Popen([NSD, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT)
        return self

    def query(self, name: str, rdtype: str):
        return dns.query.udp(dns.message.make_query(name, rdtype), self.host, port=self.port,
                             timeout=2)

    def log(self) -> str:
        path = self.dir / "nsd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def ask(host: str, port: int, name: str, rdtype: str):
    return dns.query.udp(dns.message.make_query(name, rdtype), host, port=port, timeout=2)


def seen(reply) -> tuple:
    """rcode and the answer RRsets, TTLs and order aside."""
    rrs = sorted(
        (rrset.name.to_text().lower(), dns.rdatatype.to_text(rrset.rdtype), rr.to_text().lower())
        for rrset in reply.answer
        for rr in rrset
    )
    return dns.rcode.to_text(reply.rcode()), rrs


def soa_serial(reply) -> int | None:
    for rrset in reply.answer:
        if rrset.rdtype == dns.rdatatype.SOA:
            return rrset[0].serial
    return None


@pytest.fixture
def pair(etcd):
    for key, value in RECORDS.items():
        etcd.put(key, value)
    nsd = Nsd()
    srv = Skydns(etcd.endpoint, Dns={"axfr-allow": "127.0.0.0/8", "workers": 2,
                                     "also-notify": f"{nsd.host}:{nsd.port}"})
    try:
        srv.start()
        nsd.start(srv.port)
        yield etcd, srv, nsd
    finally:
        nsd.stop()
        srv.stop()


def test_nsd_secondary_answers_like_skydns_and_follows_notify(pair):
    etcd, srv, nsd = pair

    def in_sync():
        want = soa_serial(ask("127.0.0.1", srv.port, "example.test.", "SOA"))
        return want is not None and soa_serial(nsd.query("example.test.", "SOA")) == want

    wait_until(in_sync, timeout=30, message="NSD never loaded the zone: " + nsd.log()[-2000:])
    differ = []
    for name, rdtype in QUESTIONS:
        ours = seen(ask("127.0.0.1", srv.port, name, rdtype))
        theirs = seen(nsd.query(name, rdtype))
        if ours != theirs:
            differ.append((name, rdtype, ours, theirs))
    assert not differ, "\n".join(map(repr, differ))
    # a key with a host name and a port: skydns answers A with a CNAME, SRV with an SRV; the
    # DNS cannot hold both at one name, so the secondary has the SRV and the chain's addresses
    ours = ask("127.0.0.1", srv.port, "prod.east.example.test.", "A")
    theirs = nsd.query("prod.east.example.test.", "A")
    assert {r[2] for r in seen(ours)[1] if r[1] == "A"} == {r[2] for r in seen(theirs)[1]}
    # the names a raw transfer would have missed really are there
    assert len(seen(nsd.query("web.example.test.", "A"))[1]) == 2
    assert seen(nsd.query("staging.east.example.test.", "SRV"))[1]

    # a DOWN flip: only health changes, the serial moves, NOTIFY brings NSD along
    start = time.monotonic()
    etcd.put("/skydns/monitor/status/10.1.0.2", {"status": "DOWN"})
    wait_until(lambda: seen(nsd.query("web.example.test.", "A"))[1]
               == [("web.example.test.", "A", "10.1.0.1")],
               timeout=15, message="NSD did not follow the DOWN flip: " + nsd.log()[-2000:])
    took = time.monotonic() - start
    print(f"DOWN flip reached NSD in {took:.2f} s")
    assert seen(ask("127.0.0.1", srv.port, "web.example.test.", "A")) == seen(
        nsd.query("web.example.test.", "A"))
    assert "notify" in nsd.log().lower()  # it came by NOTIFY, not by a refresh timer


def test_nsd_transfers_with_a_tsig_key(etcd):
    """NSD holding the key transfers from a skydns that allows no address, only the key."""
    import base64

    secret = base64.b64encode(b"nsd and skydns share this secret").decode()
    for key, value in RECORDS.items():
        etcd.put(key, value)
    nsd = Nsd(key=("xfr-key", secret))
    srv = Skydns(etcd.endpoint, Dns={"axfr-allow": "192.0.2.0/32",
                                     "tsig-key": f"xfr-key:hmac-sha256:{secret}"})
    try:
        srv.start()
        nsd.start(srv.port)
        wait_until(lambda: seen(nsd.query("web.example.test.", "A"))[1],
                   timeout=30, message="NSD did not transfer with the key: " + nsd.log()[-2000:])
        assert seen(nsd.query("web.example.test.", "A")) == seen(
            ask("127.0.0.1", srv.port, "web.example.test.", "A"))
    finally:
        nsd.stop()
        srv.stop()
