"""The scheduler in-process against a real etcd; scanners are heartbeat keys the test writes."""

import json
import logging

import pytest

from scheduler.loop import Scheduler

from etcdtest import wait_for
from healthtest import HEART, LOCK, REPORT, STATUS, InThread, load, reports

IPS = [f"127.3.0.{i}" for i in range(1, 31)]


@pytest.fixture
def config(etcd, tmp_path):
    return load("schedule", etcd.endpoint, "sch-t", tmp_path,
                General={"schedule-interval": 5.0})  # events drive it, not the timer


def add_scanner(etcd, name, ttl=30):
    lease = etcd.grant_lease(ttl)
    etcd.put(HEART + name, {"hostname": name}, lease=lease)
    return lease


def counts(assignment):
    out = {}
    for owner in assignment.values():
        out[owner] = out.get(owner, 0) + 1
    return out


def settled(etcd, ips, scanners):
    now = reports(etcd)
    return set(now) == set(ips) and set(now.values()) <= set(scanners) and now


def test_assigns_moves_and_cleans_up(etcd, config):
    etcd.put_many({STATUS + ip: {"ports": [80]} for ip in IPS})
    leases = {name: add_scanner(etcd, name) for name in ("scan-a", "scan-b", "scan-c")}
    with InThread(lambda: Scheduler(config)) as sched:
        first = wait_for(lambda: settled(etcd, IPS, leases), timeout=10,
                         message="all addresses assigned")
        assert counts(first) == {"scan-a": 10, "scan-b": 10, "scan-c": 10}
        value = json.loads(etcd.get(REPORT + IPS[0]))
        assert set(value) == {"hostname", "updatetime"} and value["updatetime"].endswith("Z")
        # The counters move when the write's commit returns to the scheduler, which may be
        # after etcd already shows the write: wait for them, never read them at once.
        assigner = sched.obj.assigner
        wait_for(lambda: assigner.assigned_ips == 30, timeout=10, message="assigned_ips")
        assert sched.obj.is_leader

        # A scanner's lease ends: only its addresses move, all of them.
        etcd.revoke_lease(leases.pop("scan-b"))
        after = wait_for(lambda: settled(etcd, IPS, leases), timeout=10,
                         message="scan-b's addresses moved")
        moved = {ip for ip in IPS if after[ip] != first[ip]}
        assert moved == {ip for ip in IPS if first[ip] == "scan-b"}
        wait_for(lambda: assigner.moves >= 10, timeout=10, message="moves counted")
        assert assigner.moves == 10

        # A scanner joins: it takes its share and only that.
        leases["scan-d"] = add_scanner(etcd, "scan-d")
        wait_for(lambda: counts(reports(etcd)).get("scan-d") == 10, timeout=10,
                 message="scan-d took its share")
        joined = reports(etcd)
        assert set(joined) == set(IPS)
        assert {ip for ip in IPS if joined[ip] != after[ip]} == \
            {ip for ip in IPS if joined[ip] == "scan-d"}

        # An address no longer monitored loses its assignment.
        etcd.delete(STATUS + IPS[0])
        wait_for(lambda: IPS[0] not in reports(etcd), timeout=10, message="report removed")
        wait_for(lambda: assigner.removals >= 1, timeout=10, message="removal counted")
        assert assigner.removals == 1


def test_bad_and_stale_reports_are_repaired(etcd, config, caplog):
    caplog.set_level(logging.WARNING)
    add_scanner(etcd, "scan-a")
    etcd.put(STATUS + "127.3.1.1", {"status": "UP"})
    etcd.put(STATUS + "127.3.1.2", "garbage status is still monitored")
    etcd.put(STATUS + "no-ip-here", {"status": "UP"})
    etcd.put(REPORT + "127.3.1.1", "{not json")  # monitored: rewritten
    etcd.put(REPORT + "127.3.9.9", {"hostname": "scan-a"})  # not monitored: deleted
    etcd.put(REPORT + "not-an-ip", {"hostname": "scan-a"})  # not ours to judge: left alone
    with InThread(lambda: Scheduler(config)):
        wait_for(lambda: reports(etcd) == {"127.3.1.1": "scan-a", "127.3.1.2": "scan-a",
                                           "not-an-ip": "scan-a"},
                 timeout=10, message="reports repaired")
    fields = [getattr(r, "kv", {}) for r in caplog.records]
    assert {"key": REPORT + "127.3.1.1"} in fields  # the unreadable assignment was named
    assert {"key": STATUS + "no-ip-here"} in fields


def test_an_address_spelled_two_ways_is_one_address(etcd, config):
    add_scanner(etcd, "scan-a")
    etcd.put(STATUS + "2001:DB8::7", {"status": "UP"})
    etcd.put(STATUS + "2001:db8:0:0:0:0:0:8", {"status": "UP"})
    # Written by hand, or by a scheduler that did not canonicalize: replaced by the one key.
    etcd.put(REPORT + "2001:DB8::7", {"hostname": "scan-gone"})
    with InThread(lambda: Scheduler(config)) as sched:
        wait_for(lambda: reports(etcd) == {"2001:db8::7": "scan-a", "2001:db8::8": "scan-a"},
                 timeout=10, message="one canonical report key per address")
        wait_for(lambda: sched.obj.assigner.monitored == {"2001:db8::7", "2001:db8::8"},
                 timeout=10, message="monitored addresses")


def test_no_scanner_keeps_assignments(etcd, config):
    etcd.put(STATUS + "127.3.2.1", {"status": "UP"})
    etcd.put(REPORT + "127.3.2.1", {"hostname": "scan-gone"})
    with InThread(lambda: Scheduler(config)) as sched:
        wait_for(lambda: sched.obj.assigner.passes > 0, timeout=10, message="a pass ran")
        assert reports(etcd) == {"127.3.2.1": "scan-gone"}  # nowhere better to put it
        add_scanner(etcd, "scan-a")
        wait_for(lambda: reports(etcd) == {"127.3.2.1": "scan-a"}, timeout=10)


def test_deposed_leader_campaigns_again(etcd, config):
    add_scanner(etcd, "scan-a")
    etcd.put(STATUS + "127.3.3.1", {"status": "UP"})
    with InThread(lambda: Scheduler(config)) as sched:
        wait_for(lambda: reports(etcd) == {"127.3.3.1": "scan-a"}, timeout=10)
        etcd.delete(LOCK + "sch-t")  # an operator removes the lock by hand
        wait_for(lambda: sched.obj.elector.terms == 2 and sched.obj.is_leader, timeout=10,
                 message="leads again under a new lock key")
        etcd.put(STATUS + "127.3.3.2", {"status": "UP"})
        wait_for(lambda: reports(etcd).get("127.3.3.2") == "scan-a", timeout=10,
                 message="writes work again")
    assert etcd.get_prefix(LOCK) == {}  # resigned on stop
