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
# etcd refuses a transaction whose compares or operations exceed --max-txn-ops (128 by
# default), and a nested transaction may only use what its parent's count leaves over. Each
# address a plan adds or drops costs its record keys plus its refs and status keys (puts, and
# compares): a bigger change (a large headless service appearing) is written in several flat
# transactions of at most this many operations.
MAX_OPS = 90


class SyncPlanner(Planner):
    def __init__(self, layout, snap, max_ops: int = MAX_OPS, holders=None):
        super().__init__(layout, Caller(OWNER), snap, holders)
        self.skipped: list[str] = []
        self.partial = False  # more changes remain after this plan: plan again once committed
        self.max_ops = max_ops
        self._prefix = ""

    def _guard(self, key: str) -> None:
        if self._prefix and key.startswith(self._prefix):
            return  # covered by the range guard on the service's prefix
        super()._guard(key)

    def converge(self, domain: str, wants: list[Want],
                 ports: dict[str, list[int]] | None = None) -> Plan:
        """The plan that makes the owned keys at and below `domain` hold exactly `wants`;
        `ports` (by address) go into status keys this plan creates, for the scanners."""
        ports = ports or {}
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
        adds, removes = self._limit(adds, removes)
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
                probe = list(ports.get(want.value, ())) + ([want.port] if want.port else [])
                self._add_address(want.name, want.value, key, value, probe, False, OWNER)
            else:
                self._put(key, value)
        self.plan.range_guards[prefix] = "mod"
        plan = self._finish()
        if plan.empty:
            plan.key_guards.clear()
            plan.range_guards.clear()
        return plan


    def _limit(self, adds: list, removes: list) -> tuple[list, list]:
        """The changes of at most max_ops operations, whole addresses at a time (all keys of
        one address, its refs and status together), additions first so new endpoints answer
        sooner. Records without addresses need no compares and always go."""
        cost: dict[str, int] = {}
        order: list[str] = []
        for ip in [w.value for w, _ in adds if _holds_address(w)] + \
                [r.value for r in removes if r.is_address]:
            if ip not in cost:
                order.append(ip)
                cost[ip] = 2  # its refs and status keys
            cost[ip] += 1
        budget = self.max_ops - sum(1 for w, _ in adds if not _holds_address(w)) \
            - sum(1 for r in removes if not r.is_address)
        if sum(cost.values()) <= budget:
            return adds, removes
        self.partial = True
        chosen: set[str] = set()
        for ip in order:
            if chosen and cost[ip] > budget:
                break
            chosen.add(ip)
            budget -= cost[ip]
        adds = [(w, v) for w, v in adds if not _holds_address(w) or w.value in chosen]
        removes = [r for r in removes if not r.is_address or r.value in chosen]
        return adds, removes


def _holds_address(want: Want) -> bool:
    return want.rtype in ("A", "AAAA") or (want.rtype == "SRV" and not want.value.endswith("."))
