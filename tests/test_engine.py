"""Engine and wire-level behaviour without sockets: hot-path keys, variants, truncation, junk."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import random
import time

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from dnslib import QTYPE, RR, SOA, A, DNSRecord

from dnsserver.engine import FORWARD_CACHE_MAX, Engine
from dnsserver.front.cache import AnswerCache, Entry
from dnsserver.wire.message import question_key
from skydns.config import load_config
from skydns.keys import key_to_path
from skydns.records import parse_record
from skydns.rendezvous import choose as rendezvous


def make_engine(records: dict, mode: str = "", serial: int = 1, **dns) -> Engine:
    """An engine for example.test. with `records` (key -> JSON value) loaded at revision
    `serial`; `dns` overrides [Dns] settings."""
    cfg = load_config(None, "dns")
    cfg["Dns"]["dns-domain"] = "example.test."
    cfg["Dns"].update(dns)
    cfg["Fun"]["random-one"] = mode == "random"
    cfg["Fun"]["hone-one"] = mode == "hone"
    engine = Engine(cfg)
    engine.state.load(
        [parse_record(k, key_to_path(k), json.dumps(v).encode()) for k, v in records.items()],
        serial,
    )
    return engine


def ask(engine, name, rdtype="A", client="127.0.0.1", tcp=False, **kw):
    """Answer as the transports do: the cache's hit path, else the engine's slow path."""
    query = dns.message.make_query(name, rdtype, **kw)
    wire = query.to_wire()
    keyed = question_key(wire, tcp, engine.max_udp)
    hit = engine.cache.hit(wire, keyed, client, engine.allowed) if keyed else None
    reply = wire[:2] + hit[0] if hit is not None else engine.miss(wire, client, tcp)
    return dns.message.from_wire(reply), hit is not None


MANY = {f"/skydns/test/example/big/i{i:03d}": {"host": f"10.1.0.{i}"} for i in range(1, 101)}


def test_hit_reuses_bytes_and_keeps_client_case_and_id():
    engine = make_engine({"/skydns/test/example/api/x": {"host": "10.0.0.1"}})
    first, hit = ask(engine, "api.example.test.")
    assert not hit and first.answer[0][0].address == "10.0.0.1"
    query = dns.message.make_query("ApI.ExAmple.TEST.", "A")
    query.flags &= ~dns.flags.RD
    keyed = question_key(query.to_wire(), False, engine.max_udp)
    assert engine.cache.get(keyed[0]) is not None  # case-folded key: the same entry
    reply, hit = ask(engine, "ApI.ExAmple.TEST.")
    assert hit
    assert reply.question[0].name.to_text() == "ApI.ExAmple.TEST."
    assert reply.flags & dns.flags.AA and reply.flags & dns.flags.RD


def test_rd_bit_echoed_on_hit():
    engine = make_engine({"/skydns/test/example/api/x": {"host": "10.0.0.1"}})
    ask(engine, "api.example.test.")
    query = dns.message.make_query("api.example.test.", "A")
    query.flags = 0
    wire = query.to_wire()
    key, qend, rd = question_key(wire, False, engine.max_udp)
    variant = engine.cache.get(key).pick("127.0.0.1")
    reply = dns.message.from_wire(wire[:2] + variant[rd] + wire[12:qend] + variant[2])
    assert not reply.flags & dns.flags.RD and reply.id == query.id


def test_truncation_then_tcp_has_everything():
    engine = make_engine(MANY)
    reply, _ = ask(engine, "big.example.test.")
    assert reply.flags & dns.flags.TC and len(reply.to_wire()) <= 512
    assert 0 < len(reply.answer[0]) < 100
    reply, _ = ask(engine, "big.example.test.", tcp=True)
    assert not reply.flags & dns.flags.TC and len(reply.answer[0]) == 100


def test_edns_size_honoured_and_opt_echoed():
    engine = make_engine(MANY)
    reply, _ = ask(engine, "big.example.test.", use_edns=0, payload=4096)
    assert reply.edns == 0 and len(reply.to_wire()) <= 1232
    assert reply.flags & dns.flags.TC  # 100 A records need about 1.6 KB
    small = make_engine({k: v for k, v in list(MANY.items())[:20]})
    reply, _ = ask(small, "big.example.test.", use_edns=0, payload=1232)
    assert not reply.flags & dns.flags.TC and len(reply.answer[0]) == 20
    reply, _ = ask(small, "big.example.test.")
    assert not reply.flags & dns.flags.TC  # 20 records fit 512 bytes as well


def test_badvers_for_edns1():
    engine = make_engine({})
    for _ in range(2):  # the second time too: what the hot path remembers of an OPT
        reply, _ = ask(engine, "x.example.test.", use_edns=1)
        assert reply.rcode() == dns.rcode.BADVERS


@pytest.mark.parametrize("rdtype,rcode", [("ANY", dns.rcode.NOTIMP), ("IXFR", dns.rcode.REFUSED)])
def test_any_not_implemented(rdtype, rcode):
    reply, _ = ask(make_engine({}), "x.example.test.", rdtype)
    assert reply.rcode() == rcode


def test_chaos_refused():
    engine = make_engine({})
    query = dns.message.make_query("version.bind.", "TXT", rdclass="CH")
    reply = dns.message.from_wire(engine.miss(query.to_wire(), "127.0.0.1", False))
    assert reply.rcode() == dns.rcode.REFUSED


def test_out_of_zone_refused_without_nameservers_or_for_strangers():
    engine = make_engine({})
    reply, _ = ask(engine, "example.org.")
    assert reply.rcode() == dns.rcode.REFUSED
    engine = make_engine({}, nameservers=[("127.0.0.1", 9)])
    assert engine.allowed("10.1.2.3") and not engine.allowed("8.8.8.8")
    reply, _ = ask(engine, "example.org.", client="203.0.113.9")
    assert reply.rcode() == dns.rcode.REFUSED


def test_random_one_variants_never_down():
    records = {f"/skydns/test/example/r/i{i}": {"host": f"10.2.0.{i}"} for i in range(1, 6)}
    engine = make_engine(records, mode="random")
    engine.state.set_health("10.2.0.3", "DOWN")
    seen = set()
    for _ in range(200):
        reply, _ = ask(engine, "r.example.test.")
        assert len(reply.answer[0]) == 1
        seen.add(reply.answer[0][0].address)
    assert seen == {"10.2.0.1", "10.2.0.2", "10.2.0.4", "10.2.0.5"}


def test_hone_one_stable_per_client_and_spread():
    records = {f"/skydns/test/example/h/i{i}": {"host": f"10.3.0.{i}"} for i in range(1, 5)}
    engine = make_engine(records, mode="hone")
    chosen = {}
    for n in range(1, 41):
        client = f"127.0.0.{n}"
        answers = {
            ask(engine, "h.example.test.", client=client)[0].answer[0][0].address for _ in range(5)
        }
        assert len(answers) == 1
        chosen[client] = answers.pop()
    assert len(set(chosen.values())) >= 3
    # Take one address down: only its clients move.
    victim = chosen["127.0.0.1"]
    engine.state.set_health(victim, "DOWN")
    for client, before in chosen.items():
        after = ask(engine, "h.example.test.", client=client)[0].answer[0][0].address
        assert after != victim
        if before != victim:
            assert after == before


def test_rendezvous_is_deterministic():
    addrs = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert rendezvous("127.0.0.7", addrs) == rendezvous("127.0.0.7", list(addrs))


def test_hone_one_choice_is_the_one_every_version_made():
    """Workers and replicas of different versions must give a client the same address: the
    choice is blake2b("<client>|<address>"), highest wins, as it always was."""

    def old(client, addrs):
        scores = [
            hashlib.blake2b(f"{client}|{a}".encode(), digest_size=8).digest() for a in addrs
        ]
        return scores.index(max(scores))

    addrs = [f"10.0.0.{i}" for i in range(1, 9)]
    for n in range(1, 200):
        assert rendezvous(f"127.0.{n}.1", addrs) == old(f"127.0.{n}.1", addrs)


def test_shuffled_answers_rotate():
    records = {f"/skydns/test/example/s/i{i}": {"host": f"10.4.0.{i}"} for i in range(1, 5)}
    engine = make_engine(records)
    firsts = {ask(engine, "s.example.test.")[0].answer[0][0].address for _ in range(200)}
    assert len(firsts) == 4


def test_invalidation_is_precise():
    records = {
        "/skydns/test/example/a/x": {"host": "10.5.0.1"},
        "/skydns/test/example/b/x": {"host": "10.5.0.2"},
    }
    engine = make_engine(records)
    ask(engine, "a.example.test.")
    ask(engine, "b.example.test.")
    assert len(engine.cache) == 2
    assert engine.cache.invalidate_path(("test", "example", "b", "x")) == 1
    assert ask(engine, "a.example.test.")[1]  # still a hit
    assert engine.cache.invalidate_ip("10.5.0.1") == 1
    assert not ask(engine, "a.example.test.")[1]


def test_cache_is_bounded_clock():
    cache = AnswerCache(3)
    for i in range(3):
        cache.put(bytes([i]), Entry([(b"", b"", b"")]))
    cache.entries[b"\x00"].ref = True  # recently hit: survives the next eviction
    cache.put(b"\x09", Entry([(b"", b"", b"")]))
    assert len(cache) == 3 and b"\x00" in cache.entries and b"\x01" not in cache.entries


def test_junk_never_raises():
    engine = make_engine({"/skydns/test/example/api/x": {"host": "10.0.0.1"}})
    rng = random.Random(1234)
    good = dns.message.make_query("api.example.test.", "A", use_edns=0).to_wire()
    samples = [b"", b"\x00", b"\x00" * 11, b"\xff" * 12, good[:-3], good + b"\x00"]
    for _ in range(3000):
        raw = bytearray(good)
        for _ in range(rng.randint(1, 6)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        samples.append(bytes(raw[: rng.randint(0, len(raw) + 2)]))
        samples.append(bytes(rng.randrange(256) for _ in range(rng.randint(0, 80))))
    for raw in samples:
        for tcp in (False, True):
            keyed = question_key(raw, tcp, engine.max_udp)  # the hot path parse must not raise
            reply = engine.miss(raw, "127.0.0.1", tcp)
            if reply is not None and not isinstance(reply, bytes):
                reply.close()  # a coroutine (forwarding): not run here
                continue
            if reply is not None:
                assert len(reply) >= 12 and reply[:2] == raw[:2]
            del keyed


def test_formerr_for_truncated_question():
    engine = make_engine({})
    good = dns.message.make_query("api.example.test.", "A").to_wire()
    reply = dns.message.from_wire(engine.miss(good[:-2], "127.0.0.1", False))
    assert reply.rcode() == dns.rcode.FORMERR


def test_https_and_other_types_from_65_are_cached_under_their_own_type():
    engine = make_engine({"/skydns/test/example/api/x": {"host": "10.0.0.1"}})
    for rdtype in ("HTTPS", "TYPE90", "SVCB"):
        first, hit = ask(engine, "api.example.test.", rdtype)
        assert not hit and first.rcode() == dns.rcode.NOERROR and not first.answer
        second, hit = ask(engine, "api.example.test.", rdtype)
        assert hit, f"{rdtype} answered again on the slow path"
        assert second.question[0].rdtype == dns.rdatatype.from_text(rdtype)
    # 65 and 97 differ only in the bit that upper/lower case flips: two keys, not one
    key65 = question_key(dns.message.make_query("a.b.", "TYPE65").to_wire(), False, 1232)[0]
    key97 = question_key(dns.message.make_query("a.b.", "TYPE97").to_wire(), False, 1232)[0]
    assert key65 != key97
    reply, hit = ask(engine, "api.example.test.", "TYPE97")
    assert not hit and reply.question[0].rdtype == 97


FORTY = {f"/skydns/test/example/many/i{i:02d}": {"host": f"10.6.0.{i}"} for i in range(1, 41)}


@pytest.mark.parametrize(
    "how",
    [{"use_edns": 0, "payload": 1232}, {"tcp": True}, {}],
    ids=["udp-edns", "tcp", "udp-truncated"],
)
def test_shuffled_answers_let_every_address_lead(how):
    engine = make_engine(FORTY)
    everything = {f"10.6.0.{i}" for i in range(1, 41)}
    firsts = set()
    for n in range(400):
        reply, hit = ask(engine, "many.example.test.", **how)
        assert hit or n == 0
        addrs = [rr.address for rr in reply.answer[0]]
        firsts.add(addrs[0])
        if reply.flags & dns.flags.TC:  # whole records that fit, in the cycle's order
            start = int(addrs[0].rsplit(".", 1)[1])
            assert addrs == [f"10.6.0.{(start - 1 + j) % 40 + 1}" for j in range(len(addrs))]
        else:
            assert set(addrs) == everything and len(addrs) == 40
    assert firsts == everything
    entry = next(iter(engine.cache.entries.values()))
    # memory stays one reply (plus the records once more), not a reply per address
    assert len(entry.variants) == 1 and len(entry.ring[1]) < 2 * 40 * 28


def test_shuffled_cname_target_addresses_rotate_after_the_cname():
    records = dict(FORTY)
    records["/skydns/test/example/alias/x"] = {"host": "many.example.test"}
    engine = make_engine(records)
    firsts = set()
    for _ in range(80):
        reply, _ = ask(engine, "ALIAS.example.test.", use_edns=0)
        assert [rrset.rdtype for rrset in reply.answer] == [5, 1]
        assert len(reply.answer[1]) == 40
        firsts.add(reply.answer[1][0].address)
    assert len(firsts) == 40


def _forwarded(query: bytes, rcode: int, ttl: int, minimum: int) -> bytes:
    reply = DNSRecord.parse(query).reply()
    reply.header.rcode = rcode
    if rcode == 0:
        reply.add_answer(RR("x.example.org.", QTYPE.A, ttl=ttl, rdata=A("192.0.2.1")))
    else:
        soa = SOA("ns.example.org.", "h.example.org.", (1, 2, 3, 4, minimum))
        reply.add_auth(RR("example.org.", QTYPE.SOA, ttl=ttl, rdata=soa))
    return reply.pack()


def test_forwarded_answers_cached_bounded_and_for_allowed_clients_only():
    only = {"forward-allow": [ipaddress.ip_network("127.0.0.1/32")]}
    engine = make_engine({}, nameservers=[("127.0.0.1", 9)], **only)
    query = dns.message.make_query("x.example.org.", "A").to_wire()
    key = question_key(query, False, engine.max_udp)[0]
    engine._cache_forwarded(query, False, _forwarded(query, 3, 86400, 86400))
    entry = engine.cache.get(key)
    assert entry.restricted and entry.kind == "forward"
    assert entry.expires - time.monotonic() <= FORWARD_CACHE_MAX
    engine._cache_forwarded(query, False, _forwarded(query, 0, 60, 0))
    entry = engine.cache.get(key)
    assert 50 < entry.expires - time.monotonic() <= 60
    engine.cache.add_front(query[2:], b"reply", entry)
    assert query[2:] not in engine.cache.front  # the front checks nobody's address
    reply, hit = ask(engine, "x.example.org.")
    assert hit and reply.answer[0][0].address == "192.0.2.1"
    reply, hit = ask(engine, "x.example.org.", client="127.0.0.2")
    assert not hit and reply.rcode() == dns.rcode.REFUSED


def test_names_asked_on_the_miss_path_are_all_counted(monkeypatch):
    """Misses count their name in the remembered name (one increment), folded into the
    per-name stats when they are read and before the remembered names start over."""
    from dnsserver import engine as engine_module
    from dnsserver.front import stats

    engine = make_engine({"/skydns/test/example/a/x": {"host": "10.0.0.1"},
                          "/skydns/test/example/b/x": {"host": "10.0.0.2"},
                          "/skydns/test/example/c/x": {"host": "10.0.0.3"}}, cacheSize=0)
    for _ in range(5):
        ask(engine, "a.example.test.")
        ask(engine, "B.example.test.", "AAAA")
    snap = stats.snapshot(engine)
    assert snap["names"]["a.example.test."] == 5
    assert snap["names"]["b.example.test."] == 5
    assert snap["counters"]["requests"] == snap["counters"]["cache_misses"] == 10
    monkeypatch.setattr(engine_module, "_NAMES_KEPT", 2)  # the next new name starts over
    ask(engine, "a.example.test.")
    ask(engine, "c.example.test.")
    ask(engine, "c.example.test.")
    names = stats.snapshot(engine)["names"]
    assert (names["a.example.test."], names["c.example.test."]) == (6, 2)
