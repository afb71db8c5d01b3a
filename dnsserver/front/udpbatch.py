"""UDP in batches (Linux): up to 64 datagrams per recvmmsg, their replies in one sendmmsg.

What is left of a cached answer's cost after the front dict is one recvfrom and one sendto per
query through the event loop's callbacks; NSD and Knot read and write in batches, and so does
this transport. The event loop tells us the socket is readable (`add_reader`); each callback
reads at most `batches` batches and then returns, so TCP, etcd watches and timers get their
turn between them (the loop calls again while datagrams wait: it is level-triggered).

Per datagram the loop does what udp.py's `datagram_received` does: the front dict, else
`answer_slow` (the cache's hit path, the engine's miss). Replies are copied into the send
slots; replies that need the network (forwarding) are awaited and go out later with a plain
sendto. A send that would block keeps the rest of the batch and stops reading until the
socket is writable; other send errors drop the reply they hit (ENOBUFS: the rest of the
batch) and count it as `udp_dropped`. The event loop is never blocked.

Datagrams that come one at a time (a quiet server, or one query in flight) take a shorter
path: after a read that found one datagram alone, the next ones are read with libc's
recvfrom into slot 0 and a front hit is answered with sendto from the reply itself, until a
full read every LONE_CHECK-th time finds a burst. A lone query so makes the system calls
the event loop's transport makes, less the recvfrom that transport makes after each
datagram only to hear EAGAIN (bench/README.md, "UDP in batches").

Hooks that see every message ([Log] log-queries, dnstap) sit behind the one check per
datagram `_answer` made for log-queries alone before, so with both off nothing more is done
per query; dnstap gathers (query, reply) for the batch and records them at its end (`_tap`).
Replies that waited for the network go out through udp.py's handler, which has its own
hook (TappedUdpServer with dnstap on).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from ctypes import get_errno

from ..engine import Engine
from ..wire.dnstap import UDP_PAIR, UDP_QUERY
from . import mmsg
from .mmsg import DATAGRAM_MAX, HDR, IOV_LEN_AT, MSG_DONTWAIT, NAME_AT, NAME_SIZE, WOULD_BLOCK
from .udp import answer_slow, send_later, udp_server_class

log = logging.getLogger("skydns.udp")

SLOTS = 64  # datagrams per recvmmsg and replies per sendmmsg
BATCHES = 4  # recvmmsg calls per readiness callback, at most: then the loop runs other work
# After a read found one datagram alone, the next ones are read one by one with recvfrom and
# answered with sendto (libc's, into slot 0 and name 0): a recvmmsg looks for a second
# datagram before it returns, and a lone query's reply would wait for that; the slot copies
# and header writes are left out too. Every LONE_CHECK-th read is a full recvmmsg again, so
# that a burst is seen within LONE_CHECK datagrams.
LONE_CHECK = 8
_SENDERS_KEPT = 4096  # senders remembered as addresses (resolvers are few; floods start over)


def available() -> bool:
    return mmsg.available()


def bind(engine: Engine, host: str, port: int, family: int) -> BatchUdp:
    """A UDP socket on host:port shared by the workers (SO_REUSEPORT), read in batches."""
    addr = socket.getaddrinfo(host, port, family, socket.SOCK_DGRAM)[0][4]
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(addr)
        return BatchUdp(sock, engine)
    except BaseException:
        sock.close()
        raise


class BatchUdp:
    """The batch transport on one bound UDP socket (which it then owns).

    `recvmmsg`/`sendmmsg` are libc's unless a test hands in its own (the signature of mmsg's
    wrappers: fd, headers, count -> count or -errno)."""

    def __init__(self, sock: socket.socket, engine: Engine, *, slots: int = SLOTS,
                 batches: int = BATCHES, recvmmsg=None, sendmmsg=None):
        sock.setblocking(False)
        self.sock = sock
        self.fd = sock.fileno()
        self.engine = engine
        self.front = engine.cache.front  # never rebound: the cache clears it in place
        self.slots = mmsg.Slots(slots, sock.family)
        self.batches = batches
        libc_recv, libc_send = mmsg.libc_calls()
        self._recv = mmsg.like_libc(recvmmsg) if recvmmsg else libc_recv
        self._send = mmsg.like_libc(sendmmsg) if sendmmsg else libc_send
        self._moved: list[int] = []  # send slots whose msg_name points at another slot's name
        self._waiting: tuple[int, int] | None = None  # send slots kept until writable
        self._closed = False
        tap = engine.tap  # dnstap (tap.py): a query and its reply make one record
        self.record = tap.record if tap is not None and tap.client_side else None
        self.hooked = engine.log_queries or self.record is not None
        # replies that waited for the network go out through today's handler (udp.py), with
        # its dnstap hook, this as its transport (`sendto`)
        self._handler = udp_server_class(engine)(engine)
        self._handler.connection_made(self)
        self._quiet = 0  # datagrams read alone since the last full read (mod LONE_CHECK)
        self._senders: dict[bytes, tuple] = {}  # sockaddr bytes -> address (see _addr)
        self._recvfrom, self._sendto = mmsg.libc_single(errno=False)
        self._recvfrom_why, self._sendto_why = mmsg.libc_single()  # after a failure
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(self.fd, self._readable)

    # -- reading ------------------------------------------------------------------------------

    def _readable(self) -> None:
        slots = self.slots
        fd = self.fd
        quiet = self._quiet
        if quiet:  # the last read found one datagram alone: read one (see LONE_CHECK)
            recv0, name0 = slots.recv0, slots.name0
            n = self._recvfrom(fd, recv0, DATAGRAM_MAX, MSG_DONTWAIT, name0, slots.namelen_ref)
            if n < 0:  # again through the errno-keeping recvfrom, to learn why
                n = self._recvfrom_why(fd, recv0, DATAGRAM_MAX, MSG_DONTWAIT, name0,
                                       slots.namelen_ref)
                if n < 0:
                    if (err := get_errno()) not in WOULD_BLOCK:
                        log.debug("udp receive error", extra={"kv": {"errno": err}})
                    return
            recv = slots.recv
            hit = self.front.get(recv[2:n])
            if hit is None or self.hooked:
                self._one(recv[:n], hit)
            else:
                reply = recv[:2] + hit[0]
                size, namelen = len(reply), slots.namelen
                if (self._sendto(fd, reply, size, MSG_DONTWAIT, name0, namelen) < 0
                        and self._sendto_why(fd, reply, size, MSG_DONTWAIT, name0, namelen) < 0):
                    self._send_one(reply, get_errno())
                entry = hit[1]  # the bookkeeping after the reply is out
                entry.ref = True
                entry.hits += 1
            self._quiet = (quiet + 1) % LONE_CHECK
            return
        hdrs, count = slots.recv_hdrs, slots.count
        n = self._recv(fd, hdrs, count, MSG_DONTWAIT, None)
        if n == 1:
            self._quiet = 1  # one alone: read the next ones one by one
        batches = self.batches
        while n > 0:
            sent = self._answer(n)
            if sent and not self._flush(0, sent):
                return  # the socket is full: reading resumes once it drained (_writable)
            batches -= 1
            if n < count or not batches:
                # drained (no need for a recvmmsg that would only say EAGAIN), or this
                # callback's share is done: the loop calls again while datagrams wait
                return
            n = self._recv(fd, hdrs, count, MSG_DONTWAIT, None)
        if n < 0 and (err := get_errno()) not in WOULD_BLOCK:
            log.debug("udp receive error", extra={"kv": {"errno": err}})

    def _one(self, data: bytes, hit) -> None:
        """The rest of a datagram read alone: a front hit with hooks on, or not a front hit.
        The steps of _answer for one, its reply sent from slot 0 to name 0."""
        if hit is not None:
            entry = hit[1]
            entry.ref = True
            entry.hits += 1
            reply = data[:2] + hit[0]
        else:
            reply = self._slow(data, 0)
        if self.hooked:
            if self.record is not None:
                self._tap([(0, data, reply)])
            if self.engine.log_queries:
                self.engine.log_query(data, self._addr(0)[0], False)
        if reply is not None:
            self._send_one(reply)

    def _send_one(self, reply: bytes, err: int | None = None) -> None:
        """Send `reply` from slot 0 to name 0 as _flush does, or after a sendto of it failed
        with `err`: tried again once the socket is writable, or dropped and counted."""
        slots = self.slots
        size = len(reply)
        slots.send[:size] = reply
        slots.send_iov_quads[IOV_LEN_AT] = size
        if err is None or err in WOULD_BLOCK:
            self._flush(0, 1)
        else:
            self._failed(err, 0, 1)

    def _answer(self, n: int) -> int:
        """Answer datagrams 0..n-1 into the send slots; how many replies were queued."""
        slots = self.slots
        recv, lengths, recv_at = slots.recv, slots.recv_words, slots.recv_at
        send, send_lengths, send_at = slots.send, slots.send_iov_quads, slots.send_at
        front_get = self.front.get
        hooked = self.hooked
        tapped = [] if self.record is not None else None  # (j, query, reply) for dnstap
        k = 0
        for j in range(n):
            at, length = recv_at[j]
            data = recv[at : at + lengths[length]]
            hit = front_get(data[2:])
            if hit is not None:
                entry = hit[1]
                entry.ref = True
                entry.hits += 1
                reply = data[:2] + hit[0]
            else:
                reply = self._slow(data, j)
            if hooked:  # log-queries or dnstap: the one check per datagram either costs
                if tapped is not None:
                    tapped.append((j, data, reply))
                if self.engine.log_queries:
                    self.engine.log_query(data, self._addr(j)[0], False)
            if reply is None:
                continue
            # The one place a batch reply is handed to the sender: send slot k, to the sender
            # of datagram j.
            at, length = send_at[k]
            size = len(reply)
            send[at : at + size] = reply
            send_lengths[length] = size
            if k != j:  # an earlier datagram got no reply now: point slot k at name j
                slots.send_quads[k * _QUADS + NAME_AT] = slots.name_addrs[j]
                self._moved.append(k)
            k += 1
        if tapped:
            self._tap(tapped)
        return k

    def _tap(self, tapped: list) -> None:
        """dnstap records for a batch: each query with its reply (None: none now; forwarded
        ones are recorded in _send_late), the sender as the kernel wrote it, one clock
        reading for the batch (its datagrams came in together)."""
        names, namelen, now = self.slots.names, self.slots.namelen, time.time()
        records = []
        for j, data, reply in tapped:
            at = j * NAME_SIZE
            name = names[at : at + namelen].tobytes()
            if reply is None:
                records.append((UDP_QUERY, data, name, now))
            else:
                records.append((UDP_PAIR, (data, reply), name, now))
        self.engine.tap.extend(records)

    def _addr(self, j: int) -> tuple:
        """The sender of datagram j as the event loop gives one. Every miss asks (the engine
        takes the client's address), and making the tuple costs several times a dict lookup,
        so senders seen lately are remembered by their sockaddr bytes."""
        at = j * NAME_SIZE
        raw = self.slots.names[at : at + self.slots.namelen].tobytes()
        addr = self._senders.get(raw)
        if addr is None:
            addr = mmsg.sockaddr_to_addr(raw)
            if len(self._senders) >= _SENDERS_KEPT:  # spoofed sources: start over
                self._senders.clear()
            self._senders[raw] = addr
        return addr

    def _slow(self, data: bytes, j: int) -> bytes | None:
        addr = self._addr(j)
        reply = answer_slow(self.engine, data, addr)
        if reply is None or isinstance(reply, bytes):
            return reply
        asyncio.ensure_future(send_later(reply, addr, self._handler._send_late))
        return None

    # -- writing ------------------------------------------------------------------------------

    def _flush(self, start: int, end: int) -> bool:
        """Send slots start..end-1; False when the socket is full and the rest waits."""
        slots = self.slots
        while start < end:
            sent = self._send(self.fd, slots.send_from[start], end - start, MSG_DONTWAIT)
            if sent > 0:
                start += sent
                continue
            start = self._failed(get_errno() if sent < 0 else 0, start, end)
            if start is None:
                return False
        if self._moved:
            quads, addrs = slots.send_quads, slots.name_addrs
            for k in self._moved:
                quads[k * _QUADS + NAME_AT] = addrs[k]
            self._moved.clear()
        return True

    def _failed(self, err: int, start: int, end: int) -> int | None:
        """Sending slots start..end-1 failed with `err`: the slot to go on from, or None when
        the socket is full and the rest waits until it is writable."""
        if err in WOULD_BLOCK:
            self._wait_writable(start, end)
            return None
        # ENOBUFS (no memory for packets now): the rest of the batch; anything else (an
        # address the kernel refuses, say) is about this one reply only.
        dropped = end - start if err == errno.ENOBUFS else 1
        self._dropped(dropped, err)
        return start + dropped

    def _wait_writable(self, start: int, end: int) -> None:
        self._waiting = (start, end)
        self.loop.remove_reader(self.fd)  # the slots hold the rest: no new batch overwrites it
        self.loop.add_writer(self.fd, self._writable)

    def _writable(self) -> None:
        start, end = self._waiting
        self._waiting = None
        self.loop.remove_writer(self.fd)
        if self._flush(start, end) and not self._closed:
            self.loop.add_reader(self.fd, self._readable)

    def sendto(self, reply: bytes, addr) -> None:
        """The handler's transport (udp.py's UdpServer): a reply that waited for the network,
        dropped and counted if the socket is full."""
        try:
            self.sock.sendto(reply, addr)
        except OSError as err:
            self._dropped(1, err.errno or 0)

    def _dropped(self, count: int, err: int) -> None:
        self.engine.stats["udp_dropped"] += count
        log.debug("udp replies dropped", extra={"kv": {"count": count, "errno": err}})

    # -- the transport's interface to the server ----------------------------------------------

    def is_closing(self) -> bool:
        return self._closed

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.loop.remove_reader(self.fd)
        self.loop.remove_writer(self.fd)
        self.sock.close()


_QUADS = HDR // 8  # uint64 words per mmsghdr
