"""One PowerDNS Recursor behind its HTTP API: a queue of names to purge and the task draining it.

Every recursor has its own queue and task, so one that is slow or down delays nobody else.
The queue is a dict keyed by (name, subtree): a name is purged at once, then at most once per
`coalesce` seconds, so a burst of changes to one name costs one purge now and one after.
A round that fails on the network (or 5xx, or a refused API key) puts its names back and
waits with backoff, so a recursor that comes back is purged of everything it missed. When more than
`max-pending` names wait, they are replaced by a purge of the whole zones.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from urllib.parse import quote

import aiohttp

from skydns.affected import Reached
from skydns.logsetup import kv
from skydns.store import backoff

log = logging.getLogger("skydns.janitor.purge")

FLUSH_PATH = "/api/v1/servers/localhost/cache/flush"
PARALLEL = 8  # requests in flight to one recursor
Item = tuple[str, bool]  # (absolute name, subtree)
REPEAT = math.inf  # the change time of a settle repeat: purged, but not counted as lag


class RetryLater(Exception):
    """The recursor could not take the purge now (down, overloaded, key refused)."""


def flush_url(base: str, name: str, subtree: bool) -> str:
    url = f"{base}{FLUSH_PATH}?domain={quote(name, safe='.-_*')}"
    return url + "&subtree=true" if subtree else url


class Recursor:
    def __init__(self, url: str, settings: dict, zones: list[str], metrics=None):
        self.url = url
        self.zones = zones  # what a collapsed queue purges (subtrees)
        self.metrics = metrics
        self.pending: dict[Item, float] = {}  # item -> time.monotonic() of its oldest change
        self.last: dict[Item, float] = {}  # item -> when it was last purged (recent ones only)
        self._timer: asyncio.TimerHandle | None = None
        self.wake = asyncio.Event()
        self.up = True
        self.failures = 0  # consecutive failed rounds
        self.configure(settings)

    def configure(self, settings: dict) -> None:
        self.api_key = settings["api-key"]
        self.timeout = settings["timeout"]
        self.coalesce = settings["coalesce"]
        self.max_pending = settings["max-pending"]

    def submit(self, reached: Reached, when: float) -> None:
        pending = self.pending
        for item in [*((n, False) for n in reached.names), *((n, True) for n in reached.subtrees)]:
            pending[item] = min(when, pending.get(item, when))
        if len(pending) > self.max_pending:
            oldest = min(pending.values())
            log.warning("too many names waiting; purging the whole zones instead",
                        extra=kv(recursor=self.url, names=len(pending)))
            self.pending = {(zone, True): oldest for zone in self.zones}
        self._gauge()
        self.wake.set()

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.pending.labels(self.url).set(len(self.pending))

    async def run(self, session: aiohttp.ClientSession) -> None:
        """Drain the queue forever (cancel to stop)."""
        while True:
            await self.wake.wait()
            self.wake.clear()
            batch = self._due(time.monotonic())
            if not batch:
                continue
            started = time.monotonic()
            left = await self._round(session, batch)
            for item in batch.keys() - left.keys():
                self.last[item] = started
            if left:
                for item, when in left.items():  # keep the older change time: lag is honest
                    self.pending[item] = min(when, self.pending.get(item, when))
                self._gauge()
                self.failures += 1
                await asyncio.sleep(backoff(self.failures, low=0.1, high=5.0))
                self.wake.set()
                continue
            self._gauge()
            if self.failures or not self.up:
                log.info("recursor purged again", extra=kv(recursor=self.url))
            self.failures = 0
            self._set_up(True)
            if self.pending:
                self.wake.set()

    def _due(self, now: float) -> dict[Item, float]:
        """Take the pending items not purged within the last `coalesce` seconds; the others
        wait (a timer wakes the task when the first of them is due)."""
        last, window = self.last, self.coalesce
        for item in [i for i, t in last.items() if now - t >= window]:
            del last[item]  # only recent purges are remembered
        due = {i: w for i, w in self.pending.items() if i not in last}
        for item in due:
            del self.pending[item]
        if self.pending:
            wait = min(last[i] for i in self.pending) + window - now
            if self._timer is not None:
                self._timer.cancel()
            self._timer = asyncio.get_running_loop().call_later(max(wait, 0.0), self.wake.set)
        return due

    async def _round(self, session, batch: dict[Item, float]) -> dict[Item, float]:
        """Purge `batch`; returns the items still to do (after the first failure, all the
        rest: a recursor that is down would only time out again for each)."""
        items = list(batch.items())
        for start in range(0, len(items), PARALLEL):
            chunk = items[start : start + PARALLEL]
            results = await asyncio.gather(*(self._purge(session, item) for item, _ in chunk),
                                           return_exceptions=True)
            done = time.monotonic()
            failed = None
            for (_item, when), result in zip(chunk, results, strict=True):
                if isinstance(result, RetryLater):
                    failed = result
                elif isinstance(result, BaseException):
                    failed = RetryLater(repr(result))
                elif result and self.metrics is not None:
                    self.metrics.purged(self.url, None if when == REPEAT else done - when)
            if failed is not None:
                self._failed(failed)
                return {item: when for item, when in items[start:]}
        return {}

    def _failed(self, err: RetryLater) -> None:
        if self.metrics is not None:
            self.metrics.failures.labels(self.url).inc()
        if self.up or self.failures % 20 == 0:
            log.warning("recursor purge failed; will retry",
                        extra=kv(recursor=self.url, error=str(err), attempt=self.failures + 1))
        self._set_up(False)

    def _set_up(self, up: bool) -> None:
        self.up = up
        if self.metrics is not None:
            self.metrics.up.labels(self.url).set(int(up))

    async def _purge(self, session, item: Item) -> bool:
        """True when purged, False when the recursor refused the name for good (logged)."""
        name, subtree = item
        url = flush_url(self.url, name, subtree)
        headers = {"X-API-Key": self.api_key} if self.api_key else {}
        try:
            async with session.put(url, headers=headers,
                                   timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
                body = await resp.text()
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            raise RetryLater(f"{type(err).__name__}: {err}") from None
        if resp.status == 200:
            log.debug("purged", extra=kv(recursor=self.url, name=name, subtree=subtree))
            return True
        if resp.status in (401, 403) or resp.status >= 500:
            raise RetryLater(f"HTTP {resp.status}: {body.strip()[:200]}")
        # 4xx for one name (422: not a name it accepts): retrying cannot help
        if self.metrics is not None:
            self.metrics.failures.labels(self.url).inc()
        log.warning("recursor refused a purge", extra=kv(recursor=self.url, name=name,
                                                         status=resp.status,
                                                         error=body.strip()[:200]))
        return False
