"""The one answer path (zone/rules.py -> wire/render.py) over a table of questions, every
transport, EDNS size and answer mode: the records each reply holds (read with dnspython)
against the expected ones, truncation, the cached entries, names with odd octets; and the
renderer's exact bytes (compression, truncation, the memoised SOA). No network.

tests/data/rules_expected.json holds the expected sections (rcode, answer, authority,
additional as dnspython text) of the table's questions over TCP: they were the replies of the
dnslib path (answer.py + wire.render, the reference before the rules were written once),
and the byte path was proven equal to it then (tests/test_wireanswer.py)."""

from __future__ import annotations

import json
from pathlib import Path

import dns.flags
import dns.message
import dns.rdatatype
import pytest
from test_engine import make_engine as engine_of

from dnsserver.engine import Engine
from dnsserver.wire import render
from dnsserver.wire.message import question_key
from dnsserver.zone import rules

B = "/skydns/test/example"
RECORDS = {
    f"{B}/api/i1": {"host": "10.0.0.1", "ttl": 60},
    f"{B}/api/i2": {"host": "10.0.0.2", "ttl": 60},
    f"{B}/api/i3": {"host": "10.0.0.3", "ttl": 60},
    f"{B}/one/x": {"host": "10.0.0.9"},
    f"{B}/dual/a": {"host": "10.0.5.1"},
    f"{B}/dual/b": {"host": "2001:db8::5"},
    f"{B}/v6/a": {"host": "2001:db8::1"},
    f"{B}/v6/b": {"host": "2001:db8::2"},
    f"{B}/west/db/1": {"host": "10.0.1.1", "port": 5432, "priority": 10, "weight": 50},
    f"{B}/west/db/2": {"host": "10.0.1.2", "port": 5432, "priority": 10, "weight": 150},
    f"{B}/west/db/3": {"host": "db3.example.test", "port": 5432, "priority": 20},
    f"{B}/west/db/4": {"host": "srv.elsewhere.test", "port": 80},
    f"{B}/west/db/5": {"host": "2001:db8::7", "port": 443, "targetstrip": 1},
    f"{B}/db3/x": {"host": "10.0.1.3"},
    f"{B}/db3/y": {"host": "2001:db8::3"},
    f"{B}/www/x": {"host": "api.example.test"},
    f"{B}/hop1/x": {"host": "hop2.example.test"},
    f"{B}/hop2/x": {"host": "www.example.test"},
    f"{B}/loop1/x": {"host": "loop2.example.test"},
    f"{B}/loop2/x": {"host": "loop1.example.test"},
    f"{B}/ext/x": {"host": "www.elsewhere.test"},
    f"{B}/dangling/x": {"host": "nothere.example.test"},
    f"{B}/tons/x": {"host": "ns.dns.example.test"},
    f"{B}/motd/x": {"text": "maintenance at 02:00"},
    f"{B}/mail/mx1": {"host": "10.0.2.1", "mail": True, "priority": 5},
    f"{B}/wild/*": {"host": "10.0.3.1"},
    f"{B}/api2/abc123": {"host": "10.0.4.1", "type": "A"},
    f"{B}/api2/def456": {"host": "10.0.4.2", "type": "A"},
    f"{B}/svc/_http/_tcp/x": {"host": "10.0.6.1", "port": 80, "type": "SRV"},
    f"{B}/down/a": {"host": "10.0.7.1"},
    f"{B}/down/b": {"host": "10.0.7.2"},
    f"{B}/alldown/a": {"host": "10.0.8.1"},
    f"{B}/dns/ns/ns1": {"host": "10.0.9.1"},
    "/skydns/arpa/in-addr/10/0/0/1": {"host": "api.example.test"},
    **{f"{B}/big/i{i:03d}": {"host": f"10.1.0.{i}"} for i in range(1, 81)},
    **{f"{B}/big6/i{i:03d}": {"host": f"2001:db8::1:{i:x}"} for i in range(1, 41)},
    **{f"{B}/bigsrv/s{i:02d}": {"host": f"10.2.0.{i}", "port": 80 + i} for i in range(1, 31)},
}
DOWN = ("10.0.7.1", "10.0.8.1")

QUESTIONS = [
    ("api.example.test.", "A"),
    ("API.Example.TEST.", "A"),
    ("i2.api.example.test.", "A"),
    ("one.example.test.", "A"),
    ("one.example.test.", "AAAA"),
    ("dual.example.test.", "A"),
    ("dual.example.test.", "AAAA"),
    ("v6.example.test.", "AAAA"),
    ("v6.example.test.", "SRV"),
    ("db.west.example.test.", "SRV"),
    ("west.example.test.", "SRV"),
    ("west.example.test.", "A"),
    ("db3.example.test.", "A"),
    ("www.example.test.", "A"),
    ("www.example.test.", "AAAA"),
    ("hop1.example.test.", "A"),
    ("loop1.example.test.", "A"),
    ("ext.example.test.", "A"),
    ("dangling.example.test.", "A"),
    ("tons.example.test.", "A"),
    ("nope.example.test.", "A"),
    ("nope.example.test.", "SRV"),
    ("nope.example.test.", "TXT"),
    ("nope.example.test.", "MX"),
    ("x.dns.example.test.", "A"),
    ("hostmaster.example.test.", "A"),
    ("ns.dns.example.test.", "AAAA"),
    ("a.b.c.d.e.f.nope.example.test.", "A"),
    ("example.test.", "A"),
    ("example.test.", "SRV"),
    ("example.test.", "SOA"),
    ("example.test.", "NS"),
    ("motd.example.test.", "TXT"),
    ("motd.example.test.", "A"),
    ("mail.example.test.", "MX"),
    ("mail.example.test.", "A"),
    ("anything.wild.example.test.", "A"),
    ("wild.example.test.", "A"),
    ("api2.example.test.", "A"),
    ("_http._tcp.svc.example.test.", "SRV"),
    ("svc.example.test.", "A"),
    ("down.example.test.", "A"),
    ("alldown.example.test.", "A"),
    ("big.example.test.", "A"),
    ("big6.example.test.", "AAAA"),
    ("bigsrv.example.test.", "SRV"),
    ("1.0.0.10.in-addr.arpa.", "PTR"),
    ("2.0.0.10.in-addr.arpa.", "A"),
    ("2.0.0.10.in-addr.arpa.", "PTR"),
    ("elsewhere.test.", "A"),
]
# (tcp, EDNS payload or None, DO)
TRANSPORTS = [(False, None, False), (False, 1232, False), (False, 600, False),
              (False, 4096, False), (True, None, False), (True, 1232, False),
              (False, 1232, True)]


EXPECTED = json.loads((Path(__file__).parent / "data" / "rules_expected.json").read_text())


def make_engine(mode: str, **dns) -> Engine:
    engine = engine_of(RECORDS, mode, serial=1234567, **dns)
    engine.state.load_health((ip, "DOWN") for ip in DOWN)
    # the flood path (plainnx.py) copies these replies instead of caching them: test_plainnx
    engine.plain_nx.shape = lambda *args: None
    return engine


def query_wire(name, rdtype, tcp, payload, do):
    if payload is None:
        query = dns.message.make_query(name, rdtype, use_edns=False)
    else:
        query = dns.message.make_query(name, rdtype, use_edns=0, payload=payload, want_dnssec=do)
    return query.to_wire()


def sections(reply: dns.message.Message) -> list:
    def lines(section):
        return sorted(line for rrset in section for line in rrset.to_text().splitlines())

    return [dns.rcode.to_text(reply.rcode()), lines(reply.answer), lines(reply.authority),
            lines(reply.additional)]


@pytest.mark.parametrize("mode", ["", "hone"])
def test_every_question_answers_the_expected_records(mode):
    engine = make_engine(mode)
    for name, rdtype in QUESTIONS:
        for _ in range(2):  # the miss, then the cached entry
            data = query_wire(name, rdtype, True, 1232, False)
            reply = dns.message.from_wire(engine.miss(data, "192.0.2.1", True))
            assert sections(reply) == EXPECTED[f"{mode}|{name}|{rdtype}"], (name, rdtype)
            assert reply.flags & dns.flags.AA or reply.rcode() == dns.rcode.REFUSED


@pytest.mark.parametrize("mode", ["", "random", "hone"])
@pytest.mark.parametrize("cache", [10000, 0])
def test_every_transport_holds_the_records_that_fit(mode, cache):
    """Over every transport the reply is the whole answer, or without its additional section
    (no TC), or its first records with TC=1; OPT (and DO) as asked; random-one one address."""
    engine = make_engine(mode, cacheSize=cache)
    for name, rdtype in QUESTIONS:
        expected = EXPECTED[f"{mode if mode == 'hone' else ''}|{name}|{rdtype}"]
        rcode, answer, authority, additional = expected
        for tcp, payload, do in TRANSPORTS:
            where = (name, rdtype, tcp, payload, do)
            data = query_wire(name, rdtype, tcp, payload, do)
            wire = engine.miss(data, "192.0.2.1", tcp)
            reply = dns.message.from_wire(wire)
            limit = 65535 if tcp else max(512, min(payload or 512, 1232))
            qend = question_key(data, tcp, 1232)[1]
            assert len(wire) <= limit and wire[12:qend] == data[12:qend], where
            assert (reply.edns >= 0) == (payload is not None), where
            assert bool(reply.ednsflags & dns.flags.DO) == do, where
            got = sections(reply)
            assert got[0] == rcode, where
            if mode == "random":  # one address of the expected set (the rest as expected)
                assert set(got[1]) <= set(answer) and set(got[3]) <= set(additional), where
                continue
            if reply.flags & dns.flags.TC:
                assert set(got[1]) <= set(answer) and not got[3], where
                assert set(got[2]) <= set(authority), where
            else:
                assert got[1:3] == [answer, authority], where
                assert got[3] in (additional, []), where


def test_cached_and_uncached_replies_are_the_same_bytes():
    """hone-one (no randomness): a reply rendered alone (cacheSize = 0) and one from the
    cached entry are the same bytes, the client's 0x20 casing and RD bit echoed."""
    cached, alone = make_engine("hone"), make_engine("hone", cacheSize=0)
    for name, rdtype in QUESTIONS:
        for tcp, payload, do in TRANSPORTS:
            for rd in (0, 1):
                data = query_wire(name, rdtype, tcp, payload, do)
                data = data[:2] + bytes(((data[2] & 0xFE) | rd,)) + data[3:]
                client = f"192.0.2.{len(name)}"
                first = cached.miss(data, client, tcp)
                assert first == alone.miss(data, client, tcp), (name, rdtype, tcp, payload, rd)
                assert first[:2] == data[:2] and first[2] & 1 == rd
    assert len(alone.cache) == 0


ODD = {
    f"{B}/a.b/x": {"host": "10.0.10.1"},  # a dot inside a label (a key segment)
    f"{B}/caf\u00e9/x": {"host": "10.0.10.2"},  # non-ASCII: UTF-8 octets
    f"{B}/srv/caf\u00e9": {"host": "10.0.10.3", "port": 80},  # a target made from the key
}


def test_names_with_odd_octets_are_answered_from_the_bytes():
    """No dnslib reading of names: a label holding a dot, non-ASCII labels, a backslash, each
    answered as the octets say (the question echoed, compression against it)."""
    engine = engine_of(json.loads(json.dumps(ODD)), "")
    dotted = dns.name.Name([b"a.b", b"example", b"test", b""])
    reply = dns.message.from_wire(engine.miss(
        dns.message.make_query(dotted, "A").to_wire(), "c", False))
    assert [rrset.to_text() for rrset in reply.answer] == ["a\\.b.example.test. 30 IN A 10.0.10.1"]
    cafe = dns.name.Name(["café".encode(), b"example", b"test", b""])
    reply = dns.message.from_wire(engine.miss(
        dns.message.make_query(cafe, "A").to_wire(), "c", False))
    assert reply.rcode() == 0 and reply.answer[0][0].address == "10.0.10.2"
    assert reply.answer[0].name == cafe
    target = dns.name.Name(["café".encode(), b"srv", b"example", b"test", b""])
    reply = dns.message.from_wire(engine.miss(
        dns.message.make_query("srv.example.test.", "SRV").to_wire(), "c", False))
    assert reply.answer[0][0].target == target and reply.additional[0].name == target
    assert reply.additional[0][0].address == "10.0.10.3"
    # a backslash or a label of other octets: not there, answered NXDOMAIN with the SOA
    for labels in ([b"a\\b"], [b"\xff\x00"]):
        name = dns.name.Name([*labels, b"example", b"test", b""])
        reply = dns.message.from_wire(engine.miss(
            dns.message.make_query(name, "A").to_wire(), "c", False))
        assert reply.rcode() == dns.rcode.NXDOMAIN and reply.question[0].name == name
        assert reply.authority[0].rdtype == dns.rdatatype.SOA


def _name(*labels: bytes) -> bytes:
    return b"".join(bytes((len(x),)) + x for x in labels) + b"\x00"


def test_renderer_compresses_names_as_it_writes_them():
    """Exact bytes: the question's name is a pointer to 12; a new name is written once and
    its suffixes point back (the first place wins); SRV targets are fixed bytes."""
    www, api = (b"www", b"example", b"test"), (b"api", b"example", b"test")
    rec = rules.Records()
    rec.answer = [(www, rules.HEAD.pack(5, 1, 30), (api,)),
                  (api, rules.HEAD.pack(1, 1, 60), bytes([10, 0, 0, 1])),
                  (www, rules.HEAD.pack(33, 1, 30), b"\x00\x0a\x00\x64\x00\x50" + _name(*api))]
    question = _name(*www) + b"\x00\x01\x00\x01"
    wire = render.message(rec, question, www, 512, False, b"")
    expected = (b"\x00\x00\x84\x00\x00\x01\x00\x03\x00\x00\x00\x00" + question
                # CNAME: owner -> 12; target "api" + pointer to example.test (offset 16)
                + b"\xc0\x0c\x00\x05\x00\x01\x00\x00\x00\x1e\x00\x06\x03api\xc0\x10"
                # A: owner is the CNAME's target, written at offset 12 + 22 + 12 = 46
                + b"\xc0\x2e\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x0a\x00\x00\x01"
                # SRV: the target whole, inside the RDATA
                + b"\xc0\x0c\x00\x21\x00\x01\x00\x00\x00\x1e\x00\x18"
                + b"\x00\x0a\x00\x64\x00\x50" + _name(*api))
    assert wire == expected
    assert dns.message.from_wire(wire).answer[0][0].target.to_text() == "api.example.test."
    assert render.plain(rec.answer[0]) == (_name(*www) + b"\x00\x05\x00\x01\x00\x00\x00\x1e"
                                           + b"\x00\x12" + _name(*api))


def test_renderer_truncates_additional_first_then_from_the_end():
    """Over the limit the additional records go (no TC); still over, whole records from the
    end of the authority, then the answer, with TC=1; the OPT record always stays."""
    q = (b"big", b"example", b"test")
    rec = rules.Records()
    rec.answer = [(q, rules.HEAD.pack(1, 1, 30), bytes([10, 0, 0, i])) for i in range(10)]
    rec.additional = [((b"x", *q), rules.HEAD.pack(1, 1, 30), bytes([10, 0, 1, i]))
                      for i in range(5)]
    question = _name(*q) + b"\x00\x01\x00\x01"
    opt = render.opt_record(1232, False)
    whole = render.message(rec, question, q, 65535, False, opt)
    base = 12 + len(question) + len(opt)
    size = base + 10 * 16  # each answer record: pointer 2 + head 8 + length 2 + address 4
    assert whole[6:12] == b"\x00\x0a\x00\x00\x00\x06" and not whole[2] & 2
    no_extra = render.message(rec, question, q, size, False, opt)
    assert len(no_extra) == size and no_extra[6:12] == b"\x00\x0a\x00\x00\x00\x01"
    assert not no_extra[2] & 2 and no_extra.endswith(opt)
    cut = render.message(rec, question, q, size - 1, False, opt)
    assert cut[2] & 2 and cut[6:12] == b"\x00\x09\x00\x00\x00\x01" and cut.endswith(opt)
    assert cut[12:-len(opt)] == whole[12 : len(cut) - len(opt)]  # the first 9 records


def test_compression_pointers_reach_only_the_first_16k():
    """A name written past offset 0x3FFF cannot be pointed to: later copies are whole."""
    q = (b"big", b"example", b"test")
    rec = rules.Records()
    rec.answer = [(q, rules.HEAD.pack(16, 1, 30), rules.txt_rdata("x" * 2000))
                  for _ in range(9)]
    far = (b"far", b"example", b"test")
    rec.answer += [(q, rules.HEAD.pack(5, 1, 30), (far,)), (far, rules.HEAD.pack(1, 1, 30),
                                                         bytes(4))]
    wire = render.message(rec, _name(*q) + b"\x00\x10\x00\x01", q, 65535, False, b"")
    reply = dns.message.from_wire(wire)
    assert reply.answer[-1].name.to_text() == "far.example.test."
    assert b"\x03far\xc0\x10" in wire and wire.count(b"\x03far") == 2  # not a pointer past 16K


def test_soa_memo_gives_the_rendered_bytes():
    """NXDOMAIN answers copy the zone's SOA record; a copy equals a fresh rendering."""
    engine = make_engine("")
    data = query_wire("nx1.example.test.", "A", False, None, False)
    first = engine.miss(data, "192.0.2.1", False)
    render._soa_chunks.clear()
    engine.cache.clear()
    assert engine.miss(data, "192.0.2.1", False)[2:] == first[2:]
    # a new serial is a new SOA
    engine.state.serial += 1
    engine.cache.clear()
    assert engine.miss(data, "192.0.2.1", False)[2:] != first[2:]


def test_negative_answers_never_evict_positive_ones():
    """A random-name flood (every name new, every one NXDOMAIN) fills the negative area only:
    the hot positive answers stay cached and keep hitting."""
    engine = make_engine("", cacheSize=40)
    hot = [("api.example.test.", "A"), ("one.example.test.", "A"), ("v6.example.test.", "AAAA"),
           ("db.west.example.test.", "SRV")]
    for name, rdtype in hot:
        engine.miss(query_wire(name, rdtype, False, 1232, False), "c", False)
    keys = [question_key(query_wire(n, t, False, 1232, False), False, 1232)[0] for n, t in hot]
    for i in range(1000):
        engine.miss(query_wire(f"r{i}.flood.example.test.", "A", False, 1232, False), "c", False)
        engine.miss(query_wire("one.example.test.", "AAAA", False, 1232, False), "c", False)
    assert all(engine.cache.get(key) is not None for key in keys)
    assert len(engine.cache.negatives) == engine.cache.negative_size == 10
    assert len(engine.cache.entries) == len(hot)
    # and the other way round: positives fill their own area without touching negatives
    nodata = question_key(query_wire("one.example.test.", "AAAA", False, 1232, False),
                          False, 1232)[0]
    engine.cache.negatives[nodata].ref = True
    for i in range(1, 81):
        engine.miss(query_wire(f"i{i:03d}.big.example.test.", "A", False, 1232, False), "c", False)
    assert len(engine.cache.entries) == 40 and engine.cache.get(nodata) is not None


def test_a_key_made_for_udp_is_not_reused_for_tcp():
    """engine.miss reuses the key the transport's hit made, never across transports."""
    engine = make_engine("")
    data = query_wire("big.example.test.", "A", False, None, False)  # 80 addresses
    keyed = question_key(data, False, engine.max_udp)
    assert engine.cache.hit(data, keyed, "c", engine.allowed) is None
    reply = dns.message.from_wire(engine.miss(data, "c", True))  # a TCP miss: no truncation
    assert not reply.flags & dns.flags.TC and len(reply.answer[0]) == 80


def test_negative_answers_carry_the_configured_hostmaster():
    """`[Dns] hostmaster` is the SOA RNAME of every negative answer (else hostmaster.<domain>)."""
    for hostmaster in ("admin.example.org.", "people.example.test.", ""):
        engine = make_engine("", hostmaster=hostmaster)
        for name, rdtype in [("nope.example.test.", "A"), ("one.example.test.", "AAAA"),
                             ("dangling.example.test.", "A"), ("x.people.example.test.", "A")]:
            for tcp, payload, do in TRANSPORTS:
                data = query_wire(name, rdtype, tcp, payload, do)
                soa = dns.message.from_wire(engine.miss(data, "c", tcp)).authority[0]
                assert soa.rdtype == dns.rdatatype.SOA and soa.name.to_text() == "example.test."
                assert str(soa[0].rname) == (hostmaster or "hostmaster.example.test.")
                assert str(soa[0].mname) == "ns.dns.example.test." and soa[0].serial == 1234567
