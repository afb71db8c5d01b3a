"""skydns.affected: which names a record change or a status flip reaches (pure, no etcd)."""

from dnsserver.wire.render import plain
from dnsserver.zone.context import Context, ZoneSettings
from dnsserver.zone.index import RecordIndex
from dnsserver.zone.rules import T_A, T_AAAA, T_CNAME, T_MX, T_NS, T_PTR, T_SRV, T_TXT, answer
from skydns.affected import Dependents, answering, reached, reached_by_record
from skydns.health import HealthView
from skydns.keys import name_to_key, name_to_path, path_to_name
from skydns.records import parse_record

DOMAIN = "example.test."


def deps_with(records: dict) -> Dependents:
    deps = Dependents()
    for name, value in records.items():
        key = name_to_key(name)
        deps.put(key, parse_record(key, name_to_path(name), value.encode()))
    return deps


DEPS = {
    "a1.web.example.test.": '{"host": "10.0.0.1"}',
    "a2.web.example.test.": '{"host": "10.0.0.2"}',
    "x.alias.example.test.": '{"host": "web.example.test"}',
    "x.alias2.example.test.": '{"host": "alias.example.test"}',
    "x.srv.example.test.": '{"host": "a1.web.example.test", "port": 80}',
    "y.other.example.test.": '{"host": "10.0.0.2"}',
    "x.out.example.test.": '{"host": "www.elsewhere.org"}',
}


def test_answering_is_the_name_and_those_above_it_below_the_apex():
    path = name_to_path("a1.web.example.test.")
    assert answering(path, name_to_path(DOMAIN)) == [
        name_to_path("a1.web.example.test."), name_to_path("web.example.test.")]
    assert answering(name_to_path("example.test."), name_to_path(DOMAIN)) == [
        name_to_path("example.test.")]
    ns = name_to_path("ns1.ns.dns.example.test.")
    assert name_to_path(DOMAIN) in answering(ns, name_to_path(DOMAIN))  # apex NS answer
    assert answering(name_to_path("a.elsewhere.org."), name_to_path(DOMAIN)) == []


def test_record_reaches_parents_cnames_to_them_and_ptr():
    deps = deps_with(DEPS)
    key = name_to_key("a1.web.example.test.")
    old = deps.records[key]
    got = reached_by_record(deps, DOMAIN, key, old, None)
    assert got.names == {
        "a1.web.example.test.", "web.example.test.",
        "x.alias.example.test.", "alias.example.test.",  # CNAME to web.
        "x.alias2.example.test.", "alias2.example.test.",  # CNAME to alias. (a chain)
        "x.srv.example.test.", "srv.example.test.",  # SRV target a1.web. (glue)
        "1.0.0.10.in-addr.arpa.",
    }
    assert not got.subtrees


def test_status_flip_reaches_every_holder():
    got = reached(deps_with(DEPS), DOMAIN, ips=["10.0.0.2"])
    assert {"a2.web.example.test.", "web.example.test.", "alias.example.test.",
            "y.other.example.test.", "other.example.test.",
            "2.0.0.10.in-addr.arpa."} <= got.names
    assert "a1.web.example.test." not in got.names and "srv.example.test." not in got.names


def test_unknown_address_reaches_only_its_ptr():
    assert reached(deps_with(DEPS), DOMAIN, ips=["10.9.9.9"]).names == {"9.9.9.10.in-addr.arpa."}


def test_cname_loop_ends():
    deps = deps_with({"x.a.example.test.": '{"host": "b.example.test"}',
                      "x.b.example.test.": '{"host": "a.example.test"}'})
    got = reached(deps, DOMAIN, [name_to_path("x.a.example.test.")])
    assert got.names == {"x.a.example.test.", "a.example.test.", "x.b.example.test.",
                         "b.example.test."}


def test_wildcard_is_a_subtree():
    got = reached(Dependents(), DOMAIN, [name_to_path("x.*.web.example.test.")])
    assert got.subtrees == {"web.example.test."}
    assert "web.example.test." in got.names


def test_reverse_record_and_out_of_zone():
    got = reached(Dependents(), DOMAIN, [name_to_path("1.0.0.10.in-addr.arpa.")])
    assert got.names == {"1.0.0.10.in-addr.arpa.", "0.0.10.in-addr.arpa.", "0.10.in-addr.arpa.",
                         "10.in-addr.arpa.", "in-addr.arpa."}
    assert not reached(Dependents(), DOMAIN, [name_to_path("a.elsewhere.org.")])


def test_dependents_forget_replaced_and_deleted_records():
    deps = deps_with(DEPS)
    key = name_to_key("x.alias.example.test.")
    deps.put(key, parse_record(key, name_to_path("x.alias.example.test."),
                               b'{"host": "10.0.0.7"}'))
    assert name_to_path("web.example.test.") not in deps.by_target
    assert deps.holders("10.0.0.7") == {name_to_path("x.alias.example.test.")}
    deps.delete(key)
    assert deps.holders("10.0.0.7") == set()
    assert len(deps) == len(DEPS) - 1


# --- against the server's own answer rules ------------------------------------------------------
# The janitor may not import dnsserver/, so skydns.affected restates its rules backwards; here
# every name's answers are computed by the one rule set (dnsserver.zone.rules) before and after
# each change, every question kind of every name, and every name whose answer moved must be
# among those the change reaches.

ZONE_RECORDS = {
    **DEPS,
    "x.www.example.test.": '{"host": "alias.example.test"}',
    "x.mx.example.test.": '{"host": "a2.web.example.test", "mail": true, "priority": 10}',
    "ns1.ns.dns.example.test.": '{"host": "a1.web.example.test"}',
    "x.v6.example.test.": '{"host": "2001:db8::1"}',
    "x.txt.example.test.": '{"text": "hello"}',
    "1.0.0.10.in-addr.arpa.": '{"host": "a1.web.example.test"}',
    "b.deep.sub.example.test.": '{"host": "10.0.0.3", "port": 8080}',
    # groups (CoreDNS's rule), a delegation's NS with glue, a text beside an address
    "a.grp.example.test.": '{"host": "10.0.0.4", "group": "g1"}',
    "c.b.grp.example.test.": '{"host": "10.0.0.5", "group": "g2"}',
    "ns.sub2.example.test.": '{"host": "a2.web.example.test", "type": "NS"}',
    "y.txt.example.test.": '{"host": "10.0.0.6", "text": "beside"}',
}
QTYPES = (T_A, T_AAAA, T_SRV, T_CNAME, T_TXT, T_MX, T_NS, T_PTR)


def _answers(records: dict, down: set) -> dict:
    index, health = RecordIndex(), HealthView()
    for name, value in records.items():
        index.put(parse_record(name_to_key(name), name_to_path(name), value.encode()))
    for ip in down:
        health.set(ip, "DOWN")
    ctx = Context(index, health, ZoneSettings(domain=DOMAIN))
    names = {DOMAIN}
    for name in records:
        path = name_to_path(name)
        names |= {path_to_name(path[:d]) for d in range(2, len(path) + 1)}
    out = {}
    for name in names:
        if not (name.endswith(DOMAIN) or name.endswith("in-addr.arpa.")):
            continue
        for qtype in QTYPES:
            got = answer(ctx, name_to_path(name), qtype)
            out[name, qtype] = (got.rcode, [plain(rr) for rr in got.answer],
                                sorted(plain(rr) for rr in got.additional))
    return out


def _moved(before: dict, after: dict) -> set[str]:
    return {name for (name, qtype) in before.keys() | after.keys()
            if before.get((name, qtype)) != after.get((name, qtype))}


def test_every_answer_a_record_change_moves_is_reached():
    base = _answers(ZONE_RECORDS, set())
    deps = deps_with(ZONE_RECORDS)
    added = ["x.new.web.example.test.", "y.alias.example.test.", "z.example.test.",
             "2.0.0.10.in-addr.arpa.", "ns2.ns.dns.example.test."]
    for name in [*ZONE_RECORDS, *added]:
        key = name_to_key(name)
        for new_value in (None, '{"host": "10.0.0.99"}', '{"host": "db.example.test"}'):
            records = dict(ZONE_RECORDS)
            if new_value is None:
                if name not in records:
                    continue
                del records[name]
            else:
                records[name] = new_value
            moved = _moved(base, _answers(records, set()))
            after = deps_with(records)
            new = after.records.get(key)
            old = deps.records.get(key)
            # the janitor computes on its index after the change (watch.py); before, for a
            # reload's differences: both must be enough
            got = reached_by_record(after, DOMAIN, key, old, new).names
            assert moved <= got, (name, new_value, moved - got)
            got = reached_by_record(deps, DOMAIN, key, old, new).names
            assert moved <= got, (name, new_value, moved - got)


def test_every_answer_a_status_flip_moves_is_reached():
    base = _answers(ZONE_RECORDS, set())
    deps = deps_with(ZONE_RECORDS)
    for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "2001:db8::1"):
        moved = _moved(base, _answers(ZONE_RECORDS, {ip}))
        got = reached(deps, DOMAIN, ips=[ip]).names
        assert moved <= got, (ip, moved - got)
        # 10.0.0.3, 10.0.0.4 (its group alone) and 2001:db8::1: fail open, nothing moves
        assert bool(moved) == (ip in ("10.0.0.1", "10.0.0.2")), (ip, moved)
