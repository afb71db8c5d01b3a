"""The byte-built miss path (wireanswer.py) against the dnslib one (answer.py + wire.render):
for a table of questions, every transport, EDNS size and answer mode, the cached entries
(every variant's bytes, the ring, the dependencies) must be the same. No network."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rdatatype
import pytest
from test_engine import make_engine as engine_of

from dnsserver.engine import Engine
from dnsserver.wire.message import question_key
from dnsserver.zone import wireanswer

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


def make_engine(mode: str, wire_path: bool, **dns) -> Engine:
    engine = engine_of(RECORDS, mode, serial=1234567, **dns)
    engine.state.load_health((ip, "DOWN") for ip in DOWN)
    # the flood path (plainnx.py) copies these replies instead of caching them: test_plainnx
    engine.plain_nx.shape = lambda *args: None
    if not wire_path:
        engine._miss_wire = lambda *args: None
    return engine


def query_wire(name, rdtype, tcp, payload, do):
    if payload is None:
        query = dns.message.make_query(name, rdtype, use_edns=False)
    else:
        query = dns.message.make_query(name, rdtype, use_edns=0, payload=payload, want_dnssec=do)
    return query.to_wire()


def entry_view(entry):
    return (entry.variants, entry.mode, list(entry.addrs), entry.ring, entry.paths,
            set(entry.ips), entry.kind, entry.soa, entry.expires, entry.restricted)


@pytest.mark.parametrize("mode", ["", "random", "hone"])
def test_wire_path_builds_the_dnslib_bytes(mode):
    new, old = make_engine(mode, True), make_engine(mode, False)
    built = 0
    for name, rdtype in QUESTIONS:
        for tcp, payload, do in TRANSPORTS:
            data = query_wire(name, rdtype, tcp, payload, do)
            fast = new._miss_wire(data, "192.0.2.1", tcp)
            built += fast is not None
            reply_new = new.miss(data, "192.0.2.1", tcp) if fast is None else fast
            reply_old = old.miss(data, "192.0.2.1", tcp)
            where = (name, rdtype, tcp, payload, do)
            key, qend, rd = question_key(data, tcp, new.max_udp)
            a, b = new.cache.get(key), old.cache.get(key)
            assert (a is None) == (b is None), where
            if a is None:
                assert reply_new == reply_old, where
                continue
            assert entry_view(a) == entry_view(b), where
            if a.mode in ("", "hone"):  # no randomness in the pick: the very reply bytes
                assert reply_new == reply_old, where
    assert built > len(QUESTIONS) * len(TRANSPORTS) // 2  # most of the table took the byte path
    del new.stats["requests"], old.stats["requests"]  # `miss` counts, _miss_wire alone not
    assert new.stats == old.stats
    assert new.query_names == old.query_names


@pytest.mark.parametrize("mode", ["", "random", "hone"])
def test_uncached_replies_are_the_dnslib_bytes(mode):
    """cacheSize = 0: the reply is rendered alone, without an entry: the same bytes (hone-one,
    single addresses, negative answers), or the same records in another order / another
    random pick."""
    new, old = make_engine(mode, True, cacheSize=0), make_engine(mode, False, cacheSize=0)
    for name, rdtype in QUESTIONS:
        for tcp, payload, do in TRANSPORTS:
            data = query_wire(name, rdtype, tcp, payload, do)
            qend = question_key(data, tcp, 1232)[1]
            for rd in (0, 1):
                data = data[:2] + bytes(((data[2] & 0xFE) | rd,)) + data[3:]
                client = f"192.0.2.{len(name)}"
                reply_new, reply_old = new.miss(data, client, tcp), old.miss(data, client, tcp)
                if mode == "hone":
                    assert reply_new == reply_old, (name, rdtype, tcp, payload, do, rd)
                if reply_new != reply_old and mode == "random":  # another random pick
                    a, b = dns.message.from_wire(reply_new), dns.message.from_wire(reply_old)
                    assert a.flags == b.flags and len(reply_new) == len(reply_old)
                    assert [len(x) for x in a.answer] == [len(x) for x in b.answer]
                elif reply_new != reply_old:  # shuffled: another address may come first
                    assert reply_new[:qend] == reply_old[:qend]  # the client's question bytes
                    a, b = dns.message.from_wire(reply_new), dns.message.from_wire(reply_old)
                    where = (name, rdtype, tcp, payload, do, rd)
                    assert a.answer and a.flags == b.flags and len(reply_new) == len(reply_old)
                    assert a.authority == b.authority and a.additional == b.additional, where
                    if not a.flags & dns.flags.TC:
                        assert a.answer == b.answer, where
    assert len(new.cache) == 0


@pytest.mark.parametrize(
    "name, rdtype, takes_wire_path",
    [
        ("api.example.test.", "A", True),
        ("db.west.example.test.", "SRV", True),
        ("hop1.example.test.", "A", True),
        ("dangling.example.test.", "A", True),
        ("nope.example.test.", "TXT", True),  # NXDOMAIN for any type
        ("motd.example.test.", "TXT", False),  # other types of existing names: answer.py
        ("loop1.example.test.", "A", False),  # SERVFAIL: answer.py
        ("ext.example.test.", "A", False),  # the chain leaves the zone: answer.py
        ("elsewhere.test.", "A", False),  # not ours
    ],
)
def test_which_questions_take_the_byte_path(name, rdtype, takes_wire_path):
    engine = make_engine("", True)
    data = query_wire(name, rdtype, False, 1232, False)
    assert (engine._miss_wire(data, "192.0.2.1", False) is not None) == takes_wire_path


def test_do_queries_and_odd_names_take_the_dnslib_path():
    engine = make_engine("", True)
    assert engine._miss_wire(query_wire("api.example.test.", "A", False, 1232, True),
                             "192.0.2.1", False) is None
    # a dot inside a label: dnslib reads the name otherwise, so it answers
    odd = dns.message.make_query("a\\.b.example.test.", "A").to_wire()
    assert engine._miss_wire(odd, "192.0.2.1", False) is None
    assert wireanswer.question_name(odd, len(odd)) is None


def test_soa_memo_gives_the_rendered_bytes():
    """NXDOMAIN answers copy the zone's SOA record; a copy equals a fresh rendering."""
    engine = make_engine("", True)
    data = query_wire("nx1.example.test.", "A", False, None, False)
    first = engine._miss_wire(data, "192.0.2.1", False)
    wireanswer._soa_memo.clear()
    engine.cache.clear()
    assert engine._miss_wire(data, "192.0.2.1", False) == first
    # a new serial is a new SOA
    engine.state.serial += 1
    engine.cache.clear()
    assert engine._miss_wire(data, "192.0.2.1", False) != first


def test_negative_answers_never_evict_positive_ones():
    """A random-name flood (every name new, every one NXDOMAIN) fills the negative area only:
    the hot positive answers stay cached and keep hitting."""
    engine = make_engine("", True, cacheSize=40)
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
    engine = make_engine("", True)
    data = query_wire("big.example.test.", "A", False, None, False)  # 80 addresses
    keyed = question_key(data, False, engine.max_udp)
    assert engine.cache.hit(data, keyed, "c", engine.allowed) is None
    reply = dns.message.from_wire(engine.miss(data, "c", True))  # a TCP miss: no truncation
    assert not reply.flags & dns.flags.TC and len(reply.answer[0]) == 80


def test_negative_answers_carry_the_configured_hostmaster():
    """`[Dns] hostmaster` is the SOA RNAME on the byte path too (it wrote hostmaster.<domain>)."""
    for hostmaster in ("admin.example.org.", "people.example.test."):
        new = make_engine("", True, hostmaster=hostmaster)
        old = make_engine("", False, hostmaster=hostmaster)
        for name, rdtype in [("nope.example.test.", "A"), ("one.example.test.", "AAAA"),
                             ("dangling.example.test.", "A"), ("x.people.example.test.", "A")]:
            for tcp, payload, do in TRANSPORTS:
                data = query_wire(name, rdtype, tcp, payload, do)
                assert new.miss(data, "c", tcp) == old.miss(data, "c", tcp), (hostmaster, name)
        soa = dns.message.from_wire(
            new.miss(query_wire("nope.example.test.", "A", False, None, False), "c", False))
        assert str(soa.authority[0][0].rname) == hostmaster
