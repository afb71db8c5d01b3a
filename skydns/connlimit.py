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
"last active" stamp, and the scan for the idle-longest runs only when a cap is hit.
"""

from __future__ import annotations

import fcntl
import heapq
import struct
import termios
from collections.abc import Iterable


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

    def admit(self, client: str, conn: object) -> bool:
        """Register `conn` of `client`, closing an idle one if a cap is reached; False (and
        nothing registered) when it must be refused."""
        held = self.by_client.get(client)
        if self.per_client and held is not None and len(held) >= self.per_client:
            full = ((client, c) for c in list(held))
        elif self.total and self.open >= self.total:
            full = ((who, c) for who, conns in list(self.by_client.items()) for c in list(conns))
        else:
            full = None
        if full is not None and not self._evict(full):
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

    def _evict(self, candidates: Iterable[tuple[str, object]]) -> bool:
        """Close the candidate idle longest; False when all are busy. `idle_since` is the
        cheap test; `evict` may still decline (it asks the kernel whether a reply is
        still queued), and then the next idle-longest is tried."""
        idle = []
        for n, (client, conn) in enumerate(candidates):
            since = conn.idle_since()
            if since is not None:
                idle.append((since, n, client, conn))
        heapq.heapify(idle)
        while idle:
            _, _, client, victim = heapq.heappop(idle)
            if victim.evict():
                self.release(client, victim)
                self.evicted += 1
                return True
        return False
