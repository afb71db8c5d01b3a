"""The optimistic write loop and the listings: read a snapshot, plan, commit, retry on conflict.

Correctness comes from the plans' etcd compares alone (any number of API processes may write
at once). The per-name lock only spares the common case, many requests for one name arriving
at one process, from conflicting with each other on every attempt.
"""

from __future__ import annotations

import asyncio
import logging
import random
from contextlib import asynccontextmanager

from skydns.flips import read_facts
from skydns.keys import ip_of_key, name_to_key

from .errors import ApiError
from .etcd import CommitUnknown, EtcdStore
from .plan import Caller, Layout, NeedReads, Planner
from .records import decode, decode_checks, entries
from .validate import Change

log = logging.getLogger("skydns.kubeapi")

MAX_READ_ROUNDS = 8  # planners ask for more keys at most a few times; more is a bug


class KeyedLocks:
    """asyncio locks by name, created on first use and dropped when nobody holds or waits."""

    def __init__(self) -> None:
        self._locks: dict[str, list] = {}  # name -> [lock, holders and waiters]

    def __len__(self) -> int:
        return len(self._locks)

    def _unref(self, name: str) -> None:
        entry = self._locks[name]
        entry[1] -= 1
        if entry[1] == 0:
            del self._locks[name]

    @asynccontextmanager
    async def hold(self, names):
        held: list[str] = []
        try:
            for name in sorted(set(names)):  # one global order: no deadlock between requests
                entry = self._locks.setdefault(name, [asyncio.Lock(), 0])
                entry[1] += 1
                try:
                    await entry[0].acquire()
                except BaseException:
                    self._unref(name)
                    raise
                held.append(name)
            yield
        finally:
            for name in reversed(held):
                self._locks[name][0].release()
                self._unref(name)


class RecordService:
    def __init__(self, store: EtcdStore, layout: Layout, deadline: float):
        self.store = store
        self.layout = layout
        self.deadline = deadline
        self.locks = KeyedLocks()
        self.conflicts = 0  # commits refused by a guard, for the logs and tests
        # ip -> record keys holding it, from a mirror of the zone (Planner's `holders`)
        self.holders = None

    async def write(self, op: str, caller: Caller, name: str, change: Change | None) -> int:
        """Run planner method `op` ("create", "update", "delete") until it commits; the HTTP
        status of the outcome. ApiError for refusals, EtcdUnavailable past the deadline."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.deadline
        names = {name}
        if change is not None and change.rtype == "CNAME":
            names.update(change.values)
        try:
            # A little after the etcd calls' own deadline, so that "etcd is down" is reported
            # as such; this one catches time lost waiting for the name's lock.
            async with asyncio.timeout_at(deadline + 0.25):
                async with self.locks.hold(names):
                    return await self._write(op, caller, name, change, deadline)
        except TimeoutError:
            raise ApiError(503, f"too many concurrent changes to {name}; try again") from None

    async def _write(self, op, caller, name, change, deadline) -> int:
        keys: set[str] = set()
        prefixes = {name_to_key(name) + "/"}
        ambiguous = False
        rounds = attempts = 0
        while True:
            snap = await self.store.snapshot(keys, prefixes, deadline)
            planner = Planner(self.layout, caller, snap, self.holders)
            try:
                plan = getattr(planner, op)(name, change)
            except NeedReads as more:
                rounds += 1
                if rounds > MAX_READ_ROUNDS:
                    raise RuntimeError(f"planner {op} keeps asking for reads: {more}") from None
                keys |= more.keys
                prefixes |= more.prefixes
                continue
            except ApiError as err:
                # The earlier commit did land after all: what now looks missing (404) or
                # already there (409) is this request's own doing.
                if ambiguous and err.status in (404, 409):
                    return 200
                raise
            if plan.empty:
                return plan.status
            try:
                if await self.store.commit(plan, deadline):
                    return plan.status
            except CommitUnknown as exc:
                log.warning("commit outcome unknown, checking etcd again",
                            extra={"kv": {"name": name, "error": str(exc)}})
                ambiguous = True
                continue
            self.conflicts += 1
            attempts += 1
            # Someone else changed what this plan rests on: plan again from a fresh snapshot,
            # after a short random pause so that colliding requests spread out.
            await asyncio.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempts)))

    async def listing(self, rtype: str | None = None, name: str | None = None) -> list[dict]:
        loop = asyncio.get_running_loop()
        lay = self.layout
        snap = await self.store.snapshot((), {lay.zone_prefix, lay.status_path},
                                         loop.time() + self.deadline)
        records = []
        for kv in snap.under(lay.zone_prefix):
            rec = decode(kv.key, kv.value, kv.mod_revision)
            if rec is not None:
                records.append(rec)
        statuses, checks, maintenance = {}, {}, {}
        for kv in snap.under(lay.status_path):
            # Canonical, as the records' addresses are: a hand-written `2001:DB8::1` counts.
            ip = ip_of_key(kv.key, lay.status_path)
            if ip is None:
                continue
            facts = read_facts(kv.value)
            if facts.status is not None:
                statuses[ip] = facts.status
            found = decode_checks(kv.value)
            if found:
                checks[ip] = found
            if facts.maintenance is not None:
                maintenance[ip] = facts.maintenance
        return entries(records, statuses, rtype, name, checks, maintenance)
