"""Reading an untrusted query with bounded work: the header, the question and the OPT record.

A query has one question and at most one additional record, an OPT (a TSIG has been checked
and taken off before, see tsig.py); nothing else in it changes our answer, so nothing else is
parsed. The work is a walk over at most 255 name octets plus the OPT options, whatever the
packet holds: compression pointers are refused in the question and never followed anywhere
(a chain of them cost dnslib seconds per packet).

Pure: bytes in, a `CheckedQuery` or a `Malformed` out. The transports and the engine decide
what to send; `Malformed.rcode` says what this module thinks deserves an answer.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_NAME = 255  # octets of a wire name, length bytes and the root included (RFC 1035 2.3.4)
MAX_LABEL = 63
T_IXFR = 251
T_OPT = 41
RCODE_FORMERR, RCODE_NOTIMP = 1, 4


class Malformed(Exception):
    """The message is not a query we answer; rcode is FORMERR/NOTIMP, or None to stay silent."""

    def __init__(self, why: str, rcode: int | None = RCODE_FORMERR):
        super().__init__(why)
        self.why = why
        self.rcode = rcode


@dataclass(slots=True)
class CheckedQuery:
    id: int
    rd: int
    labels: tuple  # the question name's labels as sent (bytes)
    qtype: int
    qclass: int
    qend: int  # offset just past the question
    edns: bool
    edns_size: int
    edns_version: int
    do: bool


def read_name(data: bytes, i: int) -> tuple[tuple, int]:
    """The labels of an uncompressed name starting at `i`, and the offset past it."""
    labels = []
    n = len(data)
    start = i
    while True:
        if i >= n:
            raise Malformed("name runs past the end")
        length = data[i]
        if length == 0:
            i += 1
            break
        if length >= 0xC0:
            raise Malformed("compression pointer in the question")
        if length > MAX_LABEL:
            raise Malformed("label longer than 63 octets")  # 0x40-0xBF: no such label types
        if i + 1 + length > n:
            raise Malformed("label runs past the end")
        labels.append(data[i + 1 : i + 1 + length])
        i += 1 + length
        if i - start >= MAX_NAME:  # the root octet still to come makes it > 255
            raise Malformed("name longer than 255 octets")
    return tuple(labels), i


def skip_name(data: bytes, i: int) -> int:
    """Past a name (the additional record's owner; tsig.py walks every record with it):
    labels, ending in the root or in one pointer that is not followed. At most 255 octets
    are looked at."""
    n = len(data)
    start = i
    while True:
        if i >= n:
            raise Malformed("name runs past the end")
        length = data[i]
        if length == 0:
            return i + 1
        if length >= 0xC0:
            return i + 2
        if length > MAX_LABEL:
            raise Malformed("label longer than 63 octets")
        i += 1 + length
        if i - start >= MAX_NAME:
            raise Malformed("name longer than 255 octets")


def _check_options(data: bytes, start: int, end: int) -> None:
    """EDNS0 options must tile the OPT rdata exactly (RFC 6891 6.1.2); their content is ours
    to ignore (cookies, ECS change nothing in our answers)."""
    i = start
    while i < end:
        if i + 4 > end:
            raise Malformed("EDNS0 option header cut short")
        i += 4 + int.from_bytes(data[i + 2 : i + 4], "big")
    if i != end:
        raise Malformed("EDNS0 option runs past its record")


def check_query(data: bytes) -> CheckedQuery:
    """The parts of `data` a reply depends on, or Malformed. At most O(len(question) +
    len(OPT)) work, never a walk through the answer/authority sections or pointer chains."""
    if len(data) < 12:
        raise Malformed("shorter than a header", None)
    if data[2] & 0x80:
        raise Malformed("a response, not a query", None)  # silence avoids reflection loops
    if (data[2] >> 3) & 0xF:
        raise Malformed("opcode not QUERY", RCODE_NOTIMP)
    qdcount = int.from_bytes(data[4:6], "big")
    if qdcount != 1:
        raise Malformed(f"{qdcount} questions")
    if data[6:8] != b"\x00\x00":
        raise Malformed("answer records in a query")
    nscount = int.from_bytes(data[8:10], "big")
    arcount = int.from_bytes(data[10:12], "big")
    if arcount > 1:
        raise Malformed(f"{arcount} additional records")
    labels, i = read_name(data, 12)
    qend = i + 4
    if qend > len(data):
        raise Malformed("question cut short")
    qtype = int.from_bytes(data[i : i + 2], "big")
    qclass = int.from_bytes(data[i + 2 : qend], "big")
    if nscount:
        # Only an IXFR carries a record (the client's SOA, RFC 1995); we answer it with the
        # whole zone, so that SOA and what follows it are never read.
        if qtype != T_IXFR or nscount != 1:
            raise Malformed("authority records in a query")
        arcount = 0
    edns = do = False
    size = version = 0
    if arcount:
        j = skip_name(data, qend)
        if j + 10 > len(data):
            raise Malformed("additional record cut short")
        rtype = int.from_bytes(data[j : j + 2], "big")
        rdlen = int.from_bytes(data[j + 8 : j + 10], "big")
        if j + 10 + rdlen > len(data):
            raise Malformed("additional record data cut short")
        if rtype == T_OPT:
            if j != qend + 1:
                raise Malformed("OPT owner is not the root")
            _check_options(data, j + 10, j + 10 + rdlen)
            edns = True
            size = int.from_bytes(data[j + 2 : j + 4], "big")
            version = data[j + 5]
            do = bool(data[j + 6] & 0x80)
    return CheckedQuery(
        id=int.from_bytes(data[:2], "big"),
        rd=data[2] & 1,
        labels=labels,
        qtype=qtype,
        qclass=qclass,
        qend=qend,
        edns=edns,
        edns_size=size,
        edns_version=version,
        do=do,
    )
