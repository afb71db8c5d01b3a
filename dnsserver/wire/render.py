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
_LENGTHS = [bytes((n,)) for n in range(64)]  # a label's length octet
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


_U16 = [n.to_bytes(2, "big") for n in range(1024)]  # RDLENGTHs, packed once
_PTRS = [(0xC000 | n).to_bytes(2, "big") for n in range(1024)]  # pointers near the start
_question_names: dict = {}  # a question's labels -> its suffixes' offsets (copied per reply)
_QUESTIONS_KEPT = 16384


def _names_of(qlabels: tuple) -> dict:
    """Where each suffix of the question's name is written: the start of a reply's suffix
    table (a copy: the reply adds its own names)."""
    start = _question_names.get(qlabels)
    if start is None:
        start, offset = {}, 12
        for i in range(len(qlabels)):
            start[qlabels[i:]] = offset
            offset += len(qlabels[i]) + 1
        if len(_question_names) >= _QUESTIONS_KEPT:
            _question_names.clear()
        _question_names[qlabels] = start
    return start.copy()


_AFTER_FIRST = [tuple(range(1, n)) for n in range(128)]  # a name's label indexes but 0


def _name(labels: tuple, offset: int, names: dict) -> bytes:
    """`labels` written at `offset`, compressed against `names` (suffix -> offset), which
    learns the suffixes written here whole."""
    ptr = names.get(labels)  # the whole name written before: the commonest case
    if ptr is not None:
        return _PTRS[ptr] if ptr < 1024 else bytes((0xC0 | ptr >> 8, ptr & 0xFF))
    if not labels:
        return b"\x00"
    if offset < 0x4000:  # a pointer reaches only the first 16 KB
        names[labels] = offset
    label = labels[0]
    out = _LENGTHS[len(label)] + label
    offset += len(label) + 1
    n = len(labels)
    for i in _AFTER_FIRST[n] if n < 128 else range(1, n):  # (a name has at most 127)
        suffix = labels[i:]
        ptr = names.get(suffix)
        if ptr is not None:
            return out + (_PTRS[ptr] if ptr < 1024 else bytes((0xC0 | ptr >> 8, ptr & 0xFF)))
        if offset < 0x4000:
            names[suffix] = offset
        label = labels[i]
        out += _LENGTHS[len(label)] + label
        offset += len(label) + 1
    return out + b"\x00"


def _first_name(qlabels: tuple, labels: tuple, offset: int) -> tuple[bytes, dict]:
    """The first name of a reply written besides the question's (an MX or CNAME target, a
    glue owner) and the suffix table after it. Both follow from the question's name, the
    name and where it is written, so they are kept by those (bounded) and the table copied:
    an answer naming another name costs a lookup, not a suffix walk."""
    key = (qlabels, labels, offset)
    found = _firsts.get(key)
    if found is not None:
        return found[0], found[1].copy()
    names = _names_of(qlabels)
    written = _name(labels, offset, names)
    if len(_firsts) >= _FIRSTS_KEPT:
        _firsts.clear()
    _firsts[key] = (written, names.copy())
    return written, names


_firsts: dict = {}
_FIRSTS_KEPT = 8192  # (question name, name, offset) -> (its bytes, the suffix table after)


def _records(rrs: list, qlabels: tuple, offset: int, names: dict | None, out: list):
    """Render `rrs` from `offset` into `out`; returns (the offset after them, names: None
    while only the question's name has been pointed to)."""
    for owner, head, rdata in rrs:
        if owner is qlabels and owner:
            if type(rdata) is bytes:  # the same bytes wherever it stands
                chunk = _pointed.get((head, rdata)) or _pointed_record(head, rdata)
                offset += len(chunk)
                out.append(chunk)
                continue
            o = b"\xc0\x0c"  # the question's name, written at offset 12
        elif names is None:
            o, names = _first_name(qlabels, owner, offset)
        else:
            o = _name(owner, offset, names)
        if type(rdata) is not bytes:
            pos = offset + len(o) + 10
            parts = []
            for part in rdata:
                if type(part) is not bytes:
                    if names is None:
                        part, names = _first_name(qlabels, part, pos)
                    else:
                        part = _name(part, pos, names)
                parts.append(part)
                pos += len(part)
            rdata = b"".join(parts)
        n = len(rdata)
        chunk = b"".join((o, head, _U16[n] if n < 1024 else n.to_bytes(2, "big"), rdata))
        offset += len(chunk)
        out.append(chunk)
    return offset, names


def _negative_soa(rr: tuple, qlabels: tuple, offset: int) -> bytes:
    """The zone's SOA as the only record after the question (NXDOMAIN, NODATA).

    Its bytes depend only on the record, where it starts, and how many of the question's
    last labels spell a name the SOA writes (those it points to): so they are rendered once
    per such shape and then copied, and a negative answer is a lookup and a copy, random
    names too.
    """
    shape = _soa_last[0]
    if shape[0] is not rr:
        shape = _soa_shape(rr)
    _, names, n_owner, labels = shape
    # `names` holds every suffix of its names, so the question's last labels in it are the
    # last `shared` ones: usually the zone's own name, and one label more only for names
    # like dns.<zone>
    tail = qlabels[-n_owner:] if n_owner else ()
    shared = len(tail) if tail in names else 0
    n = len(qlabels)
    # (a label the SOA never writes ends the run without building the suffix)
    while shared < n and qlabels[n - shared - 1] in labels and qlabels[n - shared - 1 :] in names:
        shared += 1
    # keyed without the record (one zone's SOA at a time, mostly): its identity is checked
    found = _soa_chunks.get(offset << 8 | shared)
    if found is not None and found[0] is rr:
        return found[1]
    out: list = []
    _records((rr,), qlabels, offset, None, out)
    if len(_soa_chunks) >= _MEMO_MAX:
        _soa_chunks.clear()
    _soa_chunks[offset << 8 | shared] = (rr, out[0])
    return out[0]


def _soa_shape(rr: tuple) -> tuple:
    """(the SOA record, every suffix of the names it writes, its owner's length, their labels)."""
    shape = _soa_shapes.get(id(rr))
    if shape is None or shape[0] is not rr:
        owner, _, (mname, rname, _times) = rr
        names = frozenset(n[i:] for n in (owner, mname, rname) for i in range(len(n)))
        shape = (rr, names, len(owner), frozenset(owner + mname + rname))
        if len(_soa_shapes) >= 64:
            _soa_shapes.clear()
        _soa_shapes[id(rr)] = shape
    _soa_last[0] = shape
    return shape


_soa_shapes: dict = {}
_soa_last = [(None,)]  # the shape used last: most negative answers are of one zone
_soa_chunks: dict = {}  # offset << 8 | labels shared with the question -> (SOA record, its bytes)
_pointed: dict = {}  # (head, rdata) -> the record owned by the question's name, rendered
_T_SOA = b"\x00\x06"


def _pointed_record(head: bytes, rdata: bytes) -> bytes:
    """A record owned by the question's name with RDATA of fixed bytes, rendered and kept."""
    n = len(rdata)
    chunk = b"\xc0\x0c" + head + (_U16[n] if n < 1024 else n.to_bytes(2, "big")) + rdata
    if n <= _POINTED_LONGEST:  # a long TXT is kept by its RDATA memo only
        if len(_pointed) >= _POINTED_KEPT:
            _pointed.clear()
        _pointed[(head, rdata)] = chunk
    return chunk


_POINTED_KEPT = 16384
_POINTED_LONGEST = 255


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
    authority = rec.authority
    additional = rec.additional
    if not additional:
        if not authority and qlabels:
            # Only answer records: when each is owned by the question's name and holds no
            # name to compress (addresses, TXT, SRV), it is a pointer to the question and
            # bytes, the same wherever it stands.
            an = []
            for owner, head, rdata in rrs:
                if owner is not qlabels or type(rdata) is not bytes:
                    break
                an.append(_pointed.get((head, rdata)) or _pointed_record(head, rdata))
            else:
                body = b"".join(an)
                if 12 + len(question) + len(body) + len(opt) <= limit:
                    flags = (0x8480 if ra else _FLAGS_AA) | (rec.rcode & 0xF) | (rd << 8)
                    return (_HEADER.pack(qid, flags, 1, len(an), 0, 1 if opt else 0)
                            + question + body + opt)
                return _reply(an, [], question, limit, ra, opt, rec.rcode, qid, rd)
        elif not rrs and len(authority) == 1 and authority[0][1][:2] == _T_SOA:
            soa = _negative_soa(authority[0], qlabels, 12 + len(question))
            if 12 + len(question) + len(soa) + len(opt) <= limit:
                flags = (0x8480 if ra else _FLAGS_AA) | (rec.rcode & 0xF) | (rd << 8)
                return (_HEADER.pack(qid, flags, 1, 0, 1, 1 if opt else 0)
                        + question + soa + opt)
            return _reply([], [soa], question, limit, ra, opt, rec.rcode, qid, rd)
    out: list = []  # every section's records, in order
    offset, names = _records(rrs, qlabels, 12 + len(question), None, out)
    n_an = len(out)
    if authority:
        offset, names = _records(authority, qlabels, offset, names, out)
    n_ns = len(out) - n_an
    if additional:
        offset, _ = _records(additional, qlabels, offset, names, out)
    if offset + len(opt) <= limit:  # offset: the size so far (header, question, records)
        flags = (0x8480 if ra else _FLAGS_AA) | (rec.rcode & 0xF) | (rd << 8)
        return (_HEADER.pack(qid, flags, 1, n_an, n_ns, len(out) - n_an - n_ns + (1 if opt else 0))
                + question + b"".join(out) + opt)
    return _reply(out[:n_an], out[n_an : n_an + n_ns], question, limit, ra, opt, rec.rcode, qid,
                  rd, out[n_an + n_ns :])


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
