"""Leader election: the pure queue rules, then candidates against a real etcd."""

import asyncio
import time

import pytest

from scheduler.leader import Elector, leader_of, predecessor
from skydns import txn as etcd_txn
from skydns.store import make_client

from etcdtest import async_wait_for
from healthtest import LOCK, load

TTL = 2.0


@pytest.mark.parametrize(
    ("candidates", "leader"),
    [
        ({}, None),
        ({"/l/a": 7}, "/l/a"),
        ({"/l/b": 5, "/l/a": 7, "/l/c": 9}, "/l/b"),
        ({"/l/z": 3, "/l/a": 30}, "/l/z"),  # the oldest key, not the smallest name
    ],
)
def test_leader_of(candidates, leader):
    assert leader_of(candidates) == leader


@pytest.mark.parametrize(
    ("mine", "ahead"),
    [("/l/b", None), ("/l/a", "/l/b"), ("/l/c", "/l/a"), ("/l/missing", None)],
)
def test_predecessor_is_the_key_just_ahead(mine, ahead):
    assert predecessor({"/l/b": 5, "/l/a": 7, "/l/c": 9}, mine) == ahead


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def started(elector: Elector) -> Elector:
    elector.lease.start()
    return elector


async def try_write(section, guard) -> bool:
    client = make_client(section)
    try:
        result = await etcd_txn.txn(client, guard,
                                    [etcd_txn.put_op("/skydns/monitor/report/x", b"{}")])
        return result.succeeded
    finally:
        await client.close()


async def holds_key(section, elector: Elector) -> bool:
    candidates, _ = await elector._candidates(elector.client)
    return elector.key in candidates


@pytest.fixture
def section(etcd, tmp_path):
    return load("schedule", etcd.endpoint, "unused", tmp_path)["Etcd"]


def test_resign_hands_over_at_once_and_deposed_writes_fail(etcd, section):

    async def main():
        a = await started(Elector(section, "sch-a", TTL))
        await a.campaign()
        assert a.is_leader and a.terms == 1
        b = await started(Elector(section, "sch-b", TTL))
        standby = asyncio.create_task(b.campaign())
        # Watching a's key for its deletion: b has decided it does not lead.
        await async_wait_for(lambda: b.waiting_for == a.key, timeout=5, message="b stands by")
        assert not standby.done() and not b.is_leader
        assert await try_write(section, a.guard())

        old_guard = a.guard()
        start = time.monotonic()
        await a.close(resign=True)
        await asyncio.wait_for(standby, 5)
        took = time.monotonic() - start
        assert b.is_leader and took < TTL  # the watch woke it, no TTL wait
        assert not await try_write(section, old_guard)  # the old leader can never write
        assert await try_write(section, b.guard())
        await b.close()

    run(main())
    assert etcd.get_prefix(LOCK) == {}  # both resigned


def test_killed_leader_is_replaced_after_its_lease_expires(etcd, section):

    async def main():
        a = await started(Elector(section, "sch-a", TTL))
        await a.campaign()
        b = await started(Elector(section, "sch-b", TTL))
        standby = asyncio.create_task(b.campaign())
        await async_wait_for(lambda: holds_key(section, b), timeout=5, message="b queued")
        # A crash: the keep-alive stops, nothing is revoked.
        await a.lease.close(revoke=False)
        start = time.monotonic()
        await asyncio.wait_for(standby, TTL + 5)
        took = time.monotonic() - start
        print(f"leadership handed over {took:.2f}s after the leader died (TTL {TTL:g}s)")
        assert took >= 0.5  # it did wait for the lease, the key was not deleted by anyone
        assert not await try_write(section, a.guard())
        await b.close()
        await a.close(resign=False)

    run(main())


def test_same_hostname_waits_instead_of_stealing(etcd, section):

    async def main():
        first = await started(Elector(section, "sch-same", TTL))
        await first.campaign()
        second = await started(Elector(section, "sch-same", TTL))
        waiting = asyncio.create_task(second.campaign())
        # Watching its own name, held by first's lease: it waits instead of taking it over.
        await async_wait_for(lambda: second.waiting_for == second.key, timeout=5,
                             message="second waits for the name")
        assert not waiting.done() and not second.is_leader and first.is_leader
        assert await try_write(section, first.guard())
        await first.close(resign=True)
        await asyncio.wait_for(waiting, 5)
        assert second.is_leader
        await second.close()

    run(main())


def test_leader_notices_its_key_deleted(etcd, section):

    async def main():
        a = await started(Elector(section, "sch-a", TTL))
        await a.campaign()
        watch = asyncio.create_task(a.watch_deposed())
        # The watch is set up and has not fired: holding the key is not mistaken for losing it.
        await async_wait_for(lambda: a.waiting_for == a.key, timeout=5, message="watch set up")
        assert not watch.done()
        await asyncio.to_thread(etcd.delete, a.key)
        assert await asyncio.wait_for(watch, 5) == "lock key deleted"
        assert not await try_write(section, a.guard())
        # Campaigning again puts the key back with a new create revision, on the same lease.
        old = a.create_revision
        await a.campaign()
        assert a.create_revision > old and a.terms == 2
        await a.close()

    run(main())
