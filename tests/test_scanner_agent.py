"""The scanner agent in-process against a real etcd, probing real sockets on 127.0.0.0/8."""

import asyncio
import json
import logging
import socket

import pytest

from scanner.agent import Agent, Target
from scanner.damping import Damper
from skydns.store import load_prefix, make_client

from etcdtest import wait_for
from healthtest import (
    HEART,
    REPORT,
    STATUS,
    InThread,
    Listener,
    closed_port,
    load,
    status_of,
    wait_status,
)

HOST = "scan-t"
INTERVAL = 0.2
RISE, FALL = 2, 3


@pytest.fixture
def config(etcd, tmp_path):
    return load("scanner", etcd.endpoint, HOST, tmp_path,
                Check={"check-interval": INTERVAL, "rise": RISE, "fall": FALL})


def assign(etcd, ip, host=HOST):
    etcd.put(REPORT + ip, {"hostname": host, "updatetime": "2024-01-01T00:00:00Z"})


def value_of(etcd, ip):
    text = etcd.get(STATUS + ip)
    return None if text is None else json.loads(text)


def lease_ttl(etcd, key):
    out = json.loads(etcd.etcdctl("get", "-w", "json", "--", key))
    lease = int(out["kvs"][0]["lease"])
    info = json.loads(etcd.etcdctl("lease", "timetolive", f"{lease:x}", "-w", "json"))
    return info["granted-ttl"]


def test_heartbeat_on_a_lease_revoked_on_stop(etcd, config):
    with InThread(lambda: Agent(config)):
        wait_for(lambda: etcd.get(HEART + HOST), timeout=10, message="heartbeat registered")
        assert json.loads(etcd.get(HEART + HOST))["hostname"] == HOST
        assert lease_ttl(etcd, HEART + HOST) == 2  # agent-downtime
    # Revoked on the way out, not left to expire: the scheduler moves the work at once.
    assert etcd.get(HEART + HOST) is None


def test_probes_exactly_what_is_assigned_and_monitored(etcd, config):
    with Listener("127.0.0.31") as backend:
        port = backend.port
        etcd.put(STATUS + "127.0.0.31", {"ports": [port], "owner": "team-a"})
        etcd.put(STATUS + "127.0.0.32", {"ports": [port]})  # nothing listens there: DOWN
        etcd.put(STATUS + "127.0.0.33", {"ports": [port]})  # assigned to someone else
        for ip in ("127.0.0.31", "127.0.0.32", "127.0.0.34"):  # .34 has no status key
            assign(etcd, ip)
        assign(etcd, "127.0.0.33", "other-scanner")

        with InThread(lambda: Agent(config)) as agent:
            wait_status(etcd, "127.0.0.31", "UP", timeout=10)
            wait_status(etcd, "127.0.0.32", "DOWN", timeout=10)
            assert set(agent.obj.targets) == {"127.0.0.31", "127.0.0.32"}
            assert agent.obj.assigned_ips == 2

            value = value_of(etcd, "127.0.0.31")
            assert value["ports"] == [port] and value["owner"] == "team-a"  # fields kept
            assert value["checker"] == HOST and value["updatetime"].endswith("Z")
            assert value_of(etcd, "127.0.0.33") == {"ports": [port]}  # not ours: untouched
            assert etcd.get(STATUS + "127.0.0.34") is None  # never created

            # Assignment moves away (a watch, not a poll): probing stops.
            assign(etcd, "127.0.0.32", "other-scanner")
            wait_for(lambda: set(agent.obj.targets) == {"127.0.0.31"}, timeout=5,
                     message="stopped probing a reassigned address")
            # Status key deleted: no longer monitored, not re-created.
            etcd.delete(STATUS + "127.0.0.31")
            wait_for(lambda: not agent.obj.targets, timeout=5, message="stopped probing")
            assert etcd.get(STATUS + "127.0.0.31") is None
            counters = agent.obj
            assert counters.prober.checks > 0 and counters.failures > 0
            assert counters.status_writes == 2


def test_tcp_target_goes_down_after_fall_and_up_after_rise(etcd, config):
    backend = Listener("127.0.0.35").start()
    port = backend.port
    etcd.put(STATUS + "127.0.0.35", {"ports": [port]})
    assign(etcd, "127.0.0.35")
    try:
        with InThread(lambda: Agent(config)) as agent:
            wait_status(etcd, "127.0.0.35", "UP", timeout=10)
            # The counter moves when the write's commit returns to the agent, which may be
            # after etcd already shows the write: wait for it, never read it at once.
            writes = wait_for(lambda: agent.obj.status_writes, timeout=10,
                              message="the UP write counted")

            backend.stop()
            took = wait_status(etcd, "127.0.0.35", "DOWN", timeout=FALL * INTERVAL + 3)
            # Never before fall failed checks: fall-1 whole intervals at the very least.
            assert took >= (FALL - 1) * INTERVAL
            print(f"DOWN detected in {took:.2f}s (fall x interval = {FALL * INTERVAL:.1f}s)")

            backend = Listener("127.0.0.35", port).start()
            took = wait_status(etcd, "127.0.0.35", "UP", timeout=RISE * INTERVAL + 3)
            assert took >= (RISE - 1) * INTERVAL
            print(f"UP detected in {took:.2f}s (rise x interval = {RISE * INTERVAL:.1f}s)")
            wait_for(lambda: agent.obj.status_writes >= writes + 2, timeout=10,
                     message="both writes counted")
            assert agent.obj.status_writes == writes + 2  # one write per change, no more
    finally:
        backend.stop()


def test_status_writes_never_overwrite_a_newer_write(etcd, config):
    """The write path alone (no probe loop): compare-and-swap on the mod revision."""
    ip = "127.0.0.36"
    key = STATUS + ip
    config["Check"]["confirm"] = 0  # no watches run here: nobody to confirm with

    async def scenario():
        agent = Agent(config)
        agent._client = make_client(config["Etcd"])
        target = Target(ip, ip, Damper(RISE, FALL, "UP"))
        agent.targets[ip] = target

        async def look():  # what the agent last saw, as its watch would have told it
            kvs, _ = await load_prefix(agent._client, key)
            agent.statuses[ip] = kvs[0]

        try:
            # 1. Someone changes other fields after our look: our verdict is written on top
            #    of theirs, their fields kept.
            await look()
            await asyncio.to_thread(etcd.put, key, {"status": "UP", "ports": [81, 82],
                                                    "note": "newer"})
            target.damper.reset("DOWN")
            await agent._sync_status(target)
            written = json.loads(await asyncio.to_thread(etcd.get, key))
            assert {k: written[k] for k in ("status", "ports", "note", "checker")} == {
                "status": "DOWN", "ports": [81, 82], "note": "newer", "checker": HOST}
            assert (agent.write_conflicts, agent.status_writes) == (1, 1)

            # 2. Someone decides the status after our look (we saw none, want DOWN; they say
            #    UP): theirs stands, and we count from it instead of overwriting it.
            await asyncio.to_thread(etcd.put, key, {"ports": [80]})
            await look()
            await asyncio.to_thread(etcd.put, key, {"status": "UP", "note": "operator"})
            target.damper.reset("DOWN")
            await agent._sync_status(target)
            assert json.loads(await asyncio.to_thread(etcd.get, key)) == {
                "status": "UP", "note": "operator"}
            assert target.damper.status == "UP"
            assert (agent.write_conflicts, agent.status_writes) == (2, 1)

            # 3. The key is deleted after our look: it stays deleted.
            await look()
            await asyncio.to_thread(etcd.delete, key)
            target.damper.reset("DOWN")
            await agent._sync_status(target)
            assert await asyncio.to_thread(etcd.get, key) is None
            assert ip not in agent.statuses
        finally:
            await agent._client.close()

    etcd.put(key, {"status": "UP", "ports": [80]})
    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_bad_input_is_logged_and_skipped(etcd, config, caplog):
    caplog.set_level(logging.WARNING)
    port = closed_port("127.0.0.37")
    etcd.put(STATUS + "127.0.0.37", "this is not json")
    etcd.put(STATUS + "127.0.0.38", {"status": "MAYBE", "ports": ["x", port]})
    etcd.put(STATUS + "not-an-ip", {"status": "UP"})
    etcd.put(REPORT + "127.0.0.39", "{broken")
    etcd.put(REPORT + "nested/127.0.0.1", {"hostname": HOST})
    assign(etcd, "127.0.0.37")
    assign(etcd, "127.0.0.38")
    config["Check"]["scann-ports"] = [port]

    with InThread(lambda: Agent(config)) as agent:
        # Garbage does not stop the work: both are probed (default ports for the garbage
        # value, the valid one of the two listed otherwise) and get a real status.
        wait_status(etcd, "127.0.0.37", "DOWN", timeout=10)
        wait_status(etcd, "127.0.0.38", "DOWN", timeout=10)
        assert value_of(etcd, "127.0.0.38")["ports"] == ["x", port]  # kept as written
        assert set(agent.obj.targets) == {"127.0.0.37", "127.0.0.38"}
    def logged(message):
        return [getattr(r, "kv", {}) for r in caplog.records if r.getMessage() == message]

    assert {"key": STATUS + "127.0.0.37"} in logged("replacing unreadable status value")
    problems: dict[str, str] = {}
    for f in logged("status value has problems"):
        problems[f["key"]] = problems.get(f["key"], "") + f["problems"]
    assert "not valid JSON" in problems[STATUS + "127.0.0.37"]
    assert "ignored ports ['x']" in problems[STATUS + "127.0.0.38"]
    assert "MAYBE" in problems[STATUS + "127.0.0.38"]
    ignored = {f["key"] for f in logged("key does not name an IP address; ignored")}
    assert {STATUS + "not-an-ip", REPORT + "nested/127.0.0.1"} <= ignored
    assert {"key": REPORT + "127.0.0.39"} in logged("unreadable assignment; ignored")
    assert status_of(etcd, "not-an-ip") == "UP"  # untouched


def test_enable_check_false_registers_but_does_not_probe(etcd, tmp_path):
    config = load("scanner", etcd.endpoint, HOST, tmp_path, General={"enable-check": False})
    etcd.put(STATUS + "127.0.0.40", {"ports": [closed_port("127.0.0.40")]})
    assign(etcd, "127.0.0.40")
    with InThread(lambda: Agent(config)) as agent:
        wait_for(lambda: etcd.get(HEART + HOST), timeout=10, message="heartbeat registered")
        # Both watches loaded: it knows the address is assigned and monitored, and still
        # probes nothing.
        wait_for(lambda: agent.obj.report_mirror.ready.is_set()
                 and agent.obj.status_mirror.ready.is_set(), timeout=10,
                 message="both watches loaded")
        assert agent.obj.assigned.keys() == {"127.0.0.40"} and "127.0.0.40" in agent.obj.statuses
        assert not agent.obj.targets and agent.obj.prober.checks == 0


def test_survives_an_etcd_restart(etcd, config):
    backend = Listener("127.0.0.41").start()
    etcd.put(STATUS + "127.0.0.41", {"ports": [backend.port]})
    assign(etcd, "127.0.0.41")
    try:
        with InThread(lambda: Agent(config)) as agent:
            wait_status(etcd, "127.0.0.41", "UP", timeout=10)
            etcd.restart()
            # Heartbeat still there (leases survive a restart; the keep-alive reconnects).
            assert etcd.get(HEART + HOST) is not None
            backend.stop()
            wait_status(etcd, "127.0.0.41", "DOWN", timeout=15)
            wait_for(lambda: agent.obj.lease.refreshes > 0 and etcd.get(HEART + HOST),
                     timeout=10, message="heartbeat kept alive after the restart")
    finally:
        backend.stop()


def test_an_address_spelled_two_ways_is_one_address(etcd, config):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this kernel")
    try:
        backend = Listener("::1").start()
    except OSError as exc:
        pytest.skip(f"cannot listen on ::1: {exc}")
    long_form = "0:0:0:0:0:0:0:1"
    try:
        etcd.put(STATUS + long_form, {"ports": [backend.port]})
        assign(etcd, "::1")
        assign(etcd, "0::1")
        with InThread(lambda: Agent(config)) as agent:
            wait_status(etcd, long_form, "UP", timeout=10)  # the key as it was written
            assert set(agent.obj.targets) == {"::1"}
            assert etcd.get(STATUS + "::1") is None  # no second key made up
            # One spelling of the assignment going away leaves the other in force.
            etcd.delete(REPORT + "0::1")
            wait_for(lambda: agent.obj.assigned == {"::1": {REPORT + "::1"}}, timeout=5,
                     message="the deleted spelling forgotten")
            assert set(agent.obj.targets) == {"::1"}
    finally:
        backend.stop()
