"""Renderers of the one record form (zone/rules.py): a DNS reply, and one record alone.

A record is `(owner, head, rdata)`: owner labels, 8 bytes of type/class/TTL, and RDATA as
bytes or a tuple of parts (bytes, or a labels tuple: a name a message may compress).

`message` lays out a reply: the question, then the records in order, names compressed against
everything written before (the first place a suffix was written wins; a name inside fixed
RDATA bytes, an SRV target, is neither compressed nor remembered). Over the size limit the
additional section goes first, then whole records from the end with TC=1. The SOA of a
negative answer, the same for the whole zone, is rendered once per shape and then copied.

`plain` writes one record with every name whole: what a zone transfer, `dump` and the
PowerDNS backend take.
"""

from __future__ import annotations

import struct

_HEADER = struct.Struct(">HHHHHH")
_FLAGS_AA = 0x8400  # QR and AA: every answer rendered here is authoritative
_MEMO_MAX = 65536


def name_wire(labels: tuple) -> bytes:
    """A name's uncompressed wire form."""
    return b"".join(bytes((len(x),)) + x for x in labels) + b"\x00"


def plain(rr: tuple) -> bytes:
    """One record uncompressed: owner, head, RDLENGTH, RDATA with its names written whole."""
    owner, head, rdata = rr
    if type(rdata) is not bytes:
        rdata = b"".join(part if type(part) is bytes else name_wire(part) for part in rdata)
    return name_wire(owner) + head + len(rdata).to_bytes(2, "big") + rdata


def opt_record(max_udp: int, do: bool, rcode: int = 0) -> bytes:
    """The OPT record of our replies: our UDP size, the extended rcode, the DO bit."""
    return b"\x00\x00\x29" + struct.pack(">HIH", max_udp, ((rcode >> 4) << 24) | (do << 15), 0)


class Writer:
    """One reply being written: where each name suffix is, for compression. The suffix table
    is made only when a name other than the question's is written: most answers point at the
    question only."""

    __slots__ = ("qlabels", "_names", "offset")

    def __init__(self, qlabels: tuple, question_size: int):
        self.qlabels = qlabels
        self._names: dict | None = None
        self.offset = 12 + question_size

    def names(self) -> dict:
        names = self._names
        if names is None:
            names = self._names = {}
            labels, offset = self.qlabels, 12
            for i in range(len(labels)):
                names[labels[i:]] = offset
                offset += len(labels[i]) + 1
        return names

    def name(self, labels: tuple, offset: int) -> bytes:
        if labels is self.qlabels and labels:
            return b"\xc0\x0c"  # the question's name, written at offset 12
        names = self.names()
        out = []
        for i in range(len(labels)):
            suffix = labels[i:]
            ptr = names.get(suffix)
            if ptr is not None:
                out.append((0xC000 | (ptr & 0x3FFF)).to_bytes(2, "big"))
                return b"".join(out)
            if offset < 0x4000:  # a pointer reaches only the first 16 KB
                names[suffix] = offset
            label = labels[i]
            out.append(bytes((len(label),)) + label)
            offset += len(label) + 1
        out.append(b"\x00")
        return b"".join(out)

    def record(self, owner: tuple, head: bytes, rdata) -> bytes:
        offset = self.offset
        o = self.name(owner, offset)
        if type(rdata) is not bytes:
            pos = offset + len(o) + 10
            parts = []
            for part in rdata:
                piece = part if type(part) is bytes else self.name(part, pos)
                parts.append(piece)
                pos += len(piece)
            rdata = b"".join(parts)
        chunk = o + head + len(rdata).to_bytes(2, "big") + rdata
        self.offset = offset + len(chunk)
        return chunk

    def first_soa(self, rr: tuple) -> bytes:
        """The zone's SOA as the first record after the question (NXDOMAIN, NODATA).

        Its bytes depend only on the record, where it starts, and which of the question's
        last labels spell a name the SOA writes (those it points to): so they are rendered
        once per such shape and then copied, and a negative answer is a lookup and a copy,
        random names too. A copy leaves its names unremembered, which is right only because
        nothing but the OPT record (root name) follows it.
        """
        shape = _soa_shapes.get(id(rr))
        if shape is None or shape[0] is not rr:
            owner, _, (mname, rname, _times) = rr
            names = frozenset(n[i:] for n in (owner, mname, rname) for i in range(len(n)))
            shape = (rr, names, max(map(len, names), default=0))
            if len(_soa_shapes) >= 64:
                _soa_shapes.clear()
            _soa_shapes[id(rr)] = shape
        _, names, longest = shape
        qlabels = self.qlabels
        tail = qlabels[-longest:]
        shared = _shared.get((id(rr), tail))
        if shared is None:
            shared = tuple(k for k in range(1, len(tail) + 1) if tail[-k:] in names)
            if len(_shared) >= _MEMO_MAX:
                _shared.clear()
            _shared[(id(rr), tail)] = shared
        key = (id(rr), self.offset, shared)
        found = _soa_chunks.get(key)
        if found is not None and found[0] is rr:
            chunk = found[1]
            self.offset += len(chunk)
            return chunk
        chunk = self.record(*rr)
        if len(_soa_chunks) >= _MEMO_MAX:
            _soa_chunks.clear()
        _soa_chunks[key] = (rr, chunk)
        return chunk


_soa_shapes: dict = {}
_shared: dict = {}  # (SOA record, the question's last labels) -> which of them the SOA spells
_soa_chunks: dict = {}
_T_SOA = b"\x00\x06"


def message(
    rec,
    question: bytes,
    qlabels: tuple,
    limit: int,
    ra: bool,
    opt: bytes,
    answer: list | None = None,
    qid: int = 0,
    rd: int = 0,
) -> bytes:
    """The reply to `question` (its bytes as the reply carries them; `qlabels` its labels,
    lower-cased) with the sections of `rec` (rules.Records), within `limit` bytes: over it
    the additional section goes first, then records from the end with TC=1. `opt` is the
    OPT record or b""; `answer` replaces rec.answer (one variant). ID and RD are 0 unless
    given (a cached reply gets the client's when it is sent)."""
    rrs = rec.answer if answer is None else answer
    if not rec.authority and not rec.additional and qlabels:
        # Only answer records: when each is owned by the question's name and holds no name
        # to compress (addresses, TXT, SRV), it is a pointer to the question and bytes.
        an = []
        for owner, head, rdata in rrs:
            if owner is not qlabels or type(rdata) is not bytes:
                break
            an.append(b"\xc0\x0c" + head + len(rdata).to_bytes(2, "big") + rdata)
        else:
            return _reply(an, [], question, limit, ra, opt, rec.rcode, qid, rd)
    w = Writer(qlabels, len(question))
    record = w.record
    an = [record(*rr) for rr in rrs]
    ns = []
    for rr in rec.authority:
        if not an and not ns and rr[1][:2] == _T_SOA and not rec.additional:
            ns.append(w.first_soa(rr))
        else:
            ns.append(record(*rr))
    ar = [record(*rr) for rr in rec.additional] if rec.additional else ()
    return _reply(an, ns, question, limit, ra, opt, rec.rcode, qid, rd, ar)


def _reply(an: list, ns: list, question: bytes, limit: int, ra: bool, opt: bytes, rcode: int,
           qid: int, rd: int, ar=()) -> bytes:
    """The header and the rendered records within `limit` (see `message`)."""
    flags = _FLAGS_AA | (0x80 if ra else 0) | (rcode & 0xF) | (rd << 8)
    nopt = 1 if opt else 0
    body = b"".join(an) + b"".join(ns) if ns else b"".join(an)
    size = 12 + len(question) + len(body) + len(opt)
    if ar:
        extra = b"".join(ar)
        if size + len(extra) <= limit:
            counts = (1, len(an), len(ns), len(ar) + nopt)
            return _HEADER.pack(qid, flags, *counts) + question + body + extra + opt
    if size > limit:
        flags |= 0x0200  # TC
        while size > limit and (ns or an):
            size -= len(ns.pop() if ns else an.pop())
        body = b"".join(an) + b"".join(ns)
    return _HEADER.pack(qid, flags, 1, len(an), len(ns), nopt) + question + body + opt
