"""UDP transport. The hot path starts here: the front dict, else key the question and take the
cache's hit path (AnswerCache.hit, shared with TCP), else the engine's miss.

With dnstap on (tap.py) the server is a TappedUdpServer instead, chosen once at start-up
(udp_server_class), so that UdpServer has no hook to check per query."""

from __future__ import annotations

import asyncio
import logging

from .dnstap import UDP_PAIR, UDP_QUERY
from .engine import Engine
from .ratelog import RateLimitedLog
from .tap import TappedDatagramTransport
from .wire import question_key

log = logging.getLogger("skydns.udp")
errors = RateLimitedLog(log)  # one bug hit by a flood must not write a traceback per packet


class UdpServer(asyncio.DatagramProtocol):
    def __init__(self, engine: Engine):
        self.engine = engine
        self.front = engine.cache.front  # never rebound: the cache clears it in place
        self.transport: asyncio.DatagramTransport | None = None
        if engine.log_queries:  # swapped in, so that with it off the hot path has no check
            answer = self.datagram_received

            def logged(data: bytes, addr) -> None:
                engine.log_query(data, addr[0], False)
                answer(data, addr)

            self.datagram_received = logged

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        hit = self.front.get(data[2:])
        if hit is not None:
            entry = hit[1]
            entry.ref = True
            entry.hits += 1
            self.transport.sendto(data[:2] + hit[0], addr)
            return
        engine = self.engine
        try:
            keyed = question_key(data, False, engine.max_udp)
            if keyed is not None:
                hit = engine.cache.hit(data, keyed, addr[0], engine.allowed)
                if hit is not None:
                    tail, entry = hit
                    self.transport.sendto(data[:2] + tail, addr)
                    if not entry.mode and (not entry.expires or entry.renew):
                        engine.cache.add_front(data[2:], tail, entry)
                    return
            reply = engine.miss(data, addr[0], False)
        except Exception:  # one bad packet must never take the worker down
            errors.exception("query failed", {"client": addr[0]})
            return
        if reply is None:
            return
        if isinstance(reply, bytes):
            self.transport.sendto(reply, addr)
        else:
            asyncio.ensure_future(self._later(reply, addr))

    async def _later(self, pending, addr) -> None:
        try:
            reply = await pending
        except Exception:
            errors.exception("query failed", {"client": addr[0]})
            return
        if reply is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply, addr)

    def error_received(self, exc) -> None:  # ICMP unreachable from a departed client
        log.debug("udp error", extra={"kv": {"error": repr(exc)}})


class TappedUdpServer(UdpServer):
    """UdpServer with dnstap on: a front-dict hit records its query and reply as one pair;
    every other path is UdpServer's, with a transport whose sendto records the reply (with
    the query, when the reply goes out before the query's handler returns)."""

    def __init__(self, engine: Engine):
        super().__init__(engine)
        self.record = engine.tap.record
        self.sendto = None  # the real transport's, for the front hit

    def connection_made(self, transport):
        self.sendto = transport.sendto
        super().connection_made(TappedDatagramTransport(transport, self.engine.tap))

    def datagram_received(self, data: bytes, addr) -> None:
        hit = self.front.get(data[2:])
        if hit is not None:  # UdpServer's front hit, and the record
            entry = hit[1]
            entry.ref = True
            entry.hits += 1
            reply = data[:2] + hit[0]
            self.sendto(reply, addr)
            self.record(UDP_PAIR, (data, reply), addr)
            return
        transport = self.transport
        transport.query = data
        UdpServer.datagram_received(self, data, addr)
        if transport.query is not None:  # not answered yet (forwarded), or not at all
            transport.query = None
            self.record(UDP_QUERY, data, addr)


def udp_server_class(engine: Engine) -> type[UdpServer]:
    """The protocol class for the engine's config: with dnstap logging clients' messages,
    the tapped one."""
    return TappedUdpServer if engine.tap is not None and engine.tap.client_side else UdpServer
