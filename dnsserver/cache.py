"""AnswerCache: question bytes -> ready reply bytes, invalidated by what each reply read.

An entry holds one or more variants, each the reply minus ID and question split in two parts
(10 header bytes for RD=0 and RD=1, and everything after the question), so a hit is a dict
lookup and one bytes join. Entries remember the index paths and addresses they were built from;
a change drops exactly the entries that read it. Eviction is CLOCK: a hit only sets a flag.

In front of it sits `front` (UDP only): the query bytes after the ID -> the whole reply after
the ID, for entries with one variant and no expiry. Those bytes fully decide the reply (case,
RD and OPT included), so a repeat question costs one lookup and one join. Front keys are
owned by their entry and go with it, so every invalidation reaches them.

Hit counts live on the entries (the hot path only increments); `fold` moves them into
per-name totals a slice at a time, so stats never walk the whole cache in one go.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter

from skydns.keys import Path

from .namecount import NameCounts

_HONE_MEMO = 4096  # clients remembered per entry; past that the memo starts over
_MAX_RETIRED_NAMES = 100_000  # random-name floods must not grow the per-name stats forever
_RETIRED_NAME_BYTES = 8 << 20
KEY_SUFFIX = 8  # a cache key is the wire name + type, class (4) + EDNS flag (1) + limit (3)
_FRONTS_PER_ENTRY = 8  # 0x20-randomising resolvers spell a name many ways; keep a few spellings
FOLD_SLICE = 1000  # entries (or names) handled per step: about a millisecond at most


class Entry:
    __slots__ = (
        "variants",
        "addrs",
        "mode",
        "memo",
        "ref",
        "paths",
        "ips",
        "soa",
        "expires",
        "hits",
        "counted",
        "kind",
        "key",
        "fronts",
        "ring",
        "turn",
        "restricted",
    )

    def __init__(
        self,
        variants,
        addrs=(),
        mode="",
        paths=(),
        ips=(),
        soa=False,
        expires=0.0,
        kind="",
        ring=None,
        restricted=False,
    ):
        # A question with `*` reads every name a wildcard matches: depend on the part above it.
        paths = {p[: p.index("*")] if "*" in p else p for p in paths}
        self.variants = variants  # list of (hdr_rd0, hdr_rd1, tail)
        self.addrs = addrs  # for hone-one: the address each variant answers with
        # "" one variant; "random" any variant; "hone" rendezvous by client; "ring" the one
        # variant with its address records rotated one step per hit (engine.address_ring)
        self.mode = mode
        self.memo: dict = {}
        self.ref = False
        self.paths = paths
        self.ips = ips
        self.soa = soa
        self.expires = expires  # 0: until invalidated; else a time.monotonic() deadline
        self.hits = 0  # counted on the hot path
        self.counted = 0  # of those, already folded into the cache's totals
        self.kind = kind  # what the answer is, for stats: "", "nxdomain", "nodata", "forward"
        self.key = b""
        self.fronts: list | None = None  # front keys answered from this entry
        self.ring = ring
        # a random start, so workers and rebuilt entries do not all lead with one address
        self.turn = random.randrange(ring[3]) if ring else 0
        # Only for clients allowed to forward (upstream data in it): the transports check
        # forward-allow on a hit for these alone. Such entries always expire, so the check
        # sits behind the expiry test that entries without expiry skip.
        self.restricted = restricted

    def pick(self, client: str):
        if self.mode == "":
            return self.variants[0]
        if self.mode == "random":
            return random.choice(self.variants)
        if self.mode == "ring":
            prefix, ring, size, n, span, suffix = self.ring
            turn = self.turn + 1
            if turn >= n:
                turn = 0
            self.turn = turn
            rd0, rd1, _ = self.variants[0]
            start = turn * size
            return rd0, rd1, prefix + ring[start : start + span] + suffix
        chosen = self.memo.get(client)
        if chosen is None:
            if len(self.memo) >= _HONE_MEMO:
                self.memo.clear()
            chosen = self.memo[client] = self.variants[rendezvous(client, self.addrs)]
        return chosen


def rendezvous(client: str, addrs) -> int:
    """Highest-random-weight choice: stable for a client across processes and restarts, and
    when an address leaves only the clients that had it move."""
    best, best_i = b"", 0
    for i, addr in enumerate(addrs):
        score = hashlib.blake2b(f"{client}|{addr}".encode(), digest_size=8).digest()
        if score > best:
            best, best_i = score, i
    return best_i


def split_reply(wire: bytes, qend: int) -> tuple[bytes, bytes, bytes]:
    """A rendered reply (ID 0) -> (header bytes with RD=0, with RD=1, bytes after the question)."""
    hdr = wire[2:12]
    rd0 = bytes((hdr[0] & 0xFE,)) + hdr[1:]
    rd1 = bytes((hdr[0] | 0x01,)) + hdr[1:]
    return rd0, rd1, wire[qend:]


class AnswerCache:
    def __init__(self, size: int):
        self.size = size
        self.entries: dict[bytes, Entry] = {}
        self.front: dict[bytes, tuple[bytes, Entry]] = {}
        self.by_path: dict[Path, set[bytes]] = {}
        self.by_ip: dict[str, set[bytes]] = {}
        self.soa_keys: set[bytes] = set()
        self.generation = 0  # bumped by every invalidation, so builds that awaited can tell
        self.misses = 0
        self.evictions = 0
        # folded hits by wire name, bounded by bytes: random-name floods must not grow it forever
        self.name_hits = NameCounts(_RETIRED_NAME_BYTES, _MAX_RETIRED_NAMES)
        self.kind_hits: Counter = Counter()  # folded hits by answer kind

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: bytes) -> Entry | None:
        return self.entries.get(key)

    def put(self, key: bytes, entry: Entry) -> None:
        if self.size <= 0 or (entry.restricted and not entry.expires):
            return  # the transports test `restricted` only for entries that expire
        if key in self.entries:
            self._remove(key)
        while len(self.entries) >= self.size:
            self._evict_one()
        entry.key = key
        self.entries[key] = entry
        for path in entry.paths:
            self.by_path.setdefault(path, set()).add(key)
        for ip in entry.ips:
            self.by_ip.setdefault(ip, set()).add(key)
        if entry.soa:
            self.soa_keys.add(key)

    def add_front(self, fkey: bytes, reply: bytes, entry: Entry) -> None:
        """Answer `fkey` (query bytes after the ID) with `reply` while `entry` stays cached.
        Only for entries with one variant and no expiry: nothing else decides their bytes."""
        if self.entries.get(entry.key) is not entry:
            return  # served, but not (or no longer) cached: nothing would drop the front key
        if entry.mode or entry.expires or entry.restricted:
            return  # the front checks nothing: these need a pick, a clock or forward-allow
        front = self.front
        if len(front) >= self.size:
            front.clear()  # rare (sizes match the cache); entries' stale keys pop harmlessly
        fronts = entry.fronts
        if fronts is None:
            fronts = entry.fronts = []
        elif len(fronts) >= _FRONTS_PER_ENTRY:
            for old in fronts:
                front.pop(old, None)
            fronts.clear()
        fronts.append(fkey)
        front[fkey] = (reply, entry)

    def _evict_one(self) -> None:
        entries = self.entries
        for _ in range(len(entries) + 1):  # CLOCK: second chance for entries hit since last pass
            key = next(iter(entries))
            entry = entries[key]
            if entry.ref:
                entry.ref = False
                del entries[key]
                entries[key] = entry
                continue
            break
        self._remove(key)
        self.evictions += 1

    def _fold_one(self, entry: Entry) -> None:
        new = entry.hits - entry.counted
        if new:
            entry.counted = entry.hits
            name = entry.key[:-KEY_SUFFIX]
            self.name_hits.add(name, new)
            self.kind_hits[entry.kind] += new

    def _remove(self, key: bytes) -> None:
        entry = self.entries.pop(key, None)
        if entry is None:
            return
        self._fold_one(entry)
        if entry.fronts:
            front = self.front
            for fkey in entry.fronts:
                front.pop(fkey, None)
            entry.fronts = None
        for path in entry.paths:
            _discard(self.by_path, path, key)
        for ip in entry.ips:
            _discard(self.by_ip, ip, key)
        if entry.soa:
            self.soa_keys.discard(key)

    def drop(self, key: bytes) -> None:
        self._remove(key)

    def invalidate_path(self, path: Path) -> int:
        """A record at `path` changed: drop entries that read `path` or any name above it
        (lookups collect whole subtrees, and a negative answer for a name turns positive when
        something appears below it), and those flagged `soa` (the SOA answer itself).

        Negative answers carry the SOA too but are not flagged: one that no change reached
        keeps its older serial, which only moves their negative-caching TTL basis, not truth.
        """
        self.generation += 1
        dropped = 0
        keys = list(self.soa_keys)
        for depth in range(len(path) + 1):
            found = self.by_path.get(path[:depth])
            if found:
                keys.extend(found)
        for key in keys:
            if key in self.entries:
                self._remove(key)
                dropped += 1
        return dropped

    def invalidate_ip(self, ip: str) -> int:
        self.generation += 1
        keys = list(self.by_ip.get(ip, ()))
        for key in keys:
            self._remove(key)
        return len(keys)

    def fold(self, entries=None) -> None:
        """Move hits counted on `entries` (default: all) into name_hits/kind_hits."""
        fold_one = self._fold_one
        for entry in self.entries.values() if entries is None else entries:
            fold_one(entry)

    @property
    def hits(self) -> int:
        """Hits so far; read-only, so another thread (a test) may ask."""
        pending = sum(e.hits - e.counted for e in list(self.entries.values()))
        return sum(self.kind_hits.values()) + pending

    def hit_counts(self) -> tuple[Counter, Counter]:
        """Hits so far by wire name and by answer kind, cached and retired entries together."""
        self.fold()
        return Counter(self.name_hits), Counter(self.kind_hits)

    def clear(self) -> None:
        self.generation += 1
        self.fold()
        self.entries.clear()
        self.front.clear()
        self.by_path.clear()
        self.by_ip.clear()
        self.soa_keys.clear()


def _discard(index: dict, dep, key: bytes) -> None:
    keys = index.get(dep)
    if keys is not None:
        keys.discard(key)
        if not keys:
            del index[dep]
