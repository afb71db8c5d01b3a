"""The etcd leaves as resource records (in the rules' form, rules.py): `skydns dump --raw`,
and the stored wildcards of a zone transfer (served.py's zone holds everything else).

Every record is listed once, at its own name (the key read back as a name): that is the
canonical form a secondary can serve. The SkyDNS rule that a name also answers with all the
records below it is a lookup rule, not zone content, so the aggregated answers at ancestors
are not repeated here. Health is not applied: a zone transfer copies data, and DOWN is a
property of the moment; `dump` shows it as a comment instead.
"""

from __future__ import annotations

import logging

from skydns.keys import Path
from skydns.records import Record

from ..wire.render import plain
from .context import REVERSE_ZONES, Context
from .rules import (
    HEAD,
    SRV_PRIORITY,
    name_labels,
    packed,
    path_labels,
    plain_name,
    soa_rr,
    target_labels,
    txt_rdata,
)

log = logging.getLogger("skydns.zone")

T_A, T_NS, T_CNAME, T_PTR, T_MX, T_TXT, T_AAAA, T_SRV = 1, 2, 5, 12, 15, 16, 28, 33
_head = HEAD.pack


def record_rrs(ctx: Context, rec: Record) -> list[tuple]:
    """The resource records one stored record stands for, at its own name, in the rules'
    form (rules.py: owner labels, head, rdata). Names that cannot be written raise
    ValueError (the callers leave the record out and log it)."""
    owner = _labels(path_labels(rec.path), rec)
    ttl = ctx.ttl(rec)
    rrs = []
    if rec.rtype == "PTR" or (rec.path[:2] in REVERSE_ZONES and rec.host and not rec.ip):
        return [(owner, _head(T_PTR, 1, ttl), (_labels(name_labels(rec.host), rec),))]
    if rec.rtype == "NS":
        return [(owner, _head(T_NS, 1, ttl), (_labels(name_labels(rec.host), rec),))]
    if rec.mail and rec.host:
        target = _labels(target_labels(rec), rec)
        rrs.append((owner, _head(T_MX, 1, ttl), (rec.priority.to_bytes(2, "big"), target)))
        if rec.ip:
            rrs.append(_address(rec, owner, ttl))
        return rrs
    if rec.port or rec.rtype == "SRV":
        weight = 100  # alone at its own name, a record has the whole weight of its priority
        target = _labels(target_labels(rec), rec)
        fixed = ((rec.priority or SRV_PRIORITY) << 32 | weight << 16 | rec.port).to_bytes(6, "big")
        rdata = fixed + plain_name(target)  # written whole, as the rules write SRV targets
        rrs.append((owner, _head(T_SRV, 1, ttl), rdata))
    if rec.ip:
        rrs.append(_address(rec, owner, ttl))
    elif rec.host and rec.rtype in ("", "CNAME") and not rrs:
        rrs.append((owner, _head(T_CNAME, 1, ttl), (_labels(name_labels(rec.host), rec),)))
    if rec.text:
        rrs.append((owner, _head(T_TXT, 1, ttl), txt_rdata(rec.text)))
    return rrs


def _labels(labels: tuple | None, rec: Record) -> tuple:
    if labels is None:
        raise ValueError(f"a name of {rec.key} cannot be written")
    return labels


def _address(rec: Record, owner: tuple, ttl: int) -> tuple:
    return (owner, _head(T_A if rec.family == 4 else T_AAAA, 1, ttl), packed(rec))


def stored_wildcard_records(ctx: Context, rec: Record) -> list[tuple]:
    """A stored wildcard's records for a transfer: as stored, at its `*` owner."""
    return renderable(rec, lambda: record_rrs(ctx, rec))


def zone_rrs(ctx: Context, zone_path: Path) -> list[tuple[tuple, Record | None]]:
    """SOA, the apex NS set, then every record below the zone in key order (`dump --raw`).

    Each record comes with the record it was made from (None for the synthesized SOA and
    NS), so `dump` can say which address is DOWN. A record that cannot be written as DNS data
    is left out and logged: one bad value must not fail the whole listing.
    """
    apex = path_labels(zone_path) or ()
    out: list[tuple[tuple, Record | None]] = [(soa_rr(ctx, zone_path), None)]
    for rec in ctx.index.below(zone_path + ("dns", "ns")):
        if rec.host:
            for rr in renderable(rec, lambda r=rec: [
                    (apex, _head(T_NS, 1, ctx.ttl(r)), (_labels(target_labels(r), r),))]):
                out.append((rr, None))
    for rec in ctx.index.below(zone_path):
        for rr in renderable(rec, lambda r=rec: record_rrs(ctx, r)):
            out.append((rr, rec))
    return out


def renderable(rec: Record, make) -> list[tuple]:
    """make() if the records it returns can be written as DNS data, else [] (logged)."""
    try:
        made = make()
        for rr in made:
            if len(plain(rr)) - sum(len(x) + 1 for x in rr[0]) - 11 > 65535:
                raise ValueError("data over 65,535 octets")
    except Exception as err:  # a name or value that cannot be DNS data
        log.warning("record left out of the zone: cannot render it",
                    extra={"kv": {"key": rec.key, "error": repr(err)[:200]}})
        return []
    return made


def transfer_chunks(rrs: list[tuple], limit: int) -> list[list[tuple]]:
    """The records of a zone transfer grouped into messages of at most `limit` bytes of
    records, uncompressed (a few long TXT records must not push a message past 64 KB)."""
    out: list[list[tuple]] = []
    current: list[tuple] = []
    size = 0
    for rr in rrs:
        n = len(plain(rr))
        if current and size + n > limit:
            out.append(current)
            current, size = [], 0
        current.append(rr)
        size += n
    if current:
        out.append(current)
    return out


def reverse_zones(ctx: Context) -> list[Path]:
    """The reverse zones that hold records (in-addr.arpa., ip6.arpa.)."""
    return [rz for rz in REVERSE_ZONES if ctx.index.exists(rz)]
