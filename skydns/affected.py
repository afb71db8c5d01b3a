"""Which names answer differently after a record or a status changes: for caches in front.

The DNS server learns this from what each cached answer read (dnsserver/zone/answer.py records the
paths and addresses, dnsserver/front/cache.py drops by them). A cache outside the process, such as a
PowerDNS Recursor, knows nothing of that, so the same rules are written here in the other
direction, from a change to the names it reaches:

- a name answers with every record at or below it (the SkyDNS rule), so a record at a path
  reaches that name and every name above it up to its zone's apex; the apex itself answers
  only with what is stored at it and with its `dns/ns` records (a reverse zone's apex exists
  only while records are below it, so it is always reached);
- an answer that follows a CNAME, or adds glue for an SRV/MX/NS target, reads the target's
  name and what is below it, so the names whose records point at a reached name are reached
  too (chains at most MAX_HOPS long, as the server follows);
- an address's status is read by every answer that holds the address;
- a record with an address also reaches that address's PTR name.
A stored `*` label answers for names nobody can list: the part above it is a subtree to purge.

Pure: no sockets, no etcd. `Dependents` is the reverse index the janitor keeps from a watch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .keys import Path, key_to_path, name_to_path, path_to_name, reverse_name
from .records import Record

MAX_HOPS = 8  # the server follows CNAME chains this far (dnsserver.zone.answer.MAX_CNAME_HOPS)
REVERSE_ZONES: tuple[Path, ...] = (("arpa", "in-addr"), ("arpa", "ip6"))
NS_LABELS = ("dns", "ns")  # the apex's NS records live in this subtree


@dataclass
class Reached:
    """What a change reaches: exact names to purge, and subtrees (from wildcards)."""

    names: set[str] = field(default_factory=set)
    subtrees: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.names or self.subtrees)

    def update(self, other: Reached) -> None:
        self.names |= other.names
        self.subtrees |= other.subtrees


def zone_apex(path: Path, domain_path: Path) -> Path | None:
    """The apex of the zone served for `path` (the domain or a reverse zone), or None."""
    if path[: len(domain_path)] == domain_path:
        return domain_path
    for rz in REVERSE_ZONES:
        if path[:2] == rz:
            return rz
    return None


def answering(path: Path, domain_path: Path) -> list[Path]:
    """The names whose answers read a record stored at `path`: it and every name above it
    below the apex; the apex too when the record is at it, in its `dns/ns` subtree, or in a
    reverse zone."""
    apex = zone_apex(path, domain_path)
    if apex is None:
        return []
    out = [path[:depth] for depth in range(len(path), len(apex), -1)]
    # A reverse zone is served only while it holds records: its apex comes and goes with them.
    if path == apex or path[len(apex) : len(apex) + 2] == NS_LABELS or apex in REVERSE_ZONES:
        out.append(apex)
    return out


class Dependents:
    """Records by key, and who points at what: addresses -> record paths holding them, names
    -> paths of records whose host is that name (CNAME, SRV/MX/NS targets)."""

    def __init__(self) -> None:
        self.records: dict[str, Record] = {}
        self.by_ip: dict[str, set[Path]] = {}
        self.by_target: dict[Path, set[Path]] = {}

    def __len__(self) -> int:
        return len(self.records)

    def clear(self) -> None:
        self.__init__()

    def put(self, key: str, record: Record) -> Record | None:
        old = self.delete(key)
        self.records[key] = record
        if record.ip:
            self.by_ip.setdefault(record.ip, set()).add(record.path)
        elif record.host:
            self.by_target.setdefault(name_to_path(record.host), set()).add(record.path)
        return old

    def delete(self, key: str) -> Record | None:
        old = self.records.pop(key, None)
        if old is not None:
            if old.ip:
                _discard(self.by_ip, old.ip, old.path)
            elif old.host:
                _discard(self.by_target, name_to_path(old.host), old.path)
        return old

    def holders(self, ip: str) -> set[Path]:
        return self.by_ip.get(ip, set())


def _discard(index: dict, dep, path: Path) -> None:
    paths = index.get(dep)
    if paths is not None:
        paths.discard(path)
        if not paths:
            del index[dep]


def reached(deps: Dependents, domain: str, paths=(), ips=()) -> Reached:
    """Every name whose answer may differ after the records at `paths` changed (put or
    deleted) and the statuses of `ips` flipped. A superset is fine (a purge too many costs
    one cache miss); a name left out would be served stale for its TTL."""
    domain_path = name_to_path(domain)
    out = Reached()
    todo: list[Path] = list(paths)
    for ip in ips:
        todo.extend(deps.holders(ip))
        out.names.add(reverse_name(ip))
    seen: set[Path] = set()
    for _ in range(MAX_HOPS + 1):
        nxt: list[Path] = []
        for path in todo:
            if "*" in path:
                top = path[: path.index("*")]
                if zone_apex(top, domain_path) is not None or top[:1] == ("arpa",):
                    out.subtrees.add(path_to_name(top))
                path = top
            for name_path in answering(path, domain_path):
                if name_path in seen:
                    continue
                seen.add(name_path)
                out.names.add(path_to_name(name_path))
                nxt.extend(deps.by_target.get(name_path, ()))
        if not nxt:
            break
        todo = nxt
    return out


def reached_by_record(deps: Dependents, domain: str, key: str,
                      old: Record | None, new: Record | None) -> Reached:
    """A record put or deleted at `key` (old/new: what the key held before and after)."""
    path = key_to_path(key)
    if not path:
        return Reached()
    out = reached(deps, domain, [path])
    for rec in (old, new):
        if rec is not None and rec.ip:
            out.names.add(reverse_name(rec.ip))
    return out
