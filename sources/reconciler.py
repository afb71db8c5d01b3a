"""The one reconciler of every record source: make etcd hold what one unit wants.

A unit (a Kubernetes service, a CloudStack VM) is converged by reading a snapshot of the keys
its plan rests on, planning (sources/planner.py, pure) and committing the plan as one guarded
transaction; a refused commit (something changed meanwhile) reads and plans again. Sources
call `converge` with their wanted records and never write etcd themselves, so every source
keeps the same rules: per-key differences, refs and monitor status keys for new addresses,
other owners' keys never touched.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aetcd import rpc

# The API's transactional store and planner are the record model every writer shares; sources
# reach them only through here (the daemons of other sources import this module, not kubeapi).
from kubeapi.etcd import CommitUnknown, EtcdRefused, EtcdStore, EtcdUnavailable
from kubeapi.plan import Layout, NeedReads
from kubeapi.records import ptr_key
from skydns.keys import name_to_key
from skydns.store import KV, prefix_range_end

from .planner import Scope, SourcePlanner
from .want import Want

__all__ = ["Busy", "CommitUnknown", "EtcdRefused", "EtcdStore", "EtcdUnavailable", "Layout",
           "Outcome", "Reconciler", "RETRYABLE"]

MAX_CONFLICTS = 30  # commits of one unit refused in a row before it waits its turn again
SCAN_PAGE = 2000

log = logging.getLogger("skydns.sources")


class Busy(Exception):
    """A unit's keys kept changing under its commits; it is tried again later."""


RETRYABLE = (EtcdUnavailable, EtcdRefused, CommitUnknown, Busy)  # etcd trouble: try later


@dataclass
class Outcome:
    written: int = 0  # puts and deletes committed
    skipped: list[str] = field(default_factory=list)  # names left alone for another owner
    transactions: int = 0


class Reconciler:
    def __init__(self, store: EtcdStore, layout: Layout, owner: str,
                 max_conflicts: int = MAX_CONFLICTS):
        self.store = store
        self.layout = layout
        self.owner = owner
        self.max_conflicts = max_conflicts
        # ip -> record keys holding it (kubeapi.plan.Planner's `holders`, from a zone mirror);
        # None: a plan dropping an address' last tracked record reads the zone to find others.
        self.holders = None
        self.etcd_ops = 0  # puts and deletes committed, all units
        self.reads = 0  # snapshot reads
        self.commits = 0  # transactions tried

    async def converge(self, scope: Scope, wants: list[Want],
                       ports: dict[str, list[int]] | None = None) -> Outcome:
        """Make etcd hold exactly `wants` for the unit `scope` describes. Raises what the
        store raises (EtcdUnavailable, EtcdRefused, CommitUnknown) and Busy."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(1.0, 2 * self.store.timeout)
        # What the planner will ask for about the wanted addresses, read with the first
        # snapshot: one round trip less per unit in the common case.
        lay = self.layout
        keys = {k for w in wants if w.holds_address
                for k in (lay.refs_key(w.value), lay.status_key(w.value), ptr_key(w.value))}
        if scope.index_key:
            keys.add(scope.index_key)
        prefixes = set(scope.prefixes)
        if scope.unit:
            prefixes |= {name_to_key(n) + "/" for n in set(scope.names) | {w.name for w in wants}}
        outcome = Outcome()
        attempts = 0
        unknown = 0  # operations of a commit whose answer was lost
        while True:
            snap = await self.store.snapshot(keys, prefixes, deadline)
            self.reads += 1
            planner = SourcePlanner(lay, snap, self.owner, holders=self.holders)
            try:
                plan = planner.converge_scope(scope, wants, ports)
            except NeedReads as more:
                keys |= more.keys
                prefixes |= more.prefixes
                continue
            outcome.skipped = planner.skipped
            if plan.empty:
                # After a lost answer, nothing left to do means that commit landed.
                self.etcd_ops += unknown
                outcome.written += unknown
                return outcome
            unknown = 0
            try:
                self.commits += 1
                outcome.transactions += 1
                if await self.store.commit(plan, deadline):
                    ops = len(plan.puts) + len(plan.deletes)
                    self.etcd_ops += ops
                    outcome.written += ops
                    if planner.partial:  # a big change goes in several transactions
                        deadline = loop.time() + max(1.0, 2 * self.store.timeout)
                        attempts = 0
                        continue
                    return outcome
            except CommitUnknown:
                # look again: a landed commit shows as nothing left to do
                unknown = len(plan.puts) + len(plan.deletes)
            attempts += 1
            if attempts > self.max_conflicts:
                raise Busy(f"{attempts} commits refused")
            await asyncio.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempts)))

    async def scan(self, prefix: str) -> AsyncIterator[KV]:
        """Every key under `prefix`, read in pages (a whole zone may not fit one reply)."""
        raw = prefix.encode()
        end = prefix_range_end(raw)
        start = raw
        loop = asyncio.get_running_loop()
        while True:
            resp = await self.store._call("Range", rpc.RangeRequest(
                key=start, range_end=end, limit=SCAN_PAGE), loop.time() + 2 * self.store.timeout)
            for kv in resp.kvs:
                yield KV(kv.key.decode("utf-8", errors="replace"), kv.value, kv.mod_revision,
                         kv.lease)
            if not resp.more or not resp.kvs:
                return
            start = resp.kvs[-1].key + b"\0"
