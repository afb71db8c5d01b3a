"""Every kind of question through the one answer path (rules -> renderer) of a running skydns,
asked by real clients (dnspython, dig): MX and NS with glue, long TXT, CNAME, SOA, PTR,
NODATA, DO questions, names with odd octets; UDP and TCP."""

from __future__ import annotations

import subprocess

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import pytest

from dnstest import Skydns

B = "/skydns/test/example"
LONG = "v=spf1 " + "include:a-long-name.example.org " * 12  # over 255 octets: two strings
RECORDS = {
    f"{B}/api/i1": {"host": "10.0.0.1"},
    f"{B}/www/x": {"host": "api.example.test"},
    f"{B}/mail/mx1": {"host": "mx.example.test", "mail": True, "priority": 10},
    f"{B}/mx/x": {"host": "10.0.2.2"},
    f"{B}/long/x": {"text": LONG},
    f"{B}/dns/ns/ns1": {"host": "10.0.9.1"},
    f"{B}/sub/ns": {"host": "ns.sub.example.test", "type": "NS"},
    f"{B}/sub/ns/x": {"host": "10.0.9.9"},
    f"{B}/a.b/x": {"host": "10.0.10.1"},
    f"{B}/caf\u00e9/x": {"host": "10.0.10.2"},
    "/skydns/arpa/in-addr/10/0/0/1": {"host": "api.example.test"},
}


@pytest.fixture
def server(etcd):
    for key, value in RECORDS.items():
        etcd.put(key, value)
    srv = Skydns(etcd.endpoint).start()
    yield srv
    srv.stop()


def _lines(section):
    return sorted(line for rrset in section for line in rrset.to_text().splitlines())


@pytest.mark.parametrize("tcp", [False, True])
def test_mx_ns_txt_cname_soa_ptr(server, tcp):
    mx = server.query("mail.example.test.", "MX", tcp=tcp)
    assert _lines(mx.answer) == ["mail.example.test. 30 IN MX 10 mx.example.test."]
    assert _lines(mx.additional) == ["mx.example.test. 30 IN A 10.0.2.2"]
    ns = server.query("example.test.", "NS", tcp=tcp)
    assert _lines(ns.answer) == ["example.test. 30 IN NS ns1.ns.dns.example.test."]
    assert _lines(ns.additional) == ["ns1.ns.dns.example.test. 30 IN A 10.0.9.1"]
    sub = server.query("sub.example.test.", "NS", tcp=tcp)  # a delegation, with its glue
    assert _lines(sub.answer) == ["sub.example.test. 30 IN NS ns.sub.example.test."]
    assert _lines(sub.additional) == ["ns.sub.example.test. 30 IN A 10.0.9.9"]
    txt = server.query("long.example.test.", "TXT", tcp=tcp)
    strings = txt.answer[0][0].strings
    assert len(strings) == 2 and len(strings[0]) == 255 and b"".join(strings) == LONG.encode()
    cname = server.query("www.example.test.", "CNAME", tcp=tcp)
    assert _lines(cname.answer) == ["www.example.test. 30 IN CNAME api.example.test."]
    soa = server.query("example.test.", "SOA", tcp=tcp)
    assert soa.answer[0][0].mname.to_text() == "ns.dns.example.test." and not soa.authority
    ptr = server.query("1.0.0.10.in-addr.arpa.", "PTR", tcp=tcp)
    assert _lines(ptr.answer) == ["1.0.0.10.in-addr.arpa. 30 IN PTR api.example.test."]
    nodata = server.query("api.example.test.", "MX", tcp=tcp)
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
    assert nodata.authority[0].rdtype == dns.rdatatype.SOA
    for reply in (mx, ns, sub, txt, cname, soa, ptr, nodata):
        assert reply.flags & dns.flags.AA


def test_do_questions_answered_with_do_echoed(server):
    """No DNSSEC keys: a DO question gets the same records, the DO bit echoed in the OPT."""
    for name, rdtype in (("mail.example.test.", "MX"), ("nope.example.test.", "TXT"),
                         ("www.example.test.", "A")):
        plain = server.query(name, rdtype, use_edns=0)
        do = server.query(name, rdtype, use_edns=0, want_dnssec=True)
        assert do.ednsflags & dns.flags.DO and not plain.ednsflags & dns.flags.DO
        assert (_lines(do.answer), _lines(do.authority), do.rcode()) == (
            _lines(plain.answer), _lines(plain.authority), plain.rcode())


def test_names_with_odd_octets(server):
    """A label holding a dot and a UTF-8 label are answered from their octets."""
    for labels, address in (([b"a.b"], "10.0.10.1"), (["café".encode()], "10.0.10.2")):
        name = dns.name.Name([*labels, b"example", b"test", b""])
        reply = server.query(name, "A")
        assert reply.rcode() == dns.rcode.NOERROR and reply.answer[0].name == name
        assert reply.answer[0][0].address == address
    odd = dns.name.Name([b"\xff\\", b"example", b"test", b""])
    reply = server.query(odd, "TXT")
    assert reply.rcode() == dns.rcode.NXDOMAIN and reply.question[0].name == odd


def test_dig_mx_txt_soa(server):
    def dig(*args):
        return subprocess.run(["dig", "@127.0.0.1", "-p", str(server.port), *args],
                              capture_output=True, text=True, timeout=10).stdout

    assert dig("+short", "mail.example.test", "MX").split() == ["10", "mx.example.test."]
    assert dig("+short", "long.example.test", "TXT").count('" "') == 1  # two strings
    out = dig("example.test", "SOA")
    assert "status: NOERROR" in out and "ns.dns.example.test. hostmaster.example.test." in out
    out = dig("+dnssec", "api.example.test", "AAAA")
    assert "status: NOERROR" in out and "flags: do;" in out and "SOA" in out
