"""CloudStack VMs -> records: what one event or one resync does, with the API and etcd.

`VmSync.upsert(vm_id, vm)` and `VmSync.remove(vm_id)` converge one VM's records through the
shared reconciler (sources/reconciler.py, unit mode: keys derived from the VM's id, its names
kept in `/skydns/monitor/sources/cloudstack/<id>`); `VmSync.resync()` lists every VM and
converges them all, then removes the VMs etcd still holds that CloudStack no longer lists
(a destroy missed while the daemon was down). Errors are the caller's: ApiDown and the etcd
errors mean "retry the same event later", never "skip it".

A resync and events run side by side; a per-VM lock orders them, and a VM that got an event
after the resync's listing began keeps what the event wrote (the listing is older).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from contextlib import asynccontextmanager

from skydns.logsetup import kv
from sources.cloudstack import (
    OWNER,
    in_zone,
    network_domain,
    vm_complete,
    vm_gone,
    vm_records,
    vm_summary,
)
from sources.planner import Scope
from sources.reconciler import RETRYABLE as ETCD_TROUBLE
from sources.reconciler import Layout, Reconciler

from .api import ApiDown, CloudStackClient, Missing

log = logging.getLogger("skydns.cloudstack")

INDEX_PATH = "/skydns/monitor/sources/cloudstack/"
RETRYABLE = (ApiDown, *ETCD_TROUBLE)  # outages: the same work is tried again later
RESYNC_WRITERS = 16


class Directory:
    """Accounts and domains by what VMs name them with; filled on demand, refreshed by the
    resync (a network domain changed in CloudStack reaches the records at the next resync)."""

    def __init__(self, client: CloudStackClient):
        self.client = client
        self.accounts: dict[tuple[str, str], dict] = {}  # (domainid, account name) -> account
        self.domains: dict[str, dict] = {}

    async def refresh(self) -> None:
        accounts = await self.client.list_all("listAccounts", "account", listall=True)
        domains = await self.client.list_all("listDomains", "domain", listall=True)
        self.accounts = {(str(a.get("domainid")), str(a.get("name")).lower()): a
                         for a in accounts}
        self.domains = {str(d.get("id")): d for d in domains}

    async def account(self, name: str, domainid: str) -> dict | None:
        key = (domainid, name.lower())
        if key not in self.accounts:
            try:
                inner = await self.client.call("listAccounts", name=name, domainid=domainid,
                                               listall=True)
            except Missing:
                return None
            found = [a for a in inner.get("account") or []
                     if isinstance(a, dict) and str(a.get("name")).lower() == name.lower()]
            if not found:
                return None
            self.accounts[key] = found[0]
        return self.accounts[key]

    async def domain(self, domainid: str) -> dict | None:
        if domainid not in self.domains:
            try:
                inner = await self.client.call("listDomains", id=domainid, listall=True)
            except Missing:
                return None
            found = [d for d in inner.get("domain") or [] if isinstance(d, dict)]
            if not found:
                return None
            self.domains[domainid] = found[0]
        return self.domains[domainid]


class VmSync:
    def __init__(self, cfg: dict, store, client: CloudStackClient, metrics=None):
        etcd = cfg["Etcd"]
        self.zone = cfg["General"]["domain"]
        self.records = cfg["Records"]
        self.layout = Layout(self.zone, etcd["status-path"], etcd["refs-path"])
        self.client = client
        self.reconciler = Reconciler(store, self.layout, OWNER)
        self.directory = Directory(client)
        self.metrics = metrics
        self._locks: dict[str, list] = {}  # vm id -> [lock, holders and waiters]
        self._seq = itertools.count(1)
        self._resync_start: int | None = None  # while a resync runs
        self._touched: dict[str, int] = {}  # vm id -> seq of its last event, during a resync
        self._warned_zones: set[str] = set()
        self.resyncs = 0

    # --- one VM -------------------------------------------------------------------------------

    @asynccontextmanager
    async def _vm(self, vm_id: str, event: bool):
        """Hold the VM's lock (events and the resync take turns per VM); an event while a
        resync runs marks the VM, so the resync's older listing does not undo it."""
        entry = self._locks.get(vm_id)
        if entry is None:
            entry = self._locks[vm_id] = [asyncio.Lock(), 0]
        entry[1] += 1  # waiters counted: the lock is dropped only when nobody wants it
        try:
            async with entry[0]:
                if event and self._resync_start is not None:
                    self._touched[vm_id] = next(self._seq)
                yield
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self._locks[vm_id]

    async def upsert(self, vm_id: str, vm: dict | None) -> str:
        """Create or refresh a VM's records (an event); the outcome for the metrics."""
        async with self._vm(vm_id, True):
            return await self._upsert(vm_id, vm)

    async def _upsert(self, vm_id: str, vm: dict | None) -> str:
        if not vm_complete(vm):
            try:
                vm = await self.client.virtual_machine(vm_id)
            except Missing:
                vm = None
            if vm is None:
                log.info("VM not found in CloudStack, event skipped",
                         extra=kv(vm=vm_id))
                return "missing"
        if vm_gone(vm):
            return await self._remove(vm_id)
        wants = await self.wants(vm)
        outcome = await self.reconciler.converge(self._scope(vm_id, vm), wants)
        self._report(vm_id, outcome)
        return "written" if outcome.written else "unchanged"

    async def remove(self, vm_id: str) -> str:
        """Remove a VM's records (an event)."""
        async with self._vm(vm_id, True):
            return await self._remove(vm_id)

    async def _remove(self, vm_id: str) -> str:
        outcome = await self.reconciler.converge(self._scope(vm_id, None), [])
        self._report(vm_id, outcome)
        return "removed" if outcome.written else "unchanged"

    def _scope(self, vm_id: str, vm: dict | None) -> Scope:
        return Scope(unit=vm_id, index_key=INDEX_PATH + vm_id,
                     extra=vm_summary(vm) if vm else {})

    def _report(self, vm_id: str, outcome) -> None:
        if outcome.skipped:
            if self.metrics:
                self.metrics.errors.labels("foreign").inc()
            log.warning("names held by another owner left alone",
                        extra=kv(vm=vm_id, names=",".join(outcome.skipped)))
        if outcome.written:
            log.debug("VM written", extra=kv(vm=vm_id, keys=outcome.written))

    async def wants(self, vm: dict) -> list:
        account = await self.directory.account(vm["account"], vm["domainid"])
        domain = await self.directory.domain(vm["domainid"])
        zone = self._served(network_domain(account, domain))
        common = self._served(self.records["common-zone"] or None)
        account_id = (account or {}).get("id")
        return vm_records(vm, zone, account_id if isinstance(account_id, str) else None,
                          common_zone=common or "", ttl=self.records["ttl"],
                          ptr=self.records["ptr"], groups=self.records["groups"])

    def _served(self, zone: str | None) -> str | None:
        """A zone inside the one skydns serves; another is skipped, with one warning each
        (the exporter skips zones PowerDNS lacks)."""
        if zone is None or in_zone(zone, self.zone):
            return zone
        if zone not in self._warned_zones:
            self._warned_zones.add(zone)
            if self.metrics:
                self.metrics.errors.labels("zone").inc()
            log.warning("zone outside the served domain, its records are skipped",
                        extra=kv(zone=zone, domain=self.zone))
        return None

    # --- everything ---------------------------------------------------------------------------

    async def held(self) -> set[str]:
        """Ids of the VMs etcd holds records of (their index keys)."""
        return {kv_.key[len(INDEX_PATH):] async for kv_ in self.reconciler.scan(INDEX_PATH)}

    async def resync(self) -> dict[str, int]:
        """List every VM, converge each, remove the ones CloudStack no longer has."""
        start = self._resync_start = next(self._seq)
        try:
            return await self._resync(start)
        finally:
            self._resync_start = None
            self._touched.clear()

    async def _resync(self, start: int) -> dict[str, int]:
        held = await self.held()  # read before the listing: a VM created later is not "gone"
        await self.directory.refresh()
        vms = await self.client.list_all("listVirtualMachines", "virtualmachine",
                                         listall=True)
        alive = {}
        for vm in vms:
            if vm_complete(vm) and not vm_gone(vm):
                alive[str(vm["id"]).lower()] = vm
        counts = {"listed": len(alive), "written": 0, "removed": 0, "skipped": 0,
                  "failed": 0}
        sem = asyncio.Semaphore(RESYNC_WRITERS)

        async def one(vm_id: str, vm: dict | None) -> None:
            async with sem, self._vm(vm_id, False):
                if self._touched.get(vm_id, 0) > start:
                    counts["skipped"] += 1  # an event is newer than the listing
                    return
                try:
                    if vm is None:
                        if await self._remove(vm_id) == "removed":
                            counts["removed"] += 1
                    elif await self._upsert(vm_id, vm) == "written":
                        counts["written"] += 1
                except RETRYABLE:
                    raise  # an outage: the whole resync is tried again
                except Exception:  # a bug with one VM must not stop the others
                    counts["failed"] += 1
                    if self.metrics:
                        self.metrics.errors.labels("internal").inc()
                    log.exception("resync of one VM failed", extra=kv(vm=vm_id))

        jobs = [one(i, vm) for i, vm in alive.items()]
        jobs += [one(i, None) for i in held - set(alive)]
        results = await asyncio.gather(*jobs, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]
        self.resyncs += 1
        return counts
