"""A zone as a list of resource records: for AXFR, `skydns dump` and the PowerDNS `list`.

Every record is listed once, at its own name (the key read back as a name): that is the
canonical form a secondary can serve. The SkyDNS rule that a name also answers with all the
records below it is a lookup rule, not zone content, so the aggregated answers at ancestors
are not repeated here. Health is not applied: a zone transfer copies data, and DOWN is a
property of the moment; `dump` shows it as a comment instead.
"""

from __future__ import annotations

from dnslib import AAAA, CNAME, MX, NS, PTR, QTYPE, RR, SRV, A

from skydns.keys import Path, path_to_name
from skydns.records import Record

from .answer import REVERSE_ZONES, SRV_PRIORITY, Context, _txt, soa_record


def record_rrs(ctx: Context, rec: Record) -> list[RR]:
    """The resource records one stored record stands for, at its own name."""
    name, ttl = rec.name, ctx.ttl(rec)
    rrs = []
    if rec.rtype == "PTR" or (rec.path[:2] in REVERSE_ZONES and rec.host and not rec.ip):
        return [RR(name, QTYPE.PTR, ttl=ttl, rdata=PTR(rec.host))]
    if rec.rtype == "NS":
        return [RR(name, QTYPE.NS, ttl=ttl, rdata=NS(rec.host))]
    if rec.mail and rec.host:
        rrs.append(RR(name, QTYPE.MX, ttl=ttl, rdata=MX(rec.target, rec.priority)))
        if rec.ip:
            rrs.append(_address(rec, ttl))
        return rrs
    if rec.port or rec.rtype == "SRV":
        weight = 100  # alone at its own name, a record has the whole weight of its priority
        rrs.append(
            RR(name, QTYPE.SRV, ttl=ttl,
               rdata=SRV(rec.priority or SRV_PRIORITY, weight, rec.port, rec.target))
        )
    if rec.ip:
        rrs.append(_address(rec, ttl))
    elif rec.host and rec.rtype in ("", "CNAME") and not rrs:
        rrs.append(RR(name, QTYPE.CNAME, ttl=ttl, rdata=CNAME(rec.host)))
    if rec.text:
        rrs.append(RR(name, QTYPE.TXT, ttl=ttl, rdata=_txt(rec.text)))
    return rrs


def _address(rec: Record, ttl: int) -> RR:
    if rec.family == 4:
        return RR(rec.name, QTYPE.A, ttl=ttl, rdata=A(rec.ip))
    return RR(rec.name, QTYPE.AAAA, ttl=ttl, rdata=AAAA(rec.ip))


def zone_rrs(ctx: Context, zone_path: Path) -> list[tuple[RR, Record | None]]:
    """SOA, the apex NS set, then every record below the zone in key order.

    Each RR comes with the record it was made from (None for the synthesized SOA and NS), so
    `dump` can say which address is DOWN. An AXFR sends this list followed by the SOA again.
    """
    apex = path_to_name(zone_path)
    out: list[tuple[RR, Record | None]] = [(soa_record(ctx, zone_path), None)]
    for rec in ctx.index.below(zone_path + ("dns", "ns")):
        if rec.host:
            out.append((RR(apex, QTYPE.NS, ttl=ctx.ttl(rec), rdata=NS(rec.target)), None))
    for rec in ctx.index.below(zone_path):
        for rr in record_rrs(ctx, rec):
            out.append((rr, rec))
    return out


def reverse_zones(ctx: Context) -> list[Path]:
    """The reverse zones that hold records (in-addr.arpa., ip6.arpa.)."""
    return [rz for rz in REVERSE_ZONES if ctx.index.exists(rz)]
