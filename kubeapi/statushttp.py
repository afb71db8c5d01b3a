"""HTTP of the status page and the metrics: GET /, /skydns/status, /skydns/status/events and
/metrics.

    GET /                       the page (HTML, holds no data: no token)
    GET /skydns/status          the snapshot, JSON (token unless [SkydnsApi] status-public)
    GET /skydns/status/events   the same as Server-Sent Events: `event: snapshot` with the
                                whole snapshot at connect and after every (debounced) change,
                                a `: keep-alive` comment when idle (token as above)
    GET /metrics                Prometheus text, counters only (no token)
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from .metrics import CONTENT_TYPE, METRICS, ApiMetrics
from .statusfeed import StatusFeed
from .statuspage import CSP, HTML

FEED = web.AppKey("status_feed", StatusFeed)
KEEPALIVE = web.AppKey("status_keepalive", float)
# Raises the 401 ApiError for a request without a valid token; None when the status is public.
ACCESS = web.AppKey("status_access", object)

_NO_STORE = {"Cache-Control": "no-store"}


async def page(request: web.Request) -> web.Response:
    return web.Response(text=HTML, content_type="text/html", charset="utf-8", headers={
        **_NO_STORE, "Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
        # The token sits in this page's URL: it must not leak to other sites.
        "Referrer-Policy": "no-referrer"})


def _check_access(request: web.Request) -> StatusFeed:
    check = request.app[ACCESS]
    if check is not None:
        check(request)
    return request.app[FEED]


async def status_json(request: web.Request) -> web.Response:
    feed = _check_access(request)
    return web.Response(body=feed.snapshot_json(), content_type="application/json",
                        headers=_NO_STORE)


async def status_events(request: web.Request) -> web.StreamResponse:
    feed = _check_access(request)
    keepalive = request.app[KEEPALIVE]
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", **_NO_STORE,
        # Proxies (nginx) would otherwise hold the events back to fill their buffers.
        "X-Accel-Buffering": "no"})
    await response.prepare(request)
    feed.clients += 1
    try:
        # Browsers reconnect after `retry` ms when the connection drops.
        await response.write(b"retry: 2000\n\n")
        while not feed.closed.is_set():
            body = feed.snapshot_json()
            sequence = feed.sequence
            await response.write(b"event: snapshot\ndata: " + body + b"\n\n")
            while not await feed.wait_change(sequence, keepalive):
                if feed.closed.is_set():
                    return response
                # Keeps idle proxies and the browser from dropping a quiet stream.
                await response.write(b": keep-alive\n\n")
    except ConnectionResetError:
        pass  # the browser went away
    finally:
        feed.clients -= 1
    return response


async def metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def add_routes(app: web.Application, feed: StatusFeed | None, metrics_: ApiMetrics | None,
               access: Callable[[web.Request], object] | None, keepalive: float = 15.0) -> None:
    if metrics_ is not None:
        app[METRICS] = metrics_
        app.router.add_get("/metrics", metrics)
    if feed is not None:
        app[FEED] = feed
        app[ACCESS] = access
        app[KEEPALIVE] = keepalive
        app.router.add_get("/", page)
        app.router.add_get("/skydns/status", status_json)
        app.router.add_get("/skydns/status/events", status_events)

        async def end_streams(_app: web.Application) -> None:
            # Open streams would otherwise hold the shutdown for its whole timeout.
            feed.closed.set()

        app.on_shutdown.append(end_streams)
