"""The zone as it is answered, as presentation rows: what `skydns dump` prints and the PowerDNS
backend's `list` sends, read from the zone transfer's record stream (transfer.py).

served.py's `served_rrs` says which records those are, but asks `answer()` every question of
every name (about a millisecond a record: a quarter of an hour for a million) and builds one
list. transfer.py's `Snapshot.records` yields the same records in the same order as
uncompressed wire bytes, fast and with pause points; this module turns those bytes back into
rows (owner, type, TTL, data as zone-file text), and the dnslib RR where one was parsed.

Decoding: the records the fast transfer path writes (A, AAAA, SRV) and the name-only types
(CNAME, PTR, NS, MX) are read here directly, spelled as dnslib spells them (`str(rr.rname)`,
`rr.rdata.toZone()`); every other type (SOA, TXT, ...) goes through dnslib's `RR.parse`.
dnslib's parse and text cost about twelve times as much per record (24 against 2 µs on
120,000 address and SRV records), which matters for the bulk of a big zone, addresses.
tests/test_zonerows.py proves the rows equal the RRs of `served_rrs`. Pure: no sockets, no
asyncio.
"""

from __future__ import annotations

import socket
import struct
from typing import NamedTuple

from dnslib import RR, DNSBuffer
from dnslib.dns import _format_ipv6

from skydns.keys import Path

from .transfer import PAUSE, Snapshot, soa_wire

T_A, T_NS, T_CNAME, T_PTR, T_MX, T_AAAA, T_SRV = 1, 2, 5, 12, 15, 28, 33
_HEAD = struct.Struct(">HHIH")  # type, class, TTL, RDLENGTH
_SRV = struct.Struct(">HHH")
_NAMED = frozenset((T_NS, T_CNAME, T_PTR))
# The octets dnslib writes as they are in a name (its `LDH`: printable ASCII but space);
# others become \DDD.
_PLAIN_OCTETS = bytes(range(0x21, 0x7F))


class Row(NamedTuple):
    name: str  # as dnslib writes it: `str(rr.rname)`
    rtype: int
    ttl: int
    data: str  # `rr.rdata.toZone()`
    rr: RR | None  # the parsed record when dnslib read it (SOA, TXT and rarer types)


def _label_text(label: bytes) -> str:
    if not label.translate(None, _PLAIN_OCTETS):
        return label.decode()
    return "".join(chr(c) if 0x21 <= c < 0x7F else f"\\{c:03d}" for c in label)


def name_text(wire, i: int) -> tuple[str, int]:
    """(the name at `wire[i:]` as dnslib writes it, the offset after it); uncompressed."""
    labels = []
    n = wire[i]
    while n:
        labels.append(_label_text(bytes(wire[i + 1 : i + 1 + n])))
        i += n + 1
        n = wire[i]
    return ".".join(labels) + ".", i + 1


class _Names:
    """Names as text, reusing the last owner and parent read: a name's SRV targets are
    mostly its children or itself, and consecutive names mostly siblings."""

    __slots__ = ("parent_raw", "parent")

    def __init__(self):
        self.parent_raw = b""
        self.parent = ""

    def owner(self, wire, i: int, end: int) -> str:
        n = wire[i]
        if not n:
            return "."
        parent_raw = bytes(wire[i + 1 + n : end])
        if parent_raw != self.parent_raw:
            self.parent = name_text(wire, i + 1 + n)[0]
            self.parent_raw = parent_raw
        label = _label_text(bytes(wire[i + 1 : i + 1 + n]))
        return label + "." + self.parent if self.parent != "." else label + "."


def _target(wire, i: int, owner_raw: bytes, owner: str) -> str:
    """The name at `wire[i:]` (an SRV/MX/CNAME target) as text."""
    size = len(owner_raw)
    if wire[i : i + size] == owner_raw:
        return owner
    n = wire[i]
    j = i + 1 + n
    if n and wire[j : j + size] == owner_raw:  # a child of the owner
        return _label_text(bytes(wire[i + 1 : j])) + "." + owner
    return name_text(wire, i)[0]


def rows_of(wire, count: int, names: _Names | None = None) -> list[Row]:
    """The rows of `count` records of uncompressed record bytes (one piece of the stream);
    `names`: kept from the previous piece to reuse its parent name."""
    out: list[Row] = []
    head = _HEAD.unpack_from
    names = names or _Names()
    i = 0
    owner_raw = b""
    owner = ""
    for _ in range(count):
        start = i
        while wire[i]:
            i += wire[i] + 1
        i += 1
        if wire[start:i] != owner_raw:  # the records of one name share it: read it once
            owner_raw = bytes(wire[start:i])
            owner = names.owner(wire, start, i)
        rtype, _, ttl, length = head(wire, i)
        i += 10
        end = i + length
        if rtype == T_A:
            data = socket.inet_ntop(socket.AF_INET, bytes(wire[i:end]))
        elif rtype == T_AAAA:
            data = _format_ipv6(bytes(wire[i:end]))
        elif rtype == T_SRV:
            priority, weight, port = _SRV.unpack_from(wire, i)
            data = f"{priority} {weight} {port} {_target(wire, i + 6, owner_raw, owner)}"
        elif rtype in _NAMED:
            data = _target(wire, i, owner_raw, owner)
        elif rtype == T_MX:
            data = f"{wire[i] << 8 | wire[i + 1]} {_target(wire, i + 2, owner_raw, owner)}"
        else:
            rr = RR.parse(DNSBuffer(bytes(wire[start:end])))
            out.append(Row(owner, rtype, ttl, rr.rdata.toZone(), rr))
            i = end
            continue
        out.append(Row(owner, rtype, ttl, data, None))
        i = end
    return out


def served_rows(snapshot: Snapshot, zone_path: Path):
    """The zone's rows in transfer order (SOA first, once), as lists of rows, with PAUSE
    where the caller may let other work run: `served_rrs`'s records, as an AXFR costs."""
    names = _Names()
    for piece in snapshot.records(zone_path, soa_wire(snapshot.state, zone_path)):
        if piece is PAUSE:
            yield PAUSE
        else:
            wire, count = piece
            yield rows_of(wire, count, names)
