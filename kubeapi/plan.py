"""Write planning, pure: (validated request, etcd snapshot, caller) -> one guarded transaction.

A planner reads only from a `Snapshot` (keys and prefixes read at one etcd revision) and returns
a `Plan`: the puts and deletes of one etcd transaction plus the compares that must still hold
when it commits. If a compare fails, something the decision rested on changed meanwhile; the
caller (service.py) reads again and plans again. That is the whole concurrency story:

- every key whose state a decision used is guarded by `mod_revision == seen` (0: absent);
- adding or dropping a reference to an address rewrites `refs/<ip>`, so two requests touching
  the same address conflict there, and "the last reference is gone" (delete the status key)
  is decided on a `refs` value that cannot change before the commit;
- a name that had no keys gets a range guard (no key created below it since the snapshot),
  so two owners cannot both start it, and a new alias gets the same guard, so no record can
  slip in beside a CNAME; a record cannot slip in below an alias either, since every write
  guards the (fixed) CNAME key of its name and of each ancestor.

When a planner needs keys the snapshot lacks (which refs keys, which PTRs, ...) it raises
NeedReads and is run again on a bigger snapshot; planners never do I/O.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field

from skydns.keys import key_to_path, name_to_key, name_to_path, path_to_name
from skydns.store import KV

from .errors import ApiError, bad_request, conflict, forbidden, not_found
from .records import (
    ADMIN,
    CNAME_ID,
    Stored,
    candidate_keys,
    cname_key,
    decode,
    decode_refs,
    encode,
    encode_ptr,
    encode_refs,
    encode_status,
    ptr_key,
    ptr_target,
    status_with_checks,
)
from .statusview import record_address
from .validate import ADDRESS_TYPES, Change

ARPA_PREFIX = "/skydns/arpa/"
# etcd refuses transactions with more than --max-txn-ops (128 by default) compares; past this
# many, per-key guards are folded into range guards (coarser, still correct; see _finish).
MAX_COMPARES = 100
MAX_OPS_PER_TXN = 100


@dataclass(frozen=True, slots=True)
class Caller:
    owner: str
    admin: bool = False


@dataclass(frozen=True, slots=True)
class Layout:
    zone: str  # absolute, lower-case: "skydns.local."
    status_path: str  # "/skydns/monitor/status/"
    refs_path: str  # "/skydns/monitor/refs/"

    @property
    def zone_prefix(self) -> str:
        return name_to_key(self.zone) + "/"

    def status_key(self, ip: str) -> str:
        return self.status_path + ip

    def refs_key(self, ip: str) -> str:
        return self.refs_path + ip


class NeedReads(Exception):
    """The planner needs these keys/prefixes in the snapshot; read them and plan again."""

    def __init__(self, keys: set[str], prefixes: set[str]):
        super().__init__(f"need {len(keys)} keys, {len(prefixes)} prefixes")
        self.keys = keys
        self.prefixes = prefixes


class Snapshot:
    """Keys and whole prefixes as read at one revision."""

    def __init__(self, revision: int, kvs: dict[str, KV], keys=(), prefixes=()):
        self.revision = revision
        self.kvs = kvs
        self.keys = set(keys)
        self.prefixes = set(prefixes)
        self._sorted: list[str] | None = None  # built on the first under(), kvs never change

    def _has_key(self, key: str) -> bool:
        return key in self.keys or any(key.startswith(p) for p in self.prefixes)

    def _has_prefix(self, prefix: str) -> bool:
        return any(prefix.startswith(p) for p in self.prefixes)

    def require(self, keys=(), prefixes=()) -> None:
        missing_keys = {k for k in keys if not self._has_key(k)}
        missing_prefixes = {p for p in prefixes if not self._has_prefix(p)}
        if missing_keys or missing_prefixes:
            raise NeedReads(missing_keys, missing_prefixes)

    def get(self, key: str) -> KV | None:
        self.require(keys=[key])
        return self.kvs.get(key)

    def under(self, prefix: str) -> list[KV]:
        self.require(prefixes=[prefix])
        # A plan calls this several times on a snapshot that may hold a whole zone: sorting
        # once and bisecting keeps each call to the keys under the prefix.
        if self._sorted is None:
            self._sorted = sorted(self.kvs)
        keys, out = self._sorted, []
        i = bisect_left(keys, prefix)
        while i < len(keys) and keys[i].startswith(prefix):
            out.append(self.kvs[keys[i]])
            i += 1
        return out


@dataclass
class Plan:
    revision: int
    key_guards: dict[str, int] = field(default_factory=dict)  # key -> mod_revision (0: absent)
    range_guards: dict[str, str] = field(default_factory=dict)  # prefix -> "create" | "mod"
    puts: dict[str, bytes] = field(default_factory=dict)
    deletes: list[str] = field(default_factory=list)
    status: int = 200

    @property
    def empty(self) -> bool:
        return not self.puts and not self.deletes


@dataclass
class _Refs:
    """One address' refs key while a plan is built."""

    seen_revision: int
    listed: set[str]
    current: set[str]
    added: bool = False
    ports: list[int] = field(default_factory=list)
    checks: tuple[dict, ...] | None = None  # to write into its status key; None: leave them


def ancestors(name: str, zone: str) -> list[str]:
    """Names strictly between the zone apex and `name`, nearest first."""
    path = name_to_path(name)
    depth = len(name_to_path(zone))
    return [path_to_name(path[:n]) for n in range(len(path) - 1, depth, -1)]


class Planner:
    """`holders`: ip -> the record keys of the zone that hold it, from a mirror of the zone
    (statusfeed.StatusFeed.holders), or None while that is not loaded; then a plan that drops
    an address' last API reference reads the zone itself to find other holders."""

    def __init__(self, layout: Layout, caller: Caller, snap: Snapshot,
                 holders: Callable[[str], set[str] | None] | None = None):
        self.layout = layout
        self.caller = caller
        self.snap = snap
        self.holders = holders
        self.plan = Plan(snap.revision)
        self._refs: dict[str, _Refs] = {}

    # --- entry points ----------------------------------------------------------------------

    def create(self, name: str, change: Change) -> Plan:
        children = self._children(name)
        self._check_ancestors(name)
        if change.rtype == "CNAME":
            self._create_aliases(name, change, children)
        else:
            self._check_not_alias(name, children)
            self._check_owner(children, name)
            owner = self._owner_for(children)
            if not self.snap.under(name_to_key(name) + "/"):
                # A fresh name: a concurrent first write (perhaps by another owner, perhaps an
                # alias) must make one of the two retry and see the other.
                self.plan.range_guards[name_to_key(name) + "/"] = "create"
            if change.rtype in ADDRESS_TYPES:
                self._create_addresses(name, change, children, owner)
            else:
                self._create_values(name, change, children, owner)
        return self._finish(created_status=201)

    def update(self, name: str, change: Change) -> Plan:
        if change.update is None and change.checks is not None:
            return self._set_checks(name, change)
        old, new = change.update
        children = self._children(name)
        if not children:
            raise not_found(f"{name} does not exist")
        if change.rtype == "CNAME":
            self._check_owner(children, name)
            rec = self._alias_record(old, name)
            self._check_owner([rec], old)
            self._remove(rec)
            self._add_alias(new, name, rec.owner or self._owner_for(children), rec.ttl)
            return self._finish()
        rec = next((c for c in children if c.rtype == change.rtype and c.value == old), None)
        if rec is None:
            raise not_found(f"{old} is not a {change.rtype} value of {name}")
        self._check_owner([rec], name)
        clash = [c for c in children if c.value == new and c.rtype
                 and (c.rtype == change.rtype or (c.is_address and rec.is_address))]
        if clash:
            raise conflict(f"{new} is already a {clash[0].rtype} value of {name}")
        owner = rec.owner or self._owner_for(children)
        if rec.is_address:
            self._prepare_ips([old, new])
            self._remove(rec)
            key = self._free_key(name, change.rtype, new, children)
            value = encode(change.rtype, new, owner, port=rec.port, priority=rec.priority,
                           weight=rec.weight, ttl=rec.ttl, ptr=rec.ptr)
            self._add_address(name, new, key, value, [rec.port] if rec.port else [], rec.ptr,
                              owner)
        else:
            self._remove(rec)
            key = self._free_key(name, change.rtype, new, children)
            self._guard(key)
            self._put(key, encode(change.rtype, new, owner, priority=rec.priority, ttl=rec.ttl))
        return self._finish()

    def delete(self, name: str, change: Change | None) -> Plan:
        children = self._children(name)
        if change is None:
            return self._delete_name(name, children)
        if change.rtype == "CNAME":
            self._check_owner(children, name)
            if change.values:
                recs = [self._alias_record(alias, name) for alias in change.values]
            else:
                recs = self._aliases_of(name)
                if not recs:
                    raise not_found(f"{name} has no aliases")
            self._check_owner(recs, name)
            for rec in recs:
                self._remove(rec)
            return self._finish()
        if not children:
            raise not_found(f"{name} does not exist")
        of_type = [c for c in children if c.rtype == change.rtype]
        if change.values:
            by_value = {c.value: c for c in of_type}
            for value in change.values:
                if value not in by_value:
                    raise not_found(f"{value} is not a {change.rtype} value of {name}")
            recs = [by_value[v] for v in change.values]
        else:
            recs = of_type
            if not recs:
                raise not_found(f"{name} has no {change.rtype} records")
        self._check_owner(recs, name)
        self._prepare_ips([r.value for r in recs if r.is_address])
        for rec in recs:
            self._remove(rec)
        return self._finish()

    # --- creating --------------------------------------------------------------------------

    def _create_addresses(self, name: str, change: Change, children: list[Stored],
                          owner: str) -> None:
        fresh = []
        for i, ip in enumerate(change.values):
            same = next((c for c in children if c.is_address and c.value == ip), None)
            if same is None:
                fresh.append(i)
            elif same.rtype != change.rtype:
                raise conflict(f"{ip} is already a {same.rtype} address of {name}")
            # else: an address already there is left as is (DESIGN.md, Record API semantics)
        self._prepare_ips([change.values[i] for i in fresh])
        for i in fresh:
            ip = change.values[i]
            port = change.ports[i] if change.ports else 0
            key = self._free_key(name, change.rtype, ip, children)
            value = encode(change.rtype, ip, owner, port=port, priority=change.priority,
                           weight=change.weight, ttl=change.ttl, ptr=change.ptr)
            self._add_address(name, ip, key, value, [port] if port else [], change.ptr, owner)
            if change.checks is not None:
                self._refs_of(ip).checks = change.checks

    def _set_checks(self, name: str, change: Change) -> Plan:
        """PUT checks: replace the health checks in the status keys of the name's addresses
        of one type (or of the ips given), never their status."""
        children = self._children(name)
        if not children:
            raise not_found(f"{name} does not exist")
        of_type = {c.value: c for c in children if c.rtype == change.rtype}
        if not of_type:
            raise not_found(f"{name} has no {change.rtype} records")
        for ip in change.values:
            if ip not in of_type:
                raise not_found(f"{ip} is not a {change.rtype} value of {name}")
        recs = [of_type[ip] for ip in change.values] if change.values else list(of_type.values())
        self._check_owner(recs, name)
        self._prepare_ips([r.value for r in recs])
        for rec in recs:
            skey = self.layout.status_key(rec.value)
            kv = self.snap.get(skey)
            # Guarded: a scanner's verdict written meanwhile makes this plan again on top of it.
            self._guard(skey)
            if kv is None:  # deleted behind the API's back: monitored again, as at creation
                ports = sorted({c.port for c in children if c.value == rec.value and c.port})
                self._put(skey, encode_status(ports, change.checks))
            else:
                self._put(skey, status_with_checks(kv.value, change.checks))
        return self._finish()

    def _create_values(self, name: str, change: Change, children: list[Stored],
                       owner: str) -> None:
        existing = {(c.rtype, c.value) for c in children}
        for i, value in enumerate(change.values):
            if (change.rtype, value) in existing:
                continue
            key = self._free_key(name, change.rtype, value, children)
            self._guard(key)
            priority = change.priorities[i] if change.priorities else 0
            self._put(key, encode(change.rtype, value, owner, priority=priority, ttl=change.ttl))

    def _create_aliases(self, target: str, change: Change, children: list[Stored]) -> None:
        if not children:
            raise not_found(f"{target} does not exist; create it before adding aliases")
        self._check_owner(children, target)
        own = next((c for c in children if c.cname_like), None)
        for alias in change.values:
            if alias == target:
                raise bad_request(f"{alias} cannot be an alias of itself")
            if own is not None and own.value == alias:
                raise conflict(f"{target} is an alias of {alias}; this would make a loop")
        self.snap.require(
            prefixes=[name_to_key(a) + "/" for a in change.values],
            keys=[cname_key(x) for a in change.values for x in ancestors(a, self.layout.zone)],
        )
        for alias in change.values:
            self._add_alias(alias, target, self._owner_for(children), change.ttl)

    def _add_alias(self, alias: str, target: str, owner: str, ttl: int) -> None:
        akey = name_to_key(alias)
        self.snap.require(prefixes=[akey + "/"],
                          keys=[cname_key(x) for x in ancestors(alias, self.layout.zone)])
        self._check_ancestors(alias)
        below = [s for kv in self.snap.under(akey + "/")
                 if (s := decode(kv.key, kv.value, kv.mod_revision)) is not None
                 and kv.key not in self.plan.deletes]
        at = cname_key(alias)
        mine = next((b for b in below if b.key == at and b.rtype == "CNAME"), None)
        if mine is not None and len(below) == 1:
            if mine.value == target:
                return  # already an alias of this name
            raise conflict(f"{alias} is already an alias of {mine.value}")
        if below:
            raise conflict(f"{alias} already has records; an alias (CNAME) must be alone")
        self.plan.range_guards[akey + "/"] = "create"
        self._guard(at)
        self._put(at, encode("CNAME", target, owner, ttl=ttl))

    def _add_address(self, name: str, ip: str, key: str, value: bytes, ports: list[int],
                     ptr: bool, owner: str) -> None:
        self._guard(key)
        self._put(key, value)
        refs = self._refs_of(ip)
        refs.current.add(key)
        refs.added = True
        refs.ports.extend(ports)
        if ptr:
            pkey = ptr_key(ip)
            kv = self.snap.get(pkey)
            points_to = ptr_target(kv.value) if kv is not None else None
            if kv is not None and points_to != name:
                raise conflict(f"the PTR of {ip} already points to {points_to or 'something else'}")
            if kv is None and pkey not in self.plan.puts:
                self._guard(pkey)
                self._put(pkey, encode_ptr(name, owner))

    # --- deleting --------------------------------------------------------------------------

    def _delete_name(self, name: str, children: list[Stored]) -> Plan:
        aliases = self._aliases_of(name)
        if not children and not aliases:
            raise not_found(f"{name} does not exist")
        self._check_owner(children, name)
        # Aliases of the name go with it, except those of another owner (they stay, dangling,
        # rather than letting one owner's alias block another owner's delete).
        aliases = [a for a in aliases if self._may_change(a)]
        self._prepare_ips([c.value for c in children if c.is_address])
        for rec in children + aliases:
            self._remove(rec)
        return self._finish()

    def _remove(self, rec: Stored) -> None:
        self._guard(rec.key)
        self._delete(rec.key)
        if not rec.is_address:
            return
        ip = rec.value
        self._refs_of(ip).current.discard(rec.key)
        if rec.ptr:
            pkey = ptr_key(ip)
            kv = self.snap.get(pkey)
            if kv is not None and ptr_target(kv.value) == rec.name:
                self._guard(pkey)
                self._delete(pkey)

    # --- addresses: refs, status ------------------------------------------------------------

    def _prepare_ips(self, ips: list[str]) -> None:
        """Read everything about these addresses in one go: refs, status, PTR, and the record
        keys each refs value lists (to drop keys deleted behind the API's back)."""
        lay = self.layout
        self.snap.require(keys=[k for ip in ips
                                for k in (lay.refs_key(ip), lay.status_key(ip), ptr_key(ip))])
        listed = set()
        for ip in ips:
            kv = self.snap.get(lay.refs_key(ip))
            listed.update(decode_refs(kv.value if kv else None))
        self.snap.require(keys=listed)

    def _refs_of(self, ip: str) -> _Refs:
        refs = self._refs.get(ip)
        if refs is None:
            kv = self.snap.get(self.layout.refs_key(ip))
            listed = set(decode_refs(kv.value if kv else None))
            current = set()
            for key in listed:
                held = self.snap.get(key)
                rec = decode(key, held.value, held.mod_revision) if held else None
                if rec is not None and rec.is_address and rec.value == ip:
                    current.add(key)
            refs = _Refs(kv.mod_revision if kv else 0, listed, current)
            self._refs[ip] = refs
        return refs

    def _settle_refs(self) -> None:
        lay = self.layout
        for ip, refs in self._refs.items():
            rkey, skey = lay.refs_key(ip), lay.status_key(ip)
            self.plan.key_guards[rkey] = refs.seen_revision
            if not refs.current:
                self._delete(rkey)
                if not self._held_elsewhere(ip, refs.listed):
                    self._delete(skey)  # the last reference is gone: stop monitoring it
                continue
            if refs.current != refs.listed:
                self._put(rkey, encode_refs(refs.current))
            status = self.snap.get(skey)
            if refs.added and status is None:
                # Guarded: a scanner's status written meanwhile must not be reset to UP.
                self._guard(skey)
                self._put(skey, encode_status(refs.ports, refs.checks))
            elif refs.added and refs.checks is not None:
                # The address was already monitored (another name holds it): the checks go
                # into its status key beside the verdict, which stays as it is.
                self._guard(skey)
                self._put(skey, status_with_checks(status.value, refs.checks))

    def _held_elsewhere(self, ip: str, listed: set[str]) -> bool:
        """Whether a record the API does not track (written by etcdctl, another layout)
        still holds `ip`: its status key must then stay, or the scanners stop probing an
        address that is served. The key found is guarded, so deleting it meanwhile
        conflicts; a hand-written record appearing meanwhile is as racy as any etcdctl
        write."""
        mine = listed | set(self.plan.puts) | set(self.plan.deletes)
        found = self.holders(ip) if self.holders is not None else None
        if found is None:
            kvs = self.snap.under(self.layout.zone_prefix)  # NeedReads: read the zone once
        else:
            found = found - mine
            if not found:
                return False
            self.snap.require(keys=found)
            kvs = [kv for kv in map(self.snap.kvs.get, sorted(found)) if kv is not None]
        for kv in kvs:
            if kv.key in mine:
                continue
            addr = record_address(kv.key, kv.value)
            if addr is not None and addr.ip == ip:
                self._guard(kv.key)
                return True
        return False

    # --- checks ----------------------------------------------------------------------------

    def _children(self, name: str) -> list[Stored]:
        """The keys of `name` itself (`<id>.<name>`), decoded."""
        prefix = name_to_key(name) + "/"
        self.snap.require(prefixes=[prefix],
                          keys=[cname_key(a) for a in ancestors(name, self.layout.zone)])
        depth = len(name_to_path(name)) + 1
        out = []
        for kv in self.snap.under(prefix):
            path = key_to_path(kv.key)
            if path is not None and len(path) == depth:
                rec = decode(kv.key, kv.value, kv.mod_revision)
                if rec is not None:
                    out.append(rec)
        return out

    def _check_ancestors(self, name: str) -> None:
        for parent in ancestors(name, self.layout.zone):
            key = cname_key(parent)
            kv = self.snap.get(key)
            if kv is not None and key not in self.plan.deletes:
                raise conflict(f"{parent} is an alias (CNAME); names below it cannot have records")
            self._guard(key)

    def _check_not_alias(self, name: str, children: list[Stored]) -> None:
        alias = next((c for c in children if c.cname_like), None)
        if alias is not None:
            raise conflict(f"{name} is an alias (CNAME) of {alias.value}; delete the alias first")
        self._guard(cname_key(name))

    def _may_change(self, rec: Stored) -> bool:
        return self.caller.admin or (bool(rec.rtype) and rec.owner == self.caller.owner)

    def _check_owner(self, recs: list[Stored], name: str) -> None:
        for rec in recs:
            if not self._may_change(rec):
                raise forbidden(f"{name} belongs to another owner")

    def _owner_for(self, children: list[Stored]) -> str:
        """Who owns new records: the caller, except that the administrator adding to someone's
        name adds in that owner's name (so the owner can still change all of it)."""
        if self.caller.admin:
            owners = sorted({c.owner for c in children if c.rtype and c.owner})
            return owners[0] if owners else ADMIN
        return self.caller.owner

    def _alias_record(self, alias: str, target: str) -> Stored:
        key = cname_key(alias)
        kv = self.snap.get(key)
        rec = decode(key, kv.value, kv.mod_revision) if kv else None
        if rec is None or rec.rtype != "CNAME" or rec.value != target:
            raise not_found(f"{alias} is not an alias of {target}")
        return rec

    def _aliases_of(self, name: str) -> list[Stored]:
        out = []
        for kv in self.snap.under(self.layout.zone_prefix):
            if kv.key.endswith("/" + CNAME_ID):
                rec = decode(kv.key, kv.value, kv.mod_revision)
                if rec is not None and rec.rtype == "CNAME" and rec.value == name:
                    out.append(rec)
        return out

    def _free_key(self, name: str, rtype: str, value: str, children: list[Stored]) -> str:
        taken = {c.key for c in children} | set(self.plan.puts) | set(self.plan.deletes)
        for key in candidate_keys(name, rtype, value):
            if key not in taken:
                return key
        raise conflict(f"no free key for {value} at {name}")

    # --- plan assembly ---------------------------------------------------------------------

    def _guard(self, key: str) -> None:
        if key in self.plan.key_guards:
            return
        kv = self.snap.get(key)
        self.plan.key_guards[key] = kv.mod_revision if kv is not None else 0

    def _put(self, key: str, value: bytes) -> None:
        if key in self.plan.deletes:
            self.plan.deletes.remove(key)
        self.plan.puts[key] = value

    def _delete(self, key: str) -> None:
        self.plan.puts.pop(key, None)
        if key not in self.plan.deletes:
            self.plan.deletes.append(key)

    def _finish(self, created_status: int = 200) -> Plan:
        self._settle_refs()
        plan = self.plan
        if len(plan.key_guards) + len(plan.range_guards) > MAX_COMPARES:
            _fold_guards(plan, self.layout)
        if len(plan.key_guards) + len(plan.range_guards) > MAX_COMPARES:
            raise ApiError(413, "too many records to change in one request")
        plan.status = created_status if plan.puts else 200
        return plan


def _fold_guards(plan: Plan, layout: Layout) -> None:
    """Replace per-key guards by one `mod_revision <= snapshot` range guard per area.

    Sound for the guards planners make: an absent key must stay absent (a creation shows as a
    newer mod revision) and a present one unchanged (likewise); a key deleted meanwhile goes
    unseen, but deleting an address rewrites its refs key, which is guarded too, and deleting
    a PTR or record twice is harmless. Status keys are kept per key: a range over them would
    conflict with every scanner update.
    """
    kept: dict[str, int] = {}
    for key, revision in plan.key_guards.items():
        if key.startswith(layout.status_path):
            kept[key] = revision
        elif key.startswith(layout.refs_path):
            plan.range_guards.setdefault(layout.refs_path, "mod")
        elif key.startswith(ARPA_PREFIX):
            plan.range_guards.setdefault(ARPA_PREFIX, "mod")
        elif key.startswith(layout.zone_prefix):
            plan.range_guards.setdefault(layout.zone_prefix, "mod")
        else:
            kept[key] = revision
    plan.key_guards = kept
    # A "create" range inside a folded "mod" range is implied by it.
    for prefix in [p for p, kind in plan.range_guards.items() if kind == "create"]:
        if any(prefix.startswith(p) and p != prefix and k == "mod"
               for p, k in plan.range_guards.items()):
            del plan.range_guards[prefix]
