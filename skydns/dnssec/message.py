"""A DNS reply as RRsets, parsed from wire and rendered back: what the signer works on.

Names are kept in canonical form (uncompressed, lower-case), names inside the rdata of the
types that carry them too (RFC 4034 6.2), so the bytes kept are the bytes that are signed.
Rendering compresses owner names that repeat (a pointer to the first) and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

T_A, T_NS, T_CNAME, T_SOA, T_PTR, T_MX, T_TXT, T_AAAA, T_SRV = 1, 2, 5, 6, 12, 15, 16, 28, 33
T_OPT, T_DS, T_RRSIG, T_NSEC, T_DNSKEY, T_NSEC3, T_NSEC3PARAM = 41, 43, 46, 47, 48, 50, 51
# rdata layout: fixed bytes before a name, names, fixed bytes after (names lower-cased)
_NAMES_IN_RDATA = {T_NS: 0, T_CNAME: 0, T_PTR: 0, T_MX: 2, T_SRV: 6, T_SOA: -1}


class ParseError(Exception):
    """The reply could not be read as a DNS message."""


@dataclass
class RRset:
    owner: bytes  # canonical wire name
    rtype: int
    rclass: int
    ttl: int
    rdatas: list[bytes] = field(default_factory=list)  # canonical, in arrival order
    sigs: list[bytes] = field(default_factory=list)  # RRSIG rdatas covering it


@dataclass
class Reply:
    header: bytes  # 12 bytes as parsed (counts are rewritten on render)
    question: bytes  # the question bytes exactly as they came (name, type, class)
    qname: bytes  # canonical
    qtype: int
    sections: list[list[RRset]]  # answer, authority, additional (without OPT)
    opt: bytes | None  # the whole OPT record, kept as is

    @property
    def rcode(self) -> int:
        low = self.header[3] & 0x0F
        return low | ((self.opt[5] << 4) if self.opt else 0)


def read_name(wire: bytes, i: int) -> tuple[bytes, int]:
    """(canonical name, offset after it in `wire`), following compression pointers. Safe on
    untrusted bytes (TSIG reads requests with it): every read is bounds-checked, pointers go
    only backwards and at most 64 times, so the work is bounded and loops are impossible."""
    out = bytearray()
    end = -1
    jumps = 0
    n = len(wire)
    while True:
        if i >= n:
            raise ParseError("name runs past the message")
        length = wire[i]
        if length >= 0xC0:
            if i + 1 >= n:
                raise ParseError("name runs past the message")
            target = ((length & 0x3F) << 8) | wire[i + 1]
            if end < 0:
                end = i + 2
            jumps += 1
            if target >= i or jumps > 64:
                raise ParseError("bad compression pointer")
            i = target
            continue
        if length > 63:
            raise ParseError("bad label length")
        if length == 0:
            out.append(0)
            if len(out) > 255:
                raise ParseError("name too long")
            return bytes(out), (end if end >= 0 else i + 1)
        if i + 1 + length > n:
            raise ParseError("name runs past the message")
        out.append(length)
        out += wire[i + 1 : i + 1 + length].lower()
        if len(out) > 255:
            raise ParseError("name too long")
        i += length + 1


def _rdata(wire: bytes, rtype: int, start: int, end: int) -> bytes:
    fixed = _NAMES_IN_RDATA.get(rtype)
    if fixed is None:
        return wire[start:end]
    if rtype == T_SOA:
        mname, i = read_name(wire, start)
        rname, i = read_name(wire, i)
        return mname + rname + wire[i:end]
    name, i = read_name(wire, start + fixed)
    return wire[start : start + fixed] + name + wire[i:end]


def parse(wire: bytes) -> Reply:
    try:
        return _parse(bytes(wire))
    except (IndexError, ValueError) as err:
        raise ParseError(str(err) or "truncated message") from None


def _parse(wire: bytes) -> Reply:
    counts = [int.from_bytes(wire[4 + 2 * k : 6 + 2 * k], "big") for k in range(4)]
    if counts[0] != 1:
        raise ParseError("not one question")
    qname, i = read_name(wire, 12)
    question = wire[12 : i + 4]
    qtype = int.from_bytes(wire[i : i + 2], "big")
    i += 4
    sections: list[list[RRset]] = [[], [], []]
    opt = None
    for section, count in zip(sections, counts[1:], strict=True):
        by_key: dict[tuple, RRset] = {}
        for _ in range(count):
            owner, i = read_name(wire, i)
            rtype = int.from_bytes(wire[i : i + 2], "big")
            rclass = int.from_bytes(wire[i + 2 : i + 4], "big")
            ttl = int.from_bytes(wire[i + 4 : i + 8], "big")
            length = int.from_bytes(wire[i + 8 : i + 10], "big")
            start, i = i + 10, i + 10 + length
            if i > len(wire):
                raise ParseError("truncated record")
            if rtype == T_OPT:
                opt = b"\x00" + wire[start - 10 : i]
                continue
            rdata = _rdata(wire, rtype, start, i)
            if rtype == T_RRSIG:
                # a signature in the unsigned reply (none today): kept with nothing to cover
                continue
            key = (owner, rtype, rclass)
            rrset = by_key.get(key)
            if rrset is None:
                rrset = by_key[key] = RRset(owner, rtype, rclass, ttl)
                section.append(rrset)
            rrset.ttl = min(rrset.ttl, ttl)
            if rdata not in rrset.rdatas:
                rrset.rdatas.append(rdata)
    return Reply(wire[:12], question, qname, qtype, sections, opt)


def _rr(owner_bytes: bytes, rtype: int, rclass: int, ttl: int, rdata: bytes) -> bytes:
    return (
        owner_bytes
        + rtype.to_bytes(2, "big")
        + rclass.to_bytes(2, "big")
        + ttl.to_bytes(4, "big")
        + len(rdata).to_bytes(2, "big")
        + rdata
    )


def render(reply: Reply, limit: int) -> bytes:
    """The reply as wire (ID as parsed), within `limit` bytes: over it, the additional section
    goes first (no TC, it is optional); then the answer and authority, with TC=1 (the client
    retries over TCP; partial RRsets without their signatures would not validate)."""
    wire = _render(reply, reply.sections)
    if len(wire) <= limit:
        return wire
    wire = _render(reply, [reply.sections[0], reply.sections[1], []])
    if len(wire) <= limit:
        return wire
    return _render(reply, [[], [], []], tc=True)


def _render(reply: Reply, sections, tc: bool = False) -> bytes:
    out = bytearray(reply.header[:2])
    flags = reply.header[2] | (0x02 if tc else 0)
    out += bytes((flags, reply.header[3]))
    counts = []
    for section in sections:
        counts.append(sum(len(s.rdatas) + len(s.sigs) for s in section))
    counts[2] += 1 if reply.opt else 0
    out += b"\x00\x01" + b"".join(c.to_bytes(2, "big") for c in counts)
    offsets = {reply.qname: 12}
    out += reply.question
    for section in sections:
        for rrset in section:
            for rtype, rdata in [(rrset.rtype, r) for r in rrset.rdatas] + [
                (T_RRSIG, s) for s in rrset.sigs
            ]:
                at = offsets.get(rrset.owner)
                if at is None:
                    if len(out) < 0x4000:  # pointers reach 14 bits
                        offsets[rrset.owner] = len(out)
                    owner = rrset.owner
                else:
                    owner = (0xC000 | at).to_bytes(2, "big")
                out += _rr(owner, rtype, rrset.rclass, rrset.ttl, rdata)
    if reply.opt:
        out += reply.opt
    return bytes(out)
