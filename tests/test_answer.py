"""The answer rules of EXAMPLES.md as a table: records in, (rcode, sections) out. No network."""

from __future__ import annotations

import json

import pytest
from answertest import answer
from dnslib import QTYPE, RCODE

from dnsserver.zone.context import Context, ZoneSettings, owns
from dnsserver.zone.index import RecordIndex
from skydns.health import HealthView
from skydns.keys import key_to_path
from skydns.records import RecordError, parse_record

from samples import EXAMPLES

RECORDS = {
    **EXAMPLES,
    "/skydns/test/example/loop1/x": {"host": "loop2.example.test"},
    "/skydns/test/example/loop2/x": {"host": "loop1.example.test"},
    "/skydns/test/example/ext/x": {"host": "www.elsewhere.test"},
    "/skydns/test/example/dangling/x": {"host": "nothere.example.test"},
    "/skydns/test/example/wild/*": {"host": "10.0.3.1"},
    "/skydns/test/example/api2/abc123": {"host": "10.0.4.1", "type": "A"},
}


def make_ctx(records=RECORDS, down=()):
    index = RecordIndex()
    for key, value in records.items():
        index.put(parse_record(key, key_to_path(key), json.dumps(value).encode()))
    health = HealthView()
    health.down.update(down)
    return Context(index, health, ZoneSettings(domain="example.test.", ttl=30, min_ttl=10))


def texts(rrs):
    return sorted(f"{rr.rname} {rr.ttl} {QTYPE[rr.rtype]} {rr.rdata}" for rr in rrs)


CASES = [
    # name, type, rcode, answer lines (sorted), authority types
    (
        "api.example.test.",
        "A",
        RCODE.NOERROR,
        ["api.example.test. 60 A 10.0.0.1", "api.example.test. 60 A 10.0.0.2"],
        [],
    ),
    ("i2.api.example.test.", "A", RCODE.NOERROR, ["i2.api.example.test. 60 A 10.0.0.2"], []),
    ("api.example.test.", "AAAA", RCODE.NOERROR, [], ["SOA"]),
    ("nope.example.test.", "A", RCODE.NXDOMAIN, [], ["SOA"]),
    (
        "db.west.example.test.",
        "SRV",
        RCODE.NOERROR,
        [
            "db.west.example.test. 30 SRV 10 25 5432 1.db.west.example.test.",
            "db.west.example.test. 30 SRV 10 75 5432 2.db.west.example.test.",
            "db.west.example.test. 30 SRV 20 100 5432 db3.example.test.",
        ],
        [],
    ),
    ("west.example.test.", "TXT", RCODE.NOERROR, [], ["SOA"]),
    (
        "motd.example.test.",
        "TXT",
        RCODE.NOERROR,
        ['motd.example.test. 30 TXT "maintenance at 02:00"'],
        [],
    ),
    (
        "1.0.0.10.in-addr.arpa.",
        "PTR",
        RCODE.NOERROR,
        ["1.0.0.10.in-addr.arpa. 30 PTR api.example.test."],
        [],
    ),
    # reverse names answer PTR: their host names are no SRV targets (NODATA, at any label)
    ("1.0.0.10.in-addr.arpa.", "SRV", RCODE.NOERROR, [], ["SOA"]),
    ("10.in-addr.arpa.", "SRV", RCODE.NOERROR, [], ["SOA"]),
    ("example.test.", "NS", RCODE.NOERROR, ["example.test. 30 NS ns1.ns.dns.example.test."], []),
    ("v6.example.test.", "AAAA", RCODE.NOERROR, ["v6.example.test. 30 AAAA 2001:db8::1"], []),
    ("v6.example.test.", "A", RCODE.NOERROR, [], ["SOA"]),
    ("loop1.example.test.", "A", RCODE.SERVFAIL, [], []),
    (
        "dangling.example.test.",
        "A",
        RCODE.NXDOMAIN,
        ["dangling.example.test. 30 CNAME nothere.example.test."],
        ["SOA"],
    ),
    (
        "mail.example.test.",
        "MX",
        RCODE.NOERROR,
        ["mail.example.test. 30 MX 5 mx1.mail.example.test."],
        [],
    ),
    (
        "anything.wild.example.test.",
        "A",
        RCODE.NOERROR,
        ["anything.wild.example.test. 30 A 10.0.3.1"],
        [],
    ),
    ("api2.example.test.", "A", RCODE.NOERROR, ["api2.example.test. 30 A 10.0.4.1"], []),
    ("api.example.test.", "HTTPS", RCODE.NOERROR, [], ["SOA"]),
    ("example.test.", "A", RCODE.NOERROR, [], ["SOA"]),
    (
        "www.example.test.",
        "CNAME",
        RCODE.NOERROR,
        ["www.example.test. 30 CNAME api.example.test."],
        [],
    ),
]


@pytest.mark.parametrize("name,qtype,rcode,lines,auth", CASES, ids=[f"{c[0]}{c[1]}" for c in CASES])
def test_answer_table(name, qtype, rcode, lines, auth):
    ans = answer(make_ctx(), name, getattr(QTYPE, qtype))
    assert ans.rcode == rcode
    assert texts(ans.answer) == sorted(lines)
    assert sorted(QTYPE[rr.rtype] for rr in ans.authority) == auth


def test_srv_glue_and_wildcard_question():
    ctx = make_ctx()
    for name in ("db.west.example.test.", "west.example.test.", "*.west.example.test."):
        ans = answer(ctx, name, QTYPE.SRV)
        assert len(ans.answer) == 3, name
        assert texts(ans.additional) == [
            "1.db.west.example.test. 30 A 10.0.1.1",
            "2.db.west.example.test. 30 A 10.0.1.2",
            "db3.example.test. 30 A 10.0.1.3",
        ]


def test_cname_chain_followed_in_zone():
    ans = answer(make_ctx(), "www.example.test.", QTYPE.A)
    assert texts(ans.answer) == [
        "api.example.test. 60 A 10.0.0.1",
        "api.example.test. 60 A 10.0.0.2",
        "www.example.test. 30 CNAME api.example.test.",
    ]
    assert ans.pick_from == 1 and ans.picks == ["10.0.0.1", "10.0.0.2"]


def test_cname_out_of_zone_asks_for_external_resolution():
    ans = answer(make_ctx(), "ext.example.test.", QTYPE.A)
    assert ans.external == ("www.elsewhere.test.", QTYPE.A)
    assert texts(ans.answer) == ["ext.example.test. 30 CNAME www.elsewhere.test."]


def test_long_chain_stops():
    chain = {f"/skydns/test/example/c{i}/x": {"host": f"c{i + 1}.example.test"} for i in range(12)}
    chain["/skydns/test/example/c12/x"] = {"host": "10.9.9.9"}
    ans = answer(make_ctx(chain), "c0.example.test.", QTYPE.A)
    assert ans.rcode == RCODE.SERVFAIL and not ans.answer
    ans = answer(make_ctx(chain), "c5.example.test.", QTYPE.A)
    assert ans.rcode == RCODE.NOERROR and "c12.example.test. 30 A 10.9.9.9" in texts(ans.answer)


def test_down_left_out_and_fail_open():
    ans = answer(make_ctx(down={"10.0.0.2"}), "api.example.test.", QTYPE.A)
    assert texts(ans.answer) == ["api.example.test. 60 A 10.0.0.1"] and not ans.fail_open
    assert ans.ips == {"10.0.0.1", "10.0.0.2"}
    ans = answer(make_ctx(down={"10.0.0.1", "10.0.0.2"}), "api.example.test.", QTYPE.A)
    assert len(ans.answer) == 2 and ans.fail_open


def test_srv_leaves_out_down_targets():
    ans = answer(make_ctx(down={"10.0.1.1"}), "db.west.example.test.", QTYPE.SRV)
    assert [rr.rdata.target.idna() for rr in ans.answer] == [
        "2.db.west.example.test.",
        "db3.example.test.",
    ]
    assert ans.answer[0].rdata.weight == 100  # percentages are over what is served


def test_soa_at_apex_only():
    ctx = make_ctx()
    ctx.serial = 42
    ans = answer(ctx, "example.test.", QTYPE.SOA)
    assert len(ans.answer) == 1 and ans.answer[0].rdata.times[0] == 42
    ans = answer(ctx, "api.example.test.", QTYPE.SOA)
    assert not ans.answer and ans.authority


def test_ttl_lease_shorter_wins():
    index = RecordIndex()
    key = "/skydns/test/example/l/x"
    index.put(parse_record(key, key_to_path(key), b'{"host":"10.1.1.1","ttl":60}', lease=7))
    ctx = Context(index, HealthView(), ZoneSettings(domain="example.test."))
    ctx.lease_ttls[7] = 5
    assert answer(ctx, "l.example.test.", QTYPE.A).answer[0].ttl == 5


def test_owns():
    ctx = make_ctx()
    assert owns(ctx, "x.example.test.") and owns(ctx, "EXAMPLE.test.")
    assert owns(ctx, "1.0.0.10.in-addr.arpa.")
    assert not owns(ctx, "2.0.0.10.in-addr.arpa.") and not owns(ctx, "example.org.")


@pytest.mark.parametrize(
    "value",
    [
        b"not json",
        b"[1,2]",
        b'{"host": 5}',
        b'{"host": "bad host!"}',
        b"{}",
        b'{"host":"10.0.0.1","port":70000}',
        b'{"host":"10.0.0.1","type":"AAAA"}',
        b'{"host":"10.0.0.1","type":"BOGUS"}',
        b'{"host":"10.0.0.1","ttl":-1}',
        b"\xff\xfe",
    ],
)
def test_bad_records_rejected(value):
    with pytest.raises(RecordError):
        parse_record("/skydns/x/y", ("x", "y"), value)


def test_index_delete_prunes_and_exists():
    index = RecordIndex()
    key = "/skydns/test/example/a/b/c"
    index.put(parse_record(key, key_to_path(key), b'{"host":"10.0.0.1"}'))
    assert index.exists(("test", "example", "a")) and len(index) == 1
    index.delete(key)
    assert not index.exists(("test", "example")) and len(index) == 0


def test_ns_and_mx_glue_in_additional():
    records = dict(RECORDS)
    records["/skydns/test/example/dns/ns/ns2"] = {"host": "ns2.example.test"}
    records["/skydns/test/example/ns2/x"] = {"host": "10.0.9.2"}
    mx2 = {"host": "mx.example.test", "mail": True, "priority": 10}
    records["/skydns/test/example/mail/mx2"] = mx2
    records["/skydns/test/example/mx/x"] = {"host": "10.0.2.2"}
    ctx = make_ctx(records)
    ns = answer(ctx, "example.test.", QTYPE.NS)
    assert texts(ns.answer) == [
        "example.test. 30 NS ns1.ns.dns.example.test.",
        "example.test. 30 NS ns2.example.test.",
    ]
    assert texts(ns.additional) == [
        "ns1.ns.dns.example.test. 30 A 10.0.9.1",
        "ns2.example.test. 30 A 10.0.9.2",
    ]
    mx = answer(ctx, "mail.example.test.", QTYPE.MX)
    assert texts(mx.answer) == [
        "mail.example.test. 30 MX 10 mx.example.test.",
        "mail.example.test. 30 MX 5 mx1.mail.example.test.",
    ]
    assert texts(mx.additional) == [
        "mx.example.test. 30 A 10.0.2.2",
        "mx1.mail.example.test. 30 A 10.0.2.1",
    ]


def _chain(hops: int) -> dict:
    """c0 -> c1 -> ... -> c{hops} (an address): `hops` CNAME records to follow."""
    chain = {
        f"/skydns/test/example/c{i}/x": {"host": f"c{i + 1}.example.test"} for i in range(hops)
    }
    chain[f"/skydns/test/example/c{hops}/x"] = {"host": "10.9.9.9"}
    return chain


def test_cname_chain_boundary_eight_hops_answered_nine_stopped():
    """DESIGN: "at most 8 hops"; EXAMPLES: "a chain longer than 8 ... stops"."""
    ans = answer(make_ctx(_chain(8)), "c0.example.test.", QTYPE.A)
    assert ans.rcode == RCODE.NOERROR
    assert [QTYPE[rr.rtype] for rr in ans.answer] == ["CNAME"] * 8 + ["A"]
    assert "c8.example.test. 30 A 10.9.9.9" in texts(ans.answer)
    ans = answer(make_ctx(_chain(9)), "c0.example.test.", QTYPE.A)
    assert ans.rcode == RCODE.SERVFAIL and not ans.answer
