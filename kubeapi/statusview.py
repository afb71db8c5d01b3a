"""The status page's view of the cluster, pure: mirrored etcd keys in, a JSON-ready snapshot out.

`StatusState` is fed by one etcd mirror per source (the zone's records and the monitor
prefixes status, report, heart and lock) and keeps only what the page shows, decoded once per
change: a million record keys cost a small tuple each, not their raw values. `build_snapshot`
turns that into the document served at GET /skydns/status:

    {"zone": "skydns.local.", "revision": 42,
     "names": [{"name": "cctv2.skydns.local.", "addresses": [
         {"ip": "192.168.10.1", "type": "A", "status": "UP", "scanner": "scan-1",
          "scanner_live": true, "checks": ["http:8080/healthz"], "reason": null,
          "since": "2024-05-01T12:00:00.000Z", "maintenance": null}]}],
     "names_total": 1, "leader": "sched-1", "schedulers": ["sched-1", "sched-2"],
     "scanners": [{"hostname": "scan-1", "addresses": 1}],
     "counts": {"addresses": 1, "up": 1, "down": 0, "unknown": 0, "unassigned": 0,
                "maint": 0}}

`status` is null for an address without a (readable) status key, `scanner` null when no report
key assigns it; SRV addresses carry their `port`. `checks` are the address' HTTP(S) checks in
their one-line spelling (skydns/checks.py), `reason` why a scanner last found it DOWN (the
last failure: shown after the address is UP again, from `lastfailure`), or null; `since` when
its status last changed (null for values written before scanners recorded it) and
`maintenance` the operator's `{reason, by, since}` while it is taken out of the answers
(counted in `maint`, beside its UP/DOWN count); a DOWN other scanners confirmed has
`confirmedby: ["scan-2"]`. An isolated scanner (its heartbeat says it cannot see the service
network; its addresses are with the others) has `"state": "isolated", "isolation": "<why>"`
(the others "ok", shown as nothing); `warnings: [...]` says when no second scanner can
confirm failures, or none probes at all. Those three keys are there only when they say
something.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from skydns.checks import describe
from skydns.flips import facts_of
from skydns.health import heart_isolation, report_owner, scanner_warnings
from skydns.keys import ip_of_key
from skydns.monitor import json_object
from skydns.store import KV

from .records import decode, decode_status, ip_sort_key
from .validate import ADDRESS_TYPES

SOURCES = ("records", "status", "report", "heart", "lock")
# The page renders every row it gets; past this many names a browser tab grinds, and an
# operator looking at a zone that size searches with the API or etcdctl instead.
MAX_NAMES = 5000


@dataclass(frozen=True, slots=True, order=True)
class Address:
    name: str
    rtype: str
    ip: str
    port: int = 0


def record_address(key: str, value: bytes) -> Address | None:
    """The address a record key holds, or None (other types, unreadable values).

    SkyDNS-style keys (no `type`, written by hand) with an IP host count too: the DNS server
    answers them and the scanners probe them like API records.
    """
    rec = decode(key, value, 0)
    if rec is None or not rec.value:
        return None
    if rec.rtype in ADDRESS_TYPES:
        if not rec.is_address:
            return None  # an SRV targeting a name: no address to show
        return Address(rec.name, rec.rtype, rec.value, rec.port if rec.rtype == "SRV" else 0)
    if rec.rtype == "" and not rec.value.endswith("."):
        try:
            version = ipaddress.ip_address(rec.value).version
        except ValueError:
            return None
        return Address(rec.name, "A" if version == 4 else "AAAA", rec.value)
    return None


def leader_order(locks: Mapping[str, int]) -> list[str]:
    """Scheduler candidates in election order: the lowest create revision leads (DESIGN.md)."""
    return sorted(locks, key=lambda host: (locks[host], host))


NO_DETAILS = ((), None, None, None, None)


def status_details(value: bytes) -> tuple:
    """(checks as one-line spellings, last failure reason, since, maintenance, the scanners
    that confirmed a DOWN) of a status value; NO_DETAILS when it has none of them."""
    obj = json_object(value)
    if obj is None:
        return NO_DETAILS
    facts = facts_of(obj)
    reason = obj.get("reason")  # also on an UP written before flips dropped it
    if not isinstance(reason, str) and facts.lastfailure is not None:
        reason = facts.lastfailure.get("reason")  # UP again: the last failure says what happened
    return (tuple(describe(obj.get("checks"))), reason if isinstance(reason, str) else None,
            facts.since, facts.maintenance, facts.confirmedby)


def build_snapshot(zone: str, addresses: Iterable[Address], statuses: Mapping[str, str | None],
                   reports: Mapping[str, str], hearts: Iterable[str], locks: Mapping[str, int],
                   revision: int = 0, max_names: int = MAX_NAMES,
                   details: Mapping[str, tuple] | None = None) -> dict:
    """The status document (see the module doc) from decoded state; pure. `details`: ip ->
    status_details() of its status value. `hearts`: the live scanners, or a mapping of them
    to why each is isolated (None: it is not)."""
    details = details or {}
    isolation = dict(hearts) if isinstance(hearts, Mapping) else dict.fromkeys(hearts)
    live = set(isolation)
    by_name: dict[str, set[Address]] = {}
    for addr in addresses:
        by_name.setdefault(addr.name, set()).add(addr)
    counts = {"addresses": 0, "up": 0, "down": 0, "unknown": 0, "unassigned": 0, "maint": 0}
    assigned: dict[str, int] = {host: 0 for host in live}
    names = []
    for name in sorted(by_name, key=lambda n: n.rstrip(".")):
        rows = []
        for addr in sorted(by_name[name], key=lambda a: (ip_sort_key(a.ip), a.port, a.rtype)):
            status = statuses.get(addr.ip)
            owner = reports.get(addr.ip)
            checks, reason, since, maint, confirmed = details.get(addr.ip, NO_DETAILS)
            row = {"ip": addr.ip, "type": addr.rtype, "status": status, "scanner": owner,
                   "scanner_live": owner in live, "checks": list(checks), "reason": reason,
                   "since": since, "maintenance": maint}
            if confirmed:
                row["confirmedby"] = list(confirmed)
            if maint is not None:
                counts["maint"] += 1
            if addr.rtype == "SRV":
                row["port"] = addr.port
            rows.append(row)
            counts["addresses"] += 1
            counts[{"UP": "up", "DOWN": "down"}.get(status or "", "unknown")] += 1
            if owner is None:
                counts["unassigned"] += 1
        if len(names) < max_names:
            names.append({"name": name, "addresses": rows})
    # Scanners count each address they own once, however many names share it.
    for ip in {a.ip for group in by_name.values() for a in group}:
        owner = reports.get(ip)
        if owner in assigned:
            assigned[owner] += 1
    order = leader_order(locks)
    scanners = []
    for host in sorted(live):
        entry = {"hostname": host, "addresses": assigned[host]}
        if isolation[host] is not None:
            entry.update(state="isolated", isolation=isolation[host])
        scanners.append(entry)
    doc = {
        "zone": zone,
        "revision": revision,
        "names": names,
        "names_total": len(by_name),
        "leader": order[0] if order else None,
        "schedulers": order,
        "scanners": scanners,
        "counts": counts,
    }
    warnings = scanner_warnings(isolation)
    if warnings and (live or counts["addresses"]):
        doc["warnings"] = warnings
    return doc


class StatusState:
    """What the mirrors have delivered, decoded; `version` grows with every change.

    `prefixes` maps each of SOURCES to its etcd prefix. on_change() is called after every
    reset or batch (the feed debounces).
    """

    def __init__(self, zone: str, prefixes: Mapping[str, str],
                 on_change: Callable[[], None] | None = None):
        self.zone = zone
        self.prefixes = dict(prefixes)
        self.on_change = on_change or (lambda: None)
        self.version = 0
        self.revision = 0
        self.addresses: dict[str, Address] = {}  # record key -> its address
        self.holders: dict[str, set[str]] = {}  # ip -> record keys holding it
        self.statuses: dict[str, str | None] = {}  # ip -> UP / DOWN / None (unreadable)
        # ip -> status_details() when it has any (most values of a big zone have none)
        self.details: dict[str, tuple] = {}
        self.reports: dict[str, str] = {}  # ip -> scanner hostname
        self.hearts: dict[str, str | None] = {}  # live scanner -> why isolated, or None
        self.locks: dict[str, int] = {}  # scheduler hostname -> create revision of its key

    def _suffix(self, source: str, key: str) -> str:
        return key[len(self.prefixes[source]):]

    def _ip(self, source: str, key: str) -> str | None:
        # Records hold canonical addresses; a status or report key written by hand as
        # `2001:DB8::1` must still land on the record's `2001:db8::1`.
        return ip_of_key(key, self.prefixes[source])

    def _put(self, source: str, kv: KV) -> None:
        if source == "records":
            addr = record_address(kv.key, kv.value)
            self._drop_address(kv.key)
            if addr is not None:
                self.addresses[kv.key] = addr
                self.holders.setdefault(addr.ip, set()).add(kv.key)
        elif source == "status":
            ip = self._ip(source, kv.key)
            if ip is not None:
                self.statuses[ip] = decode_status(kv.value)
                details = status_details(kv.value)
                if any(details):
                    self.details[ip] = details
                else:
                    self.details.pop(ip, None)
        elif source == "report":
            ip = self._ip(source, kv.key)
            if ip is None:
                return
            owner = report_owner(kv.value)
            if owner is None:
                self.reports.pop(ip, None)
            else:
                self.reports[ip] = owner
        elif source == "heart":
            self.hearts[self._suffix(source, kv.key)] = heart_isolation(kv.value)
        elif source == "lock":
            # A put to a key already held keeps its place in the queue: etcd keeps the create
            # revision. A new key is created at this event's revision. (The mirror does not
            # carry create revisions; after a reload mod_revision stands in for it, which is
            # exact for schedulers, which put their lock key once.)
            self.locks.setdefault(self._suffix(source, kv.key), kv.mod_revision)

    def _delete(self, source: str, key: str) -> None:
        if source == "records":
            self._drop_address(key)
            return
        if source in ("status", "report"):
            table = self.statuses if source == "status" else self.reports
            table.pop(self._ip(source, key), None)
            if source == "status":
                self.details.pop(self._ip(source, key), None)
        elif source == "lock":
            self.locks.pop(self._suffix(source, key), None)
        else:
            self.hearts.pop(self._suffix(source, key), None)

    def _drop_address(self, key: str) -> None:
        old = self.addresses.pop(key, None)
        if old is not None:
            keys = self.holders.get(old.ip)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self.holders[old.ip]

    def _clear(self, source: str) -> None:
        if source == "records":
            self.holders.clear()
        if source == "status":
            self.details.clear()
        {"records": self.addresses, "status": self.statuses, "report": self.reports,
         "heart": self.hearts, "lock": self.locks}[source].clear()

    def _changed(self, revision: int) -> None:
        self.revision = max(self.revision, revision)
        self.version += 1
        self.on_change()

    def reset(self, source: str, kvs: list[KV], revision: int) -> None:
        self._clear(source)
        for kv in kvs:
            self._put(source, kv)
        self._changed(revision)

    def apply(self, source: str, batch: list[tuple[str, KV]], revision: int) -> None:
        for kind, kv in batch:
            if kind == "put":
                self._put(source, kv)
            else:
                self._delete(source, kv.key)
        self._changed(revision)

    def snapshot(self, max_names: int = MAX_NAMES) -> dict:
        return build_snapshot(self.zone, self.addresses.values(), self.statuses, self.reports,
                              self.hearts, self.locks, self.revision, max_names, self.details)
