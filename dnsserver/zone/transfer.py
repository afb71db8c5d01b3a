"""The zone transfer as a stream of record bytes, kept per name between transfers.

served.py says what a transfer holds (every name's records as `answer()` gives them); asking
`answer()` every question of every name cost about a millisecond per record, so a million
records took a quarter of an hour and were all rendered into a list before the first byte was
sent. Here:

- Names are visited in key order by walking the index tree; each name's records become
  uncompressed wire bytes (uncompressed owners cost some bytes but no compression table, and
  keep dnslib's pointer bug past offset 16383 out of the way), yielded one name at a time.
- Names holding only plain address records (an IP host, no text, mail, group, type or
  targetstrip; port, priority, weight, TTL and leases allowed), the bulk of a big zone, are
  rendered straight from the records (`plain_name`): A, AAAA and SRV with answer.py's rules
  (DOWN left out unless all are, SRV weights from `answer.srv_weights`). Their SRV glue is the
  target's own A/AAAA, which the target name already holds, so it never reaches the zone.
  tests/test_transfer.py proves the bytes equal served.py's for a table of record shapes.
  Every other name goes through served.py's `name_rrs` (`answer()` itself).
- What a name served is kept on its index node (`_Node.memo`) and dropped when something it
  read changes (the ZoneState change feed): a change at path P drops P's node and every node
  above it (aggregation), the names that read P from outside their own subtree (CNAME
  targets, glue, the `local` name), and a health change drops the names whose answers read
  that address. A full reload or a stored wildcard's change (the zone state announces those
  as "everything") drops them all, by a generation count rather than a walk. So a transfer
  after a few changes recomputes only the names they touched. The copy is made by the first
  transfer (nothing is spent on workers that never transfer) and costs about the transfer's
  size in memory while kept (bench/README.md).

Everything here is synchronous and pure (no sockets, no asyncio): `Snapshot.records` yields the
zone in pieces with pause points, and the engine packs them into messages, signs them and
writes them as they come (engine.py `_transfer`).
"""

from __future__ import annotations

import heapq
import logging
import socket
import struct

from dnslib import QTYPE, RR, DNSBuffer

from skydns.keys import Path, name_to_path, path_to_name

from .answer import Answer, Context, answer, soa_record, srv_weights
from .index import below_node
from .records import _renderable, record_rrs
from .served import _ALL, _key, _kinds, _owned, name_rrs, zone_of_name
from .state import Change, ZoneState

log = logging.getLogger("skydns.transfer")

T_A, T_CNAME, T_AAAA, T_SRV = 1, 5, 28, 33
_HEAD = struct.Struct(">HHIH")  # type, class IN, TTL, RDLENGTH
_SRV_FIXED = struct.Struct(">HHH")
_MEMO_HEAD = struct.Struct(">II")  # generation, record count: before a plain name's bytes
_SORT_CHUNK = 20_000  # children sorted at once; a bigger node is sorted in chunks, merged
_SHARDS, _SHARD_MASK = 256, 255
PAUSE = None  # yielded by `records` where the caller may let other work run

_V4, _V6 = frozenset((T_A, T_SRV)), frozenset((T_AAAA, T_SRV))
_BOTH = _V4 | _V6


class _Plain(DNSBuffer):
    """A dnslib buffer that never compresses: each record's bytes stand alone."""

    def encode_name(self, name):
        self.encode_name_nocompress(name)


def rr_wire(rr: RR) -> bytes:
    buf = _Plain()
    rr.pack(buf)
    return bytes(buf.data)


def label_wire(label: str) -> bytes | None:
    """One label's wire form (length byte and octets), or None as in `path_wire`."""
    n = len(label)
    if not 0 < n < 64 or not label.isascii() or "." in label or "\\" in label:
        return None
    return bytes((n,)) + label.encode()


def path_wire(path: Path) -> bytes | None:
    """The uncompressed wire form of a path's name as dnslib would write it, or None when
    dnslib would spell it otherwise (non-ASCII: IDNA; backslash escapes; a dot inside a
    label; too long)."""
    out = bytearray()
    total = -1
    for label in reversed(path):
        n = len(label)
        if not 0 < n < 64 or not label.isascii() or "." in label or "\\" in label:
            return None
        out.append(n)
        out += label.encode()
        total += n + 1
    if total > 253:
        return None
    out.append(0)
    return bytes(out)


def _child_wire(label: str, parent: bytes | None) -> bytes | None:
    """A child name's path_wire from its parent's, or None."""
    if parent is None:
        return None
    wire = label_wire(label)
    if wire is None:
        return None
    wire += parent
    return wire if len(wire) <= 255 else None


def _ip_bytes(rec) -> bytes:
    return socket.inet_pton(socket.AF_INET if rec.family == 4 else socket.AF_INET6, rec.ip)


def plain_name(ctx: Context, path: Path, records: list,
               owner: bytes | None = None) -> tuple[bytes, int] | None:
    """The records `name_rrs` gives a name whose records (at and below it, key order) are all
    plain addresses, as wire bytes and their count; None for any other name. `owner`: the
    name's `path_wire`, if the caller has it."""
    for rec in records:
        if not rec.ip or rec.rtype or rec.text or rec.mail or rec.targetstrip or rec.group:
            return None
    if owner is None:
        owner = path_wire(path)
        if owner is None:
            return None
    down = ctx.health.down
    ttl = ctx.ttl
    head = _HEAD.pack
    parts: list[bytes] = []
    if len(records) == 1:  # a leaf: one address, its own SRV target
        rec = records[0]
        t = ttl(rec)
        ip = _ip_bytes(rec)
        target = owner if rec.path == path else path_wire(rec.path)
        if target is None:
            return None
        rdata = _SRV_FIXED.pack(rec.priority or 10, 100, rec.port) + target
        return b"".join((
            owner, head(T_A if rec.family == 4 else T_AAAA, 1, t, len(ip)), ip,
            owner, head(T_SRV, 1, t, len(rdata)), rdata,
        )), 2
    for family, rtype in ((4, T_A), (6, T_AAAA)):
        group = [r for r in records if r.family == family]
        if not group:
            continue
        if down:
            group = [r for r in group if r.ip not in down] or group
        seen: set[str] = set()
        for rec in group:
            if rec.ip in seen:  # the same address under two keys is one record
                continue
            seen.add(rec.ip)
            ip = _ip_bytes(rec)
            parts.append(owner + head(rtype, 1, ttl(rec), len(ip)) + ip)
    targets = records
    if down:
        targets = [r for r in records if r.ip not in down] or records
    depth = len(path) + 1
    for rec, priority, weight in srv_weights(targets):
        target_path = rec.path
        if len(target_path) == depth:  # a child: its label before our name
            target = label_wire(target_path[-1])
            if target is not None:
                target += owner
                if len(target) > 255:
                    target = None
        else:
            target = owner if target_path == path else path_wire(target_path)
        if target is None:
            return None
        rdata = _SRV_FIXED.pack(priority, weight, rec.port) + target
        parts.append(owner + head(T_SRV, 1, ttl(rec), len(rdata)) + rdata)
    return b"".join(parts), len(parts)


def plain_types(records: list) -> frozenset:
    families = {r.family for r in records}
    return _BOTH if len(families) == 2 else _V4 if 4 in families else _V6


class Served:
    """What a name that is not plain served: its records' bytes, their count, the types it
    holds and whether one is a CNAME (the glue rules ask), and the glue candidates its
    answers carried."""

    __slots__ = ("gen", "wire", "count", "types", "cname", "glue")

    def __init__(self, gen, wire, count, types, cname, glue):
        self.gen = gen
        self.wire = wire
        self.count = count
        self.types = types
        self.cname = cname
        self.glue = glue


def record_ends(wire: bytes) -> list[int]:
    """Where each record of uncompressed record bytes ends (to split a name too big for one
    message)."""
    ends, i, n = [], 0, len(wire)
    while i < n:
        while wire[i]:
            i += wire[i] + 1
        i += 11
        i += (wire[i - 2] << 8 | wire[i - 1])
        ends.append(i)
    return ends


class Snapshot:
    """The served zone kept per name on the index nodes, following the zone state's changes.

    `keep=False` keeps nothing (every transfer computes every name again)."""

    def __init__(self, state: ZoneState, keep: bool = True):
        self.state = state
        self.keep = keep
        self.gen = 1
        # address -> the path (or set of paths) that read it, in shards: one dict of a million
        # addresses would stop the loop for its resizes (about 0.1 s each at that size). A
        # path is kept as its key text ("a/b/c"): a dict of strings only is not tracked by
        # the cyclic GC, whose full passes would otherwise walk a million entries (the
        # record paths stay GC-tracked after a load made with GC paused): 70 ms stalls.
        self.ips: list[dict[str, object]] = [{} for _ in range(_SHARDS)]
        self.readers: dict[Path, set[Path]] = {}  # path -> names that read it from outside
        self.computed = 0  # names computed (not taken from the copy): tests and the bench
        self.active = False  # set by the first transfer: until then there is nothing to drop
        state.subscribe(self._on_change)

    # -- following changes -------------------------------------------------------------------

    def _on_change(self, change: Change) -> None:
        if not self.active:
            return
        if change.everything:
            self.gen += 1
            self.ips = [{} for _ in range(_SHARDS)]
            self.readers.clear()
            return
        for path in change.paths:
            self._drop(path)
        for ip in change.ips:
            paths = self.ips[hash(ip) & _SHARD_MASK].pop(ip, None)
            if paths is not None:
                for text in paths if type(paths) is set else (paths,):
                    self._drop(tuple(text.split("/")) if text else ())

    def _drop(self, path: Path) -> None:
        """Forget what `path` and every name above it served, and the names that read it."""
        node = self.state.index.node(())
        node.memo = None
        for label in path:
            children = node.children
            node = children.get(label) if children else None
            if node is None:
                break
            node.memo = None
        readers = self.readers
        if readers:
            for k in range(len(path) + 1):
                names = readers.pop(path[:k], None)
                if names:
                    for name in names:
                        reader = self.state.index.node(name)
                        if reader is not None:
                            reader.memo = None

    def _note_ip(self, ip: str, path: Path) -> None:
        ips = self.ips[hash(ip) & _SHARD_MASK]
        have = ips.get(ip)
        text = "/".join(path)
        if have is None:
            ips[ip] = text
        elif have == text:
            return
        elif type(have) is set:
            have.add(text)
        else:
            ips[ip] = {have, text}

    # -- one name ----------------------------------------------------------------------------

    def name(self, path: Path, node, generic: bool,
             parent: bytes | None = None) -> tuple[bytes, int, Served | None]:
        """(record bytes, count, Served or None for a plain name) of one served name; `node`
        its index node or None (the `local` name need not exist); `generic`: answer() only;
        `parent`: the parent name's `path_wire` if the caller has it."""
        gen = self.gen
        memo = node.memo if node is not None else None
        if memo is not None:
            if type(memo) is bytes:
                mgen, count = _MEMO_HEAD.unpack_from(memo)
                if mgen == gen:
                    return memoryview(memo)[8:], count, None
            elif memo.gen == gen:
                return memo.wire, memo.count, memo
        self.computed += 1
        ctx = self.state
        records = below_node(node) if node is not None else []
        if not generic:
            plain = plain_name(ctx, path, records, _child_wire(path[-1], parent))
            if plain is not None:
                wire, count = plain
                if self.keep:  # what to drop it on: nothing to drop without a copy
                    note = self._note_ip
                    for rec in records:
                        note(rec.ip, rec.path)
                    node.memo = _MEMO_HEAD.pack(gen, count) + wire
                return wire, count, None
        kinds = _ALL
        if not generic:
            kinds = 0
            for rec in records:
                kinds |= _kinds(rec)
        served = self._generic(path, kinds)
        if self.keep and node is not None:
            node.memo = served
        return served.wire, served.count, served

    def _generic(self, path: Path, kinds: int) -> Served:
        ctx = self.state
        reads = Answer()
        rrs, extra = name_rrs(ctx, path, kinds, reads)
        seen: set = set()
        parts: list[bytes] = []
        types: set[int] = set()
        for rr in rrs:
            key = _key(rr)
            if key is None or key in seen:
                continue
            seen.add(key)
            parts.append(rr_wire(rr))
            types.add(rr.rtype)
        if self.keep:
            depth = len(path)
            for read in reads.paths:
                if read[:depth] != path:
                    self.readers.setdefault(read, set()).add(path)
            for ip in reads.ips:
                self._note_ip(ip, path)
        return Served(self.gen, b"".join(parts), len(parts), frozenset(types),
                      T_CNAME in types, tuple(extra))

    def _types_at(self, path: Path, zone_path: Path) -> tuple[frozenset, bool] | None:
        """(types, has a CNAME) of a served name of the zone, or None if it is not one."""
        node = self.state.index.node(path)
        local = self._local(zone_path)
        if path != local and (node is None or not node.count or "*" in path):
            return None
        generic = bool(self.state.index.wildcards) or path == local
        _, _, served = self.name(path, node, generic)
        if served is None:
            return plain_types(below_node(node)), False
        return served.types, served.cname

    def _local(self, zone_path: Path) -> Path | None:
        zone = self.state.zone
        if zone.local and zone_path == zone.domain_path:
            return zone.domain_path + ("dns", "local")
        return None

    # -- the zone ----------------------------------------------------------------------------

    def records(self, zone_path: Path, soa: bytes):
        """The zone's records in transfer order, as served.py's `served_steps` lists them
        (SOA, apex, stored wildcards, every name in key order, glue): yields (bytes, count)
        pieces, and PAUSE where the caller may let other work run. `soa` is the SOA record's
        bytes (the caller sends it again last)."""
        ctx = self.state
        index = ctx.index
        apex = path_to_name(zone_path)
        yield soa, 1
        seen: set = set()
        have: set = set()  # (owner, type) of the records outside the names: apex, wildcards
        cnames: set = set()
        glue: list[RR] = []

        def extra(rr: RR) -> bytes | None:
            key = _key(rr)
            if key is None or key in seen:
                return None
            seen.add(key)
            have.add((key[0], rr.rtype))
            if rr.rtype == T_CNAME:
                cnames.add(key[0])
            return rr_wire(rr)

        out = []
        apex_ans = answer(ctx, apex, QTYPE.NS)
        out += _owned(apex_ans.answer, apex)
        glue += apex_ans.additional
        for qtype in (QTYPE.A, QTYPE.AAAA, QTYPE.TXT, QTYPE.MX, QTYPE.SRV):
            ans = answer(ctx, apex, qtype)
            out += _owned(ans.answer, apex)
            glue += ans.additional
        wildcards = bool(index.wildcards)
        if wildcards:
            found = []
            yield from self._wildcard_records(zone_path, found)
            for rec in sorted(found, key=lambda r: r.path):
                out += _renderable(rec, lambda r=rec: record_rrs(ctx, r))
        wires = [w for w in map(extra, out) if w is not None]
        if wires:
            yield b"".join(wires), len(wires)

        local = self._local(zone_path)
        for path, node, parent in self._names(zone_path, local):
            if path is None:
                yield PAUSE
                continue
            wire, count, served = self.name(path, node, wildcards or path == local, parent)
            if count:
                yield wire, count
            if served is not None and served.glue:
                glue += served.glue

        # glue for SRV/MX/NS targets of the zone that no name of it answers already
        pieces = []
        for rr in glue:
            owner = str(rr.rname).lower()
            if not zone_of_name(ctx, owner, zone_path) or owner in cnames:
                continue
            if (owner, rr.rtype) in have:
                continue
            at = self._types_at(name_to_path(owner), zone_path)
            if at is not None and (at[1] or rr.rtype in at[0]):
                continue
            wire = extra(rr)
            if wire is not None:
                pieces.append(wire)
        if pieces:
            yield b"".join(pieces), len(pieces)

    def _names(self, zone_path: Path, local: Path | None):
        """(path, node, the parent's path_wire or None) of every served name below the apex in
        key order (node None for the `local` name when nothing is stored there), and (None,
        None, None) pauses. Names with a `*` label are not served (their answers are query-side
        wildcards), nor anything below."""
        root = self.state.index.node(zone_path)
        extra = {local} if local is not None else set()
        if root is None or (not root.children and not extra):
            return
        stack = []
        labels = yield from self._sorted_labels(root, zone_path, extra)
        stack.append((zone_path, root, labels, path_wire(zone_path)))
        while stack:
            path, node, labels, wire = stack[-1]
            label = next(labels, None)
            if label is None:
                stack.pop()
                continue
            children = node.children if node is not None else None
            child = children.get(label) if children else None
            child_path = path + (label,)
            if child is None or not child.count:
                if child_path in extra:
                    yield child_path, None, None
                elif not extra or not any(p[: len(child_path)] == child_path for p in extra):
                    continue
            else:
                if label == "*":
                    continue
                yield child_path, child, wire
            if (child is not None and child.children) or extra and any(
                    len(p) > len(child_path) and p[: len(child_path)] == child_path
                    for p in extra):
                labels = yield from self._sorted_labels(child, child_path, extra)
                stack.append((child_path, child, labels, _child_wire(label, wire)))

    def _sorted_labels(self, node, path: Path, extra: set):
        """An iterator over a node's child labels in order (with any `extra` path's label at
        this depth). Big nodes are sorted in chunks with pauses between, then merged, so a
        flat zone of a million names does not stop the loop for the whole sort."""
        labels = list(node.children) if node is not None and node.children else []
        depth = len(path)
        for p in extra:
            if len(p) > depth and p[:depth] == path and p[depth] not in labels:
                labels.append(p[depth])
        if len(labels) <= _SORT_CHUNK:
            labels.sort()
            return iter(labels)
        chunks = []
        for i in range(0, len(labels), _SORT_CHUNK):
            chunks.append(sorted(labels[i : i + _SORT_CHUNK]))
            yield None, None, None
        return heapq.merge(*chunks)

    def _wildcard_records(self, zone_path: Path, found: list):
        """Stored wildcards to transfer as DNS wildcard owners: records at a `*` label that
        is their key's last and only one. Pauses (yields PAUSE) as it walks."""
        root = self.state.index.node(zone_path)
        if root is None:
            return
        stack = [root]
        n = 0
        while stack:
            node = stack.pop()
            children = node.children
            if not children:
                continue
            wild = children.get("*")
            if wild is not None and wild.record is not None:
                found.append(wild.record)
            stack.extend(child for label, child in children.items() if label != "*")
            n += 1
            if n % 2000 == 0:
                yield PAUSE


def soa_wire(ctx: Context, zone_path: Path) -> bytes:
    return rr_wire(soa_record(ctx, zone_path))
