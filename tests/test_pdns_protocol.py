"""The PowerDNS remote backend protocol with plain values: requests in, replies out. No network."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from dnsserver.zone.context import ZoneSettings
from dnsserver.zone.state import ZoneState
from pdnsbackend.protocol import LineTooLong, PdnsBackend, Session
from skydns.keys import key_to_path
from skydns.records import parse_record

from samples import EXAMPLES

RECORDS = {  # EXAMPLES.md, plus a shape the protocol must render
    **EXAMPLES,
    "/skydns/test/example/wild/*": {"host": "10.0.3.1"},
}


def make_state(records=RECORDS, down=(), serial=7, ready=True) -> ZoneState:
    state = ZoneState(ZoneSettings(domain="example.test.", ttl=30, min_ttl=10))
    if ready:
        state.load(
            [parse_record(k, key_to_path(k), json.dumps(v).encode()) for k, v in records.items()],
            serial,
        )
        state.load_health((ip, "DOWN") for ip in down)
    return state

ZONE_SOA = "ns.dns.example.test. hostmaster.example.test. 7 28800 7200 604800 10"


def backend(records=RECORDS, down=(), mode="", serial=7) -> PdnsBackend:
    return PdnsBackend(make_state(records, down, serial), mode=mode)


def lookup(be: PdnsBackend, qname: str, qtype: str = "ANY", remote: str = "127.0.0.1"):
    reply = be.handle(
        {"method": "lookup", "parameters": {"qname": qname, "qtype": qtype, "remote": remote}}
    )
    return reply["result"]


def lines(records) -> list[str]:
    return sorted(f"{r['qname']} {r['ttl']} {r['qtype']} {r['content']}".rstrip() for r in records)


# -- lookup: the answer rules, as pdns asks for them ------------------------------------------

LOOKUPS = [
    # qname, qtype, expected "name ttl TYPE content" lines
    ("example.test.", "SOA", [f"example.test. 10 SOA {ZONE_SOA}"]),
    ("api.example.test.", "SOA", []),  # SOA only at an apex: pdns walks up with these
    ("test.", "SOA", []),
    (
        "example.test.",
        "ANY",
        [f"example.test. 10 SOA {ZONE_SOA}", "example.test. 30 NS ns1.ns.dns.example.test."],
    ),
    (
        "db.west.example.test.",
        "SRV",
        [
            "db.west.example.test. 30 SRV 10 25 5432 1.db.west.example.test.",
            "db.west.example.test. 30 SRV 10 75 5432 2.db.west.example.test.",
            "db.west.example.test. 30 SRV 20 100 5432 db3.example.test.",
        ],
    ),
    ("mail.example.test.", "MX", ["mail.example.test. 30 MX 5 mx1.mail.example.test."]),
    ("www.example.test.", "ANY", ["www.example.test. 30 CNAME api.example.test."]),
    ("www.example.test.", "A", []),  # the chain is pdns's to follow
    ("motd.example.test.", "TXT", ['motd.example.test. 30 TXT "maintenance at 02:00"']),
    ("v6.example.test.", "AAAA", ["v6.example.test. 30 AAAA 2001:db8::1"]),
    ("1.0.0.10.in-addr.arpa.", "ANY", ["1.0.0.10.in-addr.arpa. 30 PTR api.example.test."]),
    ("in-addr.arpa.", "SOA", [f"in-addr.arpa. 10 SOA {ZONE_SOA}"]),
    ("ip6.arpa.", "SOA", []),  # no records there: not a zone we serve
    ("nope.example.test.", "ANY", []),  # nothing at or below: pdns says NXDOMAIN
    ("elsewhere.test.", "ANY", []),
    ("api.example.test.", "CAA", []),
    ("x.wild.example.test.", "A", ["x.wild.example.test. 30 A 10.0.3.1"]),  # stored wildcard
    ("*.wild.example.test.", "A", ["*.wild.example.test. 30 A 10.0.3.1"]),
    ("*.example.test.", "ANY", []),  # pdns's wildcard probe: no literal `*` stored there
    ("*.west.example.test.", "SRV", []),
]


@pytest.mark.parametrize("qname,qtype,expected", LOOKUPS)
def test_lookup(qname, qtype, expected):
    assert lines(lookup(backend(), qname, qtype)) == expected


def test_any_has_every_type_of_the_name():
    records = lookup(backend(), "west.example.test.")
    assert Counter(r["qtype"] for r in records) == {"A": 2, "SRV": 3}
    assert all(r["auth"] is True and r["domain_id"] == 1 for r in records)
    assert all(isinstance(r["ttl"], int) for r in records)


def test_empty_non_terminal_answers_with_an_ent_record():
    """Exists only through the records below it: one record of empty qtype (pdns: NODATA)."""
    assert lookup(backend(), "0.0.10.in-addr.arpa.") == [
        {"qtype": "", "qname": "0.0.10.in-addr.arpa.", "content": "", "ttl": 0, "auth": True,
         "domain_id": 2}
    ]
    records = {
        "/skydns/test/example/svc/ptr/x": {"host": "api.example.test", "type": "PTR"},
        "/skydns/test/example/svc/web/i1": {"host": "10.0.0.5"},
    }
    be = backend(records)
    assert lines(lookup(be, "svc.example.test.")) == [
        "svc.example.test. 30 A 10.0.0.5",
        "svc.example.test. 30 SRV 10 100 0 i1.web.svc.example.test.",  # as skydns answers SRV
    ]
    assert lines(lookup(be, "ptr.svc.example.test.")) == ["ptr.svc.example.test. 0"]
    assert lookup(be, "ptr.svc.example.test.", "A") == []  # a typed lookup: just nothing
    assert lookup(be, "nope.svc.example.test.") == []


def test_down_addresses_left_out_all_down_all_returned():
    assert lines(lookup(backend(down={"10.0.0.2"}), "api.example.test.", "A")) == [
        "api.example.test. 60 A 10.0.0.1"
    ]
    both = lines(lookup(backend(down={"10.0.0.1", "10.0.0.2"}), "api.example.test.", "A"))
    assert both == ["api.example.test. 60 A 10.0.0.1", "api.example.test. 60 A 10.0.0.2"]


def test_random_one_and_hone_one():
    be = backend(mode="random", down={"10.0.0.2"})
    seen = {lookup(be, "api.example.test.", "A")[0]["content"] for _ in range(20)}
    assert seen == {"10.0.0.1"}
    be = backend(mode="random")
    picks = [lookup(be, "api.example.test.")[0] for _ in range(200)]
    assert all(len(lookup(be, "api.example.test.", "A")) == 1 for _ in range(5))
    assert {p["content"] for p in picks if p["qtype"] == "A"} == {"10.0.0.1", "10.0.0.2"}
    be = backend(mode="hone")
    firsts = {}
    for client in (f"10.1.0.{i}" for i in range(40)):
        first = lookup(be, "api.example.test.", "A", remote=client)
        assert len(first) == 1
        assert all(lookup(be, "api.example.test.", "A", remote=client) == first for _ in range(3))
        firsts[client] = first[0]["content"]
    assert set(firsts.values()) == {"10.0.0.1", "10.0.0.2"}


def test_txt_content_is_zone_file_text():
    be = backend({"/skydns/test/example/t/x": {"text": 'say "hi" \\ caf\u00e9 ' + "x" * 300}})
    (rec,) = lookup(be, "t.example.test.", "TXT")
    assert rec["content"].startswith('"say \\"hi\\" \\\\ caf\\195\\169 xxx')
    assert rec["content"].count('" "') == 1  # split into strings of at most 255 octets


def test_serial_is_the_etcd_revision():
    be = backend(serial=12345)
    (soa,) = lookup(be, "example.test.", "SOA")
    assert soa["content"].split()[2] == "12345"
    assert be.handle({"method": "getDomainInfo", "parameters": {"name": "example.test."}}) == {
        "result": {"id": 1, "zone": "example.test.", "serial": 12345, "notified_serial": 12345,
                   "kind": "native", "masters": []}
    }


# -- zones ------------------------------------------------------------------------------------


def test_get_all_domains_lists_reverse_zones_with_records():
    reply = backend().handle({"method": "getAllDomains", "parameters": {"include_disabled": False}})
    assert [(d["id"], d["zone"], d["serial"], d["kind"]) for d in reply["result"]] == [
        (1, "example.test.", 7, "native"),
        (2, "in-addr.arpa.", 7, "native"),
    ]
    no_reverse = {k: v for k, v in RECORDS.items() if "/arpa/" not in k}
    reply = backend(no_reverse).handle({"method": "getalldomains"})
    assert [d["zone"] for d in reply["result"]] == ["example.test."]


def test_get_domain_info():
    be = backend()
    info = be.handle({"method": "getDomainInfo", "parameters": {"name": "in-addr.arpa."}})
    assert info["result"]["id"] == 2 and info["result"]["zone"] == "in-addr.arpa."
    for name in ("ip6.arpa.", "other.test.", "api.example.test."):
        reply = be.handle({"method": "getDomainInfo", "parameters": {"name": name}})
        assert reply == {"result": False}


def test_list_is_the_zone_as_answered():
    be = backend()
    records = be.handle({"method": "list", "parameters": {"zonename": "example.test.",
                                                          "domain_id": -1}})["result"]
    assert records[0]["qtype"] == "SOA" and records[0]["content"] == ZONE_SOA
    got = lines(records)
    assert "i1.api.example.test. 60 A 10.0.0.1" in got
    assert "1.db.west.example.test. 30 SRV 10 100 5432 1.db.west.example.test." in got
    assert "mx1.mail.example.test. 30 MX 5 mx1.mail.example.test." in got
    # the names above the leaves answer too (aggregation), so they are in the zone
    assert "api.example.test. 60 A 10.0.0.1" in got
    assert any(line.startswith("db.west.example.test. 30 SRV ") for line in got)
    ents = sorted(r["qname"] for r in records if r["qtype"] == "")
    owners = {r["qname"] for r in records if r["qtype"]}
    assert not owners & set(ents)
    reverse = be.handle({"method": "list", "parameters": {"zonename": "in-addr.arpa."}})
    got = lines(reverse["result"])
    assert f"in-addr.arpa. 10 SOA {ZONE_SOA}" in got
    assert "1.0.0.10.in-addr.arpa. 30 PTR api.example.test." in got
    # reverse names answer PTR only: the names above are empty non-terminals, not SRV owners
    assert "0.0.10.in-addr.arpa. 0" in got
    assert not [line for line in got if " SRV " in line], got
    reply = be.handle({"method": "list", "parameters": {"zonename": "other.test."}})
    assert reply["result"] is False and "not a zone" in reply["log"][0]


def test_metadata_and_initialize():
    be = backend()
    assert be.handle({"method": "initialize", "parameters": {"path": "/x"}}) == {"result": True}
    assert be.handle({"method": "getAllDomainMetadata", "parameters": {"name": "example.test."}}) \
        == {"result": {}}
    assert be.handle({"method": "getDomainMetadata",
                      "parameters": {"name": "example.test.", "kind": "PRESIGNED"}}) \
        == {"result": []}


def test_not_ready_fails_data_requests_only():
    be = PdnsBackend(make_state(ready=False))
    assert be.handle({"method": "initialize"}) == {"result": True}
    reply = be.handle({"method": "lookup", "parameters": {"qname": "example.test.",
                                                          "qtype": "SOA"}})
    assert reply["result"] is False and "not loaded" in reply["log"][0]


# -- requests and framing ---------------------------------------------------------------------


@pytest.mark.parametrize("method", ["lookup", "LOOKUP", "Lookup", "lOoKuP"])
def test_method_names_are_case_insensitive(method):
    reply = backend().handle(
        {"method": method, "parameters": {"qname": "api.example.test.", "qtype": "A"}}
    )
    assert len(reply["result"]) == 2


@pytest.mark.parametrize(
    "request_",
    [
        {"method": "setDomainMetadata", "parameters": {}},
        {"method": "getBeforeAndAfterNamesAbsolute", "parameters": {"id": 1, "qname": "x"}},
        {"method": "noSuchMethod"},
    ],
)
def test_unknown_methods_are_false(request_):
    assert backend().handle(request_) == {"result": False}


@pytest.mark.parametrize(
    "request_",
    [
        [1, 2],
        "lookup",
        None,
        {},
        {"method": 5},
        {"method": "lookup", "parameters": [1]},
        {"method": "lookup", "parameters": {"qtype": "A"}},
        {"method": "lookup", "parameters": {"qname": 7, "qtype": "A"}},
        {"method": "list", "parameters": {}},
    ],
)
def test_bad_requests_are_false_with_a_log_line(request_):
    reply = backend().handle(request_)
    assert reply["result"] is False
    assert isinstance(reply["log"], list) and reply["log"][0].startswith("skydns-pdns-backend:")


def replies(data: bytes) -> list[dict]:
    assert data.endswith(b"\n") or data == b""
    return [json.loads(line) for line in data.splitlines()]


def request_line(method: str, **params) -> bytes:
    return json.dumps({"method": method, "parameters": params}).encode() + b"\n"


def test_a_request_in_fragments():
    session = Session(backend())
    line = request_line("lookup", qname="api.example.test.", qtype="A")
    out = b""
    for i in range(len(line)):
        chunk = session.feed(line[i : i + 1])
        if i < len(line) - 1:
            assert chunk == b""  # nothing before the newline
        out += chunk
    (reply,) = replies(out)
    assert len(reply["result"]) == 2


def test_several_requests_in_one_write_and_across_writes():
    session = Session(backend())
    data = (
        request_line("initialize")
        + request_line("lookup", qname="example.test.", qtype="SOA")
        + request_line("getAllDomains")
        + request_line("lookup", qname="motd.example.test.", qtype="ANY")
    )
    cut = len(data) - 10
    out = session.feed(data[:cut]) + session.feed(data[cut:])
    got = replies(out)
    assert [type(r["result"]).__name__ for r in got] == ["bool", "list", "list", "list"]
    assert got[1]["result"][0]["qtype"] == "SOA"
    assert got[3]["result"][0]["qtype"] == "TXT"
    assert session.requests == 4


def test_garbage_lines_get_false_and_the_session_goes_on():
    session = Session(backend())
    data = (
        b"this is not json\n"
        + b"\xff\xfe\x00 binary\n"
        + b'{"method": "lookup", "parameters": \n'
        + b"[1, 2, 3]\n"
        + b'"a string"\n'
        + b"\n   \r\n"  # blank lines: no request, no reply
        + b"[" * 100000 + b"\n"
        + request_line("lookup", qname="api.example.test.", qtype="A")
    )
    got = replies(session.feed(data))
    assert [r["result"] for r in got[:6]] == [False] * 6
    assert all(r["log"] for r in got[:6])
    assert len(got) == 7 and len(got[6]["result"]) == 2


def test_crlf_line_endings_work():
    session = Session(backend())
    (reply,) = replies(session.feed(request_line("initialize").rstrip(b"\n") + b"\r\n"))
    assert reply == {"result": True}


def test_a_line_longer_than_the_limit_ends_the_session_after_earlier_replies():
    session = Session(backend(), max_line=1000)
    with pytest.raises(LineTooLong) as err:
        session.feed(request_line("initialize") + b"x" * 1001)
    assert replies(err.value.replies) == [{"result": True}]
    session = Session(backend(), max_line=1000)
    session.feed(b"y" * 600)
    with pytest.raises(LineTooLong):
        session.feed(b"y" * 600 + b"\n")
    session = Session(backend(), max_line=1000)  # exactly the limit is fine
    padded = request_line("initialize").rstrip(b"\n")
    padded += b" " * (1000 - len(padded)) + b"\n"
    assert replies(session.feed(padded)) == [{"result": True}]


def test_a_failing_handler_costs_one_reply_not_the_session(monkeypatch):
    be = backend()
    session = Session(be)

    def broken(params):
        raise RuntimeError("bug")

    monkeypatch.setitem(be.methods, "getalldomains", broken)
    got = replies(session.feed(request_line("getAllDomains") + request_line("initialize")))
    assert got[0]["result"] is False and "internal error" in got[0]["log"][0]
    assert got[1] == {"result": True}


def test_wildcard_probes_without_stored_wildcards():
    be = backend({"/skydns/test/example/api/i1": {"host": "10.0.0.1"}})
    assert lookup(be, "*.example.test.") == []
    assert lookup(be, "*.api.example.test.") == []
    assert lines(lookup(be, "api.example.test.", "A")) == ["api.example.test. 30 A 10.0.0.1"]


def test_root_and_names_without_the_trailing_dot():
    be = backend()
    assert lookup(be, ".", "SOA") == []
    assert lookup(be, ".", "ANY") == []
    assert lines(lookup(be, "example.test", "SOA")) == [f"example.test. 10 SOA {ZONE_SOA}"]


def test_memoized_lookups_follow_health_records_and_leases():
    """Lookups are reused between changes; a DOWN flip, a record change and a lease
    TTL each make the next lookup fresh."""
    be = backend()
    first = lookup(be, "api.example.test.", "A")
    assert lookup(be, "api.example.test.", "A") is first  # reused, not rebuilt
    assert len(lines(first)) == 2

    be.state.set_health("10.0.0.2", "DOWN")
    assert lines(lookup(be, "api.example.test.", "A")) == ["api.example.test. 60 A 10.0.0.1"]

    key = "/skydns/test/example/api/i9"
    be.state.put(parse_record(key, key_to_path(key), b'{"host": "10.0.0.9", "lease": 0}'), 8)
    assert "api.example.test. 30 A 10.0.0.9" in lines(lookup(be, "api.example.test.", "A"))

    be.state.put(parse_record(key, key_to_path(key), b'{"host": "10.0.0.9"}', lease=77), 9)
    lookup(be, "api.example.test.", "A")
    be.state.add_lease_ttls({77: 5})  # the lease's TTL arrives after the record
    assert "api.example.test. 5 A 10.0.0.9" in lines(lookup(be, "api.example.test.", "A"))


def test_no_memo_when_one_address_is_picked_per_client():
    be = backend(mode="hone")
    picks = {lookup(be, "api.example.test.", "A", remote=f"10.9.0.{i}")[0]["content"]
             for i in range(40)}
    assert picks == {"10.0.0.1", "10.0.0.2"}
