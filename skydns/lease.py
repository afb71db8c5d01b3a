"""An etcd lease kept alive by a task of its own, and granted again whenever it is lost.

The keep-alive has its own task and its own etcd connection so that nothing else the process
does (a probe round over thousands of addresses, a burst of status writes, a big
reassignment) can delay it past the TTL.

aetcd has no keep-alive loop of its own, only a one-shot `refresh_lease`; this is that loop.
Shared by scanner/ and scheduler/.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable

import aetcd

from skydns.logsetup import kv
from skydns.store import backoff, describe_error, make_client

log = logging.getLogger("skydns.lease")

GrantedCallback = Callable[[aetcd.Client, int], Awaitable[None]]
LostCallback = Callable[[int], None]


class LeaseLost(Exception):
    """The lease expired or was revoked; its keys are gone."""


class KeptLease:
    """Holds one etcd lease of `ttl` seconds, refreshed every `interval` seconds.

    on_granted(client, lease_id) is awaited after every grant, before `granted` is set: put the
    keys that live on the lease there (if it raises, the lease is dropped and granted again
    after a backoff). on_lost(lease_id) is called when a held lease is lost: etcd says it
    expired, or no keep-alive got an answer for a whole TTL, so it must be presumed expired.

    Counters: grants, refreshes, losses.
    """

    def __init__(self, etcd_section: dict, ttl: float, interval: float, name: str,
                 on_granted: GrantedCallback | None = None, on_lost: LostCallback | None = None):
        # etcd leases have whole-second TTLs; rounding up never expires a key early.
        self.ttl = max(1, math.ceil(ttl))
        self.interval = interval
        self.name = name
        self.etcd_section = etcd_section
        self.on_granted = on_granted
        self.on_lost = on_lost
        self.call_timeout = min(float(etcd_section.get("etcd-timeout") or 5.0),
                                max(self.ttl / 2, 0.5))
        self.lease_id: int | None = None
        self.granted = asyncio.Event()
        self.grants = 0
        self.refreshes = 0
        self.losses = 0
        self._client: aetcd.Client | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> asyncio.Task:
        self._task = asyncio.create_task(self._run(), name=f"{self.name}-lease")
        return self._task

    async def close(self, revoke: bool = True) -> None:
        """Stop the keep-alive; with revoke, delete the lease (and its keys) at once."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        lease_id, self.lease_id = self.lease_id, None
        self.granted.clear()
        if revoke and lease_id:
            await self._revoke(lease_id)
        await self._close_client()

    async def wait_granted(self) -> int:
        """The current lease ID, waiting for a grant if none is held."""
        while True:
            await self.granted.wait()
            if self.lease_id:
                return self.lease_id

    async def _run(self) -> None:
        failures = 0
        while True:
            if failures:
                await asyncio.sleep(backoff(failures))
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except LeaseLost as exc:
                failures = 1
                log.warning("lease lost; granting a new one",
                            extra=kv(lease=self.name, reason=str(exc)))
            except Exception as exc:
                failures += 1
                log.warning("lease keep-alive failed; retrying",
                            extra=kv(lease=self.name, attempt=failures,
                                     error=describe_error(exc)))
            # Not on cancellation: close() still needs the lease ID to revoke it.
            self._drop()
            await self._close_client()

    async def _session(self) -> None:
        self._client = client = make_client(self.etcd_section)
        sent = time.monotonic()
        lease = await asyncio.wait_for(client.lease(self.ttl), self.call_timeout * 2)
        self.lease_id = lease.id
        self.grants += 1
        expires = sent + lease.ttl
        log.info("lease granted", extra=kv(lease=self.name, id=f"{lease.id:x}", ttl=lease.ttl))
        if self.on_granted is not None:
            await self.on_granted(client, lease.id)
        self.granted.set()
        while True:
            await asyncio.sleep(self.interval)
            sent = time.monotonic()
            try:
                reply = await asyncio.wait_for(client.refresh_lease(lease.id), self.call_timeout)
            except Exception as exc:  # retried until the TTL ends
                if time.monotonic() >= expires:
                    raise LeaseLost(f"no keep-alive answered for {self.ttl}s: "
                                    f"{describe_error(exc)}") from exc
                log.warning("lease keep-alive failed; retrying before the TTL ends",
                            extra=kv(lease=self.name, error=describe_error(exc),
                                     left=round(expires - time.monotonic(), 2)))
                continue
            if reply is None or reply.TTL <= 0:
                raise LeaseLost("etcd says the lease expired")
            self.refreshes += 1
            expires = sent + reply.TTL

    def _drop(self) -> None:
        lease_id, self.lease_id = self.lease_id, None
        self.granted.clear()
        if lease_id is None:
            return
        self.losses += 1
        if self.on_lost is not None:
            try:
                self.on_lost(lease_id)
            except Exception:
                log.exception("on_lost callback failed", extra=kv(lease=self.name))

    async def _revoke(self, lease_id: int) -> None:
        client = self._client or make_client(self.etcd_section)
        self._client = client
        try:
            await asyncio.wait_for(client.revoke_lease(lease_id), self.call_timeout)
            log.info("lease revoked", extra=kv(lease=self.name, id=f"{lease_id:x}"))
        except Exception as exc:  # best effort: the TTL cleans up
            log.warning("could not revoke lease; its keys go when the TTL ends",
                        extra=kv(lease=self.name, error=describe_error(exc)))

    async def _close_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.close()
            except Exception as exc:  # closing a broken channel
                log.debug("closing etcd client failed", extra=kv(error=describe_error(exc)))
