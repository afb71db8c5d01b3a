"""The janitor: mirrors records and statuses from etcd, works out the names each change
reaches (skydns.affected, the answer rules read backwards) and hands them to every recursor's
queue (janitor.purge).
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp

from skydns import notify, store
from skydns.affected import REVERSE_ZONES, Dependents, Reached, reached, reached_by_record
from skydns.health import HealthView, parse_status
from skydns.keys import PREFIX, ip_of_key, key_to_path, not_record_prefixes, path_to_name
from skydns.logsetup import kv
from skydns.records import Record, RecordError, parse_record

from .metrics import JanitorMetrics
from .purge import REPEAT, Recursor

log = logging.getLogger("skydns.janitor")

RECORDS_PREFIX = PREFIX + "/"


class Janitor:
    def __init__(self, cfg: dict):
        self.cfg = cfg
        settings, etcd = cfg["Janitor"], cfg["Etcd"]
        self.domain = settings["domain"]
        self.zones = [self.domain, *(path_to_name(z) for z in REVERSE_ZONES)]
        self.etcd = etcd
        self.status_path = etcd["status-path"]
        self.not_records = not_record_prefixes(etcd)
        self.status_in_records = self.status_path.startswith(RECORDS_PREFIX)
        self.deps = Dependents()
        self.health = HealthView()
        self.metrics = JanitorMetrics()
        self.recursors: dict[str, Recursor] = {}
        self._tasks: dict[str, asyncio.Task] = {}
        self._session: aiohttp.ClientSession | None = None
        self._loaded: set[str] = set()  # mirrors whose first load is in
        self.mirrors: list[store.Mirror] = []
        self.ready = asyncio.Event()
        self._set_recursors(settings)

    # -- recursors ---------------------------------------------------------------------------

    def _set_recursors(self, settings: dict) -> None:
        urls = settings["recursors"]
        for url in list(self.recursors):
            if url not in urls:
                del self.recursors[url]
                task = self._tasks.pop(url, None)
                if task is not None:
                    task.cancel()
                self.metrics.forget(url)
                log.info("recursor removed", extra=kv(recursor=url))
        for url in urls:
            if url in self.recursors:
                self.recursors[url].configure(settings)
                continue
            self.recursors[url] = Recursor(url, settings, self.zones, self.metrics)
            self.metrics.recursor(url)
            if self._session is not None:
                self._start(url)
            if self.ready.is_set():  # added by a reload: its cache may hold anything
                self.recursors[url].submit(Reached(subtrees=set(self.zones)), time.monotonic())
                log.info("recursor added", extra=kv(recursor=url))

    def _start(self, url: str) -> None:
        self._tasks[url] = asyncio.get_running_loop().create_task(
            self.recursors[url].run(self._session), name=f"purge {url}")

    def reconfigure(self, cfg: dict) -> None:
        """SIGHUP: recursors, api key, timeout, coalesce apply at once; the rest on restart."""
        if cfg["Janitor"]["domain"] != self.domain or cfg["Etcd"] != self.etcd:
            log.warning("domain and [Etcd] changes need a restart; keeping the running ones")
        self._set_recursors(cfg["Janitor"])
        self.cfg = cfg
        log.info("config reloaded", extra=kv(recursors=",".join(self.recursors)))

    def purge(self, what: Reached, kind: str, when: float | None = None) -> None:
        if not what:
            return
        when = time.monotonic() if when is None else when
        self.metrics.changes.labels(kind).inc()
        self.metrics.names.inc(len(what.names) + len(what.subtrees))
        log.debug("purging", extra=kv(kind=kind, names=",".join(sorted(what.names)),
                                      subtrees=",".join(sorted(what.subtrees))))
        for recursor in self.recursors.values():
            recursor.submit(what, when)
        if kind != "start":
            # skydns applies the same change from its own watch: a client asking the
            # recursor between our purge and that could put the old answer back in its
            # cache. Purges again once skydns has caught up take it out again.
            loop = asyncio.get_running_loop()
            for delay in self.cfg["Janitor"]["settle"]:
                loop.call_later(delay, self._again, what)

    def _again(self, what: Reached) -> None:
        for recursor in self.recursors.values():
            recursor.submit(what, REPEAT)

    def _loaded_one(self, name: str) -> None:
        first = name not in self._loaded
        self._loaded.add(name)
        if first and len(self._loaded) == len(self.mirrors) and not self.ready.is_set():
            # Whatever changed while no janitor watched is unknown: start from clean caches.
            self.purge(Reached(subtrees=set(self.zones)), "start")
            self.ready.set()
            notify.ready("watching")
            log.info("janitor ready", extra=kv(records=len(self.deps),
                                               down=len(self.health.down),
                                               recursors=",".join(self.recursors)))

    # -- records -----------------------------------------------------------------------------

    def _parse(self, kv_) -> Record | None:
        path = key_to_path(kv_.key)
        if not path:
            return None
        try:
            return parse_record(kv_.key, path, kv_.value, kv_.lease, kv_.mod_revision)
        except RecordError as err:  # the server leaves it out too: as if deleted
            log.debug("bad record ignored", extra=kv(key=kv_.key, error=str(err)))
        except Exception:
            log.exception("bad record ignored: unexpected error", extra=kv(key=kv_.key))
        return None

    def _is_record(self, key: str) -> bool:
        return not key.startswith(self.not_records)

    def _is_status(self, key: str) -> bool:
        return key.startswith(self.status_path)

    def on_records_reset(self, kvs, revision: int) -> None:
        now = time.monotonic()
        old, new = self.deps, Dependents()
        statuses = []
        for item in kvs:
            if self.status_in_records and self._is_status(item.key):
                statuses.append(item)
            elif self._is_record(item.key):
                record = self._parse(item)
                if record is not None:
                    new.put(item.key, record)
        self.deps = new
        if "records" in self._loaded:  # a reload after compaction: purge what differs
            what = Reached()
            for key in old.records.keys() | new.records.keys():
                before, after = old.records.get(key), new.records.get(key)
                if before != after:
                    what.update(reached_by_record(old, self.domain, key, before, None))
                    what.update(reached_by_record(new, self.domain, key, None, after))
            self.purge(what, "reload", now)
        if self.status_in_records:
            self._reset_health(statuses, now)
        self._loaded_one("records")

    def on_records_events(self, events, revision: int) -> None:
        now = time.monotonic()
        status_events = []
        for kind, item in events:
            if self.status_in_records and self._is_status(item.key):
                status_events.append((kind, item))
            elif self._is_record(item.key):
                record = self._parse(item) if kind == "put" else None
                old = (self.deps.put(item.key, record) if record is not None
                       else self.deps.delete(item.key))
                if old is None and record is None:
                    continue  # a bad value where there was none: no answer changed
                self.purge(reached_by_record(self.deps, self.domain, item.key, old, record),
                           "record", now)
        if status_events:
            self.on_status_events(status_events, revision, now)

    # -- health ------------------------------------------------------------------------------

    def _reset_health(self, kvs, now: float) -> None:
        before = set(self.health.down)
        self.health.clear()
        for item in kvs:
            ip = ip_of_key(item.key, self.status_path)
            if ip is not None:
                self.health.set(ip, parse_status(item.key, item.value))
        if "status" in self._loaded or "records" in self._loaded:
            flipped = before ^ self.health.down
            if flipped:
                self.purge(reached(self.deps, self.domain, ips=flipped), "reload", now)

    def on_status_reset(self, kvs, revision: int) -> None:
        self._reset_health(kvs, time.monotonic())
        self._loaded_one("status")

    def on_status_events(self, events, revision: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        flipped = set()
        for kind, item in events:
            ip = ip_of_key(item.key, self.status_path)
            if ip is None:
                continue
            status = parse_status(item.key, item.value) if kind == "put" else None
            if self.health.set(ip, status):
                flipped.add(ip)
                log.info("health changed", extra=kv(ip=ip, status=status or "UP"))
        if flipped:
            self.purge(reached(self.deps, self.domain, ips=flipped), "status", now)

    # -- running -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        self._session = aiohttp.ClientSession()
        for url in self.recursors:
            self._start(url)
        self.mirrors.append(store.Mirror(self.etcd, RECORDS_PREFIX, self.on_records_reset,
                                         self.on_records_events, name="records"))
        if not self.status_in_records:
            self.mirrors.append(store.Mirror(self.etcd, self.status_path, self.on_status_reset,
                                             self.on_status_events, name="status"))
        runs = [asyncio.create_task(m.run()) for m in self.mirrors]
        try:
            await stop.wait()
        finally:
            notify.stopping()
            for mirror in self.mirrors:
                await mirror.stop()
            for task in [*runs, *self._tasks.values()]:
                task.cancel()
            await asyncio.gather(*runs, *self._tasks.values(), return_exceptions=True)
            await self._session.close()
            log.info("janitor stopped")
