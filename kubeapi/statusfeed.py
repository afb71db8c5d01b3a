"""The live side of the status page: etcd mirrors feeding a StatusState, and the published
snapshot that GET /skydns/status serves and the event stream pushes.

Requests never read etcd: the mirrors keep the state current from watches, and a snapshot is
built (and serialised) at most once per change. Changes are debounced, so a burst of writes
(a scanner flipping a hundred addresses in one second) reaches the browsers as one update.
"""

from __future__ import annotations

import asyncio
import json
import logging

from skydns.keys import name_to_key
from skydns.store import Mirror

from .statusview import SOURCES, StatusState

log = logging.getLogger("skydns.kubeapi.status")

DEBOUNCE = 0.2
# How often the publisher looks at the mirrors' connection flags, which change without a
# callback: an etcd outage then shows on the page within about this long.
CONNECTION_CHECK = 1.0


def status_prefixes(zone: str, etcd_section: dict) -> dict[str, str]:
    prefixes = {"records": name_to_key(zone) + "/"}
    for source in SOURCES[1:]:
        prefixes[source] = etcd_section[f"{source}-path"]
    return prefixes


class StatusFeed:
    def __init__(self, etcd_section: dict, zone: str, debounce: float = DEBOUNCE):
        self.debounce = debounce
        self._changed = asyncio.Event()
        self.state = StatusState(zone, status_prefixes(zone, etcd_section), self._changed.set)
        self.mirrors = {
            source: Mirror(etcd_section, prefix,
                           lambda kvs, rev, s=source: self.state.reset(s, kvs, rev),
                           lambda batch, rev, s=source: self.state.apply(s, batch, rev),
                           name=f"status-{source}")
            for source, prefix in self.state.prefixes.items()
        }
        self.clients = 0  # open event streams, for the metrics
        self.published: bytes = b""
        self.sequence = 0  # grows with every publication; streams compare it
        self._published_key: tuple | None = None
        self._tick = asyncio.Event()
        self.closed = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    def _key(self) -> tuple:
        return (self.state.version, self.ready, self.connected)

    @property
    def ready(self) -> bool:
        return all(m.ready.is_set() for m in self.mirrors.values())

    @property
    def connected(self) -> bool:
        return all(m.connected for m in self.mirrors.values())

    def holders(self, ip: str) -> set[str] | None:
        """The record keys of the zone that hold `ip`, as the mirror last saw them; None until
        the records are loaded (the planner then reads the zone itself)."""
        if not self.mirrors["records"].ready.is_set():
            return None
        return set(self.state.holders.get(ip, ()))

    def snapshot_json(self) -> bytes:
        """The current snapshot, serialised once per change (each request does not rebuild it)."""
        key = self._key()
        if key != self._published_key:
            snap = self.state.snapshot()
            snap["ready"], snap["connected"] = key[1], key[2]
            # ASCII with \u escapes: values written to etcd by hand may hold lone surrogates.
            self.published = json.dumps(snap, separators=(",", ":")).encode()
            self._published_key = key
            self.sequence += 1
            tick, self._tick = self._tick, asyncio.Event()
            tick.set()
        return self.published

    async def wait_change(self, sequence: int, timeout: float) -> bool:
        """True once a snapshot newer than `sequence` is published; False on timeout or close."""
        if self.sequence != sequence:
            return True
        tick = self._tick
        closed = asyncio.ensure_future(self.closed.wait())
        ticked = asyncio.ensure_future(tick.wait())
        try:
            await asyncio.wait({closed, ticked}, timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
            ticked.cancel()
        return self.sequence != sequence and not self.closed.is_set()

    async def _publisher(self) -> None:
        loop = asyncio.get_running_loop()
        build_time = 0.0
        while True:
            try:
                await asyncio.wait_for(self._changed.wait(), CONNECTION_CHECK)
                # Let the rest of a burst arrive, then publish it as one update. A zone so big
                # that building takes long gets fewer updates rather than a busy event loop.
                await asyncio.sleep(max(self.debounce, 4 * build_time))
            except TimeoutError:
                pass
            self._changed.clear()
            # Nobody streaming: GET /skydns/status builds its own snapshot when asked.
            if self.clients and self._key() != self._published_key:
                started = loop.time()
                self.snapshot_json()
                build_time = loop.time() - started

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(m.run(), name=f"status-mirror-{source}")
                       for source, m in self.mirrors.items()]
        self._tasks.append(asyncio.create_task(self._publisher(), name="status-publisher"))

    async def stop(self) -> None:
        self.closed.set()
        await asyncio.gather(*(m.stop() for m in self.mirrors.values()), return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
