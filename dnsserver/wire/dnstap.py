"""dnstap messages (https://dnstap.info, dnstap.proto), encoded by hand: pure, no sockets.

The transports hand tap.py one tuple per message as it goes by, `(kind, wire, addr, t_ns)`;
`Encoder.encode` turns a batch of them into Frame Streams data frames later, off the query's
path. Everything that does not change between messages (identity, version, the outer type,
the server's address, the tag bytes) is encoded once; per message only the varying fields
(type, address, port, time, the DNS message) are written.

Why not `dnstap-pb` (generated protobuf classes): building and serialising a message object
costs about as much as answering a cached query, twice per query (query and response). The
handful of fields is a few varints and length-prefixed strings. tests/test_dnstap.py decodes
our output with dnstap-pb and `dnstap-read`, so the schema is checked against both.
"""

from __future__ import annotations

import ipaddress
import socket
import struct

from skydns.metrics import package_version

# Record kinds: bit 0 response, bit 1 TCP, bit 2 our exchange with an upstream (forwarder),
# bit 3 a query and its response in one record (wire: (query, response)), which is what the
# transports record for an answer sent before the query's handler returned (every cached and
# built answer): one record, one address lookup and one clock reading for both messages.
UDP_QUERY, UDP_RESPONSE, TCP_QUERY, TCP_RESPONSE = 0, 1, 2, 3
FWD_UDP_QUERY, FWD_UDP_RESPONSE, FWD_TCP_QUERY, FWD_TCP_RESPONSE = 4, 5, 6, 7
UDP_PAIR, TCP_PAIR = 8, 10

# dnstap.Message.Type
AUTH_QUERY, AUTH_RESPONSE, CLIENT_QUERY, CLIENT_RESPONSE = 1, 2, 5, 6
FORWARDER_QUERY, FORWARDER_RESPONSE = 7, 8
TYPES = {"auth_query": AUTH_QUERY, "auth_response": AUTH_RESPONSE,
         "client_query": CLIENT_QUERY, "client_response": CLIENT_RESPONSE,
         "forwarder_query": FORWARDER_QUERY, "forwarder_response": FORWARDER_RESPONSE}
INET, INET6 = 1, 2  # SocketFamily
UDP, TCP = 1, 2  # SocketProtocol

_U32 = struct.Struct("!I")
_SMALL = [bytes((n,)) for n in range(128)]


def varint(n: int) -> bytes:
    if n < 0x80:
        return _SMALL[n]
    if n < 0x4000:
        return bytes((n & 0x7F | 0x80, n >> 7))
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


MEMO_SECONDS = 30
_SIZES = [varint(n) for n in range(4096)]  # the length of any usual DNS message, ready


def _bytes_field(field: int, value: bytes) -> bytes:
    return varint(field << 3 | 2) + varint(len(value)) + value


def dnstap_identity(value: str, hostname=socket.gethostname) -> str:
    """[Log] dnstap-identity, the host name when empty (handed in by tests)."""
    return value or hostname()


def dnstap_version(value: str, version=package_version) -> str:
    return value or f"skydns {version()}"


def _address(ip: str | bytes) -> tuple[int, bytes]:
    """(SocketFamily, packed address) of an address as asyncio reports it, or packed."""
    addr = ipaddress.ip_address(ip if ip.__class__ is bytes else ip.split("%", 1)[0])
    if addr.version == 6 and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return (INET6 if addr.version == 6 else INET), addr.packed


class Encoder:
    """Frames for batches of message tuples, for one identity, version and set of types.

    `server`: the address we answer on (the response_address of client-side messages; left
    out when it is a wildcard). `forwarded(wire)`: whether a client's query (or our response
    to it) is for a name we forward, making it a CLIENT_* message rather than AUTH_*; None
    when nothing is forwarded.
    """

    def __init__(self, identity: str, version: str, types, server=None, forwarded=None):
        self.prefix = (_bytes_field(1, identity.encode()) + _bytes_field(2, version.encode())
                       + b"\x78\x01")  # type = MESSAGE
        self.types = {TYPES[t] if isinstance(t, str) else t for t in types}
        self.forwarded = forwarded
        self._server = b""
        if server is not None:
            host, port = server[0], server[1]
            try:
                if not ipaddress.ip_address(host).is_unspecified:
                    self._server = _bytes_field(5, _address(host)[1]) + b"\x38" + varint(port)
            except ValueError:
                pass
        self._prefix = self.prefix + b"\x72"  # and the Message field's tag
        # Caches, each bounded whatever the clients do (cleared when full):
        # ip -> [forwarded][kind] -> type, family, protocol and address fields (None: a type
        # not wanted); not per port, as a resolver sends each query from another one
        self._by_ip: dict[str, list | None] = {}
        self._ports: dict[int, bytes] = {}  # a client's port -> its field and ours
        self._heads: dict[int, bytes] = {}  # Message length -> what precedes the Message
        self._sec = -1  # the second the time parts below are for (_new_second)
        self._secv, self._times, self._tlen = b"", None, 0
        # question name (wire, lower-cased) -> forwarded(); emptied every MEMO_SECONDS, as
        # reverse names become ours when records appear under /skydns/arpa
        self._forwarded_memo: dict[bytes, bool] = {}
        self._memo_since = 0
        # the dnstap type of each record kind (0: not wanted), [forwarded name][kind]
        self._types = [[self.message_type(kind, fwd) for kind in range(8)]
                       for fwd in (False, True)]

    def message_type(self, kind: int, forwarded: bool) -> int:
        """The dnstap type of a one-message record kind, 0 when that type is not wanted."""
        if kind & 4:
            mtype = FORWARDER_RESPONSE if kind & 1 else FORWARDER_QUERY
        elif forwarded:
            mtype = CLIENT_RESPONSE if kind & 1 else CLIENT_QUERY
        else:
            mtype = AUTH_RESPONSE if kind & 1 else AUTH_QUERY
        return mtype if mtype in self.types else 0

    def _fixed_parts(self, ip: str) -> list | None:
        """[forwarded][kind] -> the fields of a message that depend on its type and the
        address only (None where the type is not wanted); None for a non-address."""
        try:
            family, packed = _address(ip)
        except ValueError:
            return None  # not an address (a unix socket?): nothing sensible to log
        field = varint(len(packed)) + packed
        out = []
        for fwd in (0, 1):
            row = []
            for kind in range(8):
                mtype = self._types[fwd][kind]
                if not mtype:
                    row.append(None)
                    continue
                # our query to an upstream: the upstream is the response side, else the
                # client is the query side and we (self._server, with the port) the response
                row.append(bytes((0x08, mtype, 0x10, family, 0x18, TCP if kind & 2 else UDP))
                           + (b"\x2a" if kind & 4 else b"\x22") + field)
            out.append(row)
        return out

    def _is_forwarded(self, query: bytes) -> bool:
        """self.forwarded(query), remembered per question name."""
        i, n = 12, len(query)
        while i < n and query[i]:
            i += query[i] + 1
        name = query[12:i].lower()
        memo = self._forwarded_memo
        known = memo.get(name)
        if known is None:
            if len(memo) > 10_000:
                memo.clear()
            known = memo[name] = bool(self.forwarded(query))
        return known

    def _port(self, port: int) -> bytes:
        """A client's query_port field and ours (the response side)."""
        ports = self._ports
        if len(ports) > 20_000:
            ports.clear()
        out = ports[port] = b"\x30" + varint(port) + self._server
        return out

    def _head(self, body_len: int) -> bytes:
        """The frame's length, identity, version, type and the Message field's tag and size."""
        heads = self._heads
        if len(heads) > 20_000:
            heads.clear()
        size = varint(body_len)
        out = heads[body_len] = (_U32.pack(len(self._prefix) + len(size) + body_len)
                                 + self._prefix + size)
        return out

    def encode(self, records) -> tuple[bytes, int]:
        """(data frames, how many) for `records`: (kind, wire, address, unix time), the
        address as asyncio gives it, (ip, port, ...), or a sockaddr_in/_in6's bytes.

        The hottest loop of dnstap: a pair's two messages are written out one after the
        other rather than through an inner loop, and a message's time (the second's varint,
        the nanoseconds) and its DNS message's tag are one struct.pack."""
        out: list[bytes] = []
        by_ip, ports, heads = self._by_ip, self._ports, self._heads
        forwarded = self.forwarded
        sizes = _SIZES
        count = 0
        for kind, wire, addr, t in records:
            sec = int(t)
            if sec != self._sec:
                self._new_second(sec)
            secv, times, tlen = self._secv, self._times, self._tlen
            if addr.__class__ is bytes:  # a sockaddr as the kernel wrote it (udpbatch.py)
                ip = addr[8:24] if len(addr) >= 24 else addr[4:8]
                port = addr[2] << 8 | addr[3]
            else:
                ip, port = addr[0], addr[1]
            fixed = by_ip.get(ip)
            if fixed is None:
                if len(by_ip) > 10_000:
                    by_ip.clear()
                fixed = by_ip[ip] = self._fixed_parts(ip)
                if fixed is None:
                    continue
            query = wire[0] if kind & 8 else wire
            fixed = fixed[forwarded is not None and not kind & 4 and self._is_forwarded(query)]
            if kind & 4:  # our exchange with an upstream: its port is the response side's
                port = b"\x38" + varint(port)
            else:
                port = ports.get(port) or self._port(port)
            nsec = int((t - sec) * 1e9)
            if kind & 8:  # a query, then its reply
                pre = fixed[kind & 2]
                if pre is not None:
                    n = len(query)
                    size = sizes[n] if n < 4096 else varint(n)
                    body_len = len(pre) + len(port) + tlen + len(size) + n
                    out += (heads.get(body_len) or self._head(body_len), pre, port,
                            times(0x40, secv, 0x4D, nsec, 0x52), size, query)
                    count += 1
                kind, wire = kind & 2 | 1, wire[1]
            pre = fixed[kind & 7]
            if pre is not None:
                n = len(wire)
                size = sizes[n] if n < 4096 else varint(n)
                body_len = len(pre) + len(port) + tlen + len(size) + n
                out += (heads.get(body_len) or self._head(body_len), pre, port,
                        times(0x60, secv, 0x6D, nsec, 0x72) if kind & 1
                        else times(0x40, secv, 0x4D, nsec, 0x52), size, wire)
                count += 1
        return b"".join(out), count

    def _new_second(self, sec: int) -> None:
        """The time fields' parts for a new second (and the forwarded memo's age)."""
        self._sec, self._secv = sec, varint(sec)
        # query_time_sec or response_time_sec (tag, varint), the nanoseconds (tag, fixed32),
        # and the tag of the DNS message that follows
        layout = struct.Struct(f"<B{len(self._secv)}sBIB")
        self._times, self._tlen = layout.pack, layout.size
        if sec - self._memo_since >= MEMO_SECONDS:
            self._forwarded_memo.clear()
            self._memo_since = sec
