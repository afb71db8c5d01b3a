"""DNS wire format: the cheap question parse of the hot path, and rendering answers to bytes.

The hot path never builds dnslib objects: `question_key` walks the question with byte slicing
and returns the cache key. Everything that is not a plain one-question query (or carries an OPT
we do not understand) returns None and takes the slow path, where `parse_query` reads it with
bounded work (querycheck.py): untrusted messages never go through dnslib.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NamedTuple

from dnslib import EDNS0, DNSBuffer, DNSHeader, DNSLabel, DNSQuestion, DNSRecord

from .querycheck import Malformed, check_query

UDP_PLAIN = 512
TCP_LIMIT = 65535


def udp_limit(edns_size: int, max_udp: int) -> int:
    """What a UDP reply may hold: 512 without EDNS0, else the client's size capped by ours."""
    return max(UDP_PLAIN, min(edns_size, max_udp)) if edns_size else UDP_PLAIN


def question_key(data: bytes, tcp: bool, max_udp: int):
    """(cache key, end of question, RD bit) for a plain query, else None.

    The key is the lower-cased wire name + type + class + what changes the reply: the reply size
    limit (transport, EDNS0 size class) and EDNS0 presence with its DO bit. The question's own
    bytes are copied from the query into every reply, so clients see their own 0x20 casing.
    Every miss starts here, so it is written in as few operations as it takes (indexing and
    comparing, no int.from_bytes/min/max: each costs several times an operation).
    """
    n = len(data)
    if n < 17 or data[2] & 0xF8 or data[4:10] != b"\x00\x01\x00\x00\x00\x00":
        return None  # a response, another opcode, or not exactly one question
    i = 12
    try:
        length = data[12]
        while length:
            if length > 63:
                return None
            i += length + 1
            length = data[i]
    except IndexError:  # the name runs past the end
        return None
    qend = i + 5
    if data[10]:
        return None
    if not data[11]:
        if qend != n:
            return None
        tail = _PLAIN_TCP if tcp else _PLAIN_UDP
    elif data[11] == 1:
        # OPT: root name, type 41, class = size, ext-rcode, version, flags, rdlen, options
        if n < qend + 11 or qend + 11 + (data[qend + 9] << 8 | data[qend + 10]) != n:
            return None
        # Options (cookies, ECS) change nothing in our answers; RFC 7873 lets us ignore them.
        # The tail by the OPT's first 8 bytes (name, type, size, version, DO): a few in practice.
        tail = _edns_tails.get((data[qend : qend + 8], max_udp, tcp))
        if not tail:
            if tail is not None:
                return None
            tail = _edns_tail(data[qend : qend + 8], max_udp, tcp)
            if not tail:
                return None
    else:
        return None
    # Only the name is case-folded: type and class bytes such as 0x41 (HTTPS) are not letters.
    return data[12 : qend - 4].lower() + data[qend - 4 : qend] + tail, qend, data[2] & 1


_PLAIN_UDP = b"-" + UDP_PLAIN.to_bytes(3, "big")
_PLAIN_TCP = b"-" + TCP_LIMIT.to_bytes(3, "big")
_edns_tails: dict[tuple, bytes] = {}


def _edns_tail(opt: bytes, max_udp: int, tcp: bool) -> bytes:
    """A key's tail for an EDNS query from the OPT's first 8 bytes: its flag ("D" with DO,
    else "E") and the reply's size limit; b"" when the OPT is not one we answer (not at the
    root, another version: the checked path says why)."""
    if opt[:3] != b"\x00\x00\x29" or opt[6]:
        tail = b""
    else:
        limit = TCP_LIMIT if tcp else udp_limit(opt[3] << 8 | opt[4], max_udp)
        tail = (b"D" if opt[7] & 0x80 else b"E") + limit.to_bytes(3, "big")
    if len(_edns_tails) >= 4096:  # sizes are 16 bits: a client trying them all starts it over
        _edns_tails.clear()
    _edns_tails[(opt, max_udp, tcp)] = tail
    return tail


@dataclass(slots=True)
class Query:
    """A query as the slow path sees it: header, question and OPT (see querycheck)."""

    id: int
    rd: int
    qlabels: tuple  # the question name's labels as the client sent them
    qname: str  # lower-case, absolute
    qtype: int
    qclass: int
    edns: bool
    edns_size: int
    do: bool
    edns_version: int


class FormErr(Exception):
    """The query is malformed; `reply` is the FORMERR to send, or None to stay silent."""

    def __init__(self, reply: bytes | None, why: str = "malformed query"):
        super().__init__(why)
        self.reply = reply


def parse_query(data: bytes) -> Query:
    """Read header, question and OPT with bounded work (querycheck); FormErr for anything we
    cannot answer sensibly. The rest of an untrusted message is never parsed."""
    try:
        c = check_query(data)
    except Malformed as err:
        reply = None if err.rcode is None else header_reply(data, err.rcode)
        raise FormErr(reply, err.why) from None
    qname = ".".join(label.decode("latin-1") for label in c.labels).lower() + "."
    return Query(
        id=c.id,
        rd=c.rd,
        qlabels=c.labels,
        qname=qname,
        qtype=c.qtype,
        qclass=c.qclass,
        edns=c.edns,
        edns_size=c.edns_size,
        do=c.do,
        edns_version=c.edns_version,
    )


def header_reply(data: bytes, rcode: int) -> bytes:
    """A bare reply (no sections) echoing ID, opcode and RD, for queries we will not parse."""
    flags = 0x8000 | (int.from_bytes(data[2:4], "big") & 0x7900) | rcode
    return data[:2] + flags.to_bytes(2, "big") + b"\x00" * 8


def render(
    query: Query,
    rcode: int,
    answer: list,
    authority: list,
    additional: list,
    limit: int,
    aa: bool = True,
    ra: bool = False,
    max_udp: int = 1232,
    rd: int = 0,
) -> bytes:
    """Pack a reply within `limit` bytes.

    Over the limit, the additional section goes first (no TC: it is optional data); if the
    answer still does not fit, whole records are dropped from the end and TC=1 tells the client
    to retry over TCP. The ID is 0: the transport patches in the client's.
    """
    ext_rcode, low_rcode = rcode >> 4, rcode & 0xF
    header = DNSHeader(id=0, qr=1, aa=int(aa), ra=int(ra), rd=rd, rcode=low_rcode)
    msg = DNSRecord(
        header, q=DNSQuestion(DNSLabel(lower_labels(query.qlabels)), query.qtype, query.qclass)
    )
    msg.rr, msg.auth, msg.ar = list(answer), list(authority), list(additional)
    opt = None
    if query.edns:
        opt = EDNS0(udp_len=max_udp, ext_rcode=ext_rcode, flags="do" if query.do else "")
        msg.ar.append(opt)
    wire = msg.pack()
    if len(wire) <= limit:
        return wire
    msg.ar = [opt] if opt is not None else []
    wire = msg.pack()
    if len(wire) <= limit:
        return wire
    msg.header.tc = 1
    while len(wire) > limit:
        if msg.auth:
            msg.auth.pop()
        elif msg.rr:
            msg.rr.pop()
        else:
            msg.ar = []
        wire = msg.pack()
    return wire


def wire_labels(wire: bytes) -> tuple:
    """The labels of an uncompressed wire name (one question_key accepted)."""
    labels = []
    i, n = 0, len(wire) - 1
    while i < n:
        j = i + 1 + wire[i]
        labels.append(wire[i + 1 : j])
        i = j
    return tuple(labels)


class _WholeNames(DNSBuffer):
    """A buffer that writes every name whole: RDATA packed alone must not point elsewhere."""

    def encode_name(self, name):
        self.encode_name_nocompress(name)


def upstream_answer(reply: bytes) -> tuple[int, list]:
    """(rcode, answer records in the one form of zone/rules.py) of an upstream reply: the end
    of a CNAME chain that leaves our zone. dnslib reads it: the reply comes from the resolver
    we forward to, and any record type may be in it."""
    msg = DNSRecord.parse(reply)
    records = []
    for rr in msg.rr:
        buf = _WholeNames()
        rr.rdata.pack(buf)
        owner = tuple(label.lower() for label in rr.rname.label)
        records.append((owner, struct.pack(">HHI", rr.rtype, rr.rclass, rr.ttl), bytes(buf.data)))
    return msg.header.rcode, records


def question_bytes(data: bytes, qend: int) -> bytes:
    """The question as a key compares it: the name case-folded, type and class as they are."""
    return data[12 : qend - 4].lower() + data[qend - 4 : qend]


def lower_labels(labels: tuple) -> tuple:
    return tuple(label.lower() for label in labels)


def error_reply(query: Query, rcode: int, max_udp: int = 1232, ra: bool = False) -> bytes:
    return render(
        query, rcode, [], [], [], TCP_LIMIT, aa=False, ra=ra, max_udp=max_udp, rd=query.rd
    )


class Ring(NamedTuple):
    """A reply whose address records a cache hit rotates as bytes (cache.Entry.pick): rotation
    r is prefix + records[r*size : r*size + span] + suffix."""

    prefix: bytes  # the reply after the question, up to the first address record
    records: bytes  # the n address records, followed by the first k-1 of them again
    size: int  # bytes per address record (all the same)
    n: int  # address records in the full answer
    span: int  # bytes of the k records the reply holds (k < n when truncated)
    suffix: bytes  # the rest of the reply after them


def _skip_name(wire: bytes, i: int) -> int:
    while True:
        length = wire[i]
        if length >= 0xC0:
            return i + 2
        if length == 0:
            return i + 1
        i += length + 1


def _skip_rr(wire: bytes, i: int) -> int:
    i = _skip_name(wire, i) + 8
    return i + 2 + int.from_bytes(wire[i : i + 2], "big")


def address_ring(wire: bytes, full: bytes, first: int, n: int) -> Ring | None:
    """The byte layout that lets a hit rotate the address records of a rendered reply.

    `wire` is the reply as sent (maybe truncated to k of the n address records that start at
    answer record `first`), `full` the same untruncated. It works when every address record
    is the same size and its owner is a pointer to a name before them (A/AAAA rdata hold no
    names), so any k consecutive records of the cycle make the same reply with other bytes.
    Returns a Ring, or None.
    """
    try:
        qend = _skip_name(wire, 12) + 4
        k = int.from_bytes(wire[6:8], "big") - first
        if k < 1 or int.from_bytes(full[6:8], "big") != first + n:
            return None
        start = qend
        for _ in range(first):
            start = _skip_rr(wire, start)
        if full[12:start] != wire[12:start]:
            return None
        size = 0
        for j in range(n):
            i = start + j * size if size else start
            if full[i] < 0xC0 or (int.from_bytes(full[i : i + 2], "big") & 0x3FFF) >= start:
                return None
            if full[i + 2 : i + 4] not in (b"\x00\x01", b"\x00\x1c"):
                return None
            length = _skip_rr(full, i) - i
            if size and length != size:
                return None
            size = length
        group = full[start : start + n * size]
        end = start + k * size
        if wire[start:end] != group[: k * size]:
            return None
    except IndexError:
        return None
    return Ring(wire[qend:start], group + group[: (k - 1) * size], size, n, k * size, wire[end:])
