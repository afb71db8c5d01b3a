"""A zone as a list of resource records: for AXFR, `skydns dump` and the PowerDNS `list`.

Every record is listed once, at its own name (the key read back as a name): that is the
canonical form a secondary can serve. The SkyDNS rule that a name also answers with all the
records below it is a lookup rule, not zone content, so the aggregated answers at ancestors
are not repeated here. Health is not applied: a zone transfer copies data, and DOWN is a
property of the moment; `dump` shows it as a comment instead.
"""

from __future__ import annotations

import logging
from functools import partial

from dnslib import CNAME, MX, NS, PTR, QTYPE, RR, SRV, A, DNSBuffer

from skydns.keys import Path, path_to_name
from skydns.records import Record

from .answer import REVERSE_ZONES, SRV_PRIORITY, Context, _txt, aaaa, soa_record

log = logging.getLogger("skydns.zone")


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
    return RR(rec.name, QTYPE.AAAA, ttl=ttl, rdata=aaaa(rec.ip))


def zone_rrs(ctx: Context, zone_path: Path) -> list[tuple[RR, Record | None]]:
    """SOA, the apex NS set, then every record below the zone in key order.

    Each RR comes with the record it was made from (None for the synthesized SOA and NS), so
    `dump` can say which address is DOWN. An AXFR sends this list followed by the SOA again.
    A record that cannot be written as DNS data is left out and logged: one bad value must
    not fail the transfer of the whole zone.
    """
    apex = path_to_name(zone_path)
    out: list[tuple[RR, Record | None]] = [(soa_record(ctx, zone_path), None)]
    for rec in ctx.index.below(zone_path + ("dns", "ns")):
        if rec.host:
            for rr in _renderable(rec, partial(_apex_ns, apex, ctx.ttl(rec), rec)):
                out.append((rr, None))
    for rec in ctx.index.below(zone_path):
        for rr in _renderable(rec, partial(record_rrs, ctx, rec)):
            out.append((rr, rec))
    return out


def _apex_ns(apex: str, ttl: int, rec: Record) -> list[RR]:
    return [RR(apex, QTYPE.NS, ttl=ttl, rdata=NS(rec.target))]


def _renderable(rec: Record, make) -> list[RR]:
    """make() if the RRs it returns pack and print as DNS data, else [] (logged)."""
    try:
        made = make()
        for rr in made:
            rr.pack(DNSBuffer())
            rr.rdata.toZone()
    except Exception as err:  # dnslib raises several types for data it cannot write
        log.warning("record left out of the zone: cannot render it",
                    extra={"kv": {"key": rec.key, "error": repr(err)[:200]}})
        return []
    return made


def packed_size(rr: RR) -> int:
    """The size of `rr` in a message, without name compression (an upper bound)."""
    buf = DNSBuffer()
    rr.pack(buf)
    return len(buf.data)


def transfer_chunks(rrs: list[RR], limit: int) -> list[list[RR]]:
    """The records of a zone transfer grouped into messages of at most `limit` bytes of
    records (a few long TXT records must not push a message past 64 KB)."""
    return list(iter_transfer_chunks(rrs, limit))


def iter_transfer_chunks(rrs: list[RR], limit: int):
    """`transfer_chunks` one message at a time, so a sender can pause between them."""
    current: list[RR] = []
    size = 0
    for rr in rrs:
        n = packed_size(rr)
        if current and size + n > limit:
            yield current
            current, size = [], 0
        current.append(rr)
        size += n
    if current:
        yield current


def reverse_zones(ctx: Context) -> list[Path]:
    """The reverse zones that hold records (in-addr.arpa., ip6.arpa.)."""
    return [rz for rz in REVERSE_ZONES if ctx.index.exists(rz)]
