"""A real PowerDNS (pdns_server + the remote backend) answering from skydns-pdns-backend.

pdns runs by hand on 127.0.0.1:<free port> with every cache off (see pdnstest.pdns_conf), the
backend on a unix socket in a temp dir, records in the real etcd. Skipped when Debian's
pdns-server and pdns-backend-remote are not installed (CI installs them).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import dns.exception
import dns.flags
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest

from dnstest import ROOT, Skydns
from pdnstest import Backend, PdnsServer, answer_texts, pdns_missing, wait_until
from samples import EXAMPLES

pytestmark = pytest.mark.skipif(pdns_missing() is not None, reason=str(pdns_missing()))

RECORDS = {
    **EXAMPLES,
    "/skydns/test/example/svc/web/i1": {"host": "10.0.5.1"},
    # an empty non-terminal in the forward zone: `svc2.` has nothing of its own to answer
    "/skydns/test/example/svc2/ptr/x": {"host": "api.example.test", "type": "PTR"},
}

A, SRV, SOA = dns.rdatatype.A, dns.rdatatype.SRV, dns.rdatatype.SOA


class Cluster:
    def __init__(self, etcd, backend: Backend, pdns: PdnsServer):
        self.etcd = etcd
        self.backend = backend
        self.pdns = pdns

    def a(self, name: str, tcp: bool = False) -> list[str]:
        """The addresses pdns answers for `name`; [] for any failure."""
        reply = self.pdns.query(name, "A", tcp=tcp)
        if reply.rcode() != dns.rcode.NOERROR:
            return []
        return sorted(rr.address for rrset in reply.answer if rrset.rdtype == A for rr in rrset)


@pytest.fixture(scope="module")
def cluster(etcd_server):
    etcd_server.ensure_running()
    etcd_server.delete_prefix("/skydns")
    etcd_server.put_many(RECORDS)
    backend = Backend(etcd_server.endpoint).start()
    pdns = PdnsServer(backend.socket)
    try:
        pdns.start(probe="example.test.")
        yield Cluster(etcd_server, backend, pdns)
    finally:
        pdns.cleanup()
        backend.cleanup()


def test_records_through_pdns(cluster):
    q = cluster.pdns.query
    assert cluster.a("api.example.test.") == ["10.0.0.1", "10.0.0.2"]
    assert cluster.a("i2.api.example.test.") == ["10.0.0.2"]
    reply = q("db.west.example.test.", "SRV")
    assert answer_texts(reply, SRV) == [
        "db.west.example.test. 30 SRV 10 25 5432 1.db.west.example.test.",
        "db.west.example.test. 30 SRV 10 75 5432 2.db.west.example.test.",
        "db.west.example.test. 30 SRV 20 100 5432 db3.example.test.",
    ]
    assert reply.flags & dns.flags.AA
    # pdns adds the targets' addresses itself, from lookups of the synthesized names
    glue = sorted(str(rrset.name) for rrset in reply.additional if rrset.rdtype == A)
    assert glue == ["1.db.west.example.test.", "2.db.west.example.test.", "db3.example.test."]
    assert answer_texts(q("www.example.test.", "A")) == [
        "api.example.test. 60 A 10.0.0.1",
        "api.example.test. 60 A 10.0.0.2",
        "www.example.test. 30 CNAME api.example.test.",
    ]
    assert answer_texts(q("motd.example.test.", "TXT")) == [
        'motd.example.test. 30 TXT "maintenance at 02:00"'
    ]
    assert answer_texts(q("mail.example.test.", "MX")) == [
        "mail.example.test. 30 MX 5 mx1.mail.example.test."
    ]
    assert answer_texts(q("v6.example.test.", "AAAA")) == ["v6.example.test. 30 AAAA 2001:db8::1"]
    assert answer_texts(q("example.test.", "NS")) == [
        "example.test. 30 NS ns1.ns.dns.example.test."
    ]
    assert answer_texts(q("1.0.0.10.in-addr.arpa.", "PTR")) == [
        "1.0.0.10.in-addr.arpa. 30 PTR api.example.test."
    ]
    (soa,) = q("example.test.", "SOA").answer
    assert soa[0].mname.to_text() == "ns.dns.example.test."
    (rsoa,) = q("in-addr.arpa.", "SOA").answer
    assert rsoa[0].serial == soa[0].serial


@pytest.mark.parametrize(
    "name,rdtype,rcode",
    [
        ("nope.example.test.", "A", dns.rcode.NXDOMAIN),
        ("nope.svc.example.test.", "A", dns.rcode.NXDOMAIN),
        ("2.0.0.10.in-addr.arpa.", "PTR", dns.rcode.NXDOMAIN),
        ("api.example.test.", "AAAA", dns.rcode.NOERROR),  # NODATA: the name has A only
        ("svc.example.test.", "TXT", dns.rcode.NOERROR),  # exists through instances below
        ("svc2.example.test.", "A", dns.rcode.NOERROR),  # empty non-terminals: NODATA
        ("ptr.svc2.example.test.", "TXT", dns.rcode.NOERROR),
        ("0.0.10.in-addr.arpa.", "PTR", dns.rcode.NOERROR),
        ("10.in-addr.arpa.", "PTR", dns.rcode.NOERROR),
    ],
)
def test_nxdomain_and_nodata(cluster, name, rdtype, rcode):
    for tcp in (False, True):
        reply = cluster.pdns.query(name, rdtype, tcp=tcp)
        assert reply.rcode() == rcode, reply
        assert not reply.answer
        assert [rrset.rdtype for rrset in reply.authority] == [SOA]


# The same questions to skydns itself and to pdns: the same rcode and answer section.
PARITY = [
    ("api.example.test.", "A"),
    ("api.example.test.", "AAAA"),
    ("api.example.test.", "SRV"),
    ("i1.api.example.test.", "A"),
    ("west.example.test.", "A"),
    ("west.example.test.", "SRV"),
    ("west.example.test.", "TXT"),
    ("db.west.example.test.", "SRV"),
    ("www.example.test.", "A"),
    ("www.example.test.", "CNAME"),
    ("motd.example.test.", "TXT"),
    ("mail.example.test.", "MX"),
    ("example.test.", "NS"),
    ("example.test.", "SOA"),
    ("example.test.", "A"),
    ("v6.example.test.", "AAAA"),
    ("v6.example.test.", "A"),
    ("svc.example.test.", "A"),
    ("svc2.example.test.", "A"),
    ("nope.example.test.", "A"),
    ("1.0.0.10.in-addr.arpa.", "PTR"),
    ("0.0.10.in-addr.arpa.", "PTR"),
    ("API.Example.TEST.", "A"),
]


def test_same_answers_as_skydns(cluster):
    skydns = Skydns(cluster.etcd.endpoint).start()
    try:
        for name, rdtype in PARITY:
            ours, theirs = skydns.query(name, rdtype), cluster.pdns.query(name, rdtype)
            assert (ours.rcode(), answer_texts(ours)) == (theirs.rcode(), answer_texts(theirs)), (
                name,
                rdtype,
            )
    finally:
        skydns.stop()
    # Where pdns differs, by design (PDNS.md): a `*` in a question is a literal label to
    # pdns, who probes `*.<parent>` itself when looking for RFC 4592 wildcards.
    assert cluster.pdns.query("*.west.example.test.", "SRV").rcode() == dns.rcode.NXDOMAIN


def test_health_changes_show_at_once(cluster):
    etcd = cluster.etcd
    try:
        etcd.put("/skydns/monitor/status/10.0.0.2", {"status": "DOWN"})
        wait_until(lambda: cluster.a("api.example.test.") == ["10.0.0.1"], timeout=5,
                   message="DOWN address still answered")
        assert cluster.a("www.example.test.") == ["10.0.0.1"]  # through the CNAME too
        etcd.put("/skydns/monitor/status/10.0.0.1", {"status": "DOWN"})
        wait_until(lambda: cluster.a("api.example.test.") == ["10.0.0.1", "10.0.0.2"],
                   timeout=5, message="all DOWN should return all (fail open)")
        etcd.delete("/skydns/monitor/status/10.0.0.1")
        wait_until(lambda: cluster.a("api.example.test.") == ["10.0.0.1"], timeout=5)
    finally:
        etcd.delete_prefix("/skydns/monitor/status/")
    wait_until(lambda: cluster.a("api.example.test.") == ["10.0.0.1", "10.0.0.2"], timeout=5)


def soa_serial(cluster, zone: str = "example.test.") -> int:
    (soa,) = cluster.pdns.query(zone, "SOA").answer
    return soa[0].serial


def test_serial_moves_with_the_zone(cluster):
    etcd = cluster.etcd
    before = soa_serial(cluster)
    etcd.put("/skydns/test/example/new/x", {"host": "10.0.7.1"})
    revision = etcd.revision()
    try:
        wait_until(lambda: cluster.a("new.example.test.") == ["10.0.7.1"], timeout=5)
        assert soa_serial(cluster) == revision > before
        assert soa_serial(cluster, "in-addr.arpa.") == revision
        etcd.put("/skydns/monitor/status/10.0.7.1", {"status": "UP"})  # health: no zone change
        assert soa_serial(cluster) == revision
    finally:
        etcd.delete("/skydns/test/example/new/x")
        etcd.delete("/skydns/monitor/status/10.0.7.1")
    wait_until(lambda: soa_serial(cluster) > revision, timeout=5)
    assert cluster.pdns.query("new.example.test.", "A").rcode() == dns.rcode.NXDOMAIN


def normalized(name: str, ttl, rdtype: str, data: str) -> tuple:
    rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rdtype), data)
    return (name.lower(), int(ttl), rdtype, rdata.to_text())


def axfr(cluster, zone: str) -> list[tuple]:
    """The zone through pdns: `dig AXFR` when dig is installed, else dnspython."""
    port = cluster.pdns.port
    out = []
    if shutil.which("dig"):
        proc = subprocess.run(
            ["dig", "+tcp", "+nocmd", "+nostats", "+nocomments", "-p", str(port), "@127.0.0.1",
             zone, "AXFR"],
            capture_output=True, text=True, timeout=30,
        )
        assert proc.returncode == 0, proc.stderr
        for text in proc.stdout.splitlines():
            if text.strip() and not text.startswith(";"):
                name, ttl, _cls, rdtype, data = text.split(None, 4)
                out.append(normalized(name, ttl, rdtype, data))
        assert out, proc.stdout
        return out
    return skydns_axfr(port, zone)  # any server's AXFR through dnspython


def dumped(cluster, zone: str) -> list[tuple]:
    proc = subprocess.run(
        [sys.executable, "-m", "dnsserver", "dump", "--config-file", str(cluster.backend.config),
         "--json", "--zone", zone],
        capture_output=True, text=True, timeout=30, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(text) for text in proc.stdout.splitlines()]
    return [normalized(r["name"], r["ttl"], r["type"], r["data"]) for r in rows]


def without_serial(rows: list[tuple]) -> list[tuple]:
    out = []
    for name, ttl, rdtype, data in rows:
        if rdtype == "SOA":
            fields = data.split()
            data = " ".join(fields[:2] + fields[3:])
        out.append((name, ttl, rdtype, data))
    return out


@pytest.mark.parametrize("zone", ["example.test.", "in-addr.arpa."])
def test_axfr_through_pdns_is_the_dump(cluster, zone):
    transferred = axfr(cluster, zone)
    assert transferred[0][2] == "SOA" and transferred[-1] == transferred[0]
    assert int(transferred[0][3].split()[2]) == soa_serial(cluster, zone)
    dump = dumped(cluster, zone)
    # The serials may differ: a fresh load (the dump) counts every etcd revision, the running
    # backend the last record change (a status write moves etcd's revision, not the zone).
    assert sorted(without_serial(transferred[:-1])) == sorted(without_serial(dump))
    assert all(rdtype for _, _, rdtype, _ in transferred)  # no empty non-terminal leaked


def skydns_axfr(port: int, zone: str) -> list[tuple]:
    """The zone from the server on `port` (skydns, or pdns without dig), via dnspython."""
    out = []
    for message in dns.query.xfr("127.0.0.1", zone, port=port, lifetime=10, relativize=False):
        for rrset in message.answer:
            for rr in rrset:
                out.append(normalized(rrset.name.to_text(), rrset.ttl,
                                      dns.rdatatype.to_text(rrset.rdtype), rr.to_text()))
    return out


@pytest.mark.parametrize("zone", ["example.test.", "in-addr.arpa."])
def test_axfr_through_pdns_is_skydns_axfr(cluster, zone):
    """pdns (from the backend's `list`) and skydns transfer the same zone, as answered."""
    srv = Skydns(cluster.etcd.endpoint, Dns={"axfr-allow": "127.0.0.0/8"}).start()
    try:
        ours = skydns_axfr(srv.port, zone)
    finally:
        srv.stop()
    theirs = axfr(cluster, zone)
    # serials aside: each counts the etcd revision it loaded or last saw change
    assert sorted(set(without_serial(theirs[:-1]))) == sorted(set(without_serial(ours[:-1])))
    names = {name for name, _, _, _ in ours}
    if zone == "example.test.":
        assert "api.example.test." in names  # an aggregated name, not only the leaves


def test_other_names_refused_and_pdns_never_complained(cluster):
    assert cluster.pdns.query("www.other.test.", "A").rcode() == dns.rcode.REFUSED
    assert cluster.pdns.query("1.0.0.10.ip6.arpa.", "PTR").rcode() == dns.rcode.REFUSED
    # Every request pdns made so far was answered without a `log` line (pdns logs those as
    # "[remotebackend]: ...") and without an exception.
    log = cluster.pdns.log.read_text(errors="replace")
    assert "[remotebackend]" not in log and "Exception" not in log, log


def test_pdns_recovers_when_the_backend_restarts(cluster):
    backend = cluster.backend
    assert cluster.a("api.example.test.") == ["10.0.0.1", "10.0.0.2"]
    backend.kill()  # SIGKILL: pdns's connections break, the socket file is left behind
    assert backend.socket.exists()
    try:
        reply = cluster.pdns.query("api.example.test.", "A", timeout=3)
        assert reply.rcode() in (dns.rcode.SERVFAIL, dns.rcode.REFUSED) or not reply.answer
    except dns.exception.Timeout:
        pass  # no answer at all is as good: nobody can know the records
    cluster.etcd.put("/skydns/test/example/api/i3", {"host": "10.0.0.3"})  # while it is down
    backend.start()  # the same socket path; the stale file is replaced

    def all_answer() -> bool:
        # pdns has a backend connection per thread; each finds its old one broken on first
        # use (that query fails) and reconnects. Recovered: a run of queries all answer.
        for tcp in (False, True) * 8:
            if cluster.a("api.example.test.", tcp=tcp) != ["10.0.0.1", "10.0.0.2", "10.0.0.3"]:
                return False
        return True

    wait_until(all_answer, timeout=20, message=f"pdns did not recover: {cluster.pdns.logs()}")
