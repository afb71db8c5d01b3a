"""janitor.purge.Recursor against real HTTP servers standing in for the recursor API (the e2e
tests use a real pdns_recursor): coalescing, retries, refusals, independence, collapse."""

from __future__ import annotations

import asyncio
import time

import aiohttp
from aiohttp import web

from janitor.metrics import JanitorMetrics
from janitor.purge import FLUSH_PATH, Recursor
from skydns.affected import Reached

from etcdtest import async_wait_for, run_async

SETTINGS = {"api-key": "k", "timeout": 1.0, "coalesce": 0.3, "max-pending": 100}


class FakeApi:
    """Records every flush call; answers `status` (a callable per call) after `delay`."""

    def __init__(self, status=lambda n: 200, delay: float = 0.0):
        self.calls: list[tuple[float, str, str, str | None]] = []
        self.status, self.delay = status, delay

    async def handle(self, request: web.Request) -> web.Response:
        self.calls.append((time.monotonic(), request.query.get("domain"),
                           request.query.get("subtree", ""), request.headers.get("X-API-Key")))
        code = self.status(len(self.calls))
        await asyncio.sleep(self.delay)
        return web.json_response({"count": 1, "result": "Flushed cache."} if code == 200
                                 else {"error": "no"}, status=code)

    async def __aenter__(self) -> str:
        app = web.Application()
        app.router.add_put(FLUSH_PATH, self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc) -> None:
        await self.runner.cleanup()


async def running(*recursors):
    session = aiohttp.ClientSession()
    tasks = [asyncio.create_task(r.run(session)) for r in recursors]

    async def stop():
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await session.close()

    return stop


def names(*items) -> Reached:
    return Reached(names=set(items))


def test_a_burst_to_one_name_is_one_purge_now_and_one_after():
    async def main():
        api = FakeApi()
        async with api as url:
            rec = Recursor(url, SETTINGS, ["example.test."])
            stop = await running(rec)
            start = time.monotonic()
            rec.submit(names("web.example.test."), start)
            await async_wait_for(lambda: len(api.calls) == 1)
            # the burst inside one coalescing window however slow the machine: 50 x 5 ms
            # sleeps outlasted the 0.3 s window under load and made a third purge
            for _ in range(50):
                rec.submit(names("web.example.test."), time.monotonic())
                await asyncio.sleep(0)
            await async_wait_for(lambda: len(api.calls) == 2, timeout=3)
            await asyncio.sleep(0.5)
            await stop()
        assert [c[1] for c in api.calls] == ["web.example.test."] * 2
        assert api.calls[0][0] - start < 0.2  # the first at once
        # the next after the window, which opens when the first purge is sent: between `start`
        # and its arrival at the API (under load that arrival can be 10 ms and more later)
        assert api.calls[1][0] - start >= 0.3
        assert {c[3] for c in api.calls} == {"k"}

    run_async(main())


def test_a_recursor_that_fails_is_retried_until_it_has_everything():
    async def main():
        api = FakeApi(status=lambda n: 503 if n <= 3 else 200)
        metrics = JanitorMetrics()
        async with api as url:
            rec = Recursor(url, SETTINGS, ["example.test."], metrics)
            metrics.recursor(url)
            stop = await running(rec)
            rec.submit(names("a.example.test.", "b.example.test."), time.monotonic())
            await async_wait_for(lambda: not rec.pending and rec.up and len(api.calls) >= 5,
                                 timeout=10)
            await stop()
        assert metrics.failures.labels(url)._value.get() >= 1
        # calls 1-3 fail; a name that got through in a failed round is purged again
        assert {c[1] for c in api.calls[3:]} == {"a.example.test.", "b.example.test."}
        assert metrics.purges.labels(url)._value.get() >= 2

    run_async(main())


def test_a_refused_name_is_dropped_not_retried():
    async def main():
        api = FakeApi(status=lambda n: 422)
        async with api as url:
            rec = Recursor(url, SETTINGS, ["example.test."])
            stop = await running(rec)
            rec.submit(names("bad.example.test."), time.monotonic())
            await async_wait_for(lambda: api.calls)
            await asyncio.sleep(0.5)
            await stop()
        assert len(api.calls) == 1 and not rec.pending

    run_async(main())


def test_a_slow_recursor_holds_up_no_other():
    async def main():
        slow, fast = FakeApi(delay=5.0), FakeApi()
        async with slow as slow_url, fast as fast_url:
            recs = [Recursor(u, {**SETTINGS, "timeout": 10.0}, ["example.test."])
                    for u in (slow_url, fast_url)]
            stop = await running(*recs)
            start = time.monotonic()
            for rec in recs:
                rec.submit(names("web.example.test."), start)
            await async_wait_for(lambda: fast.calls and slow.calls)
            rec = recs[1]
            rec.submit(names("db.example.test."), time.monotonic())
            await async_wait_for(lambda: len(fast.calls) == 2, timeout=2)
            took = time.monotonic() - start
            await stop()
        assert took < 2.0

    run_async(main())


def test_too_many_names_become_zone_purges():
    async def main():
        api = FakeApi()
        async with api as url:
            rec = Recursor(url, {**SETTINGS, "max-pending": 5},
                           ["example.test.", "in-addr.arpa."])
            rec.submit(names(*(f"n{i}.example.test." for i in range(10))), time.monotonic())
            assert set(rec.pending) == {("example.test.", True), ("in-addr.arpa.", True)}
            stop = await running(rec)
            await async_wait_for(lambda: len(api.calls) == 2)
            await stop()
        assert {(c[1], c[2]) for c in api.calls} == {("example.test.", "true"),
                                                     ("in-addr.arpa.", "true")}

    run_async(main())
