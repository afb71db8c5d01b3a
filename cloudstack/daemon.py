"""skydns-cloudstack's process: the event consumer and the periodic resync, side by side."""

from __future__ import annotations

import asyncio
import logging
import time

from skydns import notify
from skydns.logsetup import kv
from skydns.store import backoff
from sources.holders import ZoneHolders
from sources.reconciler import EtcdStore

from .api import CloudStackClient
from .consumer import EventConsumer
from .metrics import CloudStackMetrics
from .sync import RETRYABLE, VmSync

log = logging.getLogger("skydns.cloudstack")


class CloudStackDaemon:
    def __init__(self, cfg: dict, backoff_min: float = 0.2):
        self.cfg = cfg
        self.backoff_min = backoff_min
        self.store = EtcdStore(cfg["Etcd"])
        self.client = CloudStackClient(cfg["CloudStack"])
        self.consumer: EventConsumer | None = None
        self.metrics = CloudStackMetrics(
            lag=lambda: dict(self.consumer.lag) if self.consumer else {},
            etcd_ops=lambda: self.sync.reconciler.etcd_ops)
        self.sync = VmSync(cfg, self.store, self.client, self.metrics)
        # Who else holds an address, for destroys (else each would read the whole zone).
        self.holders = ZoneHolders(cfg["Etcd"], cfg["General"]["domain"])
        self.sync.reconciler.holders = self.holders
        self.resynced = asyncio.Event()  # the first resync is done

    def reconfigure(self, cfg: dict) -> None:
        log.warning("SIGHUP: skydns-cloudstack applies a changed config only on restart")

    async def run(self, stop: asyncio.Event) -> None:
        cs = self.cfg["CloudStack"]
        self.consumer = EventConsumer(self.cfg["Kafka"], self.sync, self.metrics,
                                      self.backoff_min, cs["backoff-max"])
        self.holders.start()
        resync = asyncio.create_task(self._resyncs(stop), name="cloudstack-resync")
        try:
            await self.consumer.run(stop, started=lambda: notify.ready("consuming"))
        finally:
            notify.stopping()
            resync.cancel()
            await asyncio.gather(resync, return_exceptions=True)
            await self.holders.stop()
            await self.client.close()
            await self.store.close()

    async def _resyncs(self, stop: asyncio.Event) -> None:
        """One resync at start, then one every resync-interval (0: only the one at start)."""
        interval = self.cfg["CloudStack"]["resync-interval"]
        failures = 0
        while not stop.is_set():
            started = time.monotonic()
            try:
                counts = await self.sync.resync()
            except RETRYABLE as err:
                failures += 1
                self.metrics.errors.labels("api" if type(err).__name__ == "ApiDown"
                                           else "etcd").inc()
                log.warning("resync failed, retrying", extra=kv(error=str(err),
                                                                 failures=failures))
                wait = backoff(failures, self.backoff_min, self.cfg["CloudStack"]["backoff-max"])
            except Exception:
                failures += 1
                self.metrics.errors.labels("internal").inc()
                log.exception("resync failed")
                wait = backoff(failures, self.backoff_min, self.cfg["CloudStack"]["backoff-max"])
            else:
                failures = 0
                self.resynced.set()
                self.metrics.resyncs.inc()
                self.metrics.last_resync.set(time.time())
                for change in ("written", "removed"):
                    self.metrics.resync_changes.labels(change).inc(counts[change])
                log.info("resync done", extra=kv(seconds=round(time.monotonic() - started, 2),
                                                 **counts))
                if interval <= 0:
                    return
                wait = interval
            try:
                await asyncio.wait_for(stop.wait(), wait)
            except TimeoutError:
                pass
