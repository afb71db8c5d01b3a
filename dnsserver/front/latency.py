"""How long misses take, as histogram buckets a worker can write in its stats snapshot and the
supervisor can sum (stats.py): plain counts, no prometheus-client objects in the workers."""

from __future__ import annotations

from bisect import bisect_left

# A miss built from the zone takes tens of microseconds, a forwarded one an upstream round
# trip (a LAN: a millisecond or so; a timeout: forward-timeout, 2 s by default).
BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
           0.25, 0.5, 1.0, 2.5, 5.0)
_FIRST = BUCKETS[0]


class Latency:
    """Counts per bucket (the last one: past every bound) and the sum, for one kind of miss."""

    def __init__(self, kind: str):
        self.kind = kind
        self.counts = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        # every miss passes here, most in the first bucket: that one without the search
        self.counts[0 if seconds <= _FIRST else bisect_left(BUCKETS, seconds)] += 1
        self.sum += seconds

    def flat(self) -> dict[str, float]:
        """{"<kind>:<bound>": count in that bucket alone, "<kind>:sum", "<kind>:count"}, the
        form stats snapshots carry and StatsBook adds up key by key."""
        out = {f"{self.kind}:{bound!r}": n for bound, n in zip(BUCKETS, self.counts, strict=False)}
        out[f"{self.kind}:+Inf"] = self.counts[-1]
        out[f"{self.kind}:sum"] = self.sum
        out[f"{self.kind}:count"] = sum(self.counts)
        return out


def buckets(flat: dict, kind: str) -> tuple[list[tuple[str, float]], float]:
    """Cumulative (le, count) pairs and the sum of `kind` from summed flat() dicts."""
    total = 0
    out = []
    for bound in BUCKETS:
        total += flat.get(f"{kind}:{bound!r}", 0)
        out.append((repr(bound), total))
    total += flat.get(f"{kind}:+Inf", 0)
    out.append(("+Inf", total))
    return out, flat.get(f"{kind}:sum", 0.0)
