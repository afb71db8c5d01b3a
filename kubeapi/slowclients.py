"""Deadlines for slow HTTP clients: aiohttp waits for a request head as long as bytes trickle.

`HeadDeadline` sits between the socket and aiohttp's handler: a connection must deliver a
whole request head within `timeout` of connecting, or of the first byte after its previous
request; a slowloris that holds connections with a byte now and then is closed. The body is
bounded separately (body.read_body), and idle keep-alive connections by aiohttp's
keepalive_timeout. `ConnectionLimits` caps connections per client address and in all: at a
cap the connection idle longest (between requests, nothing left to send) is closed to admit
the new one, and only when every held one is busy is the new one closed at once.
`GuardedSite` is aiohttp's TCPSite with the guard in front.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from skydns.connlimit import ConnectionLimits, unacked_bytes

log = logging.getLogger("skydns.api")

GUARDS: dict = {}  # transport -> HeadDeadline, so the middleware can tell a head has come in


class HeadDeadline(asyncio.Protocol):
    def __init__(self, inner: asyncio.Protocol, timeout: float,
                 limits: ConnectionLimits | None = None):
        self.inner = inner
        self.timeout = timeout
        self.limits = limits
        self.client = ""
        self.admitted = False
        self.transport = None
        self.timer: asyncio.TimerHandle | None = None
        self.in_request = False
        self.last_active = 0.0  # loop time of the connect or the last request's end

    def arm(self) -> None:
        self.disarm()
        self.timer = asyncio.get_running_loop().call_later(self.timeout, self._expire)

    def disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def request_started(self) -> None:
        self.in_request = True
        self.disarm()

    def request_done(self) -> None:
        self.in_request = False  # the next head's clock starts with its first byte
        self.last_active = asyncio.get_running_loop().time()

    def idle_since(self) -> float | None:
        """For ConnectionLimits: None while a request is handled (an event stream too) or
        its reply is still being sent, else when the last request ended."""
        if self.in_request or self.transport.get_write_buffer_size():
            return None
        return self.last_active

    def evict(self) -> bool:
        """Closed to admit a new connection (an idle keep-alive one: clients reconnect)."""
        if unacked_bytes(self.transport):
            return False
        self.transport.close()
        return True

    def _expire(self) -> None:
        self.timer = None
        if self.in_request or self.transport is None:
            return
        peer = self.transport.get_extra_info("peername")
        log.info("closing a connection that sent no whole request in time",
                 extra={"kv": {"client": peer[0] if peer else "", "seconds": self.timeout}})
        self.transport.abort()

    def connection_made(self, transport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.client = peer[0] if peer else ""
        if self.limits is not None:
            self.last_active = asyncio.get_running_loop().time()
            if not self.limits.admit(self.client, self):
                if self.limits.refused % 100 == 1:  # a flood must not flood the log too
                    log.warning("connection refused: too many, none of them idle",
                                extra={"kv": {"client": self.client,
                                              "refused": self.limits.refused}})
                transport.abort()
                return
            self.admitted = True
        GUARDS[transport] = self
        self.arm()
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.transport not in GUARDS:
            return  # refused at connect
        if not self.in_request and self.timer is None:
            self.arm()
        self.inner.data_received(data)

    def eof_received(self):
        if self.transport not in GUARDS:
            return None
        return self.inner.eof_received()

    def connection_lost(self, exc) -> None:
        self.disarm()
        if self.admitted:
            self.admitted = False
            self.limits.release(self.client, self)
        if GUARDS.pop(self.transport, None) is not None:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


def guard_of(request: web.Request) -> HeadDeadline | None:
    return GUARDS.get(request.transport)


class GuardedSite(web.TCPSite):
    """A TCPSite whose connections go through HeadDeadline (deadline and caps)."""

    def __init__(self, runner, host, port, *, head_timeout: float,
                 limits: ConnectionLimits | None = None, **kwargs):
        super().__init__(runner, host, port, **kwargs)
        self.head_timeout = head_timeout
        self.limits = limits

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: HeadDeadline(server(), self.head_timeout, self.limits),
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
