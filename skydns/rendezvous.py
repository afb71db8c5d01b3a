"""Rendezvous (highest-random-weight) hashing, the one copy for every part that uses it.

The DNS cache's hone-one (which address a client gets) and the scheduler (which scanner
probes an address) both pick, for a key, the candidate with the highest weight: stable across
processes, hosts and restarts (blake2b, not Python's seeded `hash`), and when a candidate
leaves only the keys that had it move.

The weight hashes "<key>|<candidate>": the spelling hone-one always had, kept so that DNS
workers and replicas of different versions, during a rolling upgrade, still give a client the
same address. (The scheduler used "<scanner>\\0<ip>" before; its assignments are sticky, so
the change moved no address that already had a live scanner under the cap.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def weight(key: str, candidate: str) -> int:
    """The weight of `candidate` for `key`: a stable 64-bit hash, the same on every host."""
    digest = hashlib.blake2b(f"{key}|{candidate}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def choose(key: str, candidates: Sequence[str]) -> int:
    """The index of the candidate with the highest weight for `key` (the first on a tie);
    0 for no candidates."""
    # weight() for each candidate, with "<key>|" hashed once and the hash state copied: the
    # same digests (compared as bytes: big-endian, equal length), a third of the cost, which
    # hone-one pays for every client it has not seen yet.
    prefix = hashlib.blake2b(f"{key}|".encode(), digest_size=8)
    best, best_i = b"", 0
    for i, candidate in enumerate(candidates):
        h = prefix.copy()
        h.update(candidate.encode())
        digest = h.digest()
        if digest > best:
            best, best_i = digest, i
    return best_i
