"""The zone as it is answered: for AXFR (transfer.py streams the same records faster), the
PowerDNS `list` and `skydns dump`.

A secondary loaded from a transfer must answer like skydns does. skydns answers a name with
the records at and below it (aggregation), leaves DOWN addresses out, computes SRV weights and
follows CNAMEs; the raw etcd leaves (records.py's `zone_rrs`, `skydns dump --raw`) say none of
that. So this module asks the answer rules themselves (answer.py's `answer()`) every question
a name can be asked, for every name that has an answer, and keeps the records each reply owns
at that name: the rules live in one place and the transfer cannot drift from them.

What the DNS cannot carry: query-side wildcards (`*.east` asked of skydns matches every label),
NS records below the apex (in a zone file they are delegations, so a secondary would answer
with referrals) and stored wildcards anywhere but as the first label. Those are left out.
Pure: no sockets, no etcd.
"""

from __future__ import annotations

import logging

from dnslib import QTYPE, RR, DNSBuffer

from skydns.keys import Path, name_to_path, path_to_name

from .answer import Answer, Context, answer, soa_record, zone_of
from .records import _renderable, record_rrs

log = logging.getLogger("skydns.served")

_V4, _V6, _NAME, _TEXT, _MAIL = 1, 2, 4, 8, 16
_ALL = 31
# Which record kinds below a name can give an answer to each question (answer.py's rules):
# asking only those keeps a large zone's listing from running every question at every name.
_NEEDS = (
    (QTYPE.A, _V4 | _NAME), (QTYPE.AAAA, _V6 | _NAME), (QTYPE.SRV, _V4 | _V6 | _NAME),
    (QTYPE.TXT, _TEXT), (QTYPE.MX, _MAIL), (QTYPE.PTR, _NAME),
)


def _kinds(rec) -> int:
    kinds = _TEXT if rec.text else 0
    if rec.mail:
        kinds |= _MAIL
    if rec.ip:
        kinds |= _V4 if rec.family == 4 else _V6
    elif rec.host:
        kinds |= _NAME
    return kinds


def served_names(ctx: Context, zone_path: Path) -> dict[Path, int]:
    """Every name below the apex that has an answer: each record's name and the names between
    it and the apex (which answer with everything below them), each with the kinds of records
    at and below it, in sorted order."""
    names: dict[Path, int] = {}
    depth0 = len(zone_path)
    everything = bool(ctx.index.wildcards)  # a stored wildcard may answer beside any name
    for rec in ctx.index.below(zone_path):
        path = rec.path
        kinds = _ALL if everything else _kinds(rec)
        for depth in range(depth0 + 1, len(path) + 1):
            name = path[:depth]
            names[name] = names.get(name, 0) | kinds
    local = ctx.zone.local
    if local and zone_path == ctx.zone.domain_path:
        names[ctx.zone.domain_path + ("dns", "local")] = _ALL
    return dict(sorted(names.items()))


def _owned(rrs: list[RR], owner: str) -> list[RR]:
    return [rr for rr in rrs if str(rr.rname).lower() == owner]


def name_rrs(ctx: Context, path: Path, kinds: int = _ALL,
             reads: Answer | None = None) -> tuple[list[RR], list[RR]]:
    """The records a name answers with (each question's answer records it owns) and the
    additional-section records those answers carry (glue candidates).

    A name that answers addresses with a CNAME holds only that CNAME (RFC 1034 3.6.2) unless
    it answers other questions with data of its own (a key with a host name and a port is a
    CNAME for A and an SRV with that port for SRV): the DNS cannot say both, so the transfer
    keeps the other data and, for A/AAAA, the addresses the CNAME chain ends in.

    `reads`, if given, collects the paths and addresses the answers read (transfer.py keeps
    its copy of the name until one of them changes)."""
    owner = path_to_name(path)
    found: list[RR] = []
    extra: list[RR] = []
    cname: list[RR] = []
    flat: list[RR] = []
    for qtype, needs in _NEEDS:
        if not kinds & needs:
            continue
        ans = answer(ctx, owner, qtype)
        if reads is not None:
            reads.paths |= ans.paths
            reads.ips |= ans.ips
        if ans.rcode not in (0, 3):  # SERVFAIL (a CNAME loop): nothing a zone can say
            continue
        mine = _owned(ans.answer, owner)
        if mine and mine[0].rtype == QTYPE.CNAME:
            cname = mine[:1]
            flat.extend(RR(owner, rr.rtype, ttl=rr.ttl, rdata=rr.rdata)
                        for rr in ans.answer if rr.rtype == qtype)
            continue
        found.extend(mine)
        extra.extend(ans.additional)
    # skydns also answers SRV for a plain host name (port 0, target the host): that alone
    # is no reason to give up the CNAME, which is what A, AAAA and CNAME questions get
    if cname and all(rr.rtype == QTYPE.SRV and rr.rdata.port == 0 for rr in found):
        return cname, []
    return found + flat, extra


STEP_NAMES = 200  # names between the pauses of `served_steps`


def served_rrs(ctx: Context, zone_path: Path) -> list[RR]:
    """SOA, the apex records, then every name's records; glue for SRV/MX/NS targets that no
    name of the zone already answers. Records that cannot be written as DNS data are left out
    and logged, as in records.py: one bad value must not fail the whole transfer."""
    steps = served_steps(ctx, zone_path)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def served_steps(ctx: Context, zone_path: Path):
    """`served_rrs` in steps: a generator that pauses (yields None) every STEP_NAMES names and
    returns the list, so a caller can let an event loop run between steps. (The engine's AXFR
    streams transfer.py's bytes instead: the same records, proven equal by its tests.)"""
    apex = path_to_name(zone_path)
    out: list[RR] = [soa_record(ctx, zone_path)]
    seen: set[tuple] = set()
    have: set[tuple[str, int]] = set()  # (owner, type) with records of their own
    cname_owners: set[str] = set()
    glue: list[RR] = []

    def add(rr: RR) -> None:
        key = _key(rr)
        if key is None or key in seen:
            return
        seen.add(key)
        have.add((key[0], rr.rtype))
        if rr.rtype == QTYPE.CNAME:
            cname_owners.add(key[0])
        out.append(rr)

    apex_ans = answer(ctx, apex, QTYPE.NS)
    for rr in _owned(apex_ans.answer, apex):
        add(rr)
    glue.extend(apex_ans.additional)
    for qtype in (QTYPE.A, QTYPE.AAAA, QTYPE.TXT, QTYPE.MX, QTYPE.SRV):
        ans = answer(ctx, apex, qtype)
        for rr in _owned(ans.answer, apex):
            add(rr)
        glue.extend(ans.additional)

    if ctx.index.wildcards:
        for rec in ctx.index.below(zone_path):
            if rec.path[-1] == "*" and "*" not in rec.path[:-1]:
                # a stored wildcard: a DNS wildcard owner, as stored
                for rr in _renderable(rec, lambda r=rec: record_rrs(ctx, r)):
                    add(rr)
    for n, (path, kinds) in enumerate(served_names(ctx, zone_path).items()):
        if n % STEP_NAMES == STEP_NAMES - 1:
            yield
        if "*" in path:
            continue  # its answers are a query-side wildcard's: the DNS cannot say them
        rrs, extra = name_rrs(ctx, path, kinds)
        for rr in rrs:
            add(rr)
        glue.extend(extra)

    for rr in glue:
        owner = str(rr.rname).lower()
        if zone_of_name(ctx, owner, zone_path) and owner not in cname_owners:
            if (owner, rr.rtype) not in have:
                add(rr)
    return out


def zone_of_name(ctx: Context, owner: str, zone_path: Path) -> bool:
    return zone_of(name_to_path(owner), ctx.zone.domain_path) == zone_path


def _key(rr: RR) -> tuple | None:
    """(owner, type, rdata bytes) identifying a record, or None (logged) if it cannot be
    packed."""
    try:
        buf = DNSBuffer()
        rr.rdata.pack(buf)
        rr.rdata.toZone()
    except Exception as err:  # dnslib raises several types for data it cannot write
        log.warning("record left out of the zone: cannot render it",
                    extra={"kv": {"name": str(rr.rname), "error": repr(err)[:200]}})
        return None
    return (str(rr.rname).lower(), rr.rtype, bytes(buf.data))
