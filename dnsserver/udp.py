"""UDP transport. The hot path starts here: the front dict, else key the question and take the
cache's hit path (AnswerCache.hit, shared with TCP), else the engine's miss."""

from __future__ import annotations

import asyncio
import logging

from . import tap
from .engine import Engine
from .ratelog import RateLimitedLog
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
        if engine.tap is not None:  # dnstap: the same, hooks only when it is on (tap.py)
            tap.hook_udp(engine.tap, self)

    def connection_made(self, transport):
        if self.engine.tap is not None:  # dnstap: sendto records each response
            transport = tap.hook_udp_transport(self.engine.tap, transport)
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
