"""The zone as it is answered, as presentation rows: what `skydns dump` prints and the PowerDNS
backend's `list` sends, read from the zone transfer's record stream (transfer.py).

served.py says which records those are (the rules' answers at every name); transfer.py's
`Snapshot.records` yields them as uncompressed wire bytes, with pause points and kept per name
between listings; this module turns those bytes back into rows (owner, type, TTL, data as
zone-file text). `plain_rows` does the same for any records in the rules' form (the PowerDNS
`lookup`).

Decoding: every type the rules produce (A, AAAA, SRV, CNAME, PTR, NS, MX, TXT, SOA) is read
here from the bytes, spelled as dnslib spells it (`str(rr.rname)`, `rr.rdata.toZone()`: the
tests and PowerDNS expect that spelling); any other type is written in RFC 3597's generic form
(`\\# len hex`, dnslib's spelling for types it does not know). dnslib is used for one thing:
its IPv6 spelling (`_format_ipv6`, which differs from inet_ntop's for some addresses, e.g.
v4-mapped ones), so the text stays what it always was. A TXT row keeps its RDATA (`raw`): the
PowerDNS backend quotes the strings its own way. tests/test_zonerows.py checks the rows
against dnspython's reading of the same zone and against expected text. Pure: no sockets, no
asyncio.
"""

from __future__ import annotations

import functools
import socket
import struct
from typing import NamedTuple

from dnslib.dns import _format_ipv6

from skydns.keys import Path

from ..wire.render import plain
from .transfer import PAUSE, Snapshot, soa_wire

T_A, T_NS, T_CNAME, T_SOA, T_PTR, T_MX, T_TXT, T_AAAA, T_SRV = 1, 2, 5, 6, 12, 15, 16, 28, 33
_HEAD = struct.Struct(">HHIH")  # type, class, TTL, RDLENGTH
_SRV = struct.Struct(">HHH")
_SOA_TIMES = struct.Struct(">IIIII")
_NAMED = frozenset((T_NS, T_CNAME, T_PTR))
# The octets dnslib writes as they are in a name (its `LDH`: printable ASCII but space);
# others become \DDD.
_PLAIN_OCTETS = bytes(range(0x21, 0x7F))


TYPE_NAMES = {T_A: "A", T_NS: "NS", T_CNAME: "CNAME", T_SOA: "SOA", T_PTR: "PTR", T_MX: "MX",
              T_TXT: "TXT", T_AAAA: "AAAA", T_SRV: "SRV"}


def type_name(rtype: int) -> str:
    """A type's mnemonic; RFC 3597's TYPEn for any the rules do not make."""
    return TYPE_NAMES.get(rtype) or f"TYPE{rtype}"


class Row(NamedTuple):
    name: str  # as dnslib writes it: `str(rr.rname)`
    rtype: int
    ttl: int
    data: str  # `rr.rdata.toZone()`
    raw: bytes | None  # the RDATA of a TXT record (its strings), else None


# a Row made in C: NamedTuple's own __new__ is a Python function, a fifth of a row's cost
_ROW = functools.partial(tuple.__new__, Row)
_NTOP4 = functools.partial(socket.inet_ntop, socket.AF_INET)


def _txt_text(rdata: bytes) -> str:
    """TXT strings as dnslib's toZone writes them: each in quotes, decoded as UTF-8 (bad bytes
    replaced), characters below space and DEL as \\ooo (octal); quotes and backslashes as
    they are."""
    out = []
    i, n = 0, len(rdata)
    while i < n:
        size = rdata[i]
        text = rdata[i + 1 : i + 1 + size].decode(errors="replace")
        out.append('"' + "".join(c if (32 <= ord(c) <= 126 or ord(c) > 127)
                                 else f"\\{ord(c):03o}" for c in text) + '"')
        i += 1 + size
    return " ".join(out)


def txt_strings(rdata: bytes) -> list[bytes]:
    """The character strings of a TXT record's RDATA."""
    out, i, n = [], 0, len(rdata)
    while i < n:
        size = rdata[i]
        out.append(bytes(rdata[i + 1 : i + 1 + size]))
        i += 1 + size
    return out


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

    def owner(self, raw: bytes) -> str:
        """The name whose uncompressed bytes are `raw`, as text."""
        n = raw[0]
        if not n:
            return "."
        parent_raw = raw[1 + n :]
        if parent_raw != self.parent_raw:
            self.parent = name_text(parent_raw, 0)[0]
            self.parent_raw = parent_raw
        label = raw[1 : 1 + n]
        # the usual label (letters and digits) as it is; others as dnslib writes them
        label = label.decode() if label.isalnum() else _label_text(label)
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
    append = out.append
    head = _HEAD.unpack_from
    srv = _SRV.unpack_from
    ntop4 = _NTOP4
    row = _ROW
    names = names or _Names()
    i = 0
    owner_raw = b""
    owner = ""
    size = 0
    for _ in range(count):
        # the records of one name share its owner (a piece is mostly one name's): compare
        # its bytes in one go (uncompressed names are prefix-free), read a new one label by
        # label
        if not size or wire[i : i + size] != owner_raw:
            start = i
            while wire[i]:
                i += wire[i] + 1
            i += 1
            owner_raw = bytes(wire[start:i])
            size = i - start
            owner = names.owner(owner_raw)
        else:
            i += size
        rtype, _, ttl, length = head(wire, i)
        i += 10
        end = i + length
        if rtype == T_A:
            data = ntop4(wire[i:end])
        elif rtype == T_SRV:
            priority, weight, port = srv(wire, i)
            # the bulk: an address's SRV names itself, a service name's its children
            target = wire[i + 6 : end]
            if target == owner_raw:
                data = f"{priority} {weight} {port} {owner}"
            else:
                data = f"{priority} {weight} {port} {_target(target, 0, owner_raw, owner)}"
        elif rtype == T_AAAA:
            data = _format_ipv6(bytes(wire[i:end]))
        elif rtype in _NAMED:
            data = _target(wire, i, owner_raw, owner)
        elif rtype == T_MX:
            data = f"{wire[i] << 8 | wire[i + 1]} {_target(wire, i + 2, owner_raw, owner)}"
        elif rtype == T_TXT:
            raw = bytes(wire[i:end])
            append(row((owner, rtype, ttl, _txt_text(raw), raw)))
            i = end
            continue
        elif rtype == T_SOA:
            mname, j = name_text(wire, i)
            rname, j = name_text(wire, j)
            data = f"{mname} {rname} " + " ".join(map(str, _SOA_TIMES.unpack_from(wire, j)))
        else:  # not a type the rules make: RFC 3597's generic form, as dnslib writes it
            data = f"\\# {length} {bytes(wire[i:end]).hex().upper()}" if length else "\\# 0"
        append(row((owner, rtype, ttl, data, None)))
        i = end
    return out


def plain_rows(rrs: list) -> list[Row]:
    """The rows of records in the rules' form (rules.py), each written by `render.plain`."""
    return rows_of(b"".join(map(plain, rrs)), len(rrs))


def served_rows(snapshot: Snapshot, zone_path: Path):
    """The zone's rows in transfer order (SOA first, once), as lists of rows, with PAUSE
    where the caller may let other work run: the records an AXFR sends, as it costs."""
    names = _Names()
    for piece in snapshot.records(zone_path, soa_wire(snapshot.state, zone_path)):
        if piece is PAUSE:
            yield PAUSE
        else:
            wire, count = piece
            yield rows_of(wire, count, names)
