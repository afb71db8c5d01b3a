"""DNSSEC signing without sockets: key files, RRSIGs checked by dnspython's own validator
(dns.dnssec.validate, an implementation independent of ours), NSEC3 proofs checked against
dnspython's NSEC3 hash, the signature cache, renewal, and unsigned answers left as they were."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time

import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import pytest

from dnsserver.engine import Engine
from skydns.config import ConfigError, load_config
from skydns.dnssec import names, nsec3
from skydns.dnssec.keys import KeyFileError, key_state, load_key, load_keys
from skydns.dnssec.message import RRset
from skydns.dnssec.sign import DENIAL_CACHE_SIZE, Signer
from skydns.keys import key_to_path
from skydns.records import parse_record

from dnssectest import KEYGEN, ask, keygen

pytestmark = pytest.mark.skipif(not KEYGEN, reason="needs dnssec-keygen (bind9-utils)")

ZONE = "example.test."
ORIGIN = dns.name.from_text(ZONE)
RECORDS = {
    "/skydns/test/example/api/i1": {"host": "10.0.0.1", "ttl": 60},
    "/skydns/test/example/api/i2": {"host": "10.0.0.2", "ttl": 40},
    "/skydns/test/example/api/i3": {"host": "10.0.0.3", "ttl": 60},
    "/skydns/test/example/www": {"host": "api.example.test"},
    "/skydns/test/example/dead": {"host": "gone.example.test"},
    "/skydns/test/example/west/db/1": {"host": "10.0.1.1", "port": 5432},
    "/skydns/test/example/notes/a/b": {"text": "only text down here"},
    "/skydns/test/example/dns/ns/ns1": {"host": "10.0.0.53"},
}


@pytest.fixture(scope="module")
def keydir(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    return d, keygen(d, ZONE, 13, True), keygen(d, ZONE, 13)


def make_engine(keys, records=RECORDS, mode="") -> Engine:
    cfg = load_config(None, "dns")
    cfg["Dns"]["dns-domain"] = ZONE
    cfg["Dns"]["dnssec"] = keys
    cfg["Fun"]["random-one"] = mode == "random"
    engine = Engine(cfg)
    engine.state.load(
        [parse_record(k, key_to_path(k), json.dumps(v).encode()) for k, v in records.items()], 1
    )
    return engine


@pytest.fixture
def engine(keydir):
    d, ksk, zsk = keydir
    return make_engine(load_keys([str(d / ksk), str(d / zsk)], ZONE))


def dnskeys(engine) -> dict:
    reply, _ = ask(engine, ZONE, "DNSKEY", want_dnssec=True)
    return {ORIGIN: reply.find_rrset(reply.answer, ORIGIN, 1, dns.rdatatype.DNSKEY)}


def validate_all(reply, keys) -> int:
    """Every RRset in answer and authority has an RRSIG dnspython accepts; returns how many."""
    checked = 0
    for section in (reply.answer, reply.authority):
        for rrset in section:
            if rrset.rdtype == dns.rdatatype.RRSIG:
                continue
            sig = next(s for s in section if s.rdtype == dns.rdatatype.RRSIG
                       and s.name == rrset.name and s.covers == rrset.rdtype)
            dns.dnssec.validate(rrset, sig, keys)
            for rr in sig:
                assert rr.original_ttl == rrset.ttl == sig.ttl  # served TTL = signed TTL
            checked += 1
    return checked


def nsec3s(reply) -> dict:
    """Owner hash label -> (next hash, types) of the NSEC3 records in the authority section."""
    out = {}
    for rrset in reply.authority:
        if rrset.rdtype == dns.rdatatype.NSEC3:
            rd = rrset[0]
            types = {t for window in rd.windows for t in _types(window)}
            out[rrset.name.labels[0].decode().upper()] = (rd.next, types)
    return out


def _types(window):
    number, bitmap = window
    for i, byte in enumerate(bitmap):
        for bit in range(8):
            if byte & (0x80 >> bit):
                yield number * 256 + i * 8 + bit


def h(name: str) -> str:
    return dns.dnssec.nsec3_hash(name, salt=None, iterations=0, algorithm=1)


def covered(proofs: dict, name: str) -> bool:
    import base64

    target = int.from_bytes(base64.b32decode(h(name).translate(
        str.maketrans("0123456789ABCDEFGHIJKLMNOPQRSTUV", "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"))),
        "big")
    for owner, (nxt, _) in proofs.items():
        start = int.from_bytes(base64.b32decode(owner.translate(str.maketrans(
            "0123456789ABCDEFGHIJKLMNOPQRSTUV", "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"))), "big")
        end = int.from_bytes(nxt, "big")
        if start < target < end:
            return True
    return False


# -- keys --------------------------------------------------------------------------------


def test_keys_load_with_tag_and_ds_as_bind_computes(keydir):
    d, ksk, zsk = keydir
    key = load_key(str(d / ksk), ZONE)
    assert key.ksk and key.tag == int(ksk.rsplit("+", 1)[1])
    want = subprocess.run(["dnssec-dsfromkey", "-2", str(d / f"{ksk}.key")],
                          capture_output=True, text=True, check=True).stdout.split()
    assert key.ds().split() == want
    ed = keygen(d, ZONE, 15)
    assert load_key(str(d / ed) + ".key", ZONE).tag == int(ed.rsplit("+", 1)[1])


def test_key_errors_name_the_file(tmp_path, keydir):
    d, ksk, zsk = keydir
    other = keygen(tmp_path, "other.test.", 13)
    with pytest.raises(KeyFileError, match=re.escape(f"{other}.key: key is for other.test.")):
        load_key(str(tmp_path / other), ZONE)
    # a .private from another key beside this .key
    mixed = tmp_path / "Kexample.test.+013+00001"
    shutil.copy(d / f"{ksk}.key", f"{mixed}.key")
    shutil.copy(d / f"{zsk}.private", f"{mixed}.private")
    with pytest.raises(KeyFileError, match=r"00001\.private: private key does not match"):
        load_key(str(mixed), ZONE)
    rsa = keygen(tmp_path, ZONE, 8, False, "-b", "2048")
    with pytest.raises(KeyFileError, match=re.escape(f"{rsa}.key: algorithm 8 not supported")):
        load_key(str(tmp_path / rsa), ZONE)
    with pytest.raises(KeyFileError, match=r"Kmissing\.key: No such file"):
        load_key(str(tmp_path / "Kmissing"), ZONE)


def test_config_error_names_the_key_file_and_paths_are_relative(tmp_path):
    keys = tmp_path / "keys"
    keys.mkdir()
    good = keygen(keys, ZONE, 15, True)
    other = keygen(keys, "other.test.", 15, True)
    conf = tmp_path / "skydns.conf"
    conf.write_text(f"[Dns]\ndns-domain = {ZONE}\ndnssec = keys/{good}\n")
    loaded = load_config(str(conf), "dns")["Dns"]["dnssec"]
    assert [k.tag for k in loaded] == [int(good.rsplit("+", 1)[1])]
    conf.write_text(f"[Dns]\ndns-domain = {ZONE}\ndnssec = keys/{good}, keys/{other}\n")
    with pytest.raises(ConfigError) as err:
        load_config(str(conf), "dns")
    assert "[Dns] dnssec:" in str(err.value) and f"{keys}/{other}.key" in str(err.value)


def test_timing_fields_decide_roles(tmp_path):
    """A ZSK rollover written as timing: the old key goes inactive in an hour and is deleted
    in two, the new one is published now and active in an hour."""
    ksk = keygen(tmp_path, ZONE, 13, True)
    old = keygen(tmp_path, ZONE, 13, False, "-I", "+1h", "-D", "+2h")
    new = keygen(tmp_path, ZONE, 13, False, "-P", "now", "-A", "+1h")
    later = keygen(tmp_path, ZONE, 13, False, "-P", "+3h", "-A", "+4h")
    keys = load_keys([str(tmp_path / b) for b in (ksk, old, new, later)], ZONE)
    tags = {b: int(b.rsplit("+", 1)[1]) for b in (ksk, old, new, later)}
    now = time.time() + 60  # past the keys' creation second

    def roles(at):
        st = key_state(keys, at)
        return ({k.tag for k in st.published}, {k.tag for k in st.zone_signers},
                {k.tag for k in st.dnskey_signers})

    assert roles(now) == ({tags[ksk], tags[old], tags[new]}, {tags[old]}, {tags[ksk]})
    assert roles(now + 5400) == ({tags[ksk], tags[old], tags[new]}, {tags[new]}, {tags[ksk]})
    assert roles(now + 3 * 3600) == ({tags[ksk], tags[new], tags[later]}, {tags[new]},
                                     {tags[ksk]})
    assert key_state(keys, now).until <= now + 3600


# -- answers -----------------------------------------------------------------------------


@pytest.mark.parametrize("name,rdtype,rcode", [
    ("api.example.test.", "A", dns.rcode.NOERROR),
    (ZONE, "SOA", dns.rcode.NOERROR),
    (ZONE, "NS", dns.rcode.NOERROR),
    ("www.example.test.", "A", dns.rcode.NOERROR),
    ("west.example.test.", "SRV", dns.rcode.NOERROR),
    ("nothing.example.test.", "A", dns.rcode.NXDOMAIN),
    ("api.example.test.", "TXT", dns.rcode.NOERROR),
    ("dead.example.test.", "A", dns.rcode.NXDOMAIN),
])
def test_every_rrset_signed(engine, name, rdtype, rcode):
    keys = dnskeys(engine)
    for tcp in (False, True):
        reply, _ = ask(engine, name, rdtype, want_dnssec=True, tcp=tcp)
        assert reply.rcode() == rcode
        assert validate_all(reply, keys) >= 1
        hit, was_hit = ask(engine, name, rdtype, want_dnssec=True, tcp=tcp)
        assert was_hit and validate_all(hit, keys) >= 1


def test_dnskey_signed_by_ksk_only_the_rest_by_zsk(engine, keydir):
    _, ksk, zsk = keydir
    reply, _ = ask(engine, ZONE, "DNSKEY", want_dnssec=True)
    sig = reply.find_rrset(reply.answer, ORIGIN, 1, dns.rdatatype.RRSIG, dns.rdatatype.DNSKEY)
    assert [s.key_tag for s in sig] == [int(ksk.rsplit("+", 1)[1])]
    reply, _ = ask(engine, "api.example.test.", "A", want_dnssec=True)
    sig = [s for s in reply.answer if s.rdtype == dns.rdatatype.RRSIG][0]
    assert [s.key_tag for s in sig] == [int(zsk.rsplit("+", 1)[1])]


@pytest.mark.parametrize("qname,encloser,next_closer", [
    ("nothing.example.test.", ZONE, "nothing.example.test."),
    ("x.api.example.test.", "api.example.test.", "x.api.example.test."),  # below a name
    ("a.b.nowhere.example.test.", ZONE, "nowhere.example.test."),  # parent missing too
    ("q.a.notes.example.test.", "a.notes.example.test.", "q.a.notes.example.test."),  # ENT
])
def test_nxdomain_proof(engine, qname, encloser, next_closer):
    reply, _ = ask(engine, qname, "A", want_dnssec=True)
    assert reply.rcode() == dns.rcode.NXDOMAIN
    proofs = nsec3s(reply)
    assert h(encloser) in proofs  # the closest encloser matched, with its bitmap
    assert covered(proofs, next_closer) and covered(proofs, "*." + encloser)
    assert not covered(proofs, encloser)
    validate_all(reply, dnskeys(engine))


@pytest.mark.parametrize("qname,rdtype,types", [
    ("api.example.test.", "TXT", {"A", "SRV", "RRSIG"}),  # addresses answer SRV too (SkyDNS)
    ("notes.example.test.", "A", {"TXT", "RRSIG"}),  # only text below: an empty non-terminal
    ("a.notes.example.test.", "AAAA", {"TXT", "RRSIG"}),
    (ZONE, "TXT", {"SOA", "NS", "DNSKEY", "RRSIG"}),  # the apex
    ("www.example.test.", "TXT", {"CNAME", "SRV", "PTR", "RRSIG"}),  # TXT denied, CNAME listed
    ("west.example.test.", "MX", {"A", "SRV", "RRSIG"}),
])
def test_nodata_bitmap_is_the_names_real_types(engine, qname, rdtype, types):
    reply, _ = ask(engine, qname, rdtype, want_dnssec=True)
    assert reply.rcode() == dns.rcode.NOERROR and not reply.answer
    proofs = nsec3s(reply)
    assert {dns.rdatatype.to_text(t) for t in proofs[h(qname)][1]} == types
    validate_all(reply, dnskeys(engine))
    # the bitmap says what the server answers: a type is listed iff a query for it gets data
    # of that type at that name (a CNAME owner's addresses come from its target)
    for rdtype in ("A", "AAAA", "SRV", "TXT", "MX", "CNAME", "NS", "PTR", "SOA"):
        got, _ = ask(engine, qname, rdtype, want_dnssec=True)
        owned = any(r.name == dns.name.from_text(qname) and r.rdtype == dns.rdatatype.from_text(
            rdtype) for r in got.answer)
        assert owned == (rdtype in types), (qname, rdtype)


def test_cname_to_nxdomain_proves_the_target(engine):
    reply, _ = ask(engine, "dead.example.test.", "A", want_dnssec=True)
    assert reply.rcode() == dns.rcode.NXDOMAIN and reply.answer[0].rdtype == dns.rdatatype.CNAME
    proofs = nsec3s(reply)
    assert h(ZONE) in proofs and covered(proofs, "gone.example.test.")


def test_without_do_the_bytes_are_as_without_keys(engine):
    plain = make_engine([])
    questions = [("api.example.test.", "A"), ("nothing.example.test.", "A"),
                 ("api.example.test.", "TXT"), ("west.example.test.", "SRV"), (ZONE, "SOA"),
                 ("www.example.test.", "A")]
    for name, rdtype in questions:
        for kw in ({}, {"use_edns": 0}):
            q = dns.message.make_query(name, rdtype, **kw)
            q.id = 4242
            wire = q.to_wire()
            a, b = engine.miss(wire, "127.0.0.1", False), plain.miss(wire, "127.0.0.1", False)
            a, b = dns.message.from_wire(a), dns.message.from_wire(b)
            assert a == b, (name, rdtype)  # sections compared as sets: shuffles are equal
            assert not any(r.rdtype == dns.rdatatype.RRSIG for r in a.answer + a.authority)


def test_dnskey_question_answered_without_do_too(engine):
    reply, _ = ask(engine, ZONE, "DNSKEY")
    assert len(reply.answer) == 1 and len(reply.answer[0]) == 2


def test_rrset_ttl_is_the_minimum_and_signed_so(engine):
    reply, _ = ask(engine, "api.example.test.", "A", want_dnssec=True)
    a = reply.find_rrset(reply.answer, dns.name.from_text("api.example.test."), 1, 1)
    assert a.ttl == 40  # i2's TTL: one TTL per RRset, the smallest
    validate_all(reply, dnskeys(engine))


def test_shuffles_cost_no_signatures_and_health_flips_one(engine):
    signer = engine.signing.signer
    keys = dnskeys(engine)
    ask(engine, "api.example.test.", "A", want_dnssec=True)
    made = signer.made
    orders = set()
    for _ in range(30):
        reply, hit = ask(engine, "api.example.test.", "A", want_dnssec=True)
        orders.add(tuple(r.address for r in reply.answer[0]))
        assert hit
    assert len(orders) > 1 and signer.made == made  # rotations share one signature
    engine.cache.clear()
    ask(engine, "api.example.test.", "A", want_dnssec=True)
    assert signer.made == made  # a rebuilt answer finds its signature
    engine.state.set_health("10.0.0.2", "DOWN")
    reply, hit = ask(engine, "api.example.test.", "A", want_dnssec=True)
    assert not hit and len(reply.answer[0]) == 2
    assert signer.made == made + 1  # the one RRset that changed
    validate_all(reply, keys)
    engine.state.set_health("10.0.0.2", "UP")
    reply, hit = ask(engine, "api.example.test.", "A", want_dnssec=True)
    assert not hit and len(reply.answer[0]) == 3 and signer.made == made + 1  # flipped back


def test_random_one_variants_each_signed(keydir):
    d, ksk, zsk = keydir
    engine = make_engine(load_keys([str(d / ksk), str(d / zsk)], ZONE), mode="random")
    keys = dnskeys(engine)
    seen = set()
    for _ in range(40):
        reply, _ = ask(engine, "api.example.test.", "A", want_dnssec=True)
        assert len(reply.answer[0]) == 1
        seen.add(reply.answer[0][0].address)
        validate_all(reply, keys)
    assert len(seen) == 3


def test_truncated_when_signed_answer_does_not_fit(keydir):
    d, ksk, zsk = keydir
    many = {f"/skydns/test/example/big/i{i:02d}": {"host": f"10.9.0.{i}"} for i in range(80)}
    engine = make_engine(load_keys([str(d / ksk), str(d / zsk)], ZONE), {**RECORDS, **many})
    reply, _ = ask(engine, "big.example.test.", "A", want_dnssec=True)
    assert reply.flags & dns.flags.TC and not reply.answer
    reply, _ = ask(engine, "big.example.test.", "A", want_dnssec=True, tcp=True)
    assert len(reply.answer[0]) == 80 and validate_all(reply, dnskeys(engine)) == 1


def test_nxdomain_flood_keeps_a_bounded_signature_cache(engine):
    signer = engine.signing.signer
    for i in range(DENIAL_CACHE_SIZE + 500):
        q = dns.message.make_query(f"r{i}.example.test.", "A", want_dnssec=True)
        engine.miss(q.to_wire(), "127.0.0.1", False)
    assert len(signer._caches[1]) <= DENIAL_CACHE_SIZE


def test_renewed_at_half_life(keydir):
    d, ksk, zsk = keydir
    clock = [time.time()]
    signer = Signer(load_keys([str(d / zsk)], ZONE), clock=lambda: clock[0], jitter=0)
    rrset = RRset(names.to_wire("a." + ZONE), 1, 1, 30, [bytes((10, 0, 0, 1))])
    renew = signer.sign(rrset)
    first = rrset.sigs[0]
    inception = int.from_bytes(first[12:16], "big")
    expiration = int.from_bytes(first[8:12], "big")
    assert inception == int(clock[0]) - 3600 and expiration == int(clock[0]) + 7 * 86400
    assert renew == inception + (expiration - inception) / 2
    clock[0] = renew - 1
    signer.sign(rrset)
    assert rrset.sigs[0] == first and signer.made == 1
    clock[0] = renew + 1
    signer.sign(rrset)
    assert rrset.sigs[0] != first and signer.made == 2


def test_signed_entry_leaves_the_front_at_renewal(engine):
    q = dns.message.make_query("api.example.test.", "TXT", want_dnssec=True)
    wire = q.to_wire()
    from dnsserver.wire.message import question_key

    engine.miss(wire, "127.0.0.1", False)
    keyed = question_key(wire, False, engine.max_udp)
    entry = engine.cache.get(keyed[0])
    assert entry.renew and entry.expires > time.monotonic() + 86400
    tail, _ = engine.cache.hit(wire, keyed, "127.0.0.1", engine.allowed)
    engine.cache.add_front(wire[2:], tail, entry)
    assert wire[2:] in engine.cache.front
    assert engine.cache.sweep(time.monotonic()) == 0
    assert engine.cache.sweep(entry.expires + 1) == 1
    assert wire[2:] not in engine.cache.front and engine.cache.get(keyed[0]) is None


def test_nsec3_hash_matches_dnspython():
    for name in (ZONE, "a.b.example.test.", "*.example.test."):
        assert nsec3.b32hex(nsec3.hash_name(names.to_wire(name))).decode().upper() == h(name)


def test_renewal_heap_stays_bounded_under_churn():
    from dnsserver.front.cache import AnswerCache, Entry

    cache = AnswerCache(10)
    for i in range(500):
        entry = Entry([(b"h0", b"h1", b"tail")], expires=time.monotonic() + 100, renew=True)
        cache.put(b"key%d" % i, entry)
        cache.add_front(b"front%d" % i, b"reply", entry)
    assert len(cache.entries) == 10 and len(cache.renewals) <= 2 * 10 + 1


def test_denial_follows_record_changes_below_the_encloser(engine):
    """An NXDOMAIN proof reads its closest encloser's types: a record appearing below that
    name drops the cached reply and the cached bitmap, and the new proof shows the new type."""
    def encloser_types():
        reply, _ = ask(engine, "q.a.notes.example.test.", "A", want_dnssec=True)
        assert reply.rcode() == dns.rcode.NXDOMAIN
        return {dns.rdatatype.to_text(t) for t in nsec3s(reply)[h("a.notes.example.test.")][1]}

    assert encloser_types() == {"TXT", "RRSIG"}
    key = "/skydns/test/example/notes/a/z"
    engine.state.put(parse_record(key, key_to_path(key), b'{"host": "10.0.0.9"}'), 2)
    assert encloser_types() == {"TXT", "A", "SRV", "RRSIG"}
    validate_all(ask(engine, "q.a.notes.example.test.", "A", want_dnssec=True)[0],
                 dnskeys(engine))


def test_dnskey_answer_expires_when_a_key_is_published(tmp_path):
    ksk = keygen(tmp_path, ZONE, 13, True)
    soon = keygen(tmp_path, ZONE, 13, False, "-P", "+1h", "-A", "+2h")
    engine = make_engine(load_keys([str(tmp_path / ksk), str(tmp_path / soon)], ZONE))
    from dnsserver.wire.message import question_key

    for do in (False, True):
        reply, _ = ask(engine, ZONE, "DNSKEY", want_dnssec=do)
        assert len(reply.answer[0]) == 1  # the second key is not published yet
        wire = dns.message.make_query(ZONE, "DNSKEY", want_dnssec=do).to_wire()
        entry = engine.cache.get(question_key(wire, False, engine.max_udp)[0])
        assert 0 < entry.expires <= time.monotonic() + 3600
