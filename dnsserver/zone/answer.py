"""The answer rules: (records, health, question) -> Answer. Pure: no sockets, no etcd, no asyncio.

The same logic serves the UDP/TCP responder, and later the PowerDNS backend and `skydns dump`.
An Answer carries, besides its sections, what it read (paths and addresses) so the wire cache
can drop exactly the entries a change touches, and which trailing address records a
`random-one`/`hone-one`/shuffle policy may pick from.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from dnslib import AAAA, CNAME, MX, NS, PTR, QTYPE, RCODE, RR, SOA, SRV, TXT, A, DNSLabel

from skydns.health import HealthView
from skydns.keys import Path, is_subdomain, name_to_path, path_to_name
from skydns.records import Record

from .index import RecordIndex

MAX_CNAME_HOPS = 8
SRV_PRIORITY = 10  # SkyDNS2's and CoreDNS's priority for an SRV record that sets none
_ADDRESS_TYPES = ("", "A", "AAAA", "SRV")  # API-style SRV keys hold addresses too
_CNAME_TYPES = ("", "CNAME")
_SRV_TYPES = ("", "SRV")
REVERSE_ZONES = (("arpa", "in-addr"), ("arpa", "ip6"))


@dataclass(slots=True)
class ZoneSettings:
    domain: str = "skydns.local."
    ttl: int = 30
    min_ttl: int = 30
    recursion: bool = False  # RA bit: whether forwarding is configured at all
    local: str = ""  # SkyDNS2's -local: the name `local.dns.<domain>` answers for, or ""
    hostmaster: str = ""  # SOA RNAME; "" is hostmaster.<domain>
    round_robin: bool = True  # False: addresses in key order, as SkyDNS2's round_robin false

    @property
    def domain_path(self) -> Path:
        return name_to_path(self.domain)

    def lookup_path(self, path: Path) -> Path:
        """Where a question's records are read: `local.dns.<domain>` reads the local name's."""
        if self.local and path == name_to_path("local.dns." + self.domain):
            return name_to_path(self.local)
        return path


def zone_settings(cfg: dict) -> ZoneSettings:
    """The zone as the [Dns] section describes it."""
    dns = cfg["Dns"]
    return ZoneSettings(
        domain=dns["dns-domain"],
        ttl=dns["ttl"],
        min_ttl=dns["min-ttl"],
        recursion=bool(dns["nameservers"] or dns["subDomainServers"]),
        local=dns.get("local", ""),
        hostmaster=dns.get("hostmaster", ""),
        # random-one and hone-one pick among the addresses whatever round_robin says
        round_robin=dns.get("round-robin", True) or bool(answer_mode(cfg)),
    )


def answer_mode(cfg: dict) -> str:
    """The [Fun] policy for names with several addresses: "random", "hone" or "" (all)."""
    fun = cfg["Fun"]
    return "random" if fun["random-one"] else "hone" if fun["hone-one"] else ""


@dataclass(slots=True)
class Answer:
    rcode: int = RCODE.NOERROR
    answer: list = field(default_factory=list)
    authority: list = field(default_factory=list)
    additional: list = field(default_factory=list)
    paths: set = field(default_factory=set)  # index paths read: a change at or below any of them
    ips: set = field(default_factory=set)  # addresses whose health was read
    soa: bool = False  # carries the SOA (its serial moves with every zone change)
    pick_from: int = -1  # answer[pick_from:] are alternative address records, or -1
    picks: list = field(default_factory=list)  # the addresses of those records, same order
    external: tuple | None = None  # (name, qtype): an out-of-zone CNAME target still to resolve
    fail_open: bool = False  # every address was DOWN, all were returned


class Context:
    """What answers are made from; the server keeps one and updates its parts in place."""

    def __init__(self, index: RecordIndex, health: HealthView, zone: ZoneSettings):
        self.index = index
        self.health = health
        self.zone = zone
        self.lease_ttls: dict[int, int] = {}
        self.serial = 1

    def ttl(self, record: Record) -> int:
        ttl = record.ttl or self.zone.ttl
        if record.lease:
            lease_ttl = self.lease_ttls.get(record.lease)
            if lease_ttl is not None and lease_ttl < ttl:
                ttl = lease_ttl
        return ttl


def zone_of(path: Path, zone_path: Path) -> Path | None:
    """The zone we are authoritative for that holds `path`, or None."""
    if path[: len(zone_path)] == zone_path:
        return zone_path
    for rz in REVERSE_ZONES:
        if path[:2] == rz:
            return rz
    return None


def soa_record(ctx: Context, zone_path: Path) -> RR:
    apex = path_to_name(zone_path)
    settings = ctx.zone
    return RR(
        apex,
        QTYPE.SOA,
        ttl=settings.min_ttl,
        rdata=SOA(
            "ns.dns." + settings.domain,
            settings.hostmaster or "hostmaster." + settings.domain,
            # serials are 32-bit (RFC 1982 arithmetic wraps); the etcd revision may be larger
            (ctx.serial & 0xFFFFFFFF, 28800, 7200, 604800, settings.min_ttl),
        ),
    )


def answer(ctx: Context, qname: str, qtype: int) -> Answer:
    """Answer one IN-class question for a name inside one of our zones."""
    path = name_to_path(qname)
    zone_path = zone_of(path, ctx.zone.domain_path)
    assert zone_path is not None, "caller routes only names we are authoritative for"
    ans = Answer()
    apex = path == zone_path
    ans.paths.add(path)
    lookup = ctx.zone.lookup_path(path)
    ans.paths.add(lookup)
    # The apex owns only what is stored at it (plus SOA/NS): answering the whole zone to
    # `zone. A` would dump every record in one reply.
    records = ctx.index.at(path) if apex else grouped(ctx.index.below(lookup))
    exists = apex or bool(records)

    if qtype in (QTYPE.A, QTYPE.AAAA):
        _addresses(ctx, ans, qname, lookup, qtype, records, seen={lookup})
    elif qtype == QTYPE.SRV:
        _srv(ctx, ans, qname, records)
    elif qtype == QTYPE.TXT:
        for rec in records:
            if rec.text and rec.rtype in ("", "TXT"):
                ans.answer.append(RR(qname, QTYPE.TXT, ttl=ctx.ttl(rec), rdata=_txt(rec.text)))
    elif qtype == QTYPE.MX:
        _mx(ctx, ans, qname, records)
    elif qtype == QTYPE.CNAME:
        if not any(_is_address(r) for r in records):
            target = _cname_of(records)
            if target is not None:
                ans.answer.append(
                    RR(qname, QTYPE.CNAME, ttl=ctx.ttl(target), rdata=CNAME(target.host))
                )
    elif qtype == QTYPE.NS:
        _ns(ctx, ans, qname, path, zone_path, apex, records)
    elif qtype == QTYPE.SOA:
        if apex:
            ans.answer.append(soa_record(ctx, zone_path))
            ans.soa = True
    elif qtype == QTYPE.PTR:
        for rec in ctx.index.at(path):
            if rec.host and not rec.ip and rec.rtype in ("", "PTR"):
                ans.answer.append(RR(qname, QTYPE.PTR, ttl=ctx.ttl(rec), rdata=PTR(rec.host)))

    if ans.external is None and ans.rcode != RCODE.SERVFAIL:
        if not ans.answer and not exists:
            ans.rcode = RCODE.NXDOMAIN
        # Negative answers, also at the end of a CNAME chain, carry the SOA (RFC 2308).
        dangling = ans.answer and qtype != QTYPE.CNAME and ans.answer[-1].rtype == QTYPE.CNAME
        if ans.rcode == RCODE.NXDOMAIN or not ans.answer or dangling:
            ans.authority.append(soa_record(ctx, zone_path))
            ans.soa = True
    return ans


def grouped(records: list[Record]) -> list[Record]:
    """CoreDNS's `group` rule: the shortest keys of the set name the group; then only records
    of that group and records without a group answer. When the shortest keys carry no group,
    or disagree on it, the set is not grouped."""
    if not records or not any(r.group for r in records):
        return records
    shortest = min(len(r.path) for r in records)
    groups = {r.group for r in records if len(r.path) == shortest and r.group}
    if len(groups) != 1:
        return records
    (group,) = groups
    return [r for r in records if not r.group or r.group == group]


def _is_address(rec: Record) -> bool:
    return rec.family != 0 and rec.rtype in _ADDRESS_TYPES


def is_srv_target(rec: Record) -> bool:
    """Whether a record answers SRV questions. A host name below /skydns/arpa/ is a PTR, not
    an SRV target: reverse names answer PTR (as for CNAME, below)."""
    return bool(rec.host and rec.rtype in _SRV_TYPES and not rec.mail
                and (rec.ip or rec.path[:1] != ("arpa",)))


def _cname_of(records: list[Record]) -> Record | None:
    """The record whose host names another name; the first by key, as one owner has one CNAME."""
    for rec in records:
        if rec.host and not rec.ip and not rec.mail and rec.rtype in _CNAME_TYPES:
            if rec.path[:1] != ("arpa",):
                return rec
    return None


def healthy(ctx: Context, ans: Answer, records: list[Record]) -> list[Record]:
    """Leave out DOWN addresses; when all are DOWN return all (fail open) rather than nothing."""
    down = ctx.health.down
    ans.ips.update(r.ip for r in records)
    up = [r for r in records if r.ip not in down] if down else records
    if not up and records:
        ans.fail_open = True
        return records
    return up


def _address_rrs(ctx: Context, owner: str, qtype: int, records: list[Record]) -> tuple[list, list]:
    rrs, ips, seen = [], [], set()
    rdata = A if qtype == QTYPE.A else aaaa
    for rec in records:
        if rec.ip in seen:  # the same address under two keys is one record
            continue
        seen.add(rec.ip)
        rrs.append(RR(owner, qtype, ttl=ctx.ttl(rec), rdata=rdata(rec.ip)))
        ips.append(rec.ip)
    return rrs, ips


def _addresses(ctx, ans, owner, path, qtype, records, seen) -> None:
    family = 4 if qtype == QTYPE.A else 6
    addrs = [r for r in records if r.family == family and r.rtype in _ADDRESS_TYPES]
    if addrs:
        rrs, ips = _address_rrs(ctx, owner, qtype, healthy(ctx, ans, addrs))
        if ctx.zone.round_robin:
            ans.pick_from = len(ans.answer)
            ans.picks = ips
        ans.answer.extend(rrs)
        return
    if any(_is_address(r) for r in records):
        return  # addresses of the other family only: NODATA, not a CNAME
    rec = _cname_of(records)
    if rec is None:
        return
    target = rec.host
    target_path = name_to_path(target)
    if target_path in seen or len(seen) > MAX_CNAME_HOPS:
        ans.rcode = RCODE.SERVFAIL  # a loop or an over-long chain: fail visibly, never spin
        ans.answer.clear()
        return
    seen.add(target_path)
    ans.answer.append(RR(owner, QTYPE.CNAME, ttl=ctx.ttl(rec), rdata=CNAME(target)))
    if zone_of(target_path, ctx.zone.domain_path) is None:
        ans.external = (target, qtype)
        return
    ans.paths.add(target_path)
    target_records = ctx.index.below(target_path)
    if not target_records:
        ans.rcode = RCODE.NXDOMAIN  # RFC 6604: the rcode speaks of the last name in the chain
        return
    _addresses(ctx, ans, target, target_path, qtype, target_records, seen)


def _glue(ctx: Context, ans: Answer, rec: Record) -> None:
    """Additional-section addresses for a target: the record's own IP, or an in-zone name's."""
    if rec.ip:
        qtype = QTYPE.A if rec.family == 4 else QTYPE.AAAA
        ans.additional.extend(_address_rrs(ctx, rec.target, qtype, [rec])[0])
        return
    target_path = name_to_path(rec.host)
    if zone_of(target_path, ctx.zone.domain_path) is None:
        return
    ans.paths.add(target_path)
    found = [r for r in ctx.index.below(target_path) if _is_address(r)]
    for family, qtype in ((4, QTYPE.A), (6, QTYPE.AAAA)):
        group = [r for r in found if r.family == family]
        if group:
            ans.additional.extend(_address_rrs(ctx, rec.host, qtype, healthy(ctx, ans, group))[0])



def srv_weights(targets: list[Record]) -> list[tuple[Record, int, int]]:
    """(record, priority, weight) per SRV target: priority 10 when unset (SkyDNS2, CoreDNS),
    weights as percentages of their priority's sum (0 counts as 100), floored. Shared by the
    dnslib answers and the byte path (wireanswer.py), so the two cannot disagree."""
    totals: dict[int, int] = {}
    for rec in targets:
        priority = rec.priority or SRV_PRIORITY
        totals[priority] = totals.get(priority, 0) + (rec.weight or 100)
    return [(rec, priority, (rec.weight or 100) * 100 // totals[priority])
            for rec in targets for priority in (rec.priority or SRV_PRIORITY,)]

def _srv(ctx: Context, ans: Answer, owner: str, records: list[Record]) -> None:
    targets = [r for r in records if is_srv_target(r)]
    with_ip = [r for r in targets if r.ip]
    if with_ip:  # DOWN IP targets are left out, all DOWN -> all kept, like addresses
        keep = {r.key for r in healthy(ctx, ans, with_ip)}
        targets = [r for r in targets if not r.ip or r.key in keep]
    seen_targets = set()
    for rec, priority, weight in srv_weights(targets):
        target = rec.target
        ans.answer.append(
            RR(
                owner,
                QTYPE.SRV,
                ttl=ctx.ttl(rec),
                rdata=SRV(priority, weight, rec.port, target),
            )
        )
        if target not in seen_targets:
            seen_targets.add(target)
            _glue(ctx, ans, rec)


def _mx(ctx: Context, ans: Answer, owner: str, records: list[Record]) -> None:
    for rec in records:
        if rec.mail and rec.host:
            ans.answer.append(
                RR(owner, QTYPE.MX, ttl=ctx.ttl(rec), rdata=MX(DNSLabel(rec.target), rec.priority))
            )
            _glue(ctx, ans, rec)


def _ns(ctx, ans, owner, path, zone_path, apex, records) -> None:
    if apex:
        ns_path = zone_path + ("dns", "ns")
        ans.paths.add(ns_path)
        records = [r for r in ctx.index.below(ns_path) if r.host]
    else:
        records = [r for r in records if r.rtype == "NS" and r.host]
    for rec in records:
        ans.answer.append(RR(owner, QTYPE.NS, ttl=ctx.ttl(rec), rdata=NS(rec.target)))
        _glue(ctx, ans, rec)


def aaaa(ip: str) -> AAAA:
    """AAAA rdata from the packed address: dnslib cannot parse every spelling inet_ntop
    gives (`::ffff:1.2.3.4`)."""
    return AAAA(tuple(socket.inet_pton(socket.AF_INET6, ip)))


def _txt(text: str) -> TXT:
    """TXT strings are at most 255 octets each; longer text is split, as RFC 7208 3.3 expects."""
    raw = text.encode()
    return TXT([raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""])


def is_reverse(path: Path) -> bool:
    return path[:2] in REVERSE_ZONES


def owns(ctx: Context, qname: str) -> bool:
    """Whether we answer `qname` ourselves: our domain, or a reverse name we hold records for."""
    if is_subdomain(qname, ctx.zone.domain):
        return True
    path = name_to_path(qname)
    return is_reverse(path) and ctx.index.exists(path)
