"""The flood path (plainnx.py): NXDOMAIN for plainly absent names, copied from a learned reply.

Its replies must be the very bytes the normal miss path gives (client casing, RD, EDNS, TCP,
serial), it must stay out of everything that needs building (stored wildcards on the way,
query-side `*`, `dns.<domain>`, the SOA's own names, existing names, DO), and a flood of
random names must leave the cache alone. No network."""

from __future__ import annotations

import random

import dns.message
import pytest
from test_engine import make_engine as engine_of
from test_rules import RECORDS, TRANSPORTS, query_wire

from dnsserver.engine import Engine
from dnsserver.wire.message import question_key
from skydns.config import load_config
from skydns.keys import key_to_path
from skydns.records import parse_record

B = "/skydns/test/example"


def make_engine(records=RECORDS, plain_nx=True, **dns) -> Engine:
    engine = engine_of(records, serial=4242, **dns)
    if not plain_nx:
        engine.plain_nx.shape = lambda *args: None
    return engine


def casing(name: str, rng: random.Random) -> str:
    return "".join(c.upper() if rng.random() < 0.5 else c for c in name)


# (name asked, a sibling of the same shape asked first to teach it, taken by the flood path)
NAMES = [
    ("zz.example.test.", "qq.example.test.", True),
    ("r123.flood.example.test.", "r999.flood.example.test.", True),
    ("x.y.z.deep.example.test.", "q.y.z.deep.example.test.", True),
    ("nope.api.example.test.", "nada.api.example.test.", True),  # under a name that exists
    ("other.i1.api.example.test.", "thing.i1.api.example.test.", True),  # under a leaf
    ("a.wild.example.test.", "b.wild.example.test.", False),  # a stored wildcard matches it
    ("a.b.wild.example.test.", "a.c.wild.example.test.", False),
    ("*.flood.example.test.", "*.flood.example.test.", False),  # query-side wildcard
    ("x.dns.example.test.", "y.dns.example.test.", False),  # SkyDNS2's local.dns lives here
    ("hostmaster.example.test.", "hostmastes.example.test.", None),  # if the SOA writes it
    ("one.example.test.", "one.example.test.", False),  # it exists
    ("i1.api.example.test.", "i1.api.example.test.", False),
    ("example.test.", "example.test.", False),  # the apex
    ("elsewhere.test.", "elsewhere.test.", False),  # not ours
    ("9.9.9.9.in-addr.arpa.", "8.9.9.9.in-addr.arpa.", False),  # reverse zones: normal path
]


HOSTMASTER = [  # [Dns] hostmaster inside the zone: its name is spelled by the SOA
    ("people.example.test.", "peoplf.example.test.", None),  # taken unless the SOA spells it
    ("x.people.example.test.", "y.people.example.test.", True),
]


@pytest.mark.parametrize("rdtype, hostmaster", [
    ("A", ""), ("AAAA", ""), ("SRV", ""), ("TXT", ""), ("MX", ""),
    ("A", "people.example.test."), ("A", "admin.example.org."),
])
def test_flood_replies_are_the_normal_paths_bytes(rdtype, hostmaster):
    rng = random.Random(rdtype)
    fast = make_engine(hostmaster=hostmaster)
    slow = make_engine(plain_nx=False, hostmaster=hostmaster)
    for name, teacher, taken in NAMES + HOSTMASTER:
        if taken is None:
            taken = name != (hostmaster or "hostmaster.example.test.")
        for tcp, payload, do in TRANSPORTS:
            if teacher != name:
                fast.miss(query_wire(teacher, rdtype, tcp, payload, do), "c", tcp)
            for rd in (0, 1):
                data = query_wire(casing(name, rng), rdtype, tcp, payload, do)
                data = data[:2] + bytes(((data[2] & 0xFE) | rd,)) + data[3:]
                before = fast.plain_nx.served
                fast.plain_nx.seen.clear()  # bytes here; a repeated question: test below
                where = (name, rdtype, tcp, payload, do, rd)
                assert fast.miss(data, "c", tcp) == slow.miss(data, "c", tcp), where
                assert fast.plain_nx.served - before == (taken and not do), where


def test_a_random_name_flood_builds_nothing_and_caches_nothing():
    engine = make_engine(cacheSize=1000)
    hot = query_wire("api.example.test.", "A", False, 1232, False)
    engine.miss(hot, "c", False)
    for i in range(5000):
        name = f"w{i}x{random.getrandbits(32):08x}.flood.example.test."
        reply = dns.message.from_wire(engine.miss(query_wire(name, "A", False, 1232, False),
                                                  "c", False))
        assert reply.rcode() == 3 and reply.authority[0].rdtype == 6  # NXDOMAIN with the SOA
    # one learned reply per shape (first-label length) went through the cache, no more
    assert len(engine.cache.negatives) <= 10
    assert engine.plain_nx.served >= 4990
    assert engine.stats["nxdomain"] == 5000
    assert engine.cache.get(question_key(hot, False, 1232)[0]) is not None


def test_a_change_is_in_the_next_copy():
    """The SOA in the copy carries the serial: every zone change forgets the learned replies,
    and a name that starts to exist leaves the flood path at once."""
    engine = make_engine()
    engine.miss(query_wire("aa.flood.example.test.", "A", False, None, False), "c", False)
    first = dns.message.from_wire(
        engine.miss(query_wire("bb.flood.example.test.", "A", False, None, False), "c", False))
    assert engine.plain_nx.served == 1 and first.authority[0][0].serial == 4242
    key = f"{B}/flood/bb"
    engine.state.put(parse_record(key, key_to_path(key), b'{"host": "10.9.9.9"}'), 4300)
    now = dns.message.from_wire(
        engine.miss(query_wire("bb.flood.example.test.", "A", False, None, False), "c", False))
    assert [rr.address for rr in now.answer[0]] == ["10.9.9.9"]
    other = dns.message.from_wire(
        engine.miss(query_wire("cc.flood.example.test.", "A", False, None, False), "c", False))
    assert other.rcode() == 3 and other.authority[0][0].serial == 4300


def test_a_new_stored_wildcard_takes_its_names_off_the_flood_path():
    engine = make_engine()
    engine.miss(query_wire("aa.flood.example.test.", "A", False, None, False), "c", False)
    key = f"{B}/flood/*"
    engine.state.put(parse_record(key, key_to_path(key), b'{"host": "10.9.9.8"}'), 4300)
    reply = dns.message.from_wire(
        engine.miss(query_wire("bb.flood.example.test.", "A", False, None, False), "c", False))
    assert [rr.address for rr in reply.answer[0]] == ["10.9.9.8"]
    assert engine.plain_nx.served == 0


def test_sub_domain_servers_and_a_zone_not_loaded_keep_the_normal_path():
    engine = make_engine(subDomainServers={"flood.example.test.": ["127.0.0.1:1"]})
    for _ in range(2):
        engine.miss(query_wire("aa.other.example.test.", "A", False, None, False), "c", False)
    assert engine.plain_nx.served == 0
    cfg = load_config(None, "dns")
    cfg["Dns"]["dns-domain"] = "example.test."
    cold = Engine(cfg)  # no load yet: SERVFAIL, not NXDOMAIN
    reply = dns.message.from_wire(
        cold.miss(query_wire("aa.example.test.", "A", False, None, False), "c", False))
    assert reply.rcode() == 2


def test_a_name_asked_again_is_cached_like_any_answer():
    """The flood path answers a question the first time; asked again (search suffixes, retries)
    it goes to the normal path and is cached, then hits."""
    engine = make_engine()
    engine.miss(query_wire("aa.flood.example.test.", "A", False, None, False), "c", False)
    data = query_wire("bb.flood.example.test.", "A", False, None, False)
    key = question_key(data, False, 1232)[0]
    first = engine.miss(data, "c", False)
    assert engine.plain_nx.served == 1 and engine.cache.get(key) is None
    assert engine.miss(data, "c", False) == first
    assert engine.plain_nx.served == 1 and engine.cache.get(key) is not None
    keyed = question_key(data, False, 1232)
    assert engine.cache.hit(data, keyed, "c", engine.allowed)[0] == first[2:]


def test_with_the_cache_off_every_question_takes_the_flood_path():
    engine = make_engine(cacheSize=0)
    engine.miss(query_wire("aa.flood.example.test.", "A", False, None, False), "c", False)
    data = query_wire("bb.flood.example.test.", "A", False, None, False)
    assert engine.miss(data, "c", False) == engine.miss(data, "c", False)
    assert engine.plain_nx.served == 2 and len(engine.cache) == 0


@pytest.mark.parametrize(("rdtype", "rdclass", "rcode"), [
    ("ANY", "IN", "NOTIMP"), ("A", "CH", "REFUSED"), ("TXT", "HS", "REFUSED"),
    ("AXFR", "IN", "REFUSED"), ("IXFR", "IN", "REFUSED")])
def test_other_classes_and_types_are_routed_not_copied(rdtype, rdclass, rcode):
    """A learned NXDOMAIN shape answers only IN questions the zone path answers: ANY, other
    classes and transfers of an absent name are routed as before."""
    engine = make_engine(cacheSize=0)
    for name in ("qq.example.test.", "zq.example.test."):  # taught, then copied
        reply = dns.message.from_wire(engine.miss(dns.message.make_query(name, "A").to_wire(),
                                                  "127.0.0.1", False))
        assert dns.rcode.to_text(reply.rcode()) == "NXDOMAIN"
    assert engine.plain_nx.served == 1
    query = dns.message.make_query("zz.example.test.", rdtype, rdclass)
    reply = dns.message.from_wire(engine.miss(query.to_wire(), "127.0.0.1", False))
    assert dns.rcode.to_text(reply.rcode()) == rcode
    assert engine.plain_nx.served == 1
