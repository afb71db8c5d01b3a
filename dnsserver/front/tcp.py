"""TCP transport: 2-byte length framing, pipelined queries, idle timeout (RFC 7766).

Against slow or hostile clients: the idle timer restarts only when a whole message has come
in (so it is also the deadline of each message: a byte at a time does not keep a connection),
reading stops while replies wait unsent past WRITE_HIGH bytes (a client that never reads
cannot grow us), a connection whose idle timer runs out twice with replies still unsent and
none of them taken since is aborted rather than left flushing, and ConnectionLimits caps
connections per client and in all: at a cap the connection idle longest gives way to the new
one (RFC 7766 6.2.3), and only when every held one is busy is the new one refused. A zone
transfer (an async iterator from the engine) is written a message at a time, waiting while
the client has WRITE_HIGH bytes unread; stuck on a client that does not read, it meets the
same idle rule.

Cost per cached query (issue #17): one timer per connection whose deadline moves lazily (it is
re-armed only when it fires early; its deadline is also the "last active" stamp the caps
compare, so nothing more is done per query), the cache's `tcp_front` (query bytes after the
ID -> reply; its own dict, so a UDP reply, perhaps truncated, is never served over TCP nor a
TCP one over UDP: TCP entries are keyed and built with the TCP limit), and one write per
segment read, however many pipelined queries it held.
"""

from __future__ import annotations

import asyncio
import logging
import struct

from skydns.connlimit import ConnectionLimits, unacked_bytes

from ..engine import Engine
from ..wire.message import question_key
from . import tap
from .ratelog import RateLimitedLog

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
        self.buffer = bytearray()  # the start of a message not yet whole
        self.out: list | None = None  # replies gathered while a segment is answered
        # log_queries logs in _handle and dnstap hooks it and _send, so with either on every
        # query goes there
        plain = not engine.log_queries and engine.tap is None
        self.front = engine.cache.tcp_front if plain else None
        self.loop = None
        self.transport = None
        self.client = ""
        self.peer = None  # (ip, port, ...)
        self.pending = 0
        self._idle = None  # the one timer; it fires at or before _deadline
        self._deadline = 0.0
        self._unsent = None  # unsent reply bytes when the idle timer last ran out
        self.streaming = 0  # zone transfers being written (also counted in pending)
        self._writable = None  # a transfer waiting for the client to read
        if engine.tap is not None:
            tap.hook_tcp(engine.tap, self)

    def connection_made(self, transport):
        self.transport = transport
        peer = self.peer = transport.get_extra_info("peername")
        self.client = peer[0] if peer else ""
        if self.limits is not None:
            if not self.limits.admit(self.client, self):
                errors.warning("tcp connection refused: too many, none of them idle",
                               {"client": self.client})
                transport.abort()
                return
            self.admitted = True
        transport.set_write_buffer_limits(high=WRITE_HIGH)
        self.loop = asyncio.get_running_loop()
        self._arm()

    def _arm(self):
        """A new idle period from now. Messages only move _deadline; the timer catches up."""
        self._deadline = self.loop.time() + self.idle_timeout
        if self._idle is None:
            self._idle = self.loop.call_at(self._deadline, self._expire)

    def _expire(self):
        self._idle = None
        if self._deadline - self.loop.time() > 0.001:  # a message came in since: not idle yet
            self._idle = self.loop.call_at(self._deadline, self._expire)
            return
        # a transfer waiting on a client that does not read is judged like unsent replies
        if self.pending and not (self.streaming and self.write_paused):
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
        self._wake()
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self.admitted:
            self.admitted = False
            self.limits.release(self.client, self)

    def idle_since(self) -> float | None:
        """For ConnectionLimits: None while a query is in progress (forwarded, a transfer
        streaming) or a reply waits unsent here; else the stamp of the last whole message
        (its idle deadline: the same offset for every connection of the worker)."""
        if self.pending or self.transport.get_write_buffer_size():
            return None
        return self._deadline

    def evict(self) -> bool:
        """Closed to admit a new connection, unless the kernel still holds a reply for it
        (a client reading slowly is in the middle of a reply, not idle)."""
        if unacked_bytes(self.transport):
            return False
        self.transport.close()
        return True

    def pause_writing(self) -> None:
        self.write_paused = True
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake()
        if self.write_paused or self.transport.is_closing():
            return
        if self.pending < _MAX_PENDING:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        if buf:
            # Appended in place, and nothing else done until the message is whole: a client
            # sending a byte at a time must not make us copy the whole buffer per byte.
            buf += data
            if len(buf) < 2 or len(buf) < 2 + (buf[0] << 8 | buf[1]):
                return
            data = bytes(buf)
            self.buffer = bytearray()
        n = len(data)
        i = 0
        whole = False
        self.out = out = []
        front = self.front
        try:
            while n - i >= 2:
                end = i + 2 + (data[i] << 8 | data[i + 1])
                if end > n:
                    break
                start, i = i + 2, end
                if start == end:
                    continue  # nothing to answer; the messages after it still count
                whole = True
                if front is not None:
                    hit = front.get(data[start + 2 : end])
                    if hit is not None:
                        entry = hit[1]
                        entry.ref = True
                        entry.hits += 1
                        out.append(hit[2])  # the length prefix
                        out.append(data[start : start + 2])
                        out.append(hit[0])
                        continue
                self._handle(data[start:end])
                if self.transport.is_closing():
                    return
            if i < n:
                self.buffer = bytearray(data[i:])
        finally:
            self.out = None
            if out and not self.transport.is_closing():
                self.transport.write(b"".join(out))
        if whole:  # a whole message: the client gets another idle period
            self._deadline = self.loop.time() + self.idle_timeout

    def _send(self, reply: bytes) -> None:
        out = self.out
        if out is not None:
            out.append(struct.pack("!H", len(reply)))
            out.append(reply)
        elif not self.transport.is_closing():
            self.transport.write(struct.pack("!H", len(reply)) + reply)

    def _flush(self) -> None:
        """Write the replies gathered so far (before a close, which would drop them)."""
        out = self.out
        if out:
            self.transport.write(b"".join(out))
            out.clear()

    def _handle(self, data: bytes) -> None:
        engine = self.engine
        if engine.log_queries:
            engine.log_query(data, self.client, True)
        try:
            keyed = question_key(data, True, engine.max_udp)
            if keyed is not None:
                hit = engine.cache.hit(data, keyed, self.client, engine.allowed)
                if hit is not None:
                    tail, entry = hit
                    self._send(data[:2] + tail)
                    if self.front is not None and not entry.mode and (
                        not entry.expires or entry.renew
                    ):
                        engine.cache.add_front(data[2:], tail, entry, True)
                    return
            reply = engine.miss(data, self.client, True, keyed)
        except Exception:
            errors.exception("query failed", {"client": self.client})
            self._flush()
            self.transport.close()
            return
        if reply is None:
            self._flush()
            self.transport.close()  # nothing sensible to say to garbage on a stream
        elif isinstance(reply, bytes):
            self._send(reply)
        elif isinstance(reply, list):  # several messages
            for message in reply:
                self._send(message)
        elif hasattr(reply, "__anext__"):  # a zone transfer: messages as they are made
            self._flush()  # replies to earlier queries of the segment go first
            self.pending += 1
            self.streaming += 1
            asyncio.ensure_future(self._stream(reply))
        else:
            self.pending += 1
            if self.pending >= _MAX_PENDING:
                self.transport.pause_reading()
            asyncio.ensure_future(self._later(reply))

    async def _stream(self, messages) -> None:
        """Write a transfer's messages as the engine makes them, waiting while the client
        has not taken the ones written (past WRITE_HIGH): memory holds about a message and
        the write buffer, whatever the zone's size."""
        try:
            async for message in messages:
                if self.transport.is_closing():
                    break
                self.transport.write(struct.pack("!H", len(message)) + message)
                while self.write_paused and not self.transport.is_closing():
                    self._writable = self.loop.create_future()
                    await self._writable
        except Exception:
            errors.exception("zone transfer failed", {"client": self.client})
            self.transport.close()
        finally:
            await messages.aclose()
            self.pending -= 1
            self.streaming -= 1
        if self.write_paused or self.transport.is_closing():
            return
        if self.pending < _MAX_PENDING:
            self.transport.resume_reading()

    def _wake(self) -> None:
        waiter = self._writable
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._writable = None

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
