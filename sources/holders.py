"""Which record keys of the zone hold an address, from an in-memory mirror of the zone.

When a source drops the last record it tracks of an address, the planner keeps the address'
status key if another record (written by hand, another layout) still holds it; it asks a
`holders(ip)` function, and without one it reads the whole zone. The API answers from its
status feed; a daemon without one (skydns-cloudstack) runs this: one etcd watch of the zone,
so a destroy costs a few keys, not a read of every record.
"""

from __future__ import annotations

import asyncio

from kubeapi.statusview import record_address
from skydns.keys import name_to_key
from skydns.store import KV, Mirror


class ZoneHolders:
    def __init__(self, etcd_section: dict, zone: str):
        self.addresses: dict[str, str] = {}  # record key -> the address it holds
        self.holders: dict[str, set[str]] = {}  # ip -> record keys holding it
        self.mirror = Mirror(etcd_section, name_to_key(zone) + "/", self._reset, self._events,
                             name="zone-holders")
        self._task: asyncio.Task | None = None

    def __call__(self, ip: str) -> set[str] | None:
        """The record keys holding `ip`; None until the zone is loaded (then the planner
        reads the zone itself)."""
        if not self.mirror.ready.is_set():
            return None
        return set(self.holders.get(ip, ()))

    def start(self) -> None:
        self._task = asyncio.create_task(self.mirror.run(), name="zone-holders")

    async def stop(self) -> None:
        await self.mirror.stop()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _reset(self, kvs: list[KV], revision: int) -> None:
        self.addresses.clear()
        self.holders.clear()
        for kv in kvs:
            self._put(kv)

    def _events(self, batch: list[tuple[str, KV]], revision: int) -> None:
        for kind, kv in batch:
            self._drop(kv.key)
            if kind == "put":
                self._put(kv)

    def _put(self, kv: KV) -> None:
        addr = record_address(kv.key, kv.value)
        if addr is not None:
            self.addresses[kv.key] = addr.ip
            self.holders.setdefault(addr.ip, set()).add(kv.key)

    def _drop(self, key: str) -> None:
        ip = self.addresses.pop(key, None)
        if ip is not None:
            keys = self.holders.get(ip)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self.holders[ip]
