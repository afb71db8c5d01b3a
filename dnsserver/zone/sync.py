"""Keeps a ZoneState equal to etcd. The Mirror (skydns.store) does the etcd side, this turns its
keys into records and statuses and writes them into the state, which tells its readers (the
engine's cache, the pdns backend) what changed. The callbacks run in the event loop between
queries, so an answer never sees half an update.
"""

from __future__ import annotations

import asyncio
import gc
import logging

from skydns import store
from skydns.health import parse_status
from skydns.keys import PREFIX, ip_of_key, key_to_path, not_record_prefixes
from skydns.records import RecordError, parse_record
from skydns.skydns2 import SETTINGS_KEY

from .state import ZoneState

log = logging.getLogger("skydns.sync")

RECORDS_PREFIX = PREFIX + "/"


class StoreSync:
    def __init__(self, state: ZoneState, etcd_section: dict):
        self.state = state
        self.etcd_section = etcd_section
        self.status_path = etcd_section["status-path"]
        self.not_records = not_record_prefixes(etcd_section)
        self.status_in_records = self.status_path.startswith(RECORDS_PREFIX)
        self.mirrors: list[store.Mirror] = []
        self._lease_client = None
        self._lease_task: asyncio.Task | None = None
        self._pending_leases: set[int] = set()
        self.bad_records = 0
        self.loaded = asyncio.Event()  # the first full load is in

    # -- records -----------------------------------------------------------------------------

    def on_records_reset(self, kvs, revision: int) -> None:
        state = self.state
        statuses = []

        def records():
            for kv in kvs:
                if self.status_in_records and kv.key.startswith(self.status_path):
                    statuses.append(kv)
                elif not kv.key.startswith(self.not_records):
                    record = self._parse(kv)
                    if record is not None:
                        yield record

        state.load(records(), revision)
        if self.status_in_records:
            self._reset_health(statuses)
        self.loaded.set()
        # The index lives until the next full load: keep cyclic GC from walking it again and
        # again (a full pass over 1M records is 0.4 s of stalled answers).
        gc.freeze()
        self._want_leases({r.lease for r in state.index.records() if r.lease})
        log.info(
            "records loaded",
            extra={
                "kv": {
                    "records": len(state.index),
                    "revision": revision,
                    "down": len(state.health.down),
                }
            },
        )

    def on_records_events(self, events, revision: int) -> None:
        status_events = []
        for kind, kv in events:
            if self.status_in_records and kv.key.startswith(self.status_path):
                status_events.append((kind, kv))
            elif not kv.key.startswith(self.not_records):
                self._record_event(kind, kv, revision)
        if status_events:
            self.on_status_events(status_events, revision)

    def _parse(self, kv):
        """The record a key holds, or None (not a record key, or a bad value: logged)."""
        path = key_to_path(kv.key)
        if not path or kv.key == SETTINGS_KEY:  # SkyDNS2's runtime settings, not a record
            return None
        try:
            return parse_record(kv.key, path, kv.value, kv.lease, kv.mod_revision)
        except RecordError as err:
            self.bad_records += 1
            log.warning("bad record skipped", extra={"kv": {"key": kv.key, "error": str(err)}})
        except Exception:  # a bug on one value must not cost the zone (a load that never ends)
            self.bad_records += 1
            log.exception("bad record skipped: unexpected error", extra={"kv": {"key": kv.key}})
        return None

    def _record_event(self, kind: str, kv, revision: int) -> None:
        record = self._parse(kv) if kind == "put" else None
        if record is not None:
            self.state.put(record, revision)
            if kv.lease:
                self._want_leases({kv.lease})
        else:  # deleted, or now holding what we cannot serve: what we served from it is gone
            self.state.delete(kv.key, key_to_path(kv.key) or None, revision)

    # -- health ------------------------------------------------------------------------------

    def _reset_health(self, kvs, revision: int = 0) -> None:
        statuses = []
        for kv in kvs:
            ip = ip_of_key(kv.key, self.status_path)
            if ip is not None:
                statuses.append((ip, parse_status(kv.key, kv.value)))
        self.state.load_health(statuses, revision)

    def on_status_reset(self, kvs, revision: int) -> None:
        self._reset_health(kvs, revision)

    def on_status_events(self, events, revision: int) -> None:
        for kind, kv in events:
            ip = ip_of_key(kv.key, self.status_path)
            if ip is None:
                continue
            status = parse_status(kv.key, kv.value) if kind == "put" else None
            if self.state.set_health(ip, status, revision):
                log.info("health changed", extra={"kv": {"ip": ip, "status": status or "UP"}})

    # -- leases ------------------------------------------------------------------------------

    def _want_leases(self, lease_ids: set[int]) -> None:
        new = lease_ids - self.state.lease_ttls.keys()
        if not new:
            return
        self._pending_leases |= new
        if self._lease_task is None or self._lease_task.done():
            self._lease_task = asyncio.get_running_loop().create_task(self._fetch_leases())

    async def _fetch_leases(self) -> None:
        """Learn granted lease TTLs, so a record on a 10 s lease is not cached for 30 s."""
        while self._pending_leases:
            batch, self._pending_leases = self._pending_leases, set()
            try:
                if self._lease_client is None:
                    self._lease_client = store.make_client(self.etcd_section)
                ttls = await store.lease_ttls(self._lease_client, batch)
            except Exception as err:
                log.warning("lease lookup failed", extra={"kv": {"error": repr(err)}})
                await asyncio.sleep(1.0)
                self._pending_leases |= batch
                continue
            # all already expired: nothing to shorten, and the state skips the index scan
            self.state.add_lease_ttls(ttls)

    # -- running -----------------------------------------------------------------------------

    async def run(self) -> None:
        self.mirrors.append(
            store.Mirror(
                self.etcd_section,
                RECORDS_PREFIX,
                self.on_records_reset,
                self.on_records_events,
                name="records",
            )
        )
        if not self.status_in_records:
            self.mirrors.append(
                store.Mirror(
                    self.etcd_section,
                    self.status_path,
                    self.on_status_reset,
                    self.on_status_events,
                    name="status",
                )
            )
        await asyncio.gather(*(m.run() for m in self.mirrors))

    async def stop(self) -> None:
        for mirror in self.mirrors:
            await mirror.stop()
        if self._lease_task is not None:
            self._lease_task.cancel()
        if self._lease_client is not None:
            await self._lease_client.close()
