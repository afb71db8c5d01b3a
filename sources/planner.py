"""One unit of a record source (a Kubernetes service, a CloudStack VM): its wanted records vs
what etcd holds -> one guarded transaction, pure.

Every source reuses the API's planner (kubeapi/plan.py): the same keys and values
(records.encode, candidate_keys), the same `refs/<ip>` bookkeeping, and the same rule for
status keys (created UP when an address gets its first reference and has none, deleted with
the last reference, never overwritten). What differs is the request: not "add these values"
but "make this unit's keys exactly these", written as per-key differences, so an endpoint
turning ready adds its keys and touches nothing else.

A unit is described by a `Scope`:

* `prefix` mode (Kubernetes): the unit owns every key of its owner at and below one name
  (a service's names all lie below `<svc>.<ns>.svc.<zone>`); the plan guards that whole
  prefix (no key below it changed since the snapshot), which keeps big headless services
  under etcd's compare limit.
* `unit` mode (CloudStack): the unit's keys are spread over several names (its own name,
  a group name shared with other VMs, a common zone) and are told apart by their last
  segment, which derives from the unit's id (`<unit>` for A, `<unit>-aaaa` for AAAA), so a
  replayed event writes the same keys and a VM leaving a group removes only its own key.
  The names a unit holds are kept in its `index_key` (`{"names": [...]}`, written in the same
  transaction), so a unit gone from the source is removed without scanning the zone.

Ownership: only keys whose value names the source's owner are changed. A name that also
holds another owner's key (or a hand-written one) is left alone entirely and reported in
`skipped`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from kubeapi.plan import Caller, Plan, Planner
from kubeapi.records import (
    Stored,
    candidate_keys,
    decode,
    encode,
    encode_ptr,
    ptr_key,
    ptr_target,
)
from skydns.keys import key_to_path, name_to_key

from .want import Want

# etcd refuses a transaction whose compares or operations exceed --max-txn-ops (128 by
# default), and a nested transaction may only use what its parent's count leaves over. Each
# address a plan adds or drops costs its record keys plus its refs and status keys (puts, and
# compares): a bigger change (a large headless service appearing) is written in several flat
# transactions of at most this many operations.
MAX_OPS = 90


@dataclass(frozen=True)
class Scope:
    """Which keys one unit of a source owns (see the module doc)."""

    prefixes: tuple[str, ...] = ()  # prefix mode: the names whose whole subtree is the unit's
    unit: str = ""  # unit mode: the id the unit's key segments derive from
    names: tuple[str, ...] = ()  # unit mode: names the unit may hold keys at (beside wants')
    index_key: str = ""  # unit mode: where the unit's names are kept ("" = nowhere)
    extra: dict = field(default_factory=dict, compare=False)

    @classmethod
    def of_domain(cls, domain: str) -> Scope:
        return cls(prefixes=(name_to_key(domain) + "/",))


def unit_segment(unit: str, rtype: str) -> str:
    """The last key segment of a unit's record of one type: `<unit>`, `<unit>-aaaa`, ..."""
    return unit if rtype == "A" else f"{unit}-{rtype.lower()}"


def unit_of_key(key: str) -> str:
    """The unit id a unit-mode key belongs to (its last segment without a type suffix)."""
    segment = key.rsplit("/", 1)[-1]
    base, dash, suffix = segment.rpartition("-")
    return base if dash and suffix in ("aaaa", "srv", "cname", "txt") else segment


def decode_index(value: bytes | None) -> list[str]:
    try:
        obj = json.loads(value) if value else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        return []
    names = obj.get("names") if isinstance(obj, dict) else None
    return [n for n in names if isinstance(n, str) and n] if isinstance(names, list) else []


def encode_index(names, extra: dict | None = None) -> bytes:
    obj = dict(extra or {})
    obj["names"] = sorted(set(names))
    return json.dumps(obj, separators=(",", ":")).encode()


class SourcePlanner(Planner):
    def __init__(self, layout, snap, owner: str, max_ops: int = MAX_OPS, holders=None):
        super().__init__(layout, Caller(owner), snap, holders)
        self.owner = owner
        self.skipped: list[str] = []
        self.partial = False  # more changes remain after this plan: plan again once committed
        self.max_ops = max_ops
        self._guarded: tuple[str, ...] = ()

    def _guard(self, key: str) -> None:
        if self._guarded and key.startswith(self._guarded):
            return  # covered by the range guard on the unit's prefix
        super()._guard(key)

    def converge(self, domain: str, wants: list[Want],
                 ports: dict[str, list[int]] | None = None) -> Plan:
        """The plan that makes the owned keys at and below `domain` hold exactly `wants`;
        `ports` (by address) go into status keys this plan creates, for the scanners."""
        return self.converge_scope(Scope.of_domain(domain), wants, ports)

    def converge_scope(self, scope: Scope, wants: list[Want],
                       ports: dict[str, list[int]] | None = None) -> Plan:
        ports = ports or {}
        by_unit = bool(scope.unit)
        names = set(scope.names) | {w.name for w in wants}
        old_index = None
        if scope.index_key:
            old_index = self.snap.get(scope.index_key)
            names |= set(decode_index(old_index.value if old_index else None))
        prefixes = tuple(sorted(set(scope.prefixes)
                                | {name_to_key(n) + "/" for n in names} if by_unit
                                else scope.prefixes))
        self.snap.require(prefixes=prefixes)
        if not by_unit:
            self._guarded = prefixes
        stored: dict[str, list[Stored]] = {}
        foreign: set[str] = set()
        for prefix in prefixes:
            depth = len(key_to_path(prefix.rstrip("/")) or ()) + 1
            for kv in self.snap.under(prefix):
                rec = decode(kv.key, kv.value, kv.mod_revision)
                if rec is None:
                    continue
                if by_unit and len(key_to_path(kv.key) or ()) != depth:
                    continue  # a name below one of the unit's names is not the unit's
                if rec.owner != self.owner:
                    foreign.add(rec.name)
                elif not by_unit or unit_of_key(rec.key) == scope.unit:
                    stored.setdefault(rec.name, []).append(rec)
        wanted: dict[str, list[Want]] = {}
        for want in wants:
            wanted.setdefault(want.name, []).append(want)
        self.skipped = sorted(foreign & set(wanted))
        removes: list[Stored] = []
        adds: list[tuple[Want, bytes]] = []
        ptrs: list[Want] = []  # records whose address' PTR should name them
        for name in sorted(set(stored) | set(wanted)):
            if name in foreign:
                continue
            have = {(r.rtype, r.value): r for r in stored.get(name, [])}
            for want in wanted.get(name, []):
                value = encode(want.rtype, want.value, self.owner, port=want.port,
                               ttl=want.ttl, ptr=want.ptr)
                rec = have.pop((want.rtype, want.value), None)
                if rec is None:
                    adds.append((want, value))
                    continue
                if self.snap.kvs[rec.key].value != value:
                    self._guard(rec.key)
                    self._put(rec.key, value)  # same value, new port or TTL: same key and refs
                if want.ptr and want.holds_address:
                    ptrs.append(want)  # kept: its PTR is checked too (another VM's went)
            removes.extend(have.values())
        adds, removes = self._limit(adds, removes)
        self._prepare_ips([r.value for r in removes if r.is_address]
                          + [w.value for w, _ in adds if w.holds_address])
        for rec in removes:
            self._remove(rec)
        taken = {kv.key for p in prefixes for kv in self.snap.under(p)}
        for want, value in adds:
            if by_unit:
                keys = [f"{name_to_key(want.name)}/{unit_segment(scope.unit, want.rtype)}"]
            else:
                keys = candidate_keys(want.name, want.rtype, want.value)
            key = next((k for k in keys if k not in taken or k in self.plan.deletes), None)
            if key is None:
                self.skipped.append(want.name)
                continue
            taken.add(key)
            if want.holds_address:
                probe = list(ports.get(want.value, ())) + ([want.port] if want.port else [])
                self._add_address(want.name, want.value, key, value, probe, False, self.owner)
                if want.ptr:
                    ptrs.append(want)
            else:
                self._guard(key)
                self._put(key, value)
        for want in ptrs:  # after the removals: a PTR they drop may be taken over here
            self._own_ptr(want.name, want.value)
        if scope.index_key and not self.partial:
            # A name left alone for another owner's key still holds ours: keep it listed.
            held = {w.name for w in wants} | (set(stored) & foreign)
            self._write_index(scope, old_index, held)
        if not by_unit:
            for prefix in prefixes:
                self.plan.range_guards[prefix] = "mod"
        plan = self._finish()
        if plan.empty:
            plan.key_guards.clear()
            plan.range_guards.clear()
        return plan

    def _own_ptr(self, name: str, ip: str) -> None:
        """Point the address' PTR at `name`: written when absent; taken over from this
        owner's PTR whose name no longer holds the address (an address handed to a new VM
        before the old one's records went); else left alone (another owner's, or a name
        that still has the address: the same private address in two isolated networks)."""
        pkey = ptr_key(ip)
        kv = self.snap.get(pkey)
        if kv is not None:
            target = ptr_target(kv.value)
            if target == name:
                return
            rec = decode(pkey, kv.value, kv.mod_revision)
            if rec is None or rec.owner != self.owner or not target or \
                    self._holds(target, ip):
                self.skipped.append(f"PTR {ip}")
                return
        self._guard(pkey)
        self._put(pkey, encode_ptr(name, self.owner))

    def _holds(self, name: str, ip: str) -> bool:
        """Whether a record of this owner at `name` (not below it) holds `ip`."""
        prefix = name_to_key(name) + "/"
        depth = len(key_to_path(prefix.rstrip("/")) or ()) + 1
        for kv in self.snap.under(prefix):
            rec = decode(kv.key, kv.value, kv.mod_revision)
            if rec is not None and rec.owner == self.owner and rec.is_address and \
                    rec.value == ip and len(key_to_path(kv.key) or ()) == depth and \
                    kv.key not in self.plan.deletes:
                return True
        return False

    def _write_index(self, scope: Scope, old, held: set[str]) -> None:
        if not held:
            if old is not None:
                self._guard(scope.index_key)
                self._delete(scope.index_key)
            return
        value = encode_index(held, scope.extra)
        if old is None or old.value != value:
            self._guard(scope.index_key)
            self._put(scope.index_key, value)

    def _limit(self, adds: list, removes: list) -> tuple[list, list]:
        """The changes of at most max_ops operations, whole addresses at a time (all keys of
        one address, its refs and status together), additions first so new endpoints answer
        sooner. Records without addresses need no compares and always go."""
        cost: dict[str, int] = {}
        order: list[str] = []
        for ip in [w.value for w, _ in adds if w.holds_address] + \
                [r.value for r in removes if r.is_address]:
            if ip not in cost:
                order.append(ip)
                cost[ip] = 2  # its refs and status keys
            cost[ip] += 1
        budget = self.max_ops - sum(1 for w, _ in adds if not w.holds_address) \
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
        adds = [(w, v) for w, v in adds if not w.holds_address or w.value in chosen]
        removes = [r for r in removes if not r.is_address or r.value in chosen]
        return adds, removes
