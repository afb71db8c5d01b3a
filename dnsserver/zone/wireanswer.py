"""The miss path without dnslib: A, AAAA and SRV questions, and NXDOMAIN for any type, answered
straight into wire bytes. Pure: no sockets, no etcd, no asyncio.

The rules are answer.py's (its helpers are shared; answer.py stays the reference and serves
everything else: other types, CNAME chains that leave the zone or loop, DO queries, the
PowerDNS backend, dump). The bytes are what `answer()` + `wire.render()` give, dnslib's name
compression and truncation included: tests/test_wireanswer.py compares both over a table of
questions. `build` returns None for any case it does not cover, and the engine takes the
dnslib path.

Why bytes: a miss through dnslib cost 10-40x a C server's (record objects, label parsing,
packing). Here a record becomes (owner labels, 8 fixed bytes, rdata parts), the names are
compressed against the question as dnslib does, and the negative answer's SOA record is
rendered once per zone, serial and position, then copied.
"""

from __future__ import annotations

import socket
import struct
from typing import NamedTuple

from skydns.keys import Path

from .answer import (
    _ADDRESS_TYPES,
    MAX_CNAME_HOPS,
    Context,
    _cname_of,
    _is_address,
    grouped,
    is_srv_target,
    srv_weights,
    zone_of,
)

T_A, T_NS, T_CNAME, T_SOA, T_AAAA, T_SRV = 1, 2, 5, 6, 28, 33
_HEAD = struct.Struct(">HHI")  # type, class IN, TTL: the fixed part before RDLENGTH
_SRV_DATA = struct.Struct(">HHH")
_SOA_TIMES = struct.Struct(">IIIII")
_MEMO_MAX = 65536  # names and SOA renderings remembered; past that the memo starts over
_FLAGS_AA = 0x8400  # QR and AA: every answer built here is authoritative


class Unsupported(Exception):
    """A case the byte builder leaves to the dnslib path (answer.py + wire.render)."""


_labels_memo: dict[str, tuple] = {}


def name_labels(name: str) -> tuple:
    """`a.b.` -> (b"a", b"b"), as dnslib's DNSLabel would encode it; Unsupported for names it
    would spell otherwise (non-ASCII: IDNA; backslash escapes; empty or long labels)."""
    labels = _labels_memo.get(name)
    if labels is None:
        raw = name.rstrip(".")
        if not raw.isascii() or "\\" in raw:
            raise Unsupported(name)
        labels = tuple(raw.encode().split(b".")) if raw else ()
        if any(not 0 < len(label) < 64 for label in labels):
            raise Unsupported(name)
        if len(_labels_memo) >= _MEMO_MAX:
            _labels_memo.clear()
        _labels_memo[name] = labels
    return labels


def question_name(data: bytes, qend: int):
    """(labels lower-cased, name as text, path, the name's wire form lower-cased) of a question
    that wire.question_key accepted, or None when dnslib would read its name otherwise (dots
    or backslashes in a label, non-ASCII)."""
    wire = data[12 : qend - 4].lower()
    if len(wire) > 255 or not wire.isascii():
        return None  # over-long names are FORMERR on the checked path (querycheck.py)
    labels = []
    i, n = 0, len(wire) - 1
    while i < n:
        j = i + 1 + wire[i]
        labels.append(wire[i + 1 : j])
        i = j
    text = b".".join(labels)
    if b"\\" in text or text.count(b".") != len(labels) - 1:
        return None  # a backslash, or a dot inside a label
    name = text.decode()
    path = name.split(".") if labels else []
    path.reverse()
    return tuple(labels), name + ".", tuple(path), wire


_domain_paths: dict[str, Path] = {}


def _domain_path(ctx: Context) -> Path:
    """ctx.zone.domain_path without building it again for every question."""
    domain = ctx.zone.domain
    path = _domain_paths.get(domain)
    if path is None:
        path = _domain_paths[domain] = ctx.zone.domain_path
    return path


class Built:
    """An answer as record parts, for the engine to store and send; the attribute names are
    answer.Answer's where they mean the same (engine._count and _kind read both)."""

    __slots__ = (
        "rcode",
        "answer",
        "authority",
        "additional",
        "paths",
        "ips",
        "fail_open",
        "pick_from",
        "picks",
        "soa",
        "zone_path",
    )

    def __init__(self):
        self.rcode = 0
        self.answer: list = []  # (owner labels, fixed 8 bytes, rdata) per record
        self.authority: list = []
        self.additional: list = []
        self.paths: set = set()
        self.ips: set = set()
        self.fail_open = False
        self.pick_from = -1
        self.picks: list = []
        self.soa = False
        self.zone_path: Path = ()


def build(ctx: Context, qlabels: tuple, qname: str, path: Path, qtype: int) -> Built | None:
    """The answer to an IN question for a name we are authoritative for, or None when the
    dnslib path must answer (see the module doc)."""
    zone_path = zone_of(path, _domain_path(ctx))
    if zone_path is None:
        return None
    apex = path == zone_path
    index = ctx.index
    lookup = ctx.zone.lookup_path(path)  # `local.dns.<domain>` reads the [Dns] local name's
    records = index.at(path) if apex else grouped(index.below(lookup))
    exists = apex or bool(records)
    b = Built()
    b.paths.add(path)
    b.paths.add(lookup)
    try:
        if qtype == T_A or qtype == T_AAAA:
            if not _addresses(ctx, b, qlabels, lookup, qtype, records, {lookup}):
                return None
        elif qtype == T_SRV:
            _srv(ctx, b, qlabels, records)
        elif exists:
            return None  # other types of names that exist: answer.py
    except Unsupported:
        return None
    if not b.answer and not exists:
        b.rcode = 3  # NXDOMAIN
    dangling = b.answer and b.answer[-1][1][:2] == b"\x00\x05"
    if b.rcode == 3 or not b.answer or dangling:
        try:
            _soa_shape(ctx.zone.domain, zone_path, ctx.zone.hostmaster)
        except Unsupported:
            return None
        b.authority.append(_SOA_RECORD)  # rendered by Writer.soa: same for the whole zone
        b.soa = True
    b.zone_path = zone_path
    return b


def _addresses(ctx, b, owner, path, qtype, records, seen) -> bool:
    """answer._addresses; False for a chain it leaves to answer.py (loop, out of zone)."""
    family = 4 if qtype == T_A else 6
    addrs = [r for r in records if r.family == family and r.rtype in _ADDRESS_TYPES]
    if addrs:
        rrs, ips = _address_rrs(ctx, owner, qtype, healthy(ctx, b, addrs))
        if ctx.zone.round_robin:  # SkyDNS2's round_robin false: key order, no turns
            b.pick_from = len(b.answer)
            b.picks = ips
        b.answer.extend(rrs)
        return True
    if any(_is_address(r) for r in records):
        return True
    rec = _cname_of(records)
    if rec is None:
        return True
    target = rec.host
    target_labels = name_labels(target)
    target_path = tuple(label.decode() for label in reversed(target_labels))
    if target_path in seen or len(seen) > MAX_CNAME_HOPS:
        return False  # SERVFAIL: answer.py says so
    if zone_of(target_path, _domain_path(ctx)) is None:
        return False  # the rest of the chain is upstream's
    seen.add(target_path)
    b.answer.append((owner, _HEAD.pack(T_CNAME, 1, ctx.ttl(rec)), (target_labels,)))
    b.paths.add(target_path)
    target_records = ctx.index.below(target_path)
    if not target_records:
        b.rcode = 3  # RFC 6604: the rcode speaks of the last name in the chain
        return True
    return _addresses(ctx, b, target_labels, target_path, qtype, target_records, seen)


def healthy(ctx: Context, b: Built, records: list) -> list:
    """answer.healthy (DOWN addresses left out, all of them when all are DOWN), without its
    generator: the commonest name has one address."""
    ips = b.ips
    if len(records) == 1:
        ips.add(records[0].ip)
    else:
        ips.update([r.ip for r in records])
    down = ctx.health.down
    if not down:
        return records
    up = [r for r in records if r.ip not in down]
    if not up and records:
        b.fail_open = True
        return records
    return up


def _rdata(family: int, ip: str) -> bytes:
    return socket.inet_pton(socket.AF_INET if family == 4 else socket.AF_INET6, ip)


def _address_rrs(ctx, owner: tuple, qtype: int, records) -> tuple[list, list]:
    if len(records) == 1:
        rec = records[0]
        return [(owner, _HEAD.pack(qtype, 1, ctx.ttl(rec)), _rdata(rec.family, rec.ip))], [rec.ip]
    rrs, ips, seen = [], [], set()
    for rec in records:
        if rec.ip in seen:
            continue
        seen.add(rec.ip)
        rrs.append((owner, _HEAD.pack(qtype, 1, ctx.ttl(rec)), _rdata(rec.family, rec.ip)))
        ips.append(rec.ip)
    return rrs, ips


def _glue(ctx, b, rec, labels: tuple) -> None:
    """answer._glue; `labels` are the record's target name's."""
    if rec.ip:
        qtype = T_A if rec.family == 4 else T_AAAA
        b.additional.extend(_address_rrs(ctx, labels, qtype, [rec])[0])
        return
    target_path = tuple(label.decode() for label in reversed(labels))
    if zone_of(target_path, _domain_path(ctx)) is None:
        return
    b.paths.add(target_path)
    found = [r for r in ctx.index.below(target_path) if _is_address(r)]
    for family, qtype in ((4, T_A), (6, T_AAAA)):
        group = [r for r in found if r.family == family]
        if group:
            b.additional.extend(_address_rrs(ctx, labels, qtype, healthy(ctx, b, group))[0])


def _srv(ctx, b, owner: tuple, records) -> None:
    targets = [r for r in records if is_srv_target(r)]
    with_ip = [r for r in targets if r.ip]
    if with_ip:  # (by path: the same as answer.py's by key, without building the keys)
        keep = {r.path for r in healthy(ctx, b, with_ip)}
        targets = [r for r in targets if not r.ip or r.path in keep]
    seen_targets = set()
    for rec, priority, weight in srv_weights(targets):
        labels = target_labels(rec)
        # the target is written whole (RFC 2782, as dnslib does): the rdata is fixed bytes
        rdata = _SRV_DATA.pack(priority, weight, rec.port) + plain_name(labels)
        b.answer.append((owner, _HEAD.pack(T_SRV, 1, ctx.ttl(rec)), rdata))
        if labels not in seen_targets:
            seen_targets.add(labels)
            _glue(ctx, b, rec, labels)


_targets_memo: dict = {}


def target_labels(rec) -> tuple:
    """name_labels(rec.target) without spelling the name out for every question."""
    if rec.host and not rec.ip:
        return name_labels(rec.host)
    key = (rec.path, rec.targetstrip)
    labels = _targets_memo.get(key)
    if labels is None:
        labels = name_labels(rec.target)
        if len(_targets_memo) >= _MEMO_MAX:
            _targets_memo.clear()
        _targets_memo[key] = labels
    return labels


_plain_memo: dict = {}


def plain_name(labels: tuple) -> bytes:
    """A name's uncompressed wire form."""
    wire = _plain_memo.get(labels)
    if wire is None:
        wire = b"".join(bytes((len(x),)) + x for x in labels) + b"\x00"
        if len(_plain_memo) >= _MEMO_MAX:
            _plain_memo.clear()
        _plain_memo[labels] = wire
    return wire


# -- rendering ---------------------------------------------------------------------------------

_SOA_RECORD = (None, b"", None)  # placeholder in Built.authority: the zone's SOA (Writer.soa)


def opt_record(max_udp: int, do: bool, rcode: int = 0) -> bytes:
    """The OPT record of our replies (dnslib.EDNS0(udp_len=max_udp, ext_rcode, flags))."""
    return b"\x00\x00\x29" + struct.pack(">HIH", max_udp, ((rcode >> 4) << 24) | (do << 15), 0)


_soa_memo: dict = {}


class Writer:
    """Renders one reply: the question, then records in order, compressing names against
    everything written before as dnslib does (the first place a suffix was written wins;
    SRV targets, plain bytes in their rdata, are neither compressed nor remembered). The
    suffix table is made only when a name other than the question's is written: most
    answers point at the question only."""

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
                if type(part) is bytes:
                    piece = part
                else:
                    piece = self.name(part, pos)
                parts.append(piece)
                pos += len(piece)
            rdata = b"".join(parts)
        chunk = o + head + len(rdata).to_bytes(2, "big") + rdata
        self.offset = offset + len(chunk)
        return chunk

    def soa(self, ctx: Context, zone_path: Path, first: bool) -> bytes:
        """The zone's SOA record (answer.soa_record) at this point of the reply.

        As the first record after the question (NXDOMAIN, NODATA), its bytes depend only on
        the zone, the serial, where it starts, and which of the question's last labels spell
        a name the SOA writes (those it points to): so they are rendered once per such shape
        and then copied, and a negative answer is a lookup and a copy, random names too. A
        copy leaves its names unremembered, which is right only because nothing but the OPT
        record (root name) follows it.
        """
        settings = ctx.zone
        shape = _soa_shape(settings.domain, zone_path, settings.hostmaster)
        key = None
        if first:
            qlabels = self.qlabels
            shared = tuple(k for k in range(1, min(len(qlabels), shape.longest) + 1)
                           if qlabels[-k:] in shape.names)
            key = (zone_path, ctx.serial, settings.domain, settings.hostmaster, settings.min_ttl,
                   self.offset, shared)
            chunk = _soa_memo.get(key)
            if chunk is not None:
                self.offset += len(chunk)
                return chunk
        times = _SOA_TIMES.pack(ctx.serial & 0xFFFFFFFF, 28800, 7200, 604800, settings.min_ttl)
        rdata = (shape.mname, shape.rname, times)
        chunk = self.record(shape.apex, _HEAD.pack(T_SOA, 1, settings.min_ttl), rdata)
        if key is not None:
            if len(_soa_memo) >= _MEMO_MAX:
                _soa_memo.clear()
            _soa_memo[key] = chunk
        return chunk


class _SoaShape(NamedTuple):
    apex: tuple
    mname: tuple
    rname: tuple
    names: frozenset  # every name (suffix) the record writes
    longest: int


_shapes: dict = {}


def _soa_shape(domain: str, zone_path: Path, hostmaster: str = "") -> _SoaShape:
    """The SOA's names as labels; Unsupported when one cannot be written so (an odd
    `[Dns] hostmaster`): then the dnslib path answers."""
    shape = _shapes.get((domain, zone_path, hostmaster))
    if shape is None:
        labels = name_labels(domain)
        apex = tuple(label.encode() for label in reversed(zone_path))
        mname = (b"ns", b"dns", *labels)
        rname = name_labels(hostmaster) if hostmaster else (b"hostmaster", *labels)
        names = frozenset(n[i:] for n in (apex, mname, rname) for i in range(len(n)))
        shape = _SoaShape(apex, mname, rname, names, max(map(len, names)))
        _shapes[(domain, zone_path, hostmaster)] = shape
    return shape


def render_built(
    b: Built,
    ctx: Context,
    question: bytes,
    qlabels: tuple,
    limit: int,
    ra: bool,
    opt: bytes,
    answer: list | None = None,
) -> bytes:
    """The reply (ID 0, RD 0) as wire.render gives it for the same records: over `limit` the
    additional section goes first, then records from the end with TC=1. `question` is the
    question's bytes as the reply carries them (name lower-cased); `answer` replaces
    b.answer (one variant of it)."""
    w = Writer(qlabels, len(question))
    record = w.record
    an = [record(*rr) for rr in (b.answer if answer is None else answer)]
    ns = [w.soa(ctx, b.zone_path, not an) if rr is _SOA_RECORD else record(*rr)
          for rr in b.authority] if b.authority else []
    ar = [record(*rr) for rr in b.additional] if b.additional else ()
    flags = _FLAGS_AA | (0x80 if ra else 0) | (b.rcode & 0xF)
    nopt = 1 if opt else 0
    body = b"".join(an) + b"".join(ns) if ns else b"".join(an)
    size = 12 + len(question) + len(body) + len(opt)
    if ar:
        extra = b"".join(ar)
        if size + len(extra) <= limit:
            counts = (1, len(an), len(ns), len(ar) + nopt)
            return _HEADER.pack(0, flags, *counts) + question + body + extra + opt
    if size > limit:
        flags |= 0x0200  # TC
        while size > limit and (ns or an):
            size -= len(ns.pop() if ns else an.pop())
        body = b"".join(an) + b"".join(ns)
    return _HEADER.pack(0, flags, 1, len(an), len(ns), nopt) + question + body + opt


_HEADER = struct.Struct(">HHHHHH")
