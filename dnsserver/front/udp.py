"""UDP transport. The hot path starts here: the front dict, else key the question and take the
cache's hit path (AnswerCache.hit, shared with TCP), else the engine's miss.

This is the event loop's own transport (a DatagramProtocol): one recvfrom and one sendto per
query. On Linux `udpbatch.py` reads and writes datagrams in batches instead and shares
everything after the front with this one (`answer_slow`, `send_later`).

With dnstap on (tap.py) the server is a TappedUdpServer instead, chosen once at start-up
(udp_server_class), so that UdpServer has no hook to check per query."""

from __future__ import annotations

import asyncio
import logging

from ..engine import Engine
from ..wire.dnstap import UDP_PAIR, UDP_QUERY, UDP_RESPONSE
from ..wire.message import question_key
from .ratelog import RateLimitedLog

log = logging.getLogger("skydns.udp")
errors = RateLimitedLog(log)  # one bug hit by a flood must not write a traceback per packet


def answer_slow(engine: Engine, data: bytes, addr):
    """Everything after the front: the cache's hit path (putting the reply into the front when
    it may be), else the engine's miss. Reply bytes, None (stay silent) or an awaitable
    (forwarding: see send_later)."""
    try:
        keyed = question_key(data, False, engine.max_udp)
        if keyed is not None:
            hit = engine.cache.hit(data, keyed, addr[0], engine.allowed)
            if hit is not None:
                tail, entry = hit
                if not entry.mode and (not entry.expires or entry.renew):
                    engine.cache.add_front(data[2:], tail, entry)
                return data[:2] + tail
        return engine.miss(data, addr[0], False, keyed)
    except Exception:  # one bad packet must never take the worker down
        errors.exception("query failed", {"client": addr[0]})
        return None


async def send_later(pending, addr, send) -> None:
    """Await a reply that needs the network and hand it to `send(reply, addr)`."""
    try:
        reply = await pending
    except Exception:
        errors.exception("query failed", {"client": addr[0]})
        return
    if reply is not None:
        send(reply, addr)


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
        reply = answer_slow(self.engine, data, addr)
        if reply is None:
            return
        if isinstance(reply, bytes):
            self.transport.sendto(reply, addr)
        else:
            asyncio.ensure_future(send_later(reply, addr, self._send_late))

    def _send_late(self, reply: bytes, addr) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply, addr)

    def error_received(self, exc) -> None:  # ICMP unreachable from a departed client
        log.debug("udp error", extra={"kv": {"error": repr(exc)}})


class TappedUdpServer(UdpServer):
    """UdpServer with dnstap on: each query is recorded with the reply sent before its
    handler returns (every cached or built one) as one pair; a query answered later
    (forwarded), or not at all, alone, and such a reply alone when it goes out."""

    def __init__(self, engine: Engine):
        super().__init__(engine)
        self.record = engine.tap.record

    def datagram_received(self, data: bytes, addr) -> None:
        hit = self.front.get(data[2:])
        if hit is not None:  # UdpServer's front hit, and the record
            entry = hit[1]
            entry.ref = True
            entry.hits += 1
            reply = data[:2] + hit[0]
            self.transport.sendto(reply, addr)
            self.record(UDP_PAIR, (data, reply), addr)
            return
        reply = answer_slow(self.engine, data, addr)
        if isinstance(reply, bytes):
            self.transport.sendto(reply, addr)
            self.record(UDP_PAIR, (data, reply), addr)
            return
        self.record(UDP_QUERY, data, addr)
        if reply is not None:
            asyncio.ensure_future(send_later(reply, addr, self._send_late))

    def _send_late(self, reply: bytes, addr) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply, addr)
            self.record(UDP_RESPONSE, reply, addr)


def udp_server_class(engine: Engine) -> type[UdpServer]:
    """The protocol class for the engine's config: with dnstap logging clients' messages,
    the tapped one."""
    return TappedUdpServer if engine.tap is not None and engine.tap.client_side else UdpServer
