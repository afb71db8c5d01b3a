"""Connection caps: per client address and in all (per worker process for DNS over TCP).

Under pressure an idle connection gives way (RFC 7766 6.2.3, 6.1.2): at a cap, the held
connection idle longest (no query in progress, no reply being written) is closed to admit the
new one, so a client holding idle connections cannot lock out new queries, its own or
(with many addresses) everyone's. A new connection is refused only when every connection it
could replace is busy. At the per-client cap only that client's own connections can give
way; at the total cap, anyone's.

Bookkeeping, no sockets (but for `unacked_bytes`, which the transports' `evict` asks): a
connection is any object with `idle_since()` (None while busy, else when it last had work;
only compared with the others') and `evict()` (close it now and return True, or return False
if it finds itself busy after all). Nothing is tracked per query: the transport keeps its own
"last active" stamp, and the scan for the idle-longest runs only when a cap is hit (at the
total cap it keeps the next total/16 idle-longest for the newcomers that follow, so a flood
of connections costs a scan per 1/16 of the cap, not one per connection).
"""

from __future__ import annotations

import fcntl
import heapq
import struct
import termios


def unacked_bytes(transport) -> int:
    """Bytes the kernel holds for the peer, not yet acknowledged (SIOCOUTQ): beyond what an
    asyncio transport buffers, a big reply sits in the socket's send buffer while a slow
    client reads it, and that connection is in the middle of a reply, not idle."""
    sock = transport.get_extra_info("socket")
    try:
        return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]
    except (AttributeError, OSError, ValueError):
        return 0


class ConnectionLimits:
    def __init__(self, total: int, per_client: int):
        self.total = total  # 0: no cap
        self.per_client = per_client
        self.open = 0
        self.by_client: dict[str, dict[object, None]] = {}  # client -> its connections
        self.refused = 0
        self.evicted = 0
        self._victims: list = []  # (since, client, conn) kept by the last scan, oldest last

    def admit(self, client: str, conn: object) -> bool:
        """Register `conn` of `client`, closing an idle one if a cap is reached; False (and
        nothing registered) when it must be refused."""
        held = self.by_client.get(client)
        if self.per_client and held is not None and len(held) >= self.per_client:
            ok = self._evict({client: held})  # only its own connections give way
        elif self.total and self.open >= self.total:
            ok = self._next_victim() or self._evict(self.by_client, spare=self.total // 16)
        else:
            ok = True
        if not ok:
            self.refused += 1
            return False
        self.by_client.setdefault(client, {})[conn] = None
        self.open += 1
        return True

    def release(self, client: str, conn: object) -> None:
        """`conn` is gone (a no-op if it was evicted: it was released then)."""
        held = self.by_client.get(client)
        if held is None or conn not in held:
            return
        del held[conn]
        self.open -= 1
        if not held:
            del self.by_client[client]

    def _evict(self, among: dict[str, dict[object, None]], spare: int = 0) -> bool:
        """Close the connection idle longest among these; False when all are busy.
        `idle_since` is the cheap test; `evict` may still decline (it asks the kernel
        whether a reply is still queued), and then the next idle-longest is tried. With
        `spare`, the next idle-longest are kept for the admissions that follow (a flood at
        the total cap would otherwise scan every connection per new one)."""
        idle = []
        for client, conns in among.items():
            for conn in conns:
                since = conn.idle_since()
                if since is not None:
                    idle.append((since, len(idle), client, conn))
        oldest = heapq.nsmallest(spare + 1, idle) if spare else sorted(idle)
        for i, (_, _, client, conn) in enumerate(oldest):
            if conn.evict():
                self.release(client, conn)
                self.evicted += 1
                if spare:
                    self._victims = [(s, c, k) for s, _, c, k in reversed(oldest[i + 1:])]
                return True
        return False

    def _next_victim(self) -> bool:
        """Close the next of the kept idle-longest that is still held and idle since then
        (a connection that had work since has a newer stamp and is skipped)."""
        victims = self._victims
        while victims:
            since, client, conn = victims.pop()
            if conn in self.by_client.get(client, ()) and conn.idle_since() == since \
                    and conn.evict():
                self.release(client, conn)
                self.evicted += 1
                return True
        return False
