"""The zone transfer as a stream of record bytes, kept per name between transfers.

served.py says what a transfer holds (every name's records as the rules answer them, as
`render.plain` bytes). Here:

- Names are visited in key order by walking the index tree; each name's records are
  uncompressed wire bytes (uncompressed owners cost some bytes but no compression table),
  yielded one name at a time. Every name goes through served.py's `name_records`, i.e. the
  rules (rules.py's `answer()`), asking only the questions the kinds of records below it can
  answer (a name of addresses: A or AAAA, and SRV).
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
import struct

from skydns.keys import Path

from .index import below_node
from .records import stored_wildcard_records
from .rules import labels_path, path_labels
from .served import (
    ALL,
    T_CNAME,
    apex_records,
    in_zone,
    kinds_of,
    name_answers,
    name_wire,
    rtype_of,
    soa_wire,
    wires,
)
from .state import Change, ZoneState

log = logging.getLogger("skydns.transfer")

_SORT_CHUNK = 20_000  # children sorted at once; a bigger node is sorted in chunks, merged
_SHARDS, _SHARD_MASK = 256, 255
PAUSE = None  # yielded by `records` where the caller may let other work run
_MEMO_HEAD = struct.Struct(">III")  # generation, record count, types id: a kept name's bytes
_TYPES: list[frozenset] = []  # the type sets names hold (a few), by id
_TYPE_IDS: dict[frozenset, int] = {}
_NO_TYPES: frozenset = frozenset()


def _types_id(types: frozenset) -> int:
    tid = _TYPE_IDS.get(types)
    if tid is None:
        tid = _TYPE_IDS[types] = len(_TYPES)
        _TYPES.append(types)
    return tid
__all__ = ["PAUSE", "Snapshot", "record_ends", "soa_wire"]  # soa_wire: the engine's


class Served:
    """What a name served: its records' bytes, their count, the types it holds and whether
    one is a CNAME (the glue rules ask), and the glue candidates its answers carried."""

    __slots__ = ("gen", "wire", "count", "types", "cname", "glue")

    def __init__(self, gen, wire, count, types, cname, glue):
        self.gen = gen
        self.wire = wire
        self.count = count
        self.types = types
        self.cname = cname
        self.glue = glue


class _Glue:
    """A transfer's glue candidates (see `Snapshot.records`): numbered in answer order, each
    waiting for its owner's name until the walk reaches it."""

    __slots__ = ("candidates", "waiting", "known", "sources", "n")

    def __init__(self):
        self.candidates: dict[int, tuple] = {}
        # owner labels -> candidate numbers; a name is looked up by its labels as written
        # from its key: an owner spelled otherwise (case) is not settled on the walk, the end
        # of the transfer asks its name then (`Snapshot._types_at`)
        self.waiting: dict[tuple, list[int]] = {}
        self.known: set[int] = set()  # settled and wanted: the owner lacks that type
        self.sources: list = []  # (node, Served, numbers) of the names that gave them
        self.n = 0

    def add(self, rrs, node, served) -> None:
        first = self.n
        for rr in rrs:
            self.candidates[self.n] = rr
            self.waiting.setdefault(rr[0], []).append(self.n)
            self.n += 1
        if served is not None:
            self.sources.append((node, served, range(first, self.n)))

    def settle(self, owner: tuple, served) -> None:
        """The walk reached the name `owner` (labels): its candidates are left out if it
        holds their type (or is a CNAME), else wanted (what the end of the transfer
        decides)."""
        numbers = self.waiting.pop(owner, None)
        if numbers:
            for i in numbers:
                rr = self.candidates.get(i)
                if rr is None:
                    continue
                if served.cname or rtype_of(rr) in served.types:
                    del self.candidates[i]
                else:
                    self.known.add(i)

    def prune(self, snapshot) -> None:
        """Keep on each kept name only its candidates that were not left out: the names
        below it that settled them are dropped with it when they change (aggregation), and
        the types a name holds beside an address below it do not depend on other names."""
        for node, served, numbers in self.sources:
            if node is None or node.memo is not served:
                continue
            left = tuple(self.candidates[i] for i in numbers if i in self.candidates)
            if len(left) < len(served.glue):
                served.glue = left
                if not left:
                    node.memo = _MEMO_HEAD.pack(served.gen, served.count,
                                                _types_id(served.types)) + bytes(served.wire)
        self.sources.clear()

    def left(self):
        """(candidate, settled and wanted) in answer order."""
        known = self.known
        return [(rr, i in known) for i, rr in self.candidates.items()]


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

    def _note_ips(self, ips, text: str) -> None:
        """Remember that the answers of the name whose key text ("a/b/c") is `text` read the
        health of `ips`. One name below another is enough: dropping a name drops every name
        above it (an address and its service name, the commonest pair, cost one string, not
        a set)."""
        shards = self.ips
        under = text + "/"
        for ip in ips:
            shard = shards[hash(ip) & _SHARD_MASK]
            have = shard.get(ip)
            if have is None:
                shard[ip] = text
            elif have == text:
                continue
            elif type(have) is str:
                if text.startswith(have) and text[len(have)] == "/" or not have:
                    shard[ip] = text  # this one is below the one kept: it drops both
                elif not (have.startswith(under) or not text):  # else one below drops it
                    shard[ip] = {have, text}
            elif type(have) is set:
                have.add(text)
            else:
                shard[ip] = {have, text}

    # -- one name ----------------------------------------------------------------------------

    def name(self, path: Path, node, generic: bool, owner: tuple | None = None) -> Served:
        """What one served name serves; `node` its index node or None (the `local` name need
        not exist); `generic`: ask every question (the records below the name do not say
        which can be answered: stored wildcards, the `local` name); `owner`: the name's
        labels (`path_labels(path)`), if the caller has them."""
        gen = self.gen
        memo = node.memo if node is not None else None
        if memo is not None:
            if type(memo) is bytes:
                mgen, count, tid = _MEMO_HEAD.unpack_from(memo)
                if mgen == gen:
                    types = _TYPES[tid]
                    wire = memoryview(memo)[_MEMO_HEAD.size :]
                    return Served(gen, wire, count, types, T_CNAME in types, ())
            elif memo.gen == gen:
                return memo
        self.computed += 1
        kinds = ALL
        below = None
        if not generic:  # no wildcard, not the `local` name: its records are its node's
            below = below_node(node)
            if len(below) == 1:
                kinds = kinds_of(below[0])
            else:
                kinds = 0
                for rec in below:
                    kinds |= kinds_of(rec)
        reads = [] if self.keep else None
        if owner is None:
            owner = path_labels(path)
        got = name_answers(self.state, path, kinds, reads, owner, below)
        if got is None:
            rrs, extra, types = [], [], _NO_TYPES
            wire, count = b"", 0
        else:
            rrs, extra, types = got
            wire, count = name_wire(owner, rrs)
        cname = T_CNAME in types
        if extra:  # its own address as an SRV target's glue (the bulk): it holds that type
            if len(extra) == 1:
                rr = extra[0]
                head = rr[1]
                held = rr[0] == owner and (cname or (head[0] << 8 | head[1]) in types)
                extra = () if held else (rr,)
            else:
                extra = tuple([rr for rr in extra
                               if rr[0] != owner or not (cname or rtype_of(rr) in types)])
        served = Served(gen, wire, count, types, cname, tuple(extra))
        if reads is not None:
            depth = len(path)
            readers = self.readers
            ips = None
            for answered in reads:
                for read in answered.paths:
                    if read is not path and read[:depth] != path:
                        readers.setdefault(read, set()).add(path)
                read_ips = answered.ips
                if read_ips:  # a name's questions read the same addresses: note each once
                    if ips is None:
                        ips = read_ips
                    elif read_ips != ips:
                        ips = ips | read_ips
            if ips:
                self._note_ips(ips, "/".join(path))
            if node is not None:
                # the bulk (no glue left over) as one bytes object: a few dozen bytes per
                # name instead of an object, a set and a tuple
                node.memo = served if extra else _MEMO_HEAD.pack(
                    gen, count, _types_id(types)) + wire
        return served

    def _types_at(self, path: Path, zone_path: Path) -> tuple[frozenset, bool] | None:
        """(types, has a CNAME) of a served name of the zone, or None if it is not one."""
        node = self.state.index.node(path)
        local = self._local(zone_path)
        if path != local and (node is None or not node.count or "*" in path):
            return None
        served = self.name(path, node, bool(self.state.index.wildcards) or path == local)
        return served.types, served.cname

    def _local(self, zone_path: Path) -> Path | None:
        zone = self.state.zone
        if zone.local and zone_path == zone.domain_path:
            return zone.domain_path + ("dns", "local")
        return None

    # -- the zone ----------------------------------------------------------------------------

    def records(self, zone_path: Path, soa: bytes):
        """The zone's records in transfer order (SOA, apex, stored wildcards, every name in
        key order, glue): yields (bytes, count) pieces, and PAUSE where the caller may let
        other work run. `soa` is the SOA record's bytes (the caller sends it again last)."""
        ctx = self.state
        index = ctx.index
        yield soa, 1
        seen: set = set()  # records outside the names (apex, wildcards, glue), each once
        have: set = set()  # (owner, type) of those
        out, apex_glue = apex_records(ctx, zone_path)
        wildcards = bool(index.wildcards)
        if wildcards:
            found = []
            yield from self._wildcard_records(zone_path, found)
            for rec in sorted(found, key=lambda r: r.path):
                out += stored_wildcard_records(ctx, rec)
        pieces = wires(out, seen)
        have.update((rr[0], rtype_of(rr)) for rr in out)
        cnames = {rr[0] for rr in out if rtype_of(rr) == T_CNAME}
        if pieces:
            yield b"".join(pieces), len(pieces)

        # Glue candidates in the order the answers gave them, each waiting for its owner's
        # name: when the walk reaches that name (an SRV target below its service name, the
        # bulk, comes right after it) the candidate is settled there, so the walk carries
        # only the few candidates of names not reached yet.
        glue = _Glue()
        glue.add(apex_glue, None, None)
        local = self._local(zone_path)
        for path, node, owner in self._names(zone_path, local):
            if path is None:
                yield PAUSE
                continue
            served = self.name(path, node, wildcards or path == local, owner)
            if served.count:
                yield served.wire, served.count
            if served.glue:
                glue.add(served.glue, node, served)
            if glue.waiting and owner is not None:
                glue.settle(owner, served)
        glue.prune(self)

        # glue for SRV/MX/NS targets of the zone that no name of it answers already
        wanted = []
        for rr, known in glue.left():
            owner = rr[0]
            if owner in cnames or not in_zone(ctx, owner, zone_path):
                continue
            rtype = rtype_of(rr)
            if (owner, rtype) in have:
                continue
            if not known:
                at = self._types_at(labels_path(owner), zone_path)
                if at is not None and (at[1] or rtype in at[0]):
                    continue
            wanted.append(rr)
            have.add((owner, rtype))  # the first glue of an owner and type only
        pieces = wires(wanted, seen)
        if pieces:
            yield b"".join(pieces), len(pieces)

    def _names(self, zone_path: Path, local: Path | None):
        """(path, node, owner labels) of every served name below the apex in key order (node
        None for the `local` name when nothing is stored there; owner None for a name that
        cannot be written, `path_labels`), and (None, None, None) pauses. Names with a `*`
        label are not served (their answers are query-side wildcards), nor anything below.
        A name's labels are its parent's with its own label in front (as `path_labels`
        makes them, without making the parent's again)."""
        root = self.state.index.node(zone_path)
        extra = {local} if local is not None else set()
        if root is None or (not root.children and not extra):
            return
        stack = []
        labels = yield from self._sorted_labels(root, zone_path, extra)
        owner = path_labels(zone_path)
        stack.append((zone_path, root, labels, owner,
                      sum(map(len, owner)) + len(owner) if owner is not None else 0))
        while stack:
            path, node, labels, parent, size = stack[-1]
            label = next(labels, None)
            if label is None:
                stack.pop()
                continue
            children = node.children if node is not None else None
            child = children.get(label) if children else None
            child_path = path + (label,)
            owner = None
            if parent is not None:
                raw = label.encode("utf-8", "surrogateescape")
                child_size = size + len(raw) + 1
                if 0 < len(raw) < 64 and child_size <= 254:
                    owner = (raw, *parent)
            if child is None or not child.count:
                if child_path in extra:
                    yield child_path, None, owner
                elif not extra or not any(p[: len(child_path)] == child_path for p in extra):
                    continue
            else:
                if label == "*":
                    continue
                yield child_path, child, owner
            if (child is not None and child.children) or extra and any(
                    len(p) > len(child_path) and p[: len(child_path)] == child_path
                    for p in extra):
                labels = yield from self._sorted_labels(child, child_path, extra)
                stack.append((child_path, child, labels, owner,
                              child_size if owner is not None else 0))

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

