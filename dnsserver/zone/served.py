"""The zone as it is answered: each name's records, for AXFR (transfer.py streams them), the
PowerDNS `list` and `skydns dump` (rows.py reads that stream).

A secondary loaded from a transfer must answer like skydns does. skydns answers a name with
the records at and below it (aggregation), leaves DOWN addresses out, computes SRV weights and
follows CNAMEs; the raw etcd leaves (records.py's `zone_rrs`, `skydns dump --raw`) say none of
that. So this module asks the answer rules themselves (rules.py's `answer()`, the one rule set
the DNS replies come from) every question a name can be asked, and keeps the records each
reply owns at that name: the rules live in one place and the transfer cannot drift from them.
The records come in the rules' form ((owner labels, 8-byte head, rdata), see rules.py) and
leave as `render.plain` bytes (a name's owner written once for all its records, joined
once: `name_wire`); nothing here builds a record of its own but the NS/SOA the rules give
for the apex.

What the DNS cannot carry: query-side wildcards (`*.east` asked of skydns matches every label),
NS records below the apex (in a zone file they are delegations, so a secondary would answer
with referrals) and stored wildcards anywhere but as the first label. Those are left out.
Pure: no sockets, no etcd.
"""

from __future__ import annotations

import logging
import operator

from skydns.keys import Path

from ..wire.render import plain
from .context import Context, zone_of
from .rules import answer, labels_path, path_labels, plain_name, soa_rr

log = logging.getLogger("skydns.served")

T_A, T_NS, T_CNAME, T_SOA, T_PTR, T_MX, T_TXT, T_AAAA, T_SRV = 1, 2, 5, 6, 12, 15, 16, 28, 33

_V4, _V6, _NAME, _TEXT, _MAIL = 1, 2, 4, 8, 16
ALL = 31
# Which record kinds below a name can give an answer to each question (the rules'): asking
# only those keeps a large zone's listing from running every question at every name.
_NEEDS = (
    (T_A, _V4 | _NAME), (T_AAAA, _V6 | _NAME), (T_SRV, _V4 | _V6 | _NAME),
    (T_TXT, _TEXT), (T_MX, _MAIL), (T_PTR, _NAME),
)
APEX_TYPES = (T_NS, T_A, T_AAAA, T_TXT, T_MX, T_SRV)  # the apex: its own records only


def kinds_of(rec) -> int:
    """The record kinds (_V4, _TEXT, ...) one stored record adds to the names above it."""
    kinds = _TEXT if rec.text else 0
    if rec.mail:
        kinds |= _MAIL
    if rec.ip:
        kinds |= _V4 if rec.family == 4 else _V6
    elif rec.host:
        kinds |= _NAME
    return kinds


def rtype_of(rr) -> int:
    head = rr[1]
    return head[0] << 8 | head[1]


def _srv_port(rr) -> int:
    rdata = rr[2] if type(rr[2]) is bytes else rr[2][0]
    return rdata[4] << 8 | rdata[5]


def name_records(ctx: Context, path: Path, kinds: int = ALL, reads: list | None = None,
                 owner: tuple | None = None, below: list | None = None) -> tuple[list, list]:
    """The records a name answers with (each question's answer records it owns) and the
    additional-section records those answers carry (glue candidates), in the rules' form.

    A name that answers addresses with a CNAME holds only that CNAME (RFC 1034 3.6.2) unless
    it answers other questions with data of its own (a key with a host name and a port is a
    CNAME for A and an SRV with that port for SRV): the DNS cannot say both, so the transfer
    keeps the other data and, for A/AAAA, the addresses the CNAME chain ends in.

    `reads`, if given, collects the answers (rules' `Records`), whose `paths` and `ips` say
    what they read (transfer.py keeps its copy of the name until one of them changes).
    `owner`: the name's labels (`path_labels`), if the caller has them; `below`: the records
    at and below the name (`ctx.index.below(path)`), if the caller has them (rules.answer's
    `below`)."""
    got = name_answers(ctx, path, kinds, reads, owner, below)
    return (got[0], got[1]) if got is not None else ([], [])


def name_answers(ctx: Context, path: Path, kinds: int, reads: list | None, owner: tuple | None,
                 below: list | None) -> tuple[list, list, frozenset] | None:
    """`name_records`, and the types of the records (what the transfer's glue rules ask);
    None for a name that cannot be written."""
    if owner is None:
        owner = path_labels(path)
    if owner is None:  # a label over 63 octets, or a name over 255: not DNS data
        log.warning("name left out of the zone: cannot be written",
                    extra={"kv": {"path": "/".join(path)[:300]}})
        return None
    found: list = []
    extra: list = []
    cname: list = []
    flat: list = []
    types = 0  # bit per question whose own records were kept (their type is the question's)
    for bit, qtype, needs in _NEEDS_BITS:
        if not kinds & needs:
            continue
        got = answer(ctx, path, qtype, owner, below)
        if reads is not None:
            reads.append(got)
        if got.rcode not in (0, 3):  # SERVFAIL (a CNAME loop): nothing a zone can say
            continue
        rrs = got.answer
        if rrs and rrs[0][0] is owner and rrs[-1][0] is owner:
            mine = rrs  # the rules write the question's labels: all the name's own
        else:
            mine = [rr for rr in rrs if rr[0] is owner or rr[0] == owner]
        if mine and mine[0][1][:2] == _CNAME_TYPE:
            cname = mine[:1]
            had = len(flat)
            flat.extend((owner, rr[1], rr[2]) for rr in rrs if rtype_of(rr) == qtype)
            if len(flat) > had:
                types |= bit
            continue
        if mine:
            found.extend(mine)
            types |= bit
        extra.extend(got.additional)
    # skydns also answers SRV for a plain host name (port 0, target the host): that alone
    # is no reason to give up the CNAME, which is what A, AAAA and CNAME questions get
    if cname and all(rtype_of(rr) == T_SRV and _srv_port(rr) == 0 for rr in found):
        return cname, [], _CNAME_ONLY
    return found + flat, extra, _TYPE_SETS[types]


_CNAME_TYPE = T_CNAME.to_bytes(2, "big")
_NEEDS_BITS = tuple((1 << i, qtype, needs) for i, (qtype, needs) in enumerate(_NEEDS))
# the type set of every combination of questions answered (a name's types, made once)
_TYPE_SETS = tuple(frozenset(q for i, (q, _) in enumerate(_NEEDS) if bits >> i & 1)
                   for bits in range(1 << len(_NEEDS)))
_CNAME_ONLY = frozenset((T_CNAME,))


def apex_records(ctx: Context, zone_path: Path) -> tuple[list, list]:
    """The apex's own records (NS, and what is stored at the apex itself) and their glue
    candidates. The apex answers only with what is stored at it: the rest of the zone is its
    names'."""
    owner = path_labels(zone_path)
    found: list = []
    extra: list = []
    for qtype in APEX_TYPES:
        got = answer(ctx, zone_path, qtype, owner)
        found += [rr for rr in got.answer if rr[0] == owner]
        extra += got.additional
    return found, extra


def soa_wire(ctx: Context, zone_path: Path) -> bytes:
    """The zone's SOA record (the rules' `soa_rr`) as bytes: a transfer's first and last."""
    return plain(soa_rr(ctx, zone_path))


def in_zone(ctx: Context, labels: tuple, zone_path: Path) -> bool:
    """Whether a (glue) owner name is in the zone being transferred."""
    return zone_of(labels_path(labels), ctx.zone.domain_path) == zone_path


def wires(rrs: list, seen: set | None = None) -> list[bytes]:
    """Records as `render.plain` bytes, each once (owner, type and data; the first TTL wins),
    those that cannot be written as DNS data left out and logged: one bad value must not fail
    the whole transfer. `seen` carries the keys across calls."""
    if seen is None:
        if len(rrs) < 2:
            return [w for w in map(writable, rrs) if w is not None]
        seen = set()
    out = []
    for rr in rrs:
        key = (rr[0], rr[1][:4], rr[2])  # without the TTL
        if key in seen:
            continue
        seen.add(key)
        wire = writable(rr)
        if wire is not None:
            out.append(wire)
    return out


_RDATA = operator.itemgetter(2)
_LENGTHS = [n.to_bytes(2, "big") for n in range(512)]  # RDLENGTH of the usual RDATA


def name_wire(owner: tuple, rrs: list) -> tuple[bytes, int]:
    """The records of one name (every one owned by `owner`) as `wires(rrs)` joined, and how
    many it holds: the transfer's form of a name, the owner's bytes made once (a cold
    transfer spent a quarter of its rendering writing the same owner again) and the parts
    joined once."""
    if not rrs:
        return b"", 0
    name = plain_name(owner)
    n = len(rrs)
    if n < 3:  # most names: one address, or an address and the SRV naming it
        first = rrs[0]
        data = first[2]
        if type(data) is bytes and len(data) < 512:
            if n == 1:
                return name + first[1] + _LENGTHS[len(data)] + data, 1
            second = rrs[1]
            other = second[2]
            if type(other) is bytes and len(other) < 512 and other != data:
                return b"".join((name, first[1], _LENGTHS[len(data)], data,
                                 name, second[1], _LENGTHS[len(other)], other)), 2
    seen = None
    # a record repeats another only with the same RDATA: look for one in C, not per record
    if n == 2 and rrs[0][2] == rrs[1][2] or n > 2 and len(set(map(_RDATA, rrs))) < n:
        seen = set()
    parts = []
    append = parts.append
    lengths = _LENGTHS
    count = 0
    for rr in rrs:
        head, rdata = rr[1], rr[2]
        if seen is not None:
            key = (head[:4], rdata)
            if key in seen:
                continue
            seen.add(key)
        if type(rdata) is bytes:
            size = len(rdata)
            if size < 512:
                append(name)
                append(head)
                append(lengths[size])
                append(rdata)
                count += 1
                continue
            if size < 65536:
                parts += (name, head, size.to_bytes(2, "big"), rdata)
                count += 1
                continue
        wire = writable(((), head, rdata), owner)
        if wire is not None:
            append(name[:-1])
            append(wire)
            count += 1
    return b"".join(parts), count


def writable(rr, owner: tuple | None = None) -> bytes | None:
    """`plain(rr)`, or None (logged) when the record cannot be DNS data. (The rules leave
    out names that cannot be written; what is left to check is the size: a long text.)
    `owner`: the name to log, when rr's own is not it (name_wire)."""
    try:
        wire = plain(rr)
        if len(wire) > 65535 and len(wire) - sum(len(x) + 1 for x in rr[0]) - 11 > 65535:
            raise ValueError("data over 65,535 octets")
    except Exception as err:  # the renderer's own refusals, too
        log.warning("record left out of the zone: cannot render it",
                    extra={"kv": {"name": b".".join(owner or rr[0]).decode(errors="replace"),
                                  "error": repr(err)[:200]}})
        return None
    return wire
