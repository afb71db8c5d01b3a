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

# Record kinds: bit 0 response, bit 1 TCP, bit 2 our exchange with an upstream (forwarder).
UDP_QUERY, UDP_RESPONSE, TCP_QUERY, TCP_RESPONSE = 0, 1, 2, 3
FWD_UDP_QUERY, FWD_UDP_RESPONSE, FWD_TCP_QUERY, FWD_TCP_RESPONSE = 4, 5, 6, 7

# dnstap.Message.Type
AUTH_QUERY, AUTH_RESPONSE, CLIENT_QUERY, CLIENT_RESPONSE = 1, 2, 5, 6
FORWARDER_QUERY, FORWARDER_RESPONSE = 7, 8
TYPES = {"auth_query": AUTH_QUERY, "auth_response": AUTH_RESPONSE,
         "client_query": CLIENT_QUERY, "client_response": CLIENT_RESPONSE,
         "forwarder_query": FORWARDER_QUERY, "forwarder_response": FORWARDER_RESPONSE}
INET, INET6 = 1, 2  # SocketFamily
UDP, TCP = 1, 2  # SocketProtocol

_U32 = struct.Struct("!I")
# the nanoseconds (a fixed32 field: tag, little-endian value) and the message field's tag
_TAIL = struct.Struct("<BIB")
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


def _bytes_field(field: int, value: bytes) -> bytes:
    return varint(field << 3 | 2) + varint(len(value)) + value


def dnstap_identity(value: str, hostname=socket.gethostname) -> str:
    """[Log] dnstap-identity, the host name when empty (handed in by tests)."""
    return value or hostname()


def dnstap_version(value: str, version=package_version) -> str:
    return value or f"skydns {version()}"


def _address(ip: str) -> tuple[int, bytes]:
    """(SocketFamily, packed address) of an address as asyncio reports it."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
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
        # (type, kind, ip) -> type, family, protocol and address fields; bounded, whatever
        # the clients. Not per port: a resolver sends each query from another one.
        self._fixed: dict[tuple, bytes | None] = {}
        self._sec = -1
        self._sec_bytes = (b"", b"")  # the second's field: as response_time, as query_time
        # the dnstap type of each record kind when nothing is forwarded (0: not wanted)
        self._plain = [self.message_type(kind, b"", False) for kind in range(8)]

    def message_type(self, kind: int, wire: bytes, classify: bool = True) -> int:
        """The dnstap type of a record, 0 when that type is not wanted."""
        if kind & 4:
            mtype = FORWARDER_RESPONSE if kind & 1 else FORWARDER_QUERY
        elif classify and self.forwarded is not None and self.forwarded(wire):
            mtype = CLIENT_RESPONSE if kind & 1 else CLIENT_QUERY
        else:
            mtype = AUTH_RESPONSE if kind & 1 else AUTH_QUERY
        return mtype if mtype in self.types else 0

    def _fixed_part(self, kind: int, mtype: int, ip: str) -> bytes | None:
        try:
            family, packed = _address(ip)
        except ValueError:
            return None  # not an address (a unix socket?): nothing sensible to log
        head = bytes((0x08, mtype, 0x10, family, 0x18, TCP if kind & 2 else UDP))
        # our query to an upstream: its address and port are the response side, else the
        # client's are the query side and ours (self._server) the response side
        return head + (b"\x2a" if kind & 4 else b"\x22") + varint(len(packed)) + packed

    def encode(self, records) -> tuple[bytes, int]:
        """(data frames, how many) for `records`: (kind, wire, (ip, port, ...), time_ns)."""
        out: list[bytes] = []
        prefix = self.prefix + b"\x72"  # and the message field's tag
        plen = len(prefix)
        fixed = self._fixed
        plain = self._plain if self.forwarded is None else None
        u32 = _U32.pack
        tail = _TAIL.pack
        small = _SMALL
        count = 0
        server = self._server
        for kind, wire, addr, t_ns in records:
            mtype = plain[kind] if plain is not None else self.message_type(kind, wire)
            if not mtype:
                continue
            key = (mtype, kind, addr[0])
            pre = fixed.get(key)
            if pre is None:
                if len(fixed) > 10_000:
                    fixed.clear()
                pre = fixed[key] = self._fixed_part(kind, mtype, addr[0])
                if pre is None:
                    continue
            port = addr[1]
            if kind & 4:
                port = b"\x38" + (small[port] if port < 128 else varint(port))
            elif port >= 16384:  # most client ports: three bytes
                port = bytes((0x30, port & 0x7F | 0x80, port >> 7 & 0x7F | 0x80, port >> 14))
                port += server
            else:
                port = b"\x30" + varint(port) + server
            sec, nsec = divmod(t_ns, 1_000_000_000)
            if sec != self._sec:
                self._sec, self._sec_bytes = sec, (b"\x60" + varint(sec), b"\x40" + varint(sec))
            second = self._sec_bytes[(kind & 1) ^ 1]
            n = len(wire)
            size = small[n] if n < 128 else varint(n)
            body_len = len(pre) + len(port) + len(second) + 6 + len(size) + n
            body_size = small[body_len] if body_len < 128 else varint(body_len)
            out += (u32(plen + len(body_size) + body_len), prefix, body_size, pre, port, second,
                    tail(0x6D if kind & 1 else 0x4D, nsec, 0x72 if kind & 1 else 0x52), size,
                    wire)
            count += 1
        return b"".join(out), count
