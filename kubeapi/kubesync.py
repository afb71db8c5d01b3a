"""The `[Kube2Skydns]` sync: Kubernetes Services and EndpointSlices -> records in etcd.

Two kinds of tasks, joined by a set of dirty services:

* an informer per (resource, namespace) lists, then watches from the list's resourceVersion
  with bookmarks, resuming from the last version seen when a watch ends. A 410 (HTTP status or
  an ERROR event) means the versions in between are gone: it lists again and marks every
  service it knew or now knows dirty, so whatever changed in the gap (a delete included) is
  reconciled against etcd, not against memory. Failures back off with jitter.
* the writer takes dirty services and converges each one's keys to its wanted records
  (sources/reconciler.py, shared with every record source: per-key differences, one
  guarded transaction per service). After every
  service list it also reads which services etcd holds records of, and marks the ones no
  longer listed dirty, so a service deleted while nobody watched loses its records.

Nothing is written before every informer has listed once (a half-known cluster would look
like deleted services). etcd trouble only delays the writer: a service that could not be
written stays dirty and is tried again with backoff; the REST API serves all the while.
"""

from __future__ import annotations

import asyncio
import logging
import time

from skydns.keys import key_to_path, name_to_key
from skydns.store import backoff
from sources.kubernetes import (
    OWNER,
    object_key,
    probe_ports,
    service_domain,
    service_records,
    slice_service,
)
from sources.planner import Scope
from sources.reconciler import Busy, Reconciler

from .etcd import CommitUnknown, EtcdRefused, EtcdStore, EtcdUnavailable
from .kubeclient import ENDPOINTSLICES, SERVICES, Gone, KubeClient, KubeError, Resource
from .plan import Layout

log = logging.getLogger("skydns.kubeapi.kube")

WRITERS = 8  # services converged at once


class SyncStats:
    """Plain counters for the metrics (kubeapi/metrics.py reads them at scrape time)."""

    def __init__(self, known=lambda: (0, 0)) -> None:
        self.known = known  # () -> (services, ready endpoint addresses) known from the API
        self.synced = 0  # services converged (written or found in order)
        self.etcd_ops = 0  # puts and deletes committed
        self.watch_restarts = 0
        self.relists = 0
        self.errors: dict[str, int] = {}
        self.last_sync = 0.0  # unix time the dirty set last became empty
        self.connected = False  # every informer is watching

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


class Informer:
    """List + watch of one resource in one namespace (None: all), into a dict by (ns, name)."""

    def __init__(self, sync: KubeSync, resource: Resource, namespace: str | None):
        self.sync = sync
        self.resource = resource
        self.namespace = namespace
        self.objects: dict[tuple[str, str], dict] = {}
        self.version = ""
        self.listed = asyncio.Event()
        self.watching = False

    @property
    def label(self) -> str:
        return f"{self.resource.name}/{self.namespace or '*'}"

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                if not self.version:
                    await self._list()
                started = time.monotonic()
                events = await self._watch()
                failures = 0 if events or time.monotonic() - started > 1 else failures + 1
                self.sync.stats.watch_restarts += 1
            except Gone:
                log.info("resource version gone, listing again", extra={"kv": {
                    "resource": self.label, "version": self.version}})
                self.version = ""
                failures = 0
                continue
            except KubeError as err:
                failures += 1
                self.sync.stats.error("api")
                if failures == 1 or failures % 10 == 0:
                    log.warning("Kubernetes API request failed", extra={"kv": {
                        "resource": self.label, "failures": failures, "error": str(err)}})
            finally:
                self.watching = False
                self.sync.update_connected()
            if failures:
                await asyncio.sleep(backoff(failures, self.sync.backoff_min,
                                            self.sync.backoff_max))

    async def _list(self) -> None:
        items, version = await self.sync.client.list(self.resource, self.namespace)
        old = self.objects
        self.objects = {}
        for obj in items:
            key = object_key(obj)
            if key is not None:
                self.objects[key] = obj
        self.version = version
        self.sync.stats.relists += 1
        for obj in list(old.values()) + items:
            self.sync.touched(self.resource, obj)
        self.listed.set()
        log.info("listed", extra={"kv": {"resource": self.label, "objects": len(self.objects),
                                         "version": version}})
        self.sync.relisted(self.resource)

    async def _watch(self) -> int:
        count = 0
        self.watching = True
        self.sync.update_connected()
        async for event in self.sync.client.watch(self.resource, self.namespace, self.version,
                                                  self.sync.watch_timeout):
            count += 1
            kind, obj = event.get("type"), event.get("object")
            if not isinstance(obj, dict):
                continue
            if kind == "ERROR":
                if obj.get("code") == 410:
                    raise Gone(410, str(obj.get("message") or "gone"))
                raise KubeError(int(obj.get("code") or 0), str(obj.get("message") or obj))
            version = (obj.get("metadata") or {}).get("resourceVersion")
            if kind == "BOOKMARK":
                if version:
                    self.version = str(version)
                continue
            key = object_key(obj)
            if key is None or kind not in ("ADDED", "MODIFIED", "DELETED"):
                continue
            before = self.objects.get(key)
            if kind == "DELETED":
                self.objects.pop(key, None)
            else:
                self.objects[key] = obj
            if version:
                self.version = str(version)
            if before is not None:
                self.sync.touched(self.resource, before)
            self.sync.touched(self.resource, obj)
        return count


class KubeSync:
    def __init__(self, kube: dict, store: EtcdStore, layout: Layout, client: KubeClient | None
                 = None, backoff_min: float = 0.2):
        self.kube = kube
        self.store = store
        self.layout = layout
        self.reconciler = Reconciler(store, layout, OWNER)
        self.zone = layout.zone
        self.client = client or KubeClient(kube)
        self.ip_source = kube["kube-ip-source"]
        self.watch_timeout = kube["kube-watch-timeout"]
        self.backoff_min = backoff_min
        self.backoff_max = max(backoff_min, kube["kube-backoff-max"])
        namespaces = kube["kube-namespaces"] or [None]
        self.services = [Informer(self, SERVICES, ns) for ns in namespaces]
        self.slices = [Informer(self, ENDPOINTSLICES, ns) for ns in namespaces]
        self.stats = SyncStats(self._count_known)
        self.dirty: set[tuple[str, str]] = set()
        self._wake = asyncio.Event()
        self._scan_needed = False
        self._tasks: list[asyncio.Task] = []
        self._index: dict[tuple[str, str], list[dict]] = {}  # service -> its slices
        self._index_stale = True

    @property
    def holders(self):
        """ip -> record keys holding it (Planner's `holders`), once known: the status feed's
        zone mirror, set by the process; None reads the zone when it is needed."""
        return self.reconciler.holders

    @holders.setter
    def holders(self, value) -> None:
        self.reconciler.holders = value

    # --- informer callbacks ------------------------------------------------------------------

    def touched(self, resource: Resource, obj: dict) -> None:
        key = slice_service(obj) if resource is ENDPOINTSLICES else object_key(obj)
        if key is not None and self._in_scope(key[0]):
            self.dirty.add(key)
            self._wake.set()

    def relisted(self, resource: Resource) -> None:
        if resource is SERVICES:
            self._scan_needed = True
            self._wake.set()

    def update_connected(self) -> None:
        self.stats.connected = all(i.watching for i in self.services + self.slices)

    def _in_scope(self, namespace: str) -> bool:
        wanted = self.kube["kube-namespaces"]
        return not wanted or namespace in wanted

    # --- what a service wants ----------------------------------------------------------------

    def _service(self, key: tuple[str, str]) -> dict | None:
        for informer in self.services:
            obj = informer.objects.get(key)
            if obj is not None:
                return obj
        return None

    def wanted(self, key: tuple[str, str]) -> tuple[list, dict]:
        """The records service `key` wants, and the ports to probe on their addresses."""
        svc = self._service(key)
        if svc is None:
            return [], {}
        slices = self._slices_of_service(key)
        wants = service_records(svc, slices, self.zone, self.ip_source)
        return wants, probe_ports(svc, slices, wants)

    def _slices_of_service(self, key):
        # An index rebuilt lazily: scanning every slice per service would be quadratic.
        if self._index_stale:
            index: dict[tuple[str, str], list[dict]] = {}
            for informer in self.slices:
                for obj in informer.objects.values():
                    owner = slice_service(obj)
                    if owner is not None:
                        index.setdefault(owner, []).append(obj)
            self._index = index
            self._index_stale = False
        return self._index.get(key, [])

    # --- running -----------------------------------------------------------------------------

    async def start(self) -> None:
        for informer in self.services + self.slices:
            self._tasks.append(asyncio.create_task(informer.run(), name=informer.label))
        self._tasks.append(asyncio.create_task(self._writer(), name="kube-writer"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.client.close()

    async def _writer(self) -> None:
        for informer in self.services + self.slices:
            await informer.listed.wait()
        log.info("every resource listed, writing records")
        failures = 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            # Let a burst of events (a relist, a rollout) gather before writing.
            await asyncio.sleep(0.01)
            failed: set = set()
            try:
                if self._scan_needed:
                    self._scan_needed = False
                    await self._scan_orphans()
                batch, self.dirty = self.dirty, set()
                self._index_stale = True
                failed = await self._converge_all(batch)
            except (EtcdUnavailable, EtcdRefused) as err:
                self._scan_needed = True
                self.stats.error("etcd")
                log.warning("etcd unavailable to the Kubernetes sync",
                            extra={"kv": {"error": str(err)}})
            if failed or self._scan_needed:
                self.dirty |= failed
                failures += 1
                self._wake.set()
                await asyncio.sleep(backoff(failures, self.backoff_min, self.backoff_max))
            else:
                failures = 0
                if not self.dirty:
                    self.stats.last_sync = time.time()

    def _count_known(self) -> tuple[int, int]:
        """(services, ready endpoint addresses) known: counted when metrics are scraped."""
        services = sum(len(i.objects) for i in self.services)
        ready = 0
        for informer in self.slices:
            for obj in informer.objects.values():
                for ep in obj.get("endpoints") or []:
                    if isinstance(ep, dict) and (ep.get("conditions") or {}).get("ready") \
                            is not False:
                        ready += len(ep.get("addresses") or [])
        return services, ready

    async def _converge_all(self, batch: set) -> set:
        failed: set = set()
        queue = sorted(batch)
        sem = asyncio.Semaphore(WRITERS)

        async def one(key):
            async with sem:
                try:
                    await self.converge(key)
                except (EtcdUnavailable, EtcdRefused, CommitUnknown, Busy) as err:
                    failed.add(key)
                    self.stats.error("etcd")
                    log.debug("service not written", extra={"kv": {
                        "service": "/".join(key), "error": str(err)}})
                except Exception:  # a bug must cost one service, not the whole sync
                    failed.add(key)
                    self.stats.error("internal")
                    log.exception("service not written", extra={"kv": {
                        "service": "/".join(key)}})

        await asyncio.gather(*(one(key) for key in queue))
        return failed

    async def converge(self, key: tuple[str, str]) -> int:
        """Make etcd hold what service `key` wants; the number of keys written."""
        ns, name = key
        wants, ports = self.wanted(key)
        outcome = await self.reconciler.converge(
            Scope.of_domain(service_domain(ns, name, self.zone)), wants, ports)
        if outcome.skipped:
            self.stats.error("foreign")
            log.warning("names held by another owner left alone", extra={"kv": {
                "service": f"{ns}/{name}", "names": ",".join(outcome.skipped)}})
        if outcome.written:
            log.debug("service written", extra={"kv": {
                "service": f"{ns}/{name}", "keys": outcome.written,
                "transactions": outcome.transactions}})
        self.stats.etcd_ops += outcome.written
        self.stats.synced += 1
        return outcome.written

    async def _scan_orphans(self) -> None:
        """Mark dirty every service etcd holds kubernetes records of that no list has."""
        held = await self.services_in_etcd()
        known = {k for i in self.services for k in i.objects}
        for key in held - known:
            if self._in_scope(key[0]):
                self.dirty.add(key)

    async def services_in_etcd(self) -> set[tuple[str, str]]:
        """(namespace, service) of every service with a kubernetes-owned key, paged reads."""
        prefix = name_to_key("svc." + self.zone) + "/"
        depth = len(key_to_path(prefix.rstrip("/")) or ())
        found: set[tuple[str, str]] = set()
        marker = f'"owner":"{OWNER}"'.encode()
        async for kv in self.reconciler.scan(prefix):
            path = key_to_path(kv.key)
            if path and len(path) > depth + 2 and marker in kv.value:
                found.add((path[depth], path[depth + 1]))
        return found
