"""ZoneState: the records, health, serial and lease TTLs every reader answers from.

One object, filled by the sync (sync.py, from etcd) and read by the DNS engine, the PowerDNS
backend and `skydns dump`. Every write goes through a method here, and each publishes what it
changed (a `Change`: index paths, addresses, or everything) to the subscribers: the engine's
answer cache drops exactly the entries that read it, the backend forgets its memoized answers.
Pure: no sockets, no etcd, no asyncio; subscribers run synchronously inside the write, so no
reader ever sees the data changed but its cache not yet dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from skydns.health import HealthView
from skydns.keys import Path
from skydns.records import Record

from .context import Context, ZoneSettings
from .index import RecordIndex


@dataclass(frozen=True, slots=True)
class Change:
    """What one write touched. `everything`: a full reload (or a change whose reach is not a
    path, such as a stored wildcard); else the index paths and the addresses whose health
    moved."""

    paths: tuple[Path, ...] = ()
    ips: tuple[str, ...] = ()
    everything: bool = False


EVERYTHING = Change(everything=True)


class ZoneState(Context):
    """A `Context` (what the rules read) plus the writes the sync makes and a change feed.

    `ready` turns true with the first full load; before it zone answers are SERVFAIL (DNS) or
    failures (pdns), never answers from a half-loaded index.
    """

    def __init__(self, zone: ZoneSettings):
        super().__init__(RecordIndex(), HealthView(), zone)
        self.ready = False
        self._subscribers: list[Callable[[Change], None]] = []

    def subscribe(self, listener: Callable[[Change], None]) -> None:
        """Call `listener(change)` after every write, in the order subscribed."""
        self._subscribers.append(listener)

    def _publish(self, change: Change) -> None:
        for listener in self._subscribers:
            listener(change)

    # -- records -----------------------------------------------------------------------------

    def load(self, records: Iterable[Record], revision: int) -> None:
        """Replace every record (a full load from etcd at `revision`)."""
        self.index.clear()
        for record in records:
            self.index.put(record)
        self.serial = revision
        self.ready = True
        self._publish(EVERYTHING)

    def put(self, record: Record, revision: int) -> None:
        self.index.put(record)
        self._changed(record.path, revision)

    def delete(self, key: str, path: Path | None, revision: int) -> None:
        """Drop the record under `key` (if any); `path` is the key's path when known, so the
        readers of a key that held nothing we could serve are told too."""
        old = self.index.delete(key)
        if old is not None:
            path = old.path
        if path is not None:
            self._changed(path, revision)

    def _changed(self, path: Path, revision: int) -> None:
        self.serial = revision
        # A stored wildcard can answer for any name beside it: no path bounds its readers.
        self._publish(EVERYTHING if "*" in path else Change(paths=(path,)))

    # -- health ------------------------------------------------------------------------------

    # Health is part of the served zone (DOWN addresses are left out of answers and
    # transfers), so a health change moves the serial too: to the etcd revision of the status
    # change, which every worker sees alike, and never backwards.

    def load_health(self, statuses: Iterable[tuple[str, str]], revision: int = 0) -> None:
        """Replace every status: (ip, "UP" | "DOWN") pairs."""
        self.health.clear()
        for ip, status in statuses:
            self.health.set(ip, status)
        self.serial = max(self.serial, revision)
        self._publish(EVERYTHING)

    def set_health(self, ip: str, status: str | None, revision: int = 0) -> bool:
        """One address's status (None: its key went away); True when its DOWN-ness changed."""
        if not self.health.set(ip, status):
            return False
        self.serial = max(self.serial, revision)
        self._publish(Change(ips=(ip,)))
        return True

    # -- leases ------------------------------------------------------------------------------

    def add_lease_ttls(self, ttls: dict[int, int]) -> None:
        """Granted TTLs of leases, learned after their records: answers from those records
        may now carry a shorter TTL."""
        if not ttls:
            return
        self.lease_ttls.update(ttls)
        paths = tuple(r.path for r in list(self.index.records()) if r.lease in ttls)
        if paths:
            self._publish(Change(paths=paths))
