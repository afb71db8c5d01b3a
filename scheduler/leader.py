"""Leader election among schedulers: the etcd election recipe on lock/<hostname>.

Each candidate puts lock/<hostname> (value: its hostname) on its own lease; the key with the
lowest create revision leads. A standby watches only the key just ahead of its own, so one
leader's death wakes one standby, not all of them. The leader's writes are transactions that
compare its lock key's create revision (`guard`): once the key is gone (lease expired,
revoked, deleted by hand) no write of the old leader can land, whatever it believes.

`leader_of` and `predecessor` are the pure part; `Elector` is the thin etcd layer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

import aetcd
import grpc
from aetcd import rpc

from skydns import txn as etcd
from skydns.lease import KeptLease
from skydns.logsetup import kv
from skydns.store import BACKOFF_MIN, backoff, describe_error, make_client, prefix_range_end

log = logging.getLogger("skydns.scheduler.leader")


def leader_of(candidates: Mapping[str, int]) -> str | None:
    """The key that leads: lowest create revision (key name breaks a tie, which etcd never
    produces, since one revision creates one key of a prefix at most once)."""
    if not candidates:
        return None
    return min(candidates, key=lambda key: (candidates[key], key))


def predecessor(candidates: Mapping[str, int], mine: str) -> str | None:
    """The key just ahead of mine in the queue; None when mine leads (or is not there)."""
    if mine not in candidates:
        return None
    rank = (candidates[mine], mine)
    ahead = [key for key, rev in candidates.items() if (rev, key) < rank]
    return max(ahead, key=lambda key: (candidates[key], key)) if ahead else None


class WatchEnded(Exception):
    """The watch stream stopped before the event came; look again."""


async def wait_deleted(client: aetcd.Client, key: str, after_revision: int,
                       on_created: Callable[[], None] | None = None) -> bool:
    """True once `key` is deleted at a revision after `after_revision`.

    False if that history was compacted: the caller must look again rather than wait for an
    event that may already be gone. Raises WatchEnded when the stream breaks. `on_created` is
    called once etcd has set the watch up.
    """
    await client.connect()
    call = rpc.WatchStub(client.channel).Watch(metadata=client.metadata)
    try:
        await call.write(rpc.WatchRequest(create_request=rpc.WatchCreateRequest(
            key=key.encode(), start_revision=after_revision + 1,
            filters=[rpc.WatchCreateRequest.NOPUT])))
        while True:
            resp = await call.read()
            if resp is grpc.aio.EOF:
                raise WatchEnded(f"watch on {key} closed by the server")
            if resp.compact_revision:
                return False
            if resp.canceled:
                raise WatchEnded(f"watch on {key} canceled: {resp.cancel_reason}")
            if resp.created and on_created is not None:
                on_created()
            if any(ev.type == rpc.Event.DELETE for ev in resp.events):
                return True
    finally:
        call.cancel()


class Elector:
    """One candidate. campaign() returns when it leads; guard() protects the leader's writes.

    Counters: terms (times elected), is_leader. `waiting_for` is the key whose deletion it
    is watching for right now (the one ahead, its own name held by another lease, or its own
    key while leading), set once etcd has the watch; None otherwise.
    """

    def __init__(self, etcd_section: dict, hostname: str, ttl: float):
        self.hostname = hostname
        self.prefix: str = etcd_section["lock-path"]
        self.key = self.prefix + hostname
        self.etcd_section = etcd_section
        # Three keep-alives per TTL: one lost or slow round trip never costs the lease.
        self.lease = KeptLease(etcd_section, ttl=ttl, interval=max(ttl / 3, 0.2),
                               name="leadership", on_lost=self._on_lease_lost)
        self.lease_lost = asyncio.Event()
        self.create_revision = 0
        self.is_leader = False
        self.terms = 0
        self._client: aetcd.Client | None = None
        self._warned_foreign = False
        self.waiting_for: str | None = None

    @property
    def client(self) -> aetcd.Client:
        if self._client is None:
            self._client = make_client(self.etcd_section)
        return self._client

    def guard(self) -> list[rpc.Compare]:
        """The compare every leader write carries: my lock key, still the one I created.
        Take it when campaign() returns; a standby's guard would pass too (its key exists)."""
        return [etcd.created_at(self.key, self.create_revision)]

    def _on_lease_lost(self, lease_id: int) -> None:
        self.lease_lost.set()

    async def close(self, resign: bool = True) -> None:
        """Stop; with resign, revoke the lease so a standby takes over without waiting."""
        self.is_leader = False
        await self.lease.close(revoke=resign)
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def campaign(self) -> None:
        """Wait until this candidate leads. etcd trouble is logged and retried, never raised."""
        failures = 0
        while True:
            if failures:
                await asyncio.sleep(backoff(failures))
            lease_id = await self.lease.wait_granted()
            self.lease_lost.clear()
            try:
                if await self._try_lead(lease_id):
                    self.is_leader = True
                    self.terms += 1
                    return
                failures = 0
            except Exception as exc:
                failures += 1
                known = isinstance(exc, (grpc.aio.AioRpcError, aetcd.ClientError, OSError,
                                         TimeoutError, WatchEnded))
                # An unknown error gets its traceback logged, but the candidate carries on.
                log.warning("election step failed; retrying",
                            extra=kv(key=self.key, attempt=failures, error=describe_error(exc)),
                            exc_info=None if known else exc)

    async def _try_lead(self, lease_id: int) -> bool:
        """One step: True when leading; False after waiting for something that changed it."""
        client = self.client
        result = await etcd.txn(
            client, [etcd.created_at(self.key, 0)],
            [etcd.put_op(self.key, self.hostname.encode(), lease_id)], [etcd.get_op(self.key)])
        if result.succeeded:
            self.create_revision = result.revision
        elif not result.found:
            return False  # deleted between compare and read; try again at once
        elif result.found[0].lease != lease_id:
            # Another lease holds our name: our own previous run that was killed (its lease
            # has not expired yet), or a second scheduler with the same hostname.
            if not self._warned_foreign:
                log.warning("lock key is held by another lease (a previous run not yet "
                            "expired, or a duplicate hostname); waiting for it to go",
                            extra=kv(key=self.key, lease=f"{result.found[0].lease:x}"))
                self._warned_foreign = True
            await self._wait_or_lease_lost(self._watch(client, self.key, result.revision))
            return False
        else:
            self.create_revision = result.found[0].create_revision
        self._warned_foreign = False

        candidates, revision = await self._candidates(client)
        if candidates.get(self.key) != self.create_revision:
            return False  # our key went away meanwhile
        ahead = predecessor(candidates, self.key)
        if ahead is None:
            return True
        log.info("standing by", extra=kv(key=self.key, waiting_for=ahead,
                                         leader=leader_of(candidates)))
        await self._wait_or_lease_lost(self._watch(client, ahead, revision))
        return False

    async def _candidates(self, client: aetcd.Client) -> tuple[dict[str, int], int]:
        await client.connect()
        prefix = self.prefix.encode()
        resp = await client.kvstub.Range(
            rpc.RangeRequest(key=prefix, range_end=prefix_range_end(prefix), keys_only=True),
            timeout=client._timeout, metadata=client.metadata)
        keys = {kv_.key.decode("utf-8", errors="replace"): kv_.create_revision
                for kv_ in resp.kvs}
        return keys, resp.header.revision

    async def _wait_or_lease_lost(self, waiting) -> None:
        await wait_first(waiting, self.lease_lost.wait())

    async def _watch(self, client: aetcd.Client, key: str, after_revision: int) -> bool:
        def created() -> None:
            self.waiting_for = key

        try:
            return await wait_deleted(client, key, after_revision, on_created=created)
        finally:
            self.waiting_for = None

    async def watch_deposed(self) -> str:
        """While leading: return the reason once leadership is certainly or possibly gone."""
        while True:
            try:
                first, deleted = await wait_first(
                    self._watch(self.client, self.key, self.create_revision),
                    self.lease_lost.wait())
                if first == 1:
                    return "lease lost"
                if deleted:
                    return "lock key deleted"
                candidates, _ = await self._candidates(self.client)  # history compacted
                if candidates.get(self.key) != self.create_revision:
                    return "lock key deleted"
            except (grpc.aio.AioRpcError, aetcd.ClientError, OSError, WatchEnded) as exc:
                # Cannot watch; the lease keep-alive (and the write guard) still protect us.
                log.warning("cannot watch own lock key; retrying", extra=kv(
                    key=self.key, error=describe_error(exc)))
                await asyncio.sleep(BACKOFF_MIN * 5)


async def wait_first(*aws) -> tuple[int, object]:
    """Await several awaitables; (index, result) of the first to finish, the rest cancelled.
    Its exception, if it raised, propagates."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        first = next(t for t in tasks if t in done)
        return tasks.index(first), first.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
