"""AnswerCache: question bytes -> ready reply bytes, invalidated by what each reply read.

An entry holds one or more variants, each the reply minus ID and question split in two parts
(10 header bytes for RD=0 and RD=1, and everything after the question), so a hit is a dict
lookup and one bytes join. Entries remember the index paths and addresses they were built from;
a change drops exactly the entries that read it. Eviction is CLOCK: a hit only sets a flag.

In front of it sits `front` (UDP): the query bytes after the ID -> the whole reply after
the ID, for entries with one variant and no expiry. Those bytes fully decide the reply (case,
RD and OPT included), so a repeat question costs one lookup and one join. Front keys are
owned by their entry and go with it, so every invalidation reaches them. TCP has its own,
`tcp_front` (same keys, replies built with the TCP limit, and their 2-byte length prefix): a
separate dict, because any bytes can arrive as a UDP datagram, so no key marker could keep a
UDP query from being answered with a whole (untruncated) TCP reply.

Negative answers (NXDOMAIN, NODATA) live in their own area, `negatives`, bounded at a quarter
of the size and evicted among themselves: a flood of random names (each asked once, each a
miss) can only push out other negative answers, never the positive ones a hot set hits.

Hit counts live on the entries (the hot path only increments); `fold` moves them into
per-name totals a slice at a time, so stats never walk the whole cache in one go.
"""

from __future__ import annotations

import heapq
import random
import time
from collections import Counter, OrderedDict

from skydns.keys import Path
from skydns.rendezvous import choose

from ..wire.message import Ring
from .namecount import NameCounts

_HONE_MEMO = 131_072  # clients remembered per hone-one entry; past that its memo starts over
# ... and over all of a cache's entries (about 30 MB): spoofed sources must not grow it further
HONE_BUDGET = 262_144
_MAX_RETIRED_NAMES = 100_000  # random-name floods must not grow the per-name stats forever
_RETIRED_NAME_BYTES = 8 << 20
KEY_SUFFIX = 8  # a cache key is the wire name + type, class (4) + EDNS flag (1) + limit (3)
_FRONTS_PER_ENTRY = 8  # 0x20-randomising resolvers spell a name many ways; keep a few spellings
_TAILS_MAX = 16_384  # bytes of ready rotations an entry may keep (a ring's bytes are less)
_random = random.random
FOLD_SLICE = 1000  # entries (or names) handled per step: about a millisecond at most
NEGATIVE_SHARE = 4  # the negative area holds up to size // NEGATIVE_SHARE entries (at least 1)
_NEGATIVE_KINDS = ("nxdomain", "nodata")


def is_negative(entry: Entry) -> bool:
    """NXDOMAIN or NODATA (truncated or not): kept in the negative area."""
    return entry.kind.startswith(_NEGATIVE_KINDS)


class Entry:
    __slots__ = (
        "variants",
        "addrs",
        "mode",
        "memo",
        "budget",
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
        "tails",
        "turn",
        "restricted",
        "renew",
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
        renew=False,
    ):
        # A question with `*` reads every name a wildcard matches: depend on the part above it.
        paths = {p[: p.index("*")] if "*" in p else p for p in paths}
        self.variants = variants  # list of (hdr_rd0, hdr_rd1, tail)
        self.addrs = addrs  # for hone-one: the address each variant answers with
        # "" one variant; "random" any variant; "hone" rendezvous by client; "ring" the one
        # variant with its address records rotated one step per hit (wire.Ring)
        self.mode = mode
        self.memo: dict = {}
        self.budget: list | None = None  # [clients remembered, bound], shared by a cache's entries
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
        self.ring: Ring | None = ring
        # Every rotation's bytes, when they are few (most names have a handful of addresses):
        # then a hit takes one instead of slicing and joining it.
        self.tails: list | None = None
        if ring and ring.n * (len(ring.prefix) + ring.span + len(ring.suffix)) <= _TAILS_MAX:
            self.tails = [ring.prefix + ring.records[t * ring.size : t * ring.size + ring.span]
                          + ring.suffix for t in range(ring.n)]
        # a random start, so workers and rebuilt entries do not all lead with one address
        self.turn = random.randrange(ring.n) if ring else 0
        # Only for clients allowed to forward (upstream data in it): the transports check
        # forward-allow on a hit for these alone. Such entries always expire, so the check
        # sits behind the expiry test that entries without expiry skip.
        self.restricted = restricted
        # `expires` is when signatures are due for renewal (signed replies), not when the
        # reply goes stale: the front may serve it, and `sweep` drops it soon after that time.
        self.renew = renew

    def pick(self, client: str):
        if self.mode == "":
            return self.variants[0]
        if self.mode == "random":
            variants = self.variants
            return variants[int(_random() * len(variants))]
        if self.mode == "ring":
            ring = self.ring
            turn = self.turn + 1
            if turn >= ring.n:
                turn = 0
            self.turn = turn
            rd0, rd1, _ = self.variants[0]
            if self.tails is not None:
                return rd0, rd1, self.tails[turn]
            start = turn * ring.size
            return rd0, rd1, ring.prefix + ring.records[start : start + ring.span] + ring.suffix
        memo = self.memo
        chosen = memo.get(client)
        if chosen is None:
            budget = self.budget
            if len(memo) >= _HONE_MEMO or (budget is not None and budget[0] >= budget[1]):
                if budget is not None:
                    budget[0] -= len(memo)
                memo.clear()
            chosen = memo[client] = self.variants[choose(client, self.addrs)]
            if budget is not None:
                budget[0] += 1
        return chosen

    def reply(self, data: bytes, qend: int, rd: int, client: str) -> bytes:
        """The reply to the query `data` minus its ID: our header with the query's RD bit, the
        query's own question bytes (the client's casing), then the records."""
        tails = self.tails
        if tails is not None:  # a ring with its rotations ready: the commonest shuffled name
            turn = self.turn + 1
            if turn >= len(tails):
                turn = 0
            self.turn = turn
            return self.variants[0][rd] + data[12:qend] + tails[turn]
        variant = self.pick(client)
        return variant[rd] + data[12:qend] + variant[2]


def split_reply(wire: bytes, qend: int) -> tuple[bytes, bytes, bytes]:
    """A rendered reply (ID 0) -> (header bytes with RD=0, with RD=1, bytes after the question)."""
    hdr = wire[2:12]
    rd0 = bytes((hdr[0] & 0xFE,)) + hdr[1:]
    rd1 = bytes((hdr[0] | 0x01,)) + hdr[1:]
    return rd0, rd1, wire[qend:]


class AnswerCache:
    def __init__(self, size: int):
        self.size = size
        # OrderedDicts: CLOCK takes the oldest key; a dict would find it past every deleted
        # slot at its front (30 us an eviction at 25,000 entries, 0.4 us here)
        self.entries: OrderedDict[bytes, Entry] = OrderedDict()  # positive (and upstream)
        self.negatives: OrderedDict[bytes, Entry] = OrderedDict()  # NXDOMAIN/NODATA, own bound
        self.negative_size = max(1, size // NEGATIVE_SHARE) if size > 0 else 0
        self.hone_budget = [0, HONE_BUDGET]  # hone-one clients remembered by all entries
        self.front: dict[bytes, tuple[bytes, Entry]] = {}
        self.tcp_front: dict[bytes, tuple[bytes, Entry, bytes]] = {}
        self.by_path: dict[Path, set[bytes]] = {}
        self.by_ip: dict[str, set[bytes]] = {}
        self.soa_keys: set[bytes] = set()
        self.renewals: list = []  # heap of (expires, key): fronted entries `sweep` drops
        self.generation = 0  # bumped by every invalidation, so builds that awaited can tell
        self.misses = 0
        self.evictions = 0
        # folded hits by wire name, bounded by bytes: random-name floods must not grow it forever
        self.name_hits = NameCounts(_RETIRED_NAME_BYTES, _MAX_RETIRED_NAMES)
        self.kind_hits: Counter = Counter()  # folded hits by answer kind

    def __len__(self) -> int:
        return len(self.entries) + len(self.negatives)

    def get(self, key: bytes) -> Entry | None:
        entry = self.entries.get(key)
        return entry if entry is not None else self.negatives.get(key)

    def all_entries(self) -> list[Entry]:
        return [*self.entries.values(), *self.negatives.values()]

    def hit(self, data: bytes, keyed, client: str, allowed) -> tuple[bytes, Entry] | None:
        """The hit path of every transport: the cached reply to `data` minus its ID, and its
        entry; None when there is no usable entry (then the engine's `miss` answers).

        `keyed` is wire.question_key(data, ...); `allowed(client)` says whether the client may
        see upstream data (forward-allow), asked only for the entries that hold it.
        """
        entry = self.entries.get(keyed[0])
        if entry is None:
            entry = self.negatives.get(keyed[0])
            if entry is None:
                return None
        # Only entries that expire can be restricted (upstream data): hits on all others pay
        # nothing for that check.
        if entry.expires and (
            entry.expires <= time.monotonic() or (entry.restricted and not allowed(client))
        ):
            return None
        entry.ref = True
        entry.hits += 1
        return entry.reply(data, keyed[1], keyed[2], client), entry

    def put(self, key: bytes, entry: Entry) -> None:
        if self.size <= 0 or (entry.restricted and not entry.expires):
            return  # the transports test `restricted` only for entries that expire
        if key in self.entries or key in self.negatives:
            self._remove(key)
        if is_negative(entry):
            area, bound = self.negatives, self.negative_size
        else:
            area, bound = self.entries, self.size
        while len(area) >= bound:
            self._evict_one(area)
        entry.key = key
        if entry.mode == "hone":
            entry.budget = self.hone_budget
        area[key] = entry
        for path in entry.paths:
            self.by_path.setdefault(path, set()).add(key)
        for ip in entry.ips:
            self.by_ip.setdefault(ip, set()).add(key)
        if entry.soa:
            self.soa_keys.add(key)

    def add_front(self, fkey: bytes, reply: bytes, entry: Entry, framed: bool = False) -> None:
        """Answer `fkey` (query bytes after the ID) with `reply` while `entry` stays cached.
        Only for entries with one variant and no expiry: nothing else decides their bytes.
        `framed` (TCP) keeps the 2-byte length prefix of the whole reply beside it."""
        if self.get(entry.key) is not entry:
            return  # served, but not (or no longer) cached: nothing would drop the front key
        if entry.mode or (entry.expires and not entry.renew) or entry.restricted:
            return  # the front checks nothing: these need a pick, a clock or forward-allow
        if entry.renew and not entry.fronts:
            renewals = self.renewals
            if len(renewals) > 2 * self.size:  # most of it left with evicted entries: rebuild
                renewals[:] = [(e.expires, e.key) for e in self.all_entries()
                               if e.renew and e.fronts]
                heapq.heapify(renewals)
            heapq.heappush(renewals, (entry.expires, entry.key))
        front = self.tcp_front if framed else self.front
        if len(front) >= self.size:
            front.clear()  # rare (sizes match the cache); entries' stale keys pop harmlessly
        fronts = entry.fronts
        if fronts is None:
            fronts = entry.fronts = []
        elif len(fronts) >= _FRONTS_PER_ENTRY:
            for old in fronts:
                self.front.pop(old, None)
                self.tcp_front.pop(old, None)
            fronts.clear()
        fronts.append(fkey)
        if framed:
            front[fkey] = (reply, entry, (len(reply) + 2).to_bytes(2, "big"))
        else:
            front[fkey] = (reply, entry)

    def _evict_one(self, entries: OrderedDict) -> None:
        for _ in range(len(entries) + 1):  # CLOCK: second chance for entries hit since last pass
            key = next(iter(entries))
            entry = entries[key]
            if entry.ref:
                entry.ref = False
                entries.move_to_end(key)
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
            entry = self.negatives.pop(key, None)
            if entry is None:
                return
        self._fold_one(entry)
        if entry.budget is not None:
            entry.budget[0] -= len(entry.memo)
            entry.budget = None
        if entry.fronts:
            front, tcp_front = self.front, self.tcp_front
            for fkey in entry.fronts:  # an entry's keys are in one of them (or, rarely, both)
                front.pop(fkey, None)
                tcp_front.pop(fkey, None)
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
            if key in self.entries or key in self.negatives:
                self._remove(key)
                dropped += 1
        return dropped

    def invalidate_ip(self, ip: str) -> int:
        """An address's health changed: drop entries that read it, and the SOA answers (the
        serial moves with health too, so a secondary sees the served zone changed)."""
        self.generation += 1
        keys = list(self.by_ip.get(ip, ())) + list(self.soa_keys)
        for key in keys:
            if key in self.entries or key in self.negatives:
                self._remove(key)
        return len(keys)

    def sweep(self, now: float) -> int:
        """Drop fronted signed entries whose renewal time has passed (the front checks no
        clock; signatures stay valid for days after it, so a sweep every few seconds is
        plenty). Returns how many were dropped."""
        heap, dropped = self.renewals, 0
        while heap and heap[0][0] <= now:
            _, key = heapq.heappop(heap)
            entry = self.get(key)  # signed denials live in the negative area
            if entry is not None and entry.expires <= now:
                self._remove(key)
                dropped += 1
        return dropped

    def fold(self, entries=None) -> None:
        """Move hits counted on `entries` (default: all) into name_hits/kind_hits."""
        fold_one = self._fold_one
        for entry in self.all_entries() if entries is None else entries:
            fold_one(entry)

    @property
    def hits(self) -> int:
        """Hits so far; read-only, so another thread (a test) may ask."""
        pending = sum(e.hits - e.counted for e in self.all_entries())
        return sum(self.kind_hits.values()) + pending

    def hit_counts(self) -> tuple[Counter, Counter]:
        """Hits so far by wire name and by answer kind, cached and retired entries together."""
        self.fold()
        return Counter(self.name_hits), Counter(self.kind_hits)

    def clear(self) -> None:
        self.generation += 1
        self.fold()
        for entry in self.all_entries():
            entry.budget = None
        self.hone_budget[0] = 0
        self.entries.clear()
        self.negatives.clear()
        self.front.clear()
        self.tcp_front.clear()
        self.by_path.clear()
        self.by_ip.clear()
        self.soa_keys.clear()
        self.renewals.clear()


def _discard(index: dict, dep, key: bytes) -> None:
    keys = index.get(dep)
    if keys is not None:
        keys.discard(key)
        if not keys:
            del index[dep]
