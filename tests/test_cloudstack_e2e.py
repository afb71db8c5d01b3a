"""skydns-cloudstack end to end: a real Kafka-protocol broker (Tansu, tests/kafkatest.py), the
fake CloudStack API (tests/fakecloudstack.py, proven against the `cs` client), a real etcd,
and the daemon (cloudstack.daemon.CloudStackDaemon) in this process; one case through a real
skydns. Events are produced in the shapes CloudStack publishes."""

import asyncio
import json
import uuid
from contextlib import asynccontextmanager

import pytest
from aiokafka import TopicPartition

from cloudstack.api import CloudStackClient
from cloudstack.daemon import CloudStackDaemon
from cloudstack.sync import INDEX_PATH, VmSync
from kubeapi.records import decode
from skydns.config import load_config
from skydns.keys import key_to_path, path_to_name
from sources.reconciler import EtcdStore

from apitest import REFS, STATUS
from dnstest import Skydns
from etcdtest import async_wait_for, run_async, wait_for
from fakecloudstack import FakeCloudStackThread, action_event, job_event, make_vm, nic
from kafkatest import create_topic, produce

KEY, SECRET = "key-1", "secret-1"
ZONE = "cloud.test."
TIMEOUT = 20  # seconds an event may take to show (the promise is 5; the machine is shared)


@pytest.fixture
def broker(kafka_broker):
    return kafka_broker


@pytest.fixture
def cloud():
    cs = FakeCloudStackThread({KEY: SECRET})
    cs.start()
    yield cs
    cs.close()


@pytest.fixture
def topic(broker):
    name = "cs-" + uuid.uuid4().hex[:8]
    run_async(create_topic(broker.bootstrap, name, 2))
    return name


def account(cloud, name="alice", networkdomain=f"alice.{ZONE}", domain_zone=f"dev.{ZONE}"):
    dom = cloud.cs.add_domain("dev-" + name, networkdomain=domain_zone)
    return cloud.cs.add_account(name, dom, networkdomain=networkdomain)


def config(etcd, broker, cloud, topic, **sections) -> dict:
    cfg = load_config(None, "cloudstack", environ={})
    cfg["General"]["domain"] = ZONE
    cfg["CloudStack"].update({"endpoint": cloud.url, "api-key": KEY, "secret-key": SECRET,
                              "timeout": 2.0, "resync-interval": 0.0, "backoff-max": 0.5})
    cfg["Kafka"].update({"bootstrap": [broker.bootstrap], "topic": topic,
                         "group": "g-" + topic, "session-timeout": 1.0,
                         "heartbeat-interval": 0.2})
    cfg["Etcd"].update(etcd.etcd_section(**{"etcd-timeout": 1.0}))
    for section, values in sections.items():
        cfg[section].update(values)
    return cfg


@asynccontextmanager
async def running(cfg, cloud=None, vms=()):
    """The daemon, running, its first resync done; then `vms` appear in CloudStack (so it
    is events, not that resync, that bring their records)."""
    daemon = CloudStackDaemon(cfg, backoff_min=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(stop))
    try:
        await async_wait_for(lambda: daemon.resynced.is_set() or task.done(), TIMEOUT)
        if task.done():
            task.result()
        for vm in vms:
            cloud.cs.add_vm(vm)
        yield daemon
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


def records(etcd) -> dict[str, list]:
    """name -> sorted [(type, value, ttl)] of the cloudstack-owned records (PTRs too)."""
    out: dict[str, list] = {}
    for key, value in etcd.get_prefix("/skydns/").items():
        if key.startswith("/skydns/monitor/"):
            continue
        rec = decode(key, value.encode(), 0)
        if rec is None or rec.owner != "cloudstack":
            continue
        if json.loads(value).get("type") == "PTR":  # a PTR's key is its whole name
            out.setdefault(path_to_name(key_to_path(key)), []).append(("PTR", rec.value))
        else:
            out.setdefault(rec.name, []).append((rec.rtype, rec.value))
    return {name: sorted(values) for name, values in out.items()}


def publish(broker, topic, *messages, partition=0):
    run_async(produce(broker.bootstrap, topic, messages, partition=partition))


async def apublish(broker, topic, *messages, partition=0):
    await produce(broker.bootstrap, topic, messages, partition=partition)


async def until_records(etcd, predicate, timeout=TIMEOUT) -> dict:
    """The records once predicate(records) holds."""
    def check():
        got = records(etcd)
        return (got,) if predicate(got) else None

    return (await async_wait_for(check, timeout, interval=0.05, message="records"))[0]


def test_create_start_again_destroy(etcd, broker, cloud, topic):
    acc = account(cloud)
    vm = make_vm("web1", acc, "10.20.0.5", ip6="fd00:20::5")
    name = "web1.alice." + ZONE

    async def main():
        async with running(config(etcd, broker, cloud, topic), cloud, [vm]) as daemon:
            await apublish(broker, topic, job_event("VM.CREATE", vm))
            got = await until_records(etcd, lambda r: name in r)
            assert got[name] == [("A", "10.20.0.5"), ("AAAA", "fd00:20::5")]
            # PTR = the A name, for both addresses
            assert got["5.0.20.10.in-addr.arpa."] == [("PTR", name)]
            assert [v for n, v in got.items() if n.endswith("ip6.arpa.")] == [[("PTR", name)]]
            assert json.loads(etcd.get(STATUS + "10.20.0.5"))["status"] == "UP"
            assert json.loads(etcd.get(INDEX_PATH + vm["id"]))["names"] == [name]
            await async_wait_for(lambda: len(daemon.holders("10.20.0.5") or ()) == 1, TIMEOUT)
            keys = set(etcd.get_prefix("/skydns/"))
            # VM.START again, in the newer object form: no duplicate, nothing rewritten
            await apublish(broker, topic, job_event("VM.START", vm, result_form="object"))
            await async_wait_for(lambda: daemon.consumer.handled == 2, TIMEOUT)
            assert set(etcd.get_prefix("/skydns/")) == keys and records(etcd) == got
            cloud.cs.vms[vm["id"]]["state"] = "Destroyed"
            await apublish(broker, topic, job_event("VM.DESTROY", cloud.cs.vms[vm["id"]]))
            await until_records(etcd, lambda r: r == {})
            assert etcd.get_prefix(STATUS) == {} and etcd.get_prefix(REFS) == {}
            assert etcd.get_prefix(INDEX_PATH) == {}
            events = daemon.metrics.events
            assert events.labels("VM.CREATE", "written")._value.get() == 1
            assert events.labels("VM.START", "unchanged")._value.get() == 1
            assert events.labels("VM.DESTROY", "removed")._value.get() == 1

    run_async(main(), timeout=90)


def test_failed_destroy_keeps_the_records(etcd, broker, cloud, topic):
    acc = account(cloud)
    vm = make_vm("db1", acc, "10.20.1.5")

    async def main():
        async with running(config(etcd, broker, cloud, topic), cloud, [vm]) as daemon:
            await apublish(broker, topic, job_event("VM.CREATE", vm))
            await until_records(etcd, lambda r: "db1.alice." + ZONE in r)
            await apublish(broker, topic, job_event("VM.DESTROY", vm, status="FAILED"),
                           action_event("VM.DESTROY", vm["id"],
                                        description="Error while destroying VM: disk busy"))
            await async_wait_for(lambda: daemon.consumer.handled == 3, TIMEOUT)
            assert "db1.alice." + ZONE in records(etcd)
            assert daemon.metrics.events.labels("VM.DESTROY", "ignored")._value.get() == 2
            # the action event of a destroy that worked (id in entityuuid) removes them
            await apublish(broker, topic, action_event("VM.DESTROY", vm["id"]))
            await until_records(etcd, lambda r: r == {})

    run_async(main(), timeout=90)


def test_group_of_three_then_one_removed(etcd, broker, cloud, topic):
    acc = account(cloud, networkdomain="")  # the domain's network domain applies
    vms = [make_vm(f"w{i}", acc, f"10.20.2.{i}", group="Web Tier")
           for i in (1, 2, 3)]
    group = f"webtier-{acc['id'][:8]}.dev.{ZONE}"

    async def main():
        async with running(config(etcd, broker, cloud, topic), cloud, vms):
            await apublish(broker, topic, *[job_event("VM.CREATE", vm) for vm in vms])
            await until_records(etcd, lambda r: len(r.get(group, [])) == 3)
            assert f"w1.dev.{ZONE}" in records(etcd)  # account without one: domain's zone
            await apublish(broker, topic, job_event("VM.EXPUNGE", vms[1], with_result=False))
            got = await until_records(etcd, lambda r: len(r.get(group, [])) == 2)
            assert got[group] == [("A", "10.20.2.1"), ("A", "10.20.2.3")]
            assert f"w2.dev.{ZONE}" not in got and f"w1.dev.{ZONE}" in got

    run_async(main(), timeout=90)


def test_account_domain_and_common_zone_two_nics(etcd, broker, cloud, topic):
    acc = account(cloud)  # the account's network domain wins over its domain's
    vm = make_vm("app", acc, nics=[nic("192.0.2.7", default=False), nic("10.20.3.7")],
                 group="app")
    common = "all." + ZONE
    cfg = config(etcd, broker, cloud, topic, Records={"common-zone": common, "ttl": 45})

    async def main():
        async with running(cfg, cloud, [vm]):
            await apublish(broker, topic, job_event("VM.CREATE", vm, result_form="object"))
            got = await until_records(etcd, lambda r: "app." + common in r)
            group = f"app-{acc['id'][:8]}"
            assert got["app.alice." + ZONE] == [("A", "10.20.3.7")]  # the default NIC
            assert got["app." + common] == [("A", "10.20.3.7")]
            assert got[f"{group}.alice.{ZONE}"] == got[f"{group}.{common}"] == \
                [("A", "10.20.3.7")]
            assert got["7.3.20.10.in-addr.arpa."] == [("PTR", "app.alice." + ZONE)]
            assert not any("192.0.2.7" in str(v) for v in got.values())
            assert not any(n.startswith("app.dev.") for n in got)
            key = [k for k in etcd.get_prefix("/skydns/test/cloud/all/app/")][0]
            assert json.loads(etcd.get(key))["ttl"] == 45

    run_async(main(), timeout=90)


def test_api_down_then_up_the_event_is_not_lost(etcd, broker, cloud, topic):
    acc = account(cloud)
    vm = make_vm("late", acc, "10.20.4.1")

    async def main():
        async with running(config(etcd, broker, cloud, topic), cloud, [vm]) as daemon:
            cloud.cs.down = True
            # no jobResult: the VM must be looked up, and the API answers 503
            await apublish(broker, topic, job_event("VM.CREATE", vm, with_result=False))
            errors = daemon.metrics.errors.labels("api")
            await async_wait_for(lambda: errors._value.get() >= 3, TIMEOUT)
            assert records(etcd) == {} and daemon.consumer.handled == 0
            tp = TopicPartition(topic, 0)
            assert await daemon.consumer.consumer.committed(tp) in (None, 0)
            cloud.cs.down = False
            await until_records(etcd, lambda r: "late.alice." + ZONE in r)
            await async_wait_for(lambda: daemon.consumer.handled == 1, TIMEOUT)
            assert await daemon.consumer.consumer.committed(tp) == 1

    run_async(main(), timeout=90)


def test_an_event_failing_with_a_bug_is_given_up_and_left_to_the_resync(etcd, broker, cloud,
                                                                         topic):
    acc = account(cloud)
    bad, good = make_vm("bad", acc, "10.20.10.1"), make_vm("good", acc, "10.20.10.2")

    async def main():
        async with running(config(etcd, broker, cloud, topic), cloud, [bad, good]) as daemon:
            wants = daemon.sync.wants

            async def buggy(vm):  # a bug triggered by one VM's data, nothing else
                if vm["name"] == "bad":
                    raise KeyError("nic")
                return await wants(vm)

            daemon.sync.wants = buggy
            await apublish(broker, topic, job_event("VM.CREATE", bad),
                           job_event("VM.CREATE", good))
            await until_records(etcd, lambda r: "good.alice." + ZONE in r)
            await async_wait_for(lambda: daemon.consumer.handled == 2, TIMEOUT)
            assert "bad.alice." + ZONE not in records(etcd)
            assert daemon.metrics.events.labels("VM.CREATE", "failed")._value.get() == 1
            assert daemon.metrics.errors.labels("internal")._value.get() == 5
            # the resync tries it again; a VM that still fails does not stop the others
            counts = await daemon.sync.resync()
            assert counts["failed"] == 1 and counts["listed"] == 2
            daemon.sync.wants = wants
            assert (await daemon.sync.resync())["written"] == 1
            assert "bad.alice." + ZONE in records(etcd)

    run_async(main(), timeout=90)


def test_a_vm_cloudstack_does_not_know_is_skipped_not_retried(etcd, broker, cloud, topic):
    acc = account(cloud)
    ghost = make_vm("ghost", acc, "10.20.11.1")  # never in CloudStack: the lookup gets 431
    real = make_vm("real", acc, "10.20.11.2")

    async def main():
        async with running(config(etcd, broker, cloud, topic), cloud, [real]) as daemon:
            await apublish(broker, topic, job_event("VM.START", ghost, with_result=False),
                           job_event("VM.CREATE", real))
            await until_records(etcd, lambda r: "real.alice." + ZONE in r)
            await async_wait_for(lambda: daemon.consumer.handled == 2, TIMEOUT)
            assert daemon.metrics.events.labels("VM.START", "missing")._value.get() == 1
            assert daemon.metrics.errors.labels("api")._value.get() == 0
            assert "ghost.alice." + ZONE not in records(etcd)

    run_async(main(), timeout=90)


def test_etcd_down_then_up_the_event_is_not_lost(etcd, broker, cloud, topic):
    acc = account(cloud)
    vm = make_vm("patient", acc, "10.20.9.1")

    async def main():
        async with running(config(etcd, broker, cloud, topic), cloud, [vm]) as daemon:
            etcd.pause()
            try:
                await apublish(broker, topic, job_event("VM.CREATE", vm))
                errors = daemon.metrics.errors.labels("etcd")
                await async_wait_for(lambda: errors._value.get() >= 2, TIMEOUT)
                assert daemon.consumer.handled == 0  # not committed past
            finally:
                etcd.resume()
            await until_records(etcd, lambda r: "patient.alice." + ZONE in r)
            await async_wait_for(lambda: daemon.consumer.handled == 1, TIMEOUT)
            assert daemon.metrics.retries._value.get() >= 2

    run_async(main(), timeout=90)


def test_missed_destroy_is_caught_by_resync_and_restart_resumes(etcd, broker, cloud, topic):
    acc = account(cloud)
    keep = make_vm("keep", acc, "10.20.5.1")
    gone = make_vm("gone", acc, "10.20.5.2")
    later = make_vm("later", acc, "10.20.5.3")
    cfg = config(etcd, broker, cloud, topic)

    async def main():
        async with running(cfg, cloud, [keep, gone]):
            await apublish(broker, topic, job_event("VM.CREATE", keep),
                           job_event("VM.CREATE", gone))
            await until_records(etcd, lambda r: "gone.alice." + ZONE in r
                                and "keep.alice." + ZONE in r)
        # While the daemon is down: "gone" is expunged (its event lost), "later" is created.
        del cloud.cs.vms[gone["id"]]
        await apublish(broker, topic, job_event("VM.CREATE", later))
        async with running(cfg, cloud, [later]) as daemon:  # the resync at start has run
            got = records(etcd)
            assert "gone.alice." + ZONE not in got and "keep.alice." + ZONE in got
            # and the event published while it was down comes from the committed offset
            await until_records(etcd, lambda r: "later.alice." + ZONE in r)
            assert daemon.metrics.resyncs._value.get() == 1

    run_async(main(), timeout=120)


def test_periodic_resync_removes_what_cloudstack_no_longer_lists(etcd, broker, cloud, topic):
    acc = account(cloud)
    vm = cloud.cs.add_vm(make_vm("short", acc, "10.20.6.1"))
    cfg = config(etcd, broker, cloud, topic, CloudStack={"resync-interval": 0.3})

    async def main():
        async with running(cfg) as daemon:
            await until_records(etcd, lambda r: "short.alice." + ZONE in r)  # from a resync
            cloud.cs.vms[vm["id"]]["state"] = "Expunging"  # still listed to admins
            await until_records(etcd, lambda r: r == {})
            assert daemon.metrics.resyncs._value.get() >= 2

    run_async(main(), timeout=90)


def test_two_partitions_and_a_message_that_is_not_json(etcd, broker, cloud, topic):
    acc = account(cloud)
    a = make_vm("pa", acc, "10.20.7.1")
    b = make_vm("pb", acc, "10.20.7.2")

    async def main():
        async with running(config(etcd, broker, cloud, topic), cloud, [a, b]) as daemon:
            await apublish(broker, topic, b"{not json", job_event("VM.CREATE", a), partition=0)
            await apublish(broker, topic, job_event("VM.CREATE", b), partition=1)
            await until_records(etcd, lambda r: "pa.alice." + ZONE in r
                                and "pb.alice." + ZONE in r)
            consumer = daemon.consumer.consumer
            await async_wait_for(lambda: daemon.consumer.handled == 3, TIMEOUT)
            assert await consumer.committed(TopicPartition(topic, 0)) == 2
            assert await consumer.committed(TopicPartition(topic, 1)) == 1
            assert daemon.metrics.events.labels("invalid", "ignored")._value.get() == 1

    run_async(main(), timeout=90)


def test_a_down_address_leaves_the_answers(etcd, broker, cloud, topic):
    zone = "example.test."  # the zone tests/dnstest.py's skydns serves
    acc = account(cloud, networkdomain="alice." + zone)
    vms = [make_vm(f"h{i}", acc, f"127.0.30.{i}", group="pool")
           for i in (1, 2)]
    group = f"pool-{acc['id'][:8]}.alice.{zone}"
    server = Skydns(etcd.endpoint).start()
    try:
        async def main():
            cfg = config(etcd, broker, cloud, topic, General={"domain": zone})
            async with running(cfg, cloud, vms):
                await apublish(broker, topic, *[job_event("VM.CREATE", vm) for vm in vms])
                await until_records(etcd, lambda r: len(r.get(group, [])) == 2)

        run_async(main(), timeout=90)
        wait_for(lambda: server.addresses(group) == ["127.0.30.1", "127.0.30.2"], TIMEOUT)
        etcd.put(STATUS + "127.0.30.2", {"status": "DOWN", "ports": []})
        wait_for(lambda: server.addresses(group) == ["127.0.30.1"], TIMEOUT)
        assert server.addresses("h2.alice." + zone) == ["127.0.30.2"]  # all DOWN: fail open
    finally:
        server.stop()


def test_an_event_during_a_resync_is_not_undone_by_its_older_listing(etcd, cloud):
    acc = account(cloud)
    vm = cloud.cs.add_vm(make_vm("racy", acc, "10.20.8.1"))
    cfg = load_config(None, "cloudstack", environ={})
    cfg["General"]["domain"] = ZONE
    cfg["CloudStack"].update({"endpoint": cloud.url, "api-key": KEY, "secret-key": SECRET})
    cfg["Etcd"].update(etcd.etcd_section(**{"etcd-timeout": 1.0}))

    async def main():
        store = EtcdStore(cfg["Etcd"])
        client = CloudStackClient(cfg["CloudStack"])
        sync = VmSync(cfg, store, client)
        try:
            assert await sync.upsert(vm["id"], None) == "written"
            cloud.cs.delay = 0.5
            resync = asyncio.create_task(sync.resync())  # its listing still has the VM
            await async_wait_for(lambda: any(r.get("command") == "listVirtualMachines"
                                             and "page" in r for r in cloud.cs.requests))
            del cloud.cs.vms[vm["id"]]
            assert await sync.remove(vm["id"]) == "removed"  # the destroy event
            counts = await resync
            assert counts["skipped"] == 1 and records(etcd) == {}
        finally:
            await client.close()
            await store.close()

    run_async(main())
