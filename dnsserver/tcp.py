"""TCP transport: 2-byte length framing, pipelined queries, idle timeout (RFC 7766).

Against slow or hostile clients: the idle timer restarts only when a whole message has come
in (so it is also the deadline of each message: a byte at a time does not keep a connection),
reading stops while replies wait unsent past WRITE_HIGH bytes (a client that never reads
cannot grow us), a connection whose idle timer runs out twice with replies still unsent and
none of them taken since is aborted rather than left flushing, and ConnectionLimits caps
connections per client and in all.
"""

from __future__ import annotations

import asyncio
import logging
import struct

from skydns.connlimit import ConnectionLimits

from .engine import Engine
from .ratelog import RateLimitedLog
from .wire import question_key

log = logging.getLogger("skydns.tcp")
errors = RateLimitedLog(log)  # one bug hit by a flood must not write a traceback per packet

_MAX_PENDING = 64  # unanswered forwarded queries per connection before we stop reading
WRITE_HIGH = 64 * 1024  # unsent reply bytes per connection before we stop reading


class TcpConnection(asyncio.Protocol):
    def __init__(
        self, engine: Engine, idle_timeout: float, limits: ConnectionLimits | None = None
    ):
        self.engine = engine
        self.idle_timeout = idle_timeout
        self.limits = limits
        self.admitted = False
        self.write_paused = False
        self.buffer = bytearray()
        self.transport = None
        self.client = ""
        self.pending = 0
        self._idle = None
        self._unsent = None  # unsent reply bytes when the idle timer last ran out

    def connection_made(self, transport):
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.client = peer[0] if peer else ""
        if self.limits is not None:
            if not self.limits.admit(self.client):
                errors.warning("tcp connection refused: too many", {"client": self.client})
                transport.abort()
                return
            self.admitted = True
        transport.set_write_buffer_limits(high=WRITE_HIGH)
        self._arm()

    def _arm(self):
        if self._idle is not None:
            self._idle.cancel()
        self._idle = asyncio.get_running_loop().call_later(self.idle_timeout, self._expire)

    def _expire(self):
        if self.pending:
            self._arm()
            return
        unsent = self.transport.get_write_buffer_size()
        if not unsent:
            self.transport.close()
        elif self._unsent is None or unsent < self._unsent:
            self._unsent = unsent  # still draining (a long AXFR to a slow reader): wait on
            self._arm()
        else:
            self.transport.abort()  # close() would wait for a reader that does not read

    def connection_lost(self, exc):
        if self._idle is not None:
            self._idle.cancel()
        if self.admitted:
            self.admitted = False
            self.limits.release(self.client)

    def pause_writing(self) -> None:
        self.write_paused = True
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.write_paused or self.transport.is_closing():
            return
        if self.pending < _MAX_PENDING:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= 2:
            (length,) = struct.unpack_from("!H", self.buffer)
            if len(self.buffer) < 2 + length:
                break
            message = bytes(self.buffer[2 : 2 + length])
            del self.buffer[: 2 + length]
            if not length:
                continue  # nothing to answer; the messages after it still count
            self._arm()  # a whole message: the client gets another idle period
            self._handle(message)
            if self.transport.is_closing():
                break

    def _send(self, reply: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(struct.pack("!H", len(reply)) + reply)

    def _handle(self, data: bytes) -> None:
        engine = self.engine
        if engine.log_queries:
            engine.log_query(data, self.client, True)
        try:
            keyed = question_key(data, True, engine.max_udp)
            if keyed is not None:
                hit = engine.cache.hit(data, keyed, self.client, engine.allowed)
                if hit is not None:
                    self._send(data[:2] + hit[0])
                    return
            reply = engine.miss(data, self.client, True)
        except Exception:
            errors.exception("query failed", {"client": self.client})
            self.transport.close()
            return
        if reply is None:
            self.transport.close()  # nothing sensible to say to garbage on a stream
        elif isinstance(reply, bytes):
            self._send(reply)
        elif isinstance(reply, list):  # a zone transfer: several messages
            for message in reply:
                self._send(message)
        else:
            self.pending += 1
            if self.pending >= _MAX_PENDING:
                self.transport.pause_reading()
            asyncio.ensure_future(self._later(reply))

    async def _later(self, pending) -> None:
        try:
            reply = await pending
        except Exception:
            errors.exception("query failed", {"client": self.client})
            reply = None
        self.pending -= 1
        if isinstance(reply, list):  # a zone transfer built in steps
            for message in reply:
                self._send(message)
        elif reply is not None:
            self._send(reply)
        if self.write_paused or self.transport.is_closing():
            return
        if self.pending < _MAX_PENDING:
            self.transport.resume_reading()
