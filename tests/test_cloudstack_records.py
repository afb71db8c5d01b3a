"""CloudStack's bus events and VMs -> wanted records (sources/cloudstack.py), and the unit
mode of the shared planner (sources/planner.py) on hand-made snapshots: plain values only."""

import json

from kubeapi.plan import Layout, NeedReads, Snapshot
from kubeapi.records import encode, encode_ptr, ptr_key
from skydns.keys import name_to_key
from skydns.store import KV
from sources.cloudstack import (
    OWNER,
    Event,
    default_nic,
    group_label,
    network_domain,
    parse_event,
    vm_records,
)
from sources.planner import Scope, SourcePlanner, encode_index
from sources.want import Want

from fakecloudstack import action_event, job_event, make_vm, nic

ACCOUNT = {"name": "alice", "domainid": "d-1", "domain": "dev", "id": "EDD2AB05-1111-2222"}
ZONE = "alice.cloud.test."
LAYOUT = Layout("cloud.test.", "/skydns/monitor/status/", "/skydns/monitor/refs/")
INDEX = "/skydns/monitor/sources/cloudstack/"


def test_job_events_in_both_job_result_forms():
    vm = make_vm("web1", ACCOUNT, "10.0.0.5")
    for form in ("string", "object"):
        event = parse_event(job_event("VM.CREATE", vm, result_form=form))
        assert event == Event("upsert", vm["id"], "VM.CREATE", vm)
    assert parse_event(job_event("vm.start", vm)).kind == "upsert"  # any case
    assert parse_event(job_event("VM.DESTROY", vm)).kind == "remove"
    assert parse_event(job_event("VM.EXPUNGE", vm, with_result=False)) == \
        Event("remove", vm["id"], "VM.EXPUNGE", None)
    # A result without what the records need is looked up instead.
    bare = job_event("VM.CREATE", vm, with_result=False)
    bare["jobResult"] = "org.apache.cloudstack.api.response.UserVmResponse/virtualmachine/{}"
    assert parse_event(bare).vm is None


def test_failed_and_other_events_are_not_handled():
    vm = make_vm("web1", ACCOUNT, "10.0.0.5")
    assert parse_event(job_event("VM.DESTROY", vm, status="FAILED")) is None
    assert parse_event(job_event("VM.CREATE", vm, status="IN_PROGRESS")) is None
    assert parse_event(job_event("VM.STOP", vm)) is None
    assert parse_event(action_event("VM.DESTROY", vm["id"],
                                    description="Error while destroying VM")) is None
    assert parse_event(action_event("VM.DESTROY", vm["id"], status="Started")) is None
    assert parse_event(action_event("VM.DESTROY", vm["id"])) == \
        Event("remove", vm["id"], "VM.DESTROY")
    no_entity = action_event("VM.DESTROY", vm["id"])
    del no_entity["entityuuid"]  # older releases name the VM only in VirtualMachine
    assert parse_event(no_entity).vm_id == vm["id"]
    for junk in (None, [], "x", {}, {"status": "SUCCEEDED"}, {"commandEventType": 5},
                 {"commandEventType": "VM.CREATE", "status": "SUCCEEDED"}):
        assert parse_event(junk) is None


def test_group_label_and_network_domain():
    assert group_label("Web Servers!", "EDD2AB05-1111") == "webservers-edd2ab05"
    assert group_label("!!!", "edd2ab05") is None and group_label(None, "edd2ab05") is None
    assert network_domain({"networkdomain": "Alice.Cloud.Test"}, {"networkdomain": "d.test"}) \
        == "alice.cloud.test."
    assert network_domain({}, {"networkdomain": "dev.cloud.test."}) == "dev.cloud.test."
    assert network_domain({}, {}) is None


def test_records_of_a_vm_default_nic_ptr_groups_common_zone():
    vm = make_vm("Web1", ACCOUNT, nics=[nic("192.0.2.9", default=False),
                                        nic("10.0.0.5", ip6="fd00:1::5")], group="www")
    wants = vm_records(vm, ZONE, ACCOUNT["id"], common_zone="all.cloud.test.", ttl=60)
    assert wants == sorted([
        Want("web1.alice.cloud.test.", "A", "10.0.0.5", ttl=60, ptr=True),
        Want("web1.alice.cloud.test.", "AAAA", "fd00:1::5", ttl=60, ptr=True),
        Want("www-edd2ab05.alice.cloud.test.", "A", "10.0.0.5", ttl=60),
        Want("www-edd2ab05.alice.cloud.test.", "AAAA", "fd00:1::5", ttl=60),
        Want("web1.all.cloud.test.", "A", "10.0.0.5", ttl=60),
        Want("web1.all.cloud.test.", "AAAA", "fd00:1::5", ttl=60),
        Want("www-edd2ab05.all.cloud.test.", "A", "10.0.0.5", ttl=60),
        Want("www-edd2ab05.all.cloud.test.", "AAAA", "fd00:1::5", ttl=60),
    ])
    assert default_nic(vm)["ipaddress"] == "10.0.0.5"
    assert vm_records(vm, ZONE, ACCOUNT["id"], ptr=False, groups=False) == [
        Want("web1.alice.cloud.test.", "A", "10.0.0.5"),
        Want("web1.alice.cloud.test.", "AAAA", "fd00:1::5")]
    assert vm_records({**vm, "state": "Destroyed"}, ZONE, ACCOUNT["id"]) == []
    assert vm_records({**vm, "name": "not a label"}, ZONE, ACCOUNT["id"]) == []


# --- the unit mode of the planner --------------------------------------------------------------


def plan_for(kvs: dict, scope: Scope, wants):
    items = {k: KV(k, v if isinstance(v, bytes) else json.dumps(v).encode(), 5, 0)
             for k, v in kvs.items()}
    keys, prefixes = set(), set()
    while True:
        planner = SourcePlanner(LAYOUT, Snapshot(9, items, keys, prefixes), OWNER)
        try:
            return planner, planner.converge_scope(scope, wants)
        except NeedReads as more:
            keys |= more.keys
            prefixes |= more.prefixes


def vm_scope(vm_id):
    return Scope(unit=vm_id, index_key=INDEX + vm_id)


def test_unit_keys_derive_from_the_vm_id_and_its_names_are_indexed():
    wants = [Want("web1." + ZONE, "A", "10.0.0.5", ttl=60, ptr=True),
             Want("www-edd2ab05." + ZONE, "A", "10.0.0.5", ttl=60)]
    _, plan = plan_for({}, vm_scope("vm-1"), wants)
    own = name_to_key("web1." + ZONE) + "/vm-1"
    group = name_to_key("www-edd2ab05." + ZONE) + "/vm-1"
    assert plan.puts[own] == encode("A", "10.0.0.5", OWNER, ttl=60, ptr=True)
    assert plan.puts[group] == encode("A", "10.0.0.5", OWNER, ttl=60)
    assert json.loads(plan.puts[ptr_key("10.0.0.5")])["host"] == "web1." + ZONE
    assert json.loads(plan.puts[INDEX + "vm-1"]) == {
        "names": ["web1." + ZONE, "www-edd2ab05." + ZONE]}
    assert json.loads(plan.puts["/skydns/monitor/status/10.0.0.5"])["status"] == "UP"
    assert plan.range_guards == {}  # other VMs' keys at the group name are no concern


def test_a_vm_leaving_its_group_removes_only_its_own_key():
    group = "www-edd2ab05." + ZONE
    mine, theirs = name_to_key(group) + "/vm-1", name_to_key(group) + "/vm-2"
    have = {mine: encode("A", "10.0.0.5", OWNER), theirs: encode("A", "10.0.0.6", OWNER),
            "/skydns/monitor/refs/10.0.0.5": {"keys": [mine]},
            "/skydns/monitor/refs/10.0.0.6": {"keys": [theirs]},
            "/skydns/monitor/status/10.0.0.5": {"status": "UP"},
            INDEX + "vm-1": {"names": [group]}}
    _, plan = plan_for(have, vm_scope("vm-1"), [])
    assert sorted(plan.deletes) == sorted([mine, "/skydns/monitor/refs/10.0.0.5",
                                           "/skydns/monitor/status/10.0.0.5", INDEX + "vm-1"])
    assert theirs not in plan.deletes and not plan.puts


def test_ptr_taken_over_from_an_older_vm_never_from_another_owner():
    old = encode_ptr("old." + ZONE, OWNER)
    want = [Want("web1." + ZONE, "A", "10.0.0.5", ptr=True)]
    _, plan = plan_for({ptr_key("10.0.0.5"): old}, vm_scope("vm-1"), want)
    assert json.loads(plan.puts[ptr_key("10.0.0.5")])["host"] == "web1." + ZONE
    planner, plan = plan_for({ptr_key("10.0.0.5"): encode_ptr("x." + ZONE, "alice")},
                             vm_scope("vm-1"), want)
    assert ptr_key("10.0.0.5") not in plan.puts and planner.skipped == ["PTR 10.0.0.5"]


def test_ptr_of_an_address_another_vm_still_holds_stays_with_it():
    # the same private address in two isolated networks: the first VM keeps the PTR
    other = name_to_key("db1." + ZONE) + "/vm-2"
    have = {ptr_key("10.0.0.5"): encode_ptr("db1." + ZONE, OWNER),
            other: encode("A", "10.0.0.5", OWNER, ptr=True),
            "/skydns/monitor/refs/10.0.0.5": {"keys": [other]}}
    planner, plan = plan_for(have, vm_scope("vm-1"),
                             [Want("web1." + ZONE, "A", "10.0.0.5", ptr=True)])
    assert ptr_key("10.0.0.5") not in plan.puts and planner.skipped == ["PTR 10.0.0.5"]
    assert json.loads(plan.puts["/skydns/monitor/refs/10.0.0.5"])["keys"] == sorted(
        [other, name_to_key("web1." + ZONE) + "/vm-1"])


def test_a_missing_ptr_of_a_kept_record_is_written_again():
    mine = name_to_key("web1." + ZONE) + "/vm-1"
    have = {mine: encode("A", "10.0.0.5", OWNER, ptr=True),
            "/skydns/monitor/refs/10.0.0.5": {"keys": [mine]},
            "/skydns/monitor/status/10.0.0.5": {"status": "UP"},
            INDEX + "vm-1": encode_index(["web1." + ZONE])}
    _, plan = plan_for(have, vm_scope("vm-1"),
                       [Want("web1." + ZONE, "A", "10.0.0.5", ptr=True)])
    assert list(plan.puts) == [ptr_key("10.0.0.5")] and not plan.deletes


def test_the_last_record_of_an_address_gone_asks_holders_not_the_zone():
    mine = name_to_key("web1." + ZONE) + "/vm-1"
    hand = name_to_key("manual." + ZONE) + "/x"  # written with etcdctl, not in refs
    have = {mine: encode("A", "10.0.0.5", OWNER, ptr=True), hand: {"host": "10.0.0.5"},
            "/skydns/monitor/refs/10.0.0.5": {"keys": [mine]},
            "/skydns/monitor/status/10.0.0.5": {"status": "UP"},
            INDEX + "vm-1": encode_index(["web1." + ZONE])}
    items = {k: KV(k, v if isinstance(v, bytes) else json.dumps(v).encode(), 5, 0)
             for k, v in have.items()}
    for holders, status_kept in ((lambda ip: {mine, hand}, True), (lambda ip: {mine}, False)):
        keys, prefixes = set(), set()
        while True:
            planner = SourcePlanner(LAYOUT, Snapshot(9, items, keys, prefixes), OWNER,
                                    holders=holders)
            try:
                plan = planner.converge_scope(vm_scope("vm-1"), [])
                break
            except NeedReads as more:
                keys |= more.keys
                prefixes |= more.prefixes
        assert LAYOUT.zone_prefix not in prefixes  # no read of the whole zone
        assert ("/skydns/monitor/status/10.0.0.5" not in plan.deletes) == status_kept
        assert mine in plan.deletes and hand not in plan.deletes


def test_replaying_the_same_vm_changes_nothing():
    wants = [Want("web1." + ZONE, "A", "10.0.0.5", ttl=60, ptr=True)]
    _, first = plan_for({}, vm_scope("vm-1"), wants)
    _, again = plan_for(first.puts, vm_scope("vm-1"), wants)
    assert again.empty
