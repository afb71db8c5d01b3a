"""One service's wanted records vs what etcd holds -> one guarded transaction, pure.

The Kubernetes sync reuses the API's planner (plan.py): the same keys and values
(records.encode, candidate_keys), the same `refs/<ip>` bookkeeping, and the same rule for
status keys (created UP when an address gets its first reference and has none, deleted with
the last reference, never overwritten). What differs is the request: not "add these values"
but "make the keys under this service's name exactly these", written as per-key differences,
so an endpoint turning ready adds its keys and touches nothing else.

Ownership: only keys whose value says `"owner": "kubernetes"` are changed. A name that also
holds another owner's key (or a hand-written one) is left alone entirely and reported in
`skipped`. Instead of one compare per record key the plan guards the service's whole prefix
(no key below it changed since the snapshot), which keeps big headless services under etcd's
compare limit; refs and status keys keep their per-key guards.
"""

from __future__ import annotations

from skydns.keys import name_to_key

from .kuberecords import Want
from .plan import Caller, Plan, Planner
from .records import Stored, candidate_keys, decode, encode

OWNER = "kubernetes"


class SyncPlanner(Planner):
    def __init__(self, layout, snap):
        super().__init__(layout, Caller(OWNER), snap)
        self.skipped: list[str] = []
        self._prefix = ""

    def _guard(self, key: str) -> None:
        if self._prefix and key.startswith(self._prefix):
            return  # covered by the range guard on the service's prefix
        super()._guard(key)

    def converge(self, domain: str, wants: list[Want]) -> Plan:
        """The plan that makes the owned keys at and below `domain` hold exactly `wants`."""
        prefix = name_to_key(domain) + "/"
        self._prefix = prefix
        stored: dict[str, list[Stored]] = {}
        for kv in self.snap.under(prefix):
            rec = decode(kv.key, kv.value, kv.mod_revision)
            if rec is not None:
                stored.setdefault(rec.name, []).append(rec)
        wanted: dict[str, list[Want]] = {}
        for want in wants:
            wanted.setdefault(want.name, []).append(want)
        foreign = {name for name, recs in stored.items()
                   if any(r.owner != OWNER for r in recs)}
        self.skipped = sorted(foreign & set(wanted))
        removes: list[Stored] = []
        adds: list[tuple[Want, bytes]] = []
        for name in sorted(set(stored) | set(wanted)):
            if name in foreign:
                continue
            have = {(r.rtype, r.value): r for r in stored.get(name, [])}
            for want in wanted.get(name, []):
                value = encode(want.rtype, want.value, OWNER, port=want.port)
                rec = have.pop((want.rtype, want.value), None)
                if rec is None:
                    adds.append((want, value))
                elif self.snap.kvs[rec.key].value != value:
                    self._put(rec.key, value)  # same value, new port: same key, same refs
            removes.extend(have.values())
        self._prepare_ips([r.value for r in removes if r.is_address]
                          + [w.value for w, _ in adds if _holds_address(w)])
        for rec in removes:
            self._remove(rec)
        taken = {r.key for recs in stored.values() for r in recs}
        for want, value in adds:
            key = next((k for k in candidate_keys(want.name, want.rtype, want.value)
                        if k not in taken or k in self.plan.deletes), None)
            if key is None:
                self.skipped.append(want.name)
                continue
            taken.add(key)
            if _holds_address(want):
                self._add_address(want.name, want.value, key, value,
                                  [want.port] if want.port else [], False, OWNER)
            else:
                self._put(key, value)
        self.plan.range_guards[prefix] = "mod"
        plan = self._finish()
        if plan.empty:
            plan.key_guards.clear()
            plan.range_guards.clear()
        return plan


def _holds_address(want: Want) -> bool:
    return want.rtype in ("A", "AAAA") or (want.rtype == "SRV" and not want.value.endswith("."))
