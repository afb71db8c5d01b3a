"""The operator's view of health, pure: etcd keys in, the documents of GET /skydns/health out.

    GET /skydns/health
    {"addresses": [{"ip": "10.0.0.1", "status": "DOWN", "since": "2024-...Z",
                    "reason": "tcp 80: refused", "checker": "scan-1", "maintenance": null,
                    "scanner": "scan-1", "confirmedby": ["scan-2"],
                    "names": ["web.skydns.local."]}, ...],
     "scanners": [{"name": "scan-1", "alive": true, "assigned": 12, ...heartbeat fields}],
     "warnings": ["one live scanner (scan-1): nobody can confirm its failures, ..."],
     "leader": "sched-1", "counts": {"addresses": 2, "up": 1, "down": 1, "maint": 0,
                                     "unknown": 0}}

    GET /skydns/health/<ip>: one address as above plus "history" (newest first) and
    "lastfailure".

Every address a record holds (whoever wrote it: the API, the Kubernetes sync, etcdctl) or a
status key monitors is listed once, by its canonical spelling; `status` is null when no
readable status exists (the DNS server counts that as UP). `maintenance` is the operator's
`{reason, by, since}` or null. A scanner's entry carries its heartbeat value's fields as they
are (a newer scanner may add some) beside `name`, `alive` and `assigned`; scanners that hold
assignments but no heartbeat are listed with `alive: false`. A scanner's state is in its
heartbeat fields: `"isolated": true` (it cannot see the service network and its addresses
are with the others; `isolation` says why) or not. `confirmedby` names the scanners that
confirmed a DOWN (absent otherwise). `warnings` (absent when there is nothing to say): nobody
to confirm failures with (one live scanner), or nobody probing at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from skydns.flips import Facts, read_facts, read_history
from skydns.health import isolation_of, report_owner, scanner_warnings
from skydns.keys import canonical_ip, ip_of_key
from skydns.monitor import json_object
from skydns.store import KV

from .records import decode, ip_sort_key
from .statusview import leader_order, record_address


def canonical(text: str) -> str | None:
    """The canonical spelling of an address given by a client, or None when it is none."""
    ip, _ = canonical_ip(text.strip())
    return ip or None


class HealthFacts:
    """What etcd says about every address, read once from one snapshot.

    `prefixes`: the etcd prefixes by source, as statusfeed.status_prefixes gives them
    ("records", "status", "report", "heart", "lock").
    """

    def __init__(self, prefixes: Mapping[str, str], records: Iterable[KV],
                 statuses: Iterable[KV], reports: Iterable[KV], hearts: Iterable[KV],
                 locks: Iterable[KV]):
        self.names: dict[str, set[str]] = {}  # ip -> names holding it
        self.owners: dict[str, set[str]] = {}  # ip -> owners of the records holding it
        for kv in records:
            addr = record_address(kv.key, kv.value)
            if addr is None:
                continue
            ip = canonical(addr.ip) or addr.ip
            self.names.setdefault(ip, set()).add(addr.name)
            rec = decode(kv.key, kv.value, kv.mod_revision)
            self.owners.setdefault(ip, set()).add((rec.owner or "") if rec else "")
        self.status_keys: dict[str, list[KV]] = {}  # ip -> its status keys (any spelling)
        for kv in statuses:
            ip = ip_of_key(kv.key, prefixes["status"])
            if ip is not None:
                self.status_keys.setdefault(ip, []).append(kv)
        self.facts: dict[str, Facts] = {}
        for ip, kvs in self.status_keys.items():
            kvs.sort(key=lambda kv: kv.mod_revision, reverse=True)  # the newest decides
            self.facts[ip] = read_facts(kvs[0].value)
        self.scanner_of: dict[str, str] = {}
        for kv in reports:
            ip = ip_of_key(kv.key, prefixes["report"])
            owner = report_owner(kv.value)
            if ip is not None and owner is not None:
                self.scanner_of[ip] = owner
        self.hearts: dict[str, dict] = {}  # live scanner -> its heartbeat value
        for kv in hearts:
            self.hearts[kv.key[len(prefixes["heart"]):]] = json_object(kv.value) or {}
        order = leader_order({kv.key[len(prefixes["lock"]):]: kv.mod_revision for kv in locks})
        self.leader = order[0] if order else None

    def known(self, ip: str) -> bool:
        """A record holds it or a status key monitors it."""
        return ip in self.names or ip in self.status_keys

    def address(self, ip: str) -> dict:
        facts = self.facts.get(ip) or Facts(None)
        row = {"ip": ip, "status": facts.status, "since": facts.since,
               "reason": facts.reason, "checker": facts.checker,
               "maintenance": facts.maintenance, "scanner": self.scanner_of.get(ip),
               "names": sorted(self.names.get(ip, ()), key=lambda n: n.rstrip("."))}
        if facts.confirmedby:  # only a DOWN other scanners confirmed has it
            row["confirmedby"] = list(facts.confirmedby)
        return row

    def detail(self, ip: str, history: bytes | None) -> dict:
        facts = self.facts.get(ip) or Facts(None)
        return {**self.address(ip), "lastfailure": facts.lastfailure,
                "history": read_history(history)}

    def document(self) -> dict:
        ips = sorted(self.names.keys() | self.status_keys.keys(), key=ip_sort_key)
        addresses = [self.address(ip) for ip in ips]
        counts = {"addresses": len(addresses), "up": 0, "down": 0, "maint": 0, "unknown": 0}
        for row in addresses:
            kind = "maint" if row["maintenance"] else (row["status"] or "unknown").lower()
            counts[kind] += 1
        assigned: dict[str, int] = {}
        for ip in ips:
            owner = self.scanner_of.get(ip)
            if owner is not None:
                assigned[owner] = assigned.get(owner, 0) + 1
        scanners = [{**self.hearts.get(name, {}), "name": name, "alive": name in self.hearts,
                     "assigned": assigned.get(name, 0)}
                    for name in sorted(self.hearts.keys() | assigned.keys())]
        doc = {"addresses": addresses, "scanners": scanners, "leader": self.leader,
               "counts": counts}
        warnings = scanner_warnings({name: isolation_of(heart)
                                     for name, heart in self.hearts.items()})
        if warnings and (self.hearts or ips):
            doc["warnings"] = warnings
        return doc
