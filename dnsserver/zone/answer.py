"""What the answer rules (rules.py) share with the other readers of the zone: the zone settings
and answer policy from the config, the `Context` answers are made from, which zone holds a
name, CoreDNS's group rule, which records are SRV or CNAME targets, SRV weights, `owns`.
Pure: no sockets, no etcd, no asyncio.

`answer()` and `soa_record()` are a dnslib view of rules.py (its records read back from
their bytes), not a second copy of the rules: for the modules that still read dnslib records.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from dnslib import AAAA, RCODE, RR, TXT, DNSBuffer

from skydns.health import HealthView
from skydns.keys import Path, is_subdomain, name_to_path
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
    """rules.soa_rr as a dnslib record, for readers that still take dnslib records."""
    from .rules import soa_rr

    return dnslib_rr(soa_rr(ctx, zone_path))


def dnslib_rr(rr: tuple) -> RR:
    """A record of the one form (rules.py) as a dnslib record, read back from its bytes."""
    from ..wire.render import plain

    return RR.parse(DNSBuffer(plain(rr)))


def answer(ctx: Context, qname: str, qtype: int) -> Answer:
    """rules.answer as dnslib records: the view of the rules that served.py, transfer.py and
    resolvconf.py read (they are moving to the one form; this goes with their last use). A
    view, not a second copy of the rules: the records are rules.answer's, read back from
    their bytes."""
    from .rules import answer as rules_answer

    r = rules_answer(ctx, name_to_path(qname), qtype)
    ans = Answer(
        rcode=r.rcode,
        answer=[dnslib_rr(rr) for rr in r.answer],
        authority=[dnslib_rr(rr) for rr in r.authority],
        additional=[dnslib_rr(rr) for rr in r.additional],
        paths=r.paths,
        ips=r.ips,
        soa=r.soa,
        pick_from=r.pick_from,
        picks=r.picks,
        fail_open=r.fail_open,
    )
    if r.external is not None:
        labels, ext_type = r.external
        ans.external = (".".join(x.decode() for x in labels) + ".", ext_type)
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
    return owns_reverse(ctx, name_to_path(qname))


def owns_reverse(ctx: Context, path: Path) -> bool:
    """Whether a reverse name (its path) is one we hold records for."""
    return path[:2] in REVERSE_ZONES and ctx.index.exists(path)
