"""Pure tests of API records <-> etcd (kubeapi/records.py) and of write planning (kubeapi/plan.py):
a dict stands in for etcd, the plans are checked key by key. No etcd, no HTTP."""

import hashlib
import json

import pytest

from kubeapi.errors import ApiError
from kubeapi.plan import (
    MAX_COMPARES,
    Caller,
    Layout,
    NeedReads,
    Planner,
    Snapshot,
    ancestors,
)
from kubeapi.records import (
    CNAME_ID,
    candidate_keys,
    decode,
    encode,
    entries,
    value_id,
)
from kubeapi.validate import Change
from skydns.records import parse_record
from skydns.store import KV

ZONE = "skydns.local."
LAYOUT = Layout(ZONE, "/skydns/monitor/status/", "/skydns/monitor/refs/")
ADMIN = Caller("admin", admin=True)
ALICE = Caller("alice")
BOB = Caller("bob")
BASE = "/skydns/local/skydns"


def sha8(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def key_of(name: str, ip: str) -> str:
    return f"{BASE}/{name}/{sha8(ip)}"


def snapshot(data: dict, revision: int = 100) -> Snapshot:
    kvs = {k: KV(k, v if isinstance(v, bytes) else json.dumps(v).encode(), 10, 0)
           for k, v in data.items()}
    return Snapshot(revision, kvs, prefixes={"/"})


def plan(data: dict, op: str, name: str, change, caller=ADMIN):
    return getattr(Planner(LAYOUT, caller, snapshot(data)), op)(name, change)


def apply(data: dict, p) -> dict:
    out = dict(data)
    for key in p.deletes:
        out.pop(key, None)
    for key, value in p.puts.items():
        out[key] = json.loads(value)
    return out


# --- records -------------------------------------------------------------------------------------


def test_ids_are_the_sha1_of_the_value():
    assert value_id("A", "192.168.10.1") == sha8("192.168.10.1")
    assert value_id("TXT", "hi") == sha8("TXT:hi")  # typed, so "10.0.0.1" as a TXT differs
    assert candidate_keys("cctv2.skydns.local.", "A", "10.0.0.1")[0] == key_of("cctv2", "10.0.0.1")
    assert candidate_keys("tv1.skydns.local.", "CNAME", "x.") == [f"{BASE}/tv1/{CNAME_ID}"]
    assert CNAME_ID == sha8("CNAME")


def test_encoded_values_are_records_the_dns_server_reads():
    cases = [
        ("A", "10.0.0.1", {"ttl": 60, "ptr": True}, ("A", "10.0.0.1", 60)),
        ("AAAA", "2001:db8::1", {}, ("AAAA", "2001:db8::1", 0)),
        ("SRV", "10.0.0.1", {"port": 80, "weight": 5}, ("SRV", "10.0.0.1", 0)),
        ("CNAME", "cctv2.skydns.local.", {}, ("CNAME", "cctv2.skydns.local.", 0)),
        ("NS", "ns1.example.com.", {}, ("NS", "ns1.example.com.", 0)),
        ("MX", "mail.skydns.local.", {"priority": 5}, ("MX", "mail.skydns.local.", 0)),
    ]
    for rtype, value, extra, (want_type, want_host, want_ttl) in cases:
        raw = encode(rtype, value, "alice", **extra)
        rec = parse_record("/skydns/local/skydns/x/1", ("local", "skydns", "x", "1"), raw)
        assert (rec.rtype, rec.host, rec.ttl) == (want_type, want_host, want_ttl)
        back = decode("/skydns/local/skydns/x/1", raw, 5)
        assert (back.rtype, back.value, back.owner) == (rtype, value, "alice")
    txt = parse_record("/skydns/local/skydns/x/1", ("local", "skydns", "x", "1"),
                       encode("TXT", "hello", "o"))
    assert txt.text == "hello" and txt.rtype == "TXT"
    mx = parse_record("/k", ("k",), encode("MX", "m.example.", "o", priority=5))
    assert mx.mail and mx.priority == 5


@pytest.mark.parametrize("value, rtype, cname_like", [
    (b'{"host": "10.0.0.1"}', "", False),  # SkyDNS style: no type
    (b'{"host": "other.skydns.local"}', "", True),
    (b'{"host": "10.0.0.1", "type": "CNAME"}', "", False),  # inconsistent: not the API's
    (b"not json", "", False),
    (b'{"text": "x", "type": "TXT"}', "TXT", False),
    (b'{"host": "a.b.", "type": "cname"}', "CNAME", True),
])
def test_decode(value, rtype, cname_like):
    rec = decode(f"{BASE}/x/1", value, 3)
    assert (rec.rtype, rec.cname_like, rec.name) == (rtype, cname_like, "x.skydns.local.")


def test_entries_are_sorted_and_shaped_like_post_bodies():
    raw = {
        f"{BASE}/b/1": encode("A", "10.0.0.10", "admin"),
        f"{BASE}/b/2": encode("A", "10.0.0.9", "admin", ptr=True),
        f"{BASE}/a/1": encode("SRV", "10.0.0.1", "alice", port=80),
        f"{BASE}/tv1/{CNAME_ID}": encode("CNAME", "b.skydns.local.", "admin"),
        f"{BASE}/b/3": encode("MX", "m2.skydns.local.", "admin", priority=20),
        f"{BASE}/b/4": encode("MX", "m1.skydns.local.", "admin", priority=10),
        f"{BASE}/c/1": b'{"host": "10.0.0.3"}',  # SkyDNS style: listed, read-only
    }
    recs = [decode(k, v, 1) for k, v in raw.items()]
    got = entries(recs, {"10.0.0.9": "DOWN"})
    assert [(e["domain"], e["type"]) for e in got] == [
        ("a.skydns.local.", "SRV"), ("b.skydns.local.", "A"), ("b.skydns.local.", "CNAME"),
        ("b.skydns.local.", "MX"), ("c.skydns.local.", "A")]
    assert got[4] == {"domain": "c.skydns.local.", "type": "A", "owner": "",
                      "ips": ["10.0.0.3"], "status": {}, "readonly": True}
    assert all("readonly" not in e for e in got[:4])
    assert got[1] == {"domain": "b.skydns.local.", "type": "A", "owner": "admin",
                      "ips": ["10.0.0.9", "10.0.0.10"], "ptr": ["10.0.0.9"],
                      "status": {"10.0.0.9": "DOWN"}}
    assert got[2]["alias"] == ["tv1.skydns.local."]
    assert got[3]["mailHost"] == ["m1.skydns.local.", "m2.skydns.local."]
    assert got[3]["mailPriority"] == [10, 20]
    # An alias shows its CNAME entry, narrowed to itself.
    assert [e["type"] for e in entries(recs, {}, name="tv1.skydns.local.")] == ["CNAME"]
    assert [e["type"] for e in entries(recs, {}, rtype="MX")] == ["MX"]


def test_plain_skydns_keys_are_listed_read_only_as_the_dns_server_answers_them():
    raw = {
        f"{BASE}/db/x1": b'{"host": "10.0.1.1", "port": 5432}',
        f"{BASE}/db/x2": b'{"host": "2001:db8::1"}',
        f"{BASE}/db/9f": encode("A", "10.0.1.9", "admin"),  # the API's own, beside them
        f"{BASE}/www/x": b'{"host": "db.skydns.local"}',
        f"{BASE}/motd/x": b'{"text": "maintenance at 02:00"}',
        f"{BASE}/mx/x": b'{"host": "mail.skydns.local", "mail": true, "priority": 5}',
        f"{BASE}/bad/x": b'{"host": "10.0.0.1", "type": "CNAME"}',  # the DNS server skips it
        f"{BASE}/junk/x": b'not json',
    }
    recs = [decode(k, v, 1) for k, v in raw.items()]
    got = entries(recs, {})
    assert [(e["domain"], e["type"], e.get("readonly", False)) for e in got] == [
        ("db.skydns.local.", "A", False), ("db.skydns.local.", "AAAA", True),
        ("db.skydns.local.", "SRV", True), ("db.skydns.local.", "CNAME", True),
        ("motd.skydns.local.", "TXT", True), ("mx.skydns.local.", "MX", True)]
    assert got[2]["ips"] == ["10.0.1.1"] and got[1]["ips"] == ["2001:db8::1"]
    # a hand-written key with a port is an SRV target, listed with its port
    assert got[2]["srv"] == [{"target": "10.0.1.1", "port": 5432, "priority": 10,
                              "weight": 0}]
    assert got[3]["alias"] == ["www.skydns.local."]
    assert got[4]["text"] == ["maintenance at 02:00"]
    assert got[5]["mailHost"] == ["mail.skydns.local."] and got[5]["mailPriority"] == [5]
    # -show: a name's own entries, whoever wrote them; an alias shows its CNAME entry
    assert [e["type"] for e in entries(recs, {}, name="db.skydns.local.")] == [
        "A", "AAAA", "SRV", "CNAME"]
    # health marks every address, whoever wrote its record
    marked = entries(recs, {"10.0.1.1": "DOWN", "2001:db8::1": "UP"}, name="db.skydns.local.",
                     maintenance={"2001:db8::1": {"reason": "r"}})
    assert marked[2]["status"] == {"10.0.1.1": "DOWN"}
    assert marked[1]["maintenance"] == {"2001:db8::1": {"reason": "r"}}
    assert [e["type"] for e in entries(recs, {}, name="www.skydns.local.")] == ["CNAME"]
    assert [e["type"] for e in entries(recs, {}, rtype="TXT")] == ["TXT"]


def test_helpers():
    assert ancestors("a.b.c.skydns.local.", ZONE) == ["b.c.skydns.local.", "c.skydns.local."]
    assert ancestors("c.skydns.local.", ZONE) == []


# --- plans ---------------------------------------------------------------------------------------


def test_create_on_a_fresh_name():
    p = plan({}, "create", "cctv2.skydns.local.", Change("SRV", ("10.0.0.1",), ports=(80,)))
    key = key_of("cctv2", "10.0.0.1")
    assert json.loads(p.puts[key]) == {"host": "10.0.0.1", "type": "SRV", "port": 80,
                                       "owner": "admin"}
    assert json.loads(p.puts["/skydns/monitor/refs/10.0.0.1"]) == {"keys": [key]}
    assert json.loads(p.puts["/skydns/monitor/status/10.0.0.1"]) == {"status": "UP",
                                                                    "ports": [80]}
    assert p.status == 201 and p.deletes == []
    # Every key the decision read is guarded, and nobody may start the name meanwhile.
    assert p.key_guards == {key: 0, "/skydns/monitor/refs/10.0.0.1": 0,
                            "/skydns/monitor/status/10.0.0.1": 0, f"{BASE}/cctv2/{CNAME_ID}": 0}
    assert p.range_guards == {f"{BASE}/cctv2/": "create"}


def test_create_keeps_existing_addresses_and_status():
    data = apply({}, plan({}, "create", "x.skydns.local.", Change("A", ("10.0.0.1",))))
    data["/skydns/monitor/status/10.0.0.1"] = {"status": "DOWN"}
    p = plan(data, "create", "x.skydns.local.", Change("A", ("10.0.0.1", "10.0.0.2")))
    assert key_of("x", "10.0.0.1") not in p.puts
    assert key_of("x", "10.0.0.2") in p.puts
    assert "/skydns/monitor/status/10.0.0.1" not in p.puts  # a scanner's verdict stays
    assert p.range_guards == {}  # the name exists: no range guard needed
    again = plan(apply(data, p), "create", "x.skydns.local.", Change("A", ("10.0.0.2",)))
    assert again.empty and again.status == 200


def test_an_address_shared_by_two_names_keeps_its_status_until_the_last_goes():
    data = {}
    for name in ("a", "b"):
        change = Change("A", ("10.1.1.1",))
        data = apply(data, plan(data, "create", f"{name}.skydns.local.", change))
    assert json.loads(json.dumps(data["/skydns/monitor/refs/10.1.1.1"]))["keys"] == sorted(
        [key_of("a", "10.1.1.1"), key_of("b", "10.1.1.1")])
    p = plan(data, "delete", "a.skydns.local.", None)
    data = apply(data, p)
    assert "/skydns/monitor/status/10.1.1.1" in data
    assert data["/skydns/monitor/refs/10.1.1.1"] == {"keys": [key_of("b", "10.1.1.1")]}
    p = plan(data, "delete", "b.skydns.local.", Change("A", ("10.1.1.1",)))
    data = apply(data, p)
    assert data == {}


def test_refs_listing_a_key_deleted_behind_the_apis_back_do_not_keep_the_status():
    data = {}
    for name in ("a", "b"):
        change = Change("A", ("10.1.1.1",))
        data = apply(data, plan(data, "create", f"{name}.skydns.local.", change))
    del data[key_of("b", "10.1.1.1")]  # etcdctl del
    assert apply(data, plan(data, "delete", "a.skydns.local.", None)) == {}


def test_ptr_goes_with_its_address():
    data = apply({}, plan({}, "create", "web.skydns.local.",
                          Change("A", ("10.0.0.1",), ptr=True)))
    assert data["/skydns/arpa/in-addr/10/0/0/1"]["host"] == "web.skydns.local."
    with pytest.raises(ApiError) as err:
        plan(data, "create", "other.skydns.local.", Change("A", ("10.0.0.1",), ptr=True))
    assert err.value.status == 409
    moved = apply(data, plan(data, "update", "web.skydns.local.",
                             Change("A", ("10.0.0.1", "10.0.0.2"), update=("10.0.0.1",
                                                                           "10.0.0.2"))))
    assert "/skydns/arpa/in-addr/10/0/0/1" not in moved
    assert moved["/skydns/arpa/in-addr/10/0/0/2"]["host"] == "web.skydns.local."
    assert "/skydns/monitor/status/10.0.0.1" not in moved
    assert apply(moved, plan(moved, "delete", "web.skydns.local.", None)) == {}


def test_alias_rules():
    data = apply({}, plan({}, "create", "cctv2.skydns.local.", Change("A", ("10.0.0.1",))))
    alias = Change("CNAME", ("tv1.skydns.local.",))
    data = apply(data, plan(data, "create", "cctv2.skydns.local.", alias))
    assert data[f"{BASE}/tv1/{CNAME_ID}"] == {"host": "cctv2.skydns.local.", "type": "CNAME",
                                             "owner": "admin"}
    assert plan(data, "create", "cctv2.skydns.local.", alias).empty  # again: nothing to do
    refusals = [
        ("create", "tv1.skydns.local.", Change("A", ("10.0.0.2",)), 409),  # addresses at alias
        ("create", "x.tv1.skydns.local.", Change("A", ("10.0.0.2",)), 409),  # below an alias
        ("create", "cctv2.skydns.local.", Change("CNAME", ("cctv2.skydns.local.",)), 400),
        ("create", "nothing.skydns.local.", alias, 404),  # alias of a name that does not exist
        ("create", "tv1.skydns.local.", Change("CNAME", ("cctv2.skydns.local.",)), 409),  # loop
    ]
    for op, name, change, status in refusals:
        with pytest.raises(ApiError) as err:
            plan(data, op, name, change)
        assert err.value.status == status, (name, change, err.value.reason)
    other = apply(data, plan(data, "create", "other.skydns.local.", Change("A", ("10.0.0.3",))))
    with pytest.raises(ApiError) as err:  # tv1 is taken by cctv2
        plan(other, "create", "other.skydns.local.", alias)
    assert err.value.status == 409
    # Deleting the name takes its aliases along.
    assert apply(data, plan(data, "delete", "cctv2.skydns.local.", None)) == {}


def test_owners():
    data = apply({}, plan({}, "create", "a.skydns.local.", Change("A", ("10.0.0.1",)), ALICE))
    with pytest.raises(ApiError) as err:
        plan(data, "create", "a.skydns.local.", Change("A", ("10.0.0.2",)), BOB)
    assert err.value.status == 403
    with pytest.raises(ApiError):
        plan(data, "delete", "a.skydns.local.", None, BOB)
    # The administrator adds in the owner's name, so the owner can still remove it.
    data = apply(data, plan(data, "create", "a.skydns.local.", Change("A", ("10.0.0.2",))))
    assert data[key_of("a", "10.0.0.2")]["owner"] == "alice"
    assert apply(data, plan(data, "delete", "a.skydns.local.", None, ALICE)) == {}
    hand = {f"{BASE}/h/x": {"host": "10.9.9.9"}}  # written with etcdctl: administrator only
    with pytest.raises(ApiError):
        plan(hand, "create", "h.skydns.local.", Change("A", ("10.0.0.2",)), ALICE)


def test_not_found_and_conflicts():
    data = apply({}, plan({}, "create", "a.skydns.local.", Change("A", ("10.0.0.1",))))
    cases = [
        ("delete", "b.skydns.local.", None, 404),
        ("delete", "a.skydns.local.", Change("A", ("10.0.0.9",)), 404),
        ("delete", "a.skydns.local.", Change("MX"), 404),
        ("update", "a.skydns.local.", Change("A", ("10.0.0.8", "10.0.0.9"),
                                             update=("10.0.0.8", "10.0.0.9")), 404),
        ("create", "a.skydns.local.", Change("SRV", ("10.0.0.1",), ports=(80,)), 409),
    ]
    data = apply(data, plan(data, "create", "a.skydns.local.", Change("A", ("10.0.0.2",))))
    cases.append(("update", "a.skydns.local.", Change("A", ("10.0.0.1", "10.0.0.2"),
                                                      update=("10.0.0.1", "10.0.0.2")), 409))
    for op, name, change, status in cases:
        with pytest.raises(ApiError) as err:
            plan(data, op, name, change)
        assert err.value.status == status, (op, name, change)


def test_planner_asks_for_what_it_lacks():
    snap = Snapshot(5, {}, keys=(), prefixes=())
    with pytest.raises(NeedReads) as need:
        Planner(LAYOUT, ADMIN, snap).create("a.b.skydns.local.", Change("A", ("10.0.0.1",)))
    assert need.value.prefixes == {f"{BASE}/b/a/"}
    assert need.value.keys == {f"{BASE}/b/{CNAME_ID}"}
    snap = Snapshot(5, {}, keys=need.value.keys, prefixes=need.value.prefixes)
    with pytest.raises(NeedReads) as need:
        Planner(LAYOUT, ADMIN, snap).create("a.b.skydns.local.", Change("A", ("10.0.0.1",)))
    assert need.value.keys == {"/skydns/monitor/refs/10.0.0.1", "/skydns/monitor/status/10.0.0.1",
                               "/skydns/arpa/in-addr/10/0/0/1"}


def test_big_deletes_fold_their_guards():
    data: dict = {}
    for chunk in range(4):
        ips = tuple(f"10.0.{chunk}.{i}" for i in range(1, 41))
        data = apply(data, plan(data, "create", "big.skydns.local.", Change("A", ips)))
    p = plan(data, "delete", "big.skydns.local.", None)
    assert len(p.key_guards) + len(p.range_guards) <= MAX_COMPARES
    assert p.range_guards == {"/skydns/monitor/refs/": "mod", f"{BASE}/": "mod"}
    assert apply(data, p) == {}


def test_snapshot_under_lists_exactly_the_prefix_in_key_order():
    keys = ["/z/a/b/2", "/z/a/b", "/z/a/b/1", "/z/a/bb/1", "/z/a/b0", "/z/a/", "/z/b/1", "/y"]
    snap = Snapshot(7, {k: KV(k, b"", 1, 0) for k in keys}, prefixes=["/z/"])
    assert [kv.key for kv in snap.under("/z/a/b/")] == ["/z/a/b/1", "/z/a/b/2"]
    assert [kv.key for kv in snap.under("/z/a/")] == [
        "/z/a/", "/z/a/b", "/z/a/b/1", "/z/a/b/2", "/z/a/b0", "/z/a/bb/1"]
    assert snap.under("/z/c/") == [] and snap.under("/z/a/b/") == snap.under("/z/a/b/")
    with pytest.raises(NeedReads):
        snap.under("/y")
