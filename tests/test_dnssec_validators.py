"""DNSSEC end to end: skydns signs with keys from the real dnssec-keygen, and two real
validators accept its answers: `delv` with the DS as trust anchor, and an `unbound` resolver
(AD bit) with a stub-zone to skydns. A wrong trust anchor must fail, so these can fail."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import dns.dnssec
import dns.rcode
import dns.rdatatype
import pytest

from dnssectest import DELV, KEYGEN, UNBOUND, Unbound, anchors_file, authenticated, delv, keygen
from dnstest import ROOT, Skydns, Upstream, write_config
from etcdtest import wait_for

pytestmark = pytest.mark.skipif(
    not (KEYGEN and DELV and UNBOUND), reason="needs dnssec-keygen, delv and unbound"
)

ZONE = "example.test."
STATUS = "/skydns/monitor/status/"
RECORDS = {
    "/skydns/test/example/api/i1": {"host": "10.0.0.1", "ttl": 60},
    "/skydns/test/example/api/i2": {"host": "10.0.0.2", "ttl": 60},
    "/skydns/test/example/api/i3": {"host": "10.0.0.3", "ttl": 60},
    "/skydns/test/example/flip/a": {"host": "10.0.2.1", "ttl": 1},
    "/skydns/test/example/flip/b": {"host": "10.0.2.2", "ttl": 1},
    "/skydns/test/example/www": {"host": "api.example.test"},
    "/skydns/test/example/dead": {"host": "gone.example.test"},
    "/skydns/test/example/west/db/1": {"host": "10.0.1.1", "port": 5432, "priority": 10},
    "/skydns/test/example/west/db/2": {"host": "10.0.1.2", "port": 5432, "priority": 20},
    "/skydns/test/example/notes/a/b": {"text": "only text down here"},
    "/skydns/test/example/dns/ns/ns1": {"host": "10.0.0.53"},
    "/skydns/test/example/wild/*": {"host": "10.0.5.1"},  # a stored wildcard
}
RECORDS.update({f"/skydns/test/example/big/i{i:02d}": {"host": f"10.9.0.{i}"} for i in range(60)})


def ds_lines(config) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-m", "dnsserver", "dnssec", "ds",  # not ROOT/.venv: it may be elsewhere
         "--config-file", str(config)],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )
    return out.stdout.split("\n")[:-1]


@pytest.fixture(scope="module")
def signed(etcd_server, tmp_path_factory):
    """skydns with a KSK + ZSK (ECDSA P-256) over the records above, its DS records, and a
    trust-anchors file for delv; plus a wrong anchor (another key's DS) for the control."""
    etcd_server.ensure_running()
    etcd_server.delete_prefix("/skydns")
    for key, value in RECORDS.items():
        etcd_server.put(key, value)
    keys = tmp_path_factory.mktemp("keys")
    ksk = keygen(keys, ZONE, 13, True)
    zsk = keygen(keys, ZONE, 13)
    other = keygen(keys, ZONE, 13, True)  # never configured: the wrong anchor
    server = Skydns(etcd_server.endpoint, Dns={"dnssec": f"{keys}/{ksk}, {keys}/{zsk}"})
    server.start()
    ds = ds_lines(server.config)
    assert len(ds) == 1 and ds[0].split()[3] == ksk.split("+")[-1].lstrip("0")
    wrong_conf = keys / "wrong.conf"
    wrong_conf.write_text(f"[Dns]\ndns-domain = {ZONE}\ndnssec = {keys}/{other}\n")
    wrong = ds_lines(wrong_conf)
    yield server, anchors_file(keys / "anchors.conf", ds), ds, anchors_file(
        keys / "wrong.conf.anchors", wrong), wrong
    server.stop()


# (name, type, what delv must say): every kind of answer the zone gives
CASES = [
    ("api.example.test.", "A", "fully validated"),  # positive, shuffled
    (ZONE, "SOA", "fully validated"),  # the apex
    (ZONE, "NS", "fully validated"),
    (ZONE, "DNSKEY", "fully validated"),
    ("nothing.example.test.", "A", "negative response, fully validated"),  # NXDOMAIN
    ("x.api.example.test.", "A", "negative response, fully validated"),  # below an existing name
    ("a.b.nowhere.example.test.", "A", "negative response, fully validated"),  # no parent
    ("api.example.test.", "TXT", "negative response, fully validated"),  # NODATA
    ("notes.example.test.", "A", "negative response, fully validated"),  # empty non-terminal
    ("www.example.test.", "A", "fully validated"),  # CNAME chain
    ("dead.example.test.", "A", "fully validated"),  # CNAME to NXDOMAIN (delv: "ncache nxdomain")
    ("db.west.example.test.", "SRV", "fully validated"),  # SRV with glue
    ("www.example.test.", "CNAME", "fully validated"),
    ("big.example.test.", "A", "fully validated"),  # truncated over UDP: delv retries on TCP
    ("foo.wild.example.test.", "A", "fully validated"),  # signed as the name asked
    ("x.y.wild.example.test.", "A", "negative response, fully validated"),
]


@pytest.mark.parametrize("name,rdtype,verdict", CASES)
def test_delv_validates(signed, name, rdtype, verdict):
    server, anchors, _, _, _ = signed
    out = delv(anchors, server.port, ZONE, name, rdtype)
    text = out.stdout + out.stderr
    assert f"; {verdict}" in text, text


def test_delv_validates_over_tcp(signed):
    server, anchors, _, _, _ = signed
    out = delv(anchors, server.port, ZONE, "api.example.test.", "A", "+tcp")
    assert "; fully validated" in out.stdout, out.stdout + out.stderr


def test_delv_wrong_anchor_fails(signed):
    server, _, _, wrong, _ = signed
    out = delv(wrong, server.port, ZONE, "api.example.test.", "A")
    text = out.stdout + out.stderr
    assert "fully validated" not in text and "resolution failed" in text, text


@pytest.fixture(scope="module")
def resolver(signed):
    server, _, ds, _, _ = signed
    unbound = Unbound(ZONE, server.port, ds).start()
    yield unbound
    unbound.stop()


UNBOUND_CASES = [
    ("api.example.test.", "A", dns.rcode.NOERROR, True),
    (ZONE, "SOA", dns.rcode.NOERROR, True),
    (ZONE, "DNSKEY", dns.rcode.NOERROR, True),
    ("nothing.example.test.", "A", dns.rcode.NXDOMAIN, False),
    ("x.api.example.test.", "A", dns.rcode.NXDOMAIN, False),
    ("a.b.nowhere.example.test.", "A", dns.rcode.NXDOMAIN, False),
    ("api.example.test.", "TXT", dns.rcode.NOERROR, False),
    ("notes.example.test.", "A", dns.rcode.NOERROR, False),
    ("www.example.test.", "A", dns.rcode.NOERROR, True),
    ("dead.example.test.", "A", dns.rcode.NXDOMAIN, True),
    ("db.west.example.test.", "SRV", dns.rcode.NOERROR, True),
    ("big.example.test.", "A", dns.rcode.NOERROR, True),  # TC over UDP, then TCP
    ("foo.wild.example.test.", "A", dns.rcode.NOERROR, True),
    ("x.y.wild.example.test.", "A", dns.rcode.NXDOMAIN, False),
]


@pytest.mark.parametrize("name,rdtype,rcode,has_answer", UNBOUND_CASES)
def test_unbound_sets_ad(resolver, name, rdtype, rcode, has_answer):
    reply = resolver.query(name, rdtype)
    assert reply.rcode() == rcode, (reply, resolver.logs()[-3000:])
    assert bool(reply.answer) == has_answer, reply
    assert authenticated(reply), (reply, resolver.logs()[-3000:])


def test_unbound_after_health_change(signed, resolver, etcd_server):
    """A DOWN address leaves the answer; the new RRset is signed and still validates."""
    def addresses():
        reply = resolver.query("flip.example.test.", "A")
        assert authenticated(reply), (reply, resolver.logs()[-3000:])
        return sorted(rr.address for rrset in reply.answer if rrset.rdtype == 1 for rr in rrset)

    assert addresses() == ["10.0.2.1", "10.0.2.2"]
    etcd_server.put(STATUS + "10.0.2.2", {"status": "DOWN"})
    try:
        wait_for(lambda: addresses() == ["10.0.2.1"], timeout=15,
                 message="unbound never saw the DOWN address leave")
    finally:
        etcd_server.delete_prefix(STATUS)


def test_unbound_over_tcp(signed):
    server, _, ds, _, _ = signed
    unbound = Unbound(ZONE, server.port, ds, tcp=True).start()
    try:
        for name, rdtype in [("api.example.test.", "A"), ("nothing.example.test.", "A"),
                             ("notes.example.test.", "A")]:
            reply = unbound.query(name, rdtype)
            assert authenticated(reply), (reply, unbound.logs()[-3000:])
    finally:
        unbound.stop()


def test_unbound_wrong_anchor_fails(signed):
    server, _, _, _, wrong = signed
    unbound = Unbound(ZONE, server.port, wrong).start()
    try:
        reply = unbound.query("api.example.test.", "A")
        assert reply.rcode() == dns.rcode.SERVFAIL and not authenticated(reply), reply
    finally:
        unbound.stop()


@pytest.mark.parametrize("mode", ["random-one", "hone-one"])
def test_one_address_modes_csk_ed25519(etcd_server, tmp_path, mode):
    """random-one / hone-one answers (one address per query, each its own RRset) signed with
    one Ed25519 CSK."""
    etcd_server.ensure_running()
    etcd_server.delete_prefix("/skydns")
    for key, value in RECORDS.items():
        etcd_server.put(key, value)
    csk = keygen(tmp_path, ZONE, 15, True)
    server = Skydns(etcd_server.endpoint, Dns={"dnssec": f"{tmp_path}/{csk}"},
                    Fun={mode: True})
    server.start()
    try:
        ds = ds_lines(server.config)
        anchors = anchors_file(tmp_path / "anchors.conf", ds)
        for _ in range(3):
            out = delv(anchors, server.port, ZONE, "api.example.test.", "A")
            assert "; fully validated" in out.stdout, out.stdout + out.stderr
            assert out.stdout.count("\tIN\tA\t") == 1, out.stdout
        unbound = Unbound(ZONE, server.port, ds).start()
        try:
            for name in ("api.example.test.", "nothing.example.test.", "notes.example.test."):
                reply = unbound.query(name)
                assert authenticated(reply), (reply, unbound.logs()[-3000:])
        finally:
            unbound.stop()
    finally:
        server.stop()


def test_rollover_by_adding_a_key_and_sighup(etcd_server):
    """A new key pre-published (active tomorrow) joins the DNSKEY RRset after SIGHUP, while
    the old one keeps signing; key paths are relative to the config file."""
    etcd_server.ensure_running()
    etcd_server.delete_prefix("/skydns")
    etcd_server.put("/skydns/test/example/api/i1", {"host": "10.0.0.1"})
    server = Skydns(etcd_server.endpoint)
    old = keygen(server.dir, ZONE, 13, True)
    write_config(server.config, etcd_server.endpoint, server.port, Dns={"dnssec": old})
    server.start()
    try:
        def tags():
            reply = server.query(ZONE, "DNSKEY", want_dnssec=True)
            return {dns.dnssec.key_id(k) for rrset in reply.answer
                    if rrset.rdtype == dns.rdatatype.DNSKEY for k in rrset}

        assert tags() == {int(old.rsplit("+", 1)[1])}
        new = keygen(server.dir, ZONE, 13, True, "-P", "now", "-A", "+1d")
        write_config(server.config, etcd_server.endpoint, server.port,
                     Dns={"dnssec": f"{old}, {new}"})
        os.kill(server.proc.pid, signal.SIGHUP)
        both = {int(old.rsplit("+", 1)[1]), int(new.rsplit("+", 1)[1])}
        wait_for(lambda: tags() == both, timeout=30, message="the new key never appeared")
        anchors = anchors_file(server.dir / "anchors.conf", ds_lines(server.config)[:1])
        out = delv(anchors, server.port, ZONE, "api.example.test.", "A")
        assert "; fully validated" in out.stdout, out.stdout + out.stderr
        reply = server.query("api.example.test.", "A", want_dnssec=True)
        sigs = [s for rrset in reply.answer if rrset.rdtype == dns.rdatatype.RRSIG for s in rrset]
        assert [s.key_tag for s in sigs] == [int(old.rsplit("+", 1)[1])]  # new: not active yet
    finally:
        server.stop()



def test_forwarded_answers_pass_through_unsigned(etcd_server):
    """Names outside the zone are not ours to sign: a DO query forwarded upstream gets the
    upstream's answer as it came (here: unsigned), and a CNAME leaving the zone is signed
    only for its in-zone part."""
    etcd_server.ensure_running()
    etcd_server.delete_prefix("/skydns")
    etcd_server.put("/skydns/test/example/ext", {"host": "www.elsewhere.org"})
    with Upstream({"www.elsewhere.org": "192.0.2.7"}) as upstream:
        server = Skydns(etcd_server.endpoint)
        csk = keygen(server.dir, ZONE, 13, True)
        write_config(server.config, etcd_server.endpoint, server.port,
                     Dns={"dnssec": csk, "nameservers": f"127.0.0.1:{upstream.port}"})
        server.start()
        try:
            reply = server.query("www.elsewhere.org.", "A", want_dnssec=True)
            assert [rr.address for rr in reply.answer[0]] == ["192.0.2.7"]
            assert not any(r.rdtype == dns.rdatatype.RRSIG for r in reply.answer)
            reply = server.query("ext.example.test.", "A", want_dnssec=True)
            signed_types = {r.covers for r in reply.answer if r.rdtype == dns.rdatatype.RRSIG}
            assert signed_types == {dns.rdatatype.CNAME}, reply
            assert any(r.rdtype == dns.rdatatype.A for r in reply.answer), reply
        finally:
            server.stop()
