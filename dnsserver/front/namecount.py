"""Per-name counters whose memory is bounded by bytes, not by entries.

A flood of random (or long) names must not grow the stats of a worker forever: names are
admitted while their text fits the byte budget, then only names already counted go on.
"""

from __future__ import annotations

from collections import Counter

ENTRY_OVERHEAD = 100  # a dict slot, the key object and an int, roughly, on 64-bit CPython


class NameCounts(Counter):
    """A Counter of names (str or wire bytes) that stops admitting new names past `budget`
    bytes (name length plus ENTRY_OVERHEAD each) or `max_names` names."""

    def __init__(self, budget: int, max_names: int = 100_000):
        super().__init__()
        self.budget = budget
        self.max_names = max_names
        self.used = 0
        self.refused = 0  # counts of names that did not fit (so a total still adds up)

    def add(self, name, count: int = 1) -> None:
        if name in self:
            self[name] += count
            return
        cost = len(name) + ENTRY_OVERHEAD
        if self.used + cost > self.budget or len(self) >= self.max_names:
            self.refused += count
            return
        self.used += cost
        self[name] = count

    def clear(self) -> None:
        super().clear()
        self.used = 0

    def copy(self) -> Counter:
        return Counter(self)  # Counter.copy would call NameCounts(self): a plain copy will do
