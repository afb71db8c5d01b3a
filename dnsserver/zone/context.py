"""What every reader of the zone starts from: the zone settings and answer policy from the
config, the `Context` answers are made from (index, health, serial, lease TTLs), which zone
holds a name and whether we answer it (`owns`). The answer rules themselves are rules.py.
Pure: no sockets, no etcd, no asyncio.
"""

from __future__ import annotations

from dataclasses import dataclass

from skydns.health import HealthView
from skydns.keys import Path, is_subdomain, name_to_path
from skydns.records import Record

from .index import RecordIndex

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
