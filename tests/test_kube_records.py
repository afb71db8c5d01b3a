"""Kubernetes objects -> wanted records (kubeapi/kuberecords.py), and the converge planner on
plain snapshots (kubeapi/kubeplan.py): tables, no I/O."""

import json

import pytest

from kubeapi.kubeplan import OWNER, SyncPlanner
from kubeapi.kuberecords import Want, probe_ports, service_records
from kubeapi.plan import Layout, NeedReads, Snapshot
from kubeapi.records import candidate_keys, encode
from skydns.store import KV

from fakekube import endpoint_slice, service

ZONE = "cluster.test."
D = "web.default.svc.cluster.test."
BOTH = ["external", "cluster"]


def svc(**kw):
    obj = service("web", **kw)
    spec = obj["spec"]
    if not spec.get("clusterIP") and spec.get("type") != "ExternalName":
        spec["clusterIP"] = "10.96.0.1"
    return obj


CASES = [
    ("cluster ip", svc(), [], BOTH,
     [Want(D, "A", "10.96.0.1"), Want("_http._tcp." + D, "SRV", D, 80)]),
    ("external ip first", svc(external_ips=["192.0.2.7"]), [], BOTH,
     [Want(D, "A", "192.0.2.7"), Want("_http._tcp." + D, "SRV", D, 80)]),
    ("load balancer ingress", svc(lb_ips=["192.0.2.8"]), [], BOTH,
     [Want(D, "A", "192.0.2.8"), Want("_http._tcp." + D, "SRV", D, 80)]),
    ("cluster only by config", svc(external_ips=["192.0.2.7"]), [], ["cluster"],
     [Want(D, "A", "10.96.0.1"), Want("_http._tcp." + D, "SRV", D, 80)]),
    ("external only, none there", svc(), [], ["external"], []),
    ("not a DNS label", {**svc(), "metadata": {"name": "a.b", "namespace": "default"}}, [],
     BOTH, []),
    ("unnamed port: no SRV", svc(ports=(("", 80),)), [], BOTH, [Want(D, "A", "10.96.0.1")]),
    ("dual stack", {**svc(), "spec": {"clusterIP": "10.96.0.1",
                                      "clusterIPs": ["10.96.0.1", "fd00::1"]}}, [], BOTH,
     [Want(D, "A", "10.96.0.1"), Want(D, "AAAA", "fd00::1")]),
    ("external name", svc(external_name="Example.ORG"), [], BOTH,
     [Want(D, "CNAME", "example.org.")]),
    ("headless: ready endpoints only", svc(headless=True),
     [endpoint_slice("web", [("10.1.0.1", True, None), ("10.1.0.2", False, None)])], BOTH,
     [Want(D, "A", "10.1.0.1"), Want("_http._tcp." + D, "SRV", "10.1.0.1", 8080)]),
    ("headless: ready absent counts as ready", svc(headless=True),
     [endpoint_slice("web", [("10.1.0.1", None, None)])], BOTH,
     [Want(D, "A", "10.1.0.1"), Want("_http._tcp." + D, "SRV", "10.1.0.1", 8080)]),
    ("headless: hostnames", svc(headless=True),
     [endpoint_slice("web", [("10.1.0.1", True, "web-0")])], BOTH,
     [Want(D, "A", "10.1.0.1"), Want("_http._tcp." + D, "SRV", "web-0." + D, 8080),
      Want("web-0." + D, "A", "10.1.0.1")]),
    ("headless: IPv6 slice", svc(headless=True),
     [endpoint_slice("web", [("FD00::5", True, None)], address_type="IPv6", ports=())], BOTH,
     [Want(D, "AAAA", "fd00::5")]),
]


@pytest.mark.parametrize("what,obj,slices,source,want", CASES, ids=[c[0] for c in CASES])
def test_service_records(what, obj, slices, source, want):
    assert service_records(obj, slices, ZONE, source) == sorted(want)


# --- the converge planner on hand-made snapshots ------------------------------------------

LAYOUT = Layout(ZONE, "/skydns/monitor/status/", "/skydns/monitor/refs/")


def plan_for(kvs: dict, wants, ports=None):
    """Run the planner until it has every key it asks for (what kubesync.converge does)."""
    items = {k: KV(k, v if isinstance(v, bytes) else json.dumps(v).encode(), 5, 0)
             for k, v in kvs.items()}
    keys, prefixes = set(), {"/skydns/test/cluster/svc/default/web/"}
    while True:
        planner = SyncPlanner(LAYOUT, Snapshot(9, items, keys, prefixes))
        try:
            return planner, planner.converge(D, wants, ports)
        except NeedReads as more:
            keys |= more.keys
            prefixes |= more.prefixes


def test_converge_writes_record_refs_and_status():
    _, plan = plan_for({}, [Want(D, "A", "10.96.0.1")])
    key = candidate_keys(D, "A", "10.96.0.1")[0]
    assert plan.puts[key] == encode("A", "10.96.0.1", OWNER)
    assert json.loads(plan.puts["/skydns/monitor/status/10.96.0.1"])["status"] == "UP"
    assert json.loads(plan.puts["/skydns/monitor/refs/10.96.0.1"]) == {"keys": [key]}
    assert plan.key_guards["/skydns/monitor/status/10.96.0.1"] == 0  # created only if absent
    assert plan.range_guards == {"/skydns/test/cluster/svc/default/web/": "mod"}


def test_converge_nothing_to_do_is_empty():
    key = candidate_keys(D, "A", "10.96.0.1")[0]
    have = {key: encode("A", "10.96.0.1", OWNER),
            "/skydns/monitor/refs/10.96.0.1": {"keys": [key]},
            "/skydns/monitor/status/10.96.0.1": {"status": "DOWN"}}
    _, plan = plan_for(have, [Want(D, "A", "10.96.0.1")])
    assert plan.empty and not plan.key_guards and not plan.range_guards


def test_converge_one_endpoint_touches_only_its_keys():
    keep = candidate_keys(D, "A", "10.1.0.1")[0]
    have = {keep: encode("A", "10.1.0.1", OWNER),
            "/skydns/monitor/refs/10.1.0.1": {"keys": [keep]},
            "/skydns/monitor/status/10.1.0.1": {"status": "UP"}}
    _, plan = plan_for(have, [Want(D, "A", "10.1.0.1"), Want(D, "A", "10.1.0.2")])
    new = candidate_keys(D, "A", "10.1.0.2")[0]
    assert sorted(plan.puts) == sorted([new, "/skydns/monitor/refs/10.1.0.2",
                                        "/skydns/monitor/status/10.1.0.2"])
    assert plan.deletes == []


def test_converge_removes_last_reference_with_status():
    gone = candidate_keys(D, "A", "10.1.0.2")[0]
    have = {gone: encode("A", "10.1.0.2", OWNER),
            "/skydns/monitor/refs/10.1.0.2": {"keys": [gone]},
            "/skydns/monitor/status/10.1.0.2": {"status": "DOWN"}}
    _, plan = plan_for(have, [])
    assert sorted(plan.deletes) == sorted([gone, "/skydns/monitor/refs/10.1.0.2",
                                           "/skydns/monitor/status/10.1.0.2"])


def test_converge_leaves_other_owners_alone():
    theirs = candidate_keys(D, "A", "192.0.2.1")[0]
    below = candidate_keys("extra." + D, "A", "192.0.2.2")[0]
    have = {theirs: encode("A", "192.0.2.1", "alice"), below: encode("A", "192.0.2.2", "alice")}
    planner, plan = plan_for(have, [Want(D, "A", "10.96.0.1"),
                                    Want("_http._tcp." + D, "SRV", D, 80)])
    assert planner.skipped == [D]
    assert theirs not in plan.deletes and below not in plan.deletes
    assert list(plan.puts) == [candidate_keys("_http._tcp." + D, "SRV", D)[0]]


def test_converge_splits_big_changes():
    wants = [Want(D, "A", f"10.1.0.{i}") for i in range(1, 101)]
    planner, plan = plan_for({}, wants)
    assert planner.partial
    written = {json.loads(v)["host"] for k, v in plan.puts.items() if "/monitor/" not in k}
    assert len(written) == 30  # 3 keys each (record, refs, status) within 90 operations
    assert len(plan.puts) + len(plan.deletes) <= planner.max_ops
    assert len(plan.key_guards) + len(plan.range_guards) <= planner.max_ops + 1


def test_probe_ports_for_new_status_keys():
    obj = svc(ports=(("http", 80), ("dns", 53)))
    obj["spec"]["ports"][1]["protocol"] = "UDP"  # a scanner's TCP connect cannot probe it
    assert probe_ports(obj, [], service_records(obj, [], ZONE, BOTH)) == {"10.96.0.1": [80]}
    headless = svc(headless=True)
    slices = [endpoint_slice("web", [("10.1.0.1", True, None), ("10.1.0.2", False, None)])]
    wants = service_records(headless, slices, ZONE, BOTH)
    assert probe_ports(headless, slices, wants) == {"10.1.0.1": [8080]}
    _, plan = plan_for({}, [Want(D, "A", "10.96.0.1")], {"10.96.0.1": [80, 443]})
    assert json.loads(plan.puts["/skydns/monitor/status/10.96.0.1"])["ports"] == [80, 443]
