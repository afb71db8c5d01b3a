"""Flap damping: a status flips only after `rise` successes or `fall` failures in a row.

One lost packet or one slow accept must not move traffic away from a backend, and a backend
that answers once while it restarts must not get traffic back yet. This is the hysteresis of
Consul's StatusHandler (successes-before-passing, failures-before-critical), kept free of I/O
so it can be tested with plain PASS/FAIL sequences.
"""

from __future__ import annotations

UP = "UP"
DOWN = "DOWN"


class Damper:
    """The damped status of one address.

    `status` is UP, DOWN, or None while nothing is known yet (a new address without a stored
    status); from None the first `rise` successes give UP and the first `fall` failures DOWN.
    """

    __slots__ = ("rise", "fall", "status", "successes", "failures")

    def __init__(self, rise: int, fall: int, status: str | None = None):
        if rise < 1 or fall < 1:
            raise ValueError(f"rise and fall must be at least 1, got rise={rise} fall={fall}")
        if status not in (UP, DOWN, None):
            raise ValueError(f"status must be UP, DOWN or None, got {status!r}")
        self.rise = rise
        self.fall = fall
        self.status = status
        self.successes = 0
        self.failures = 0

    def __repr__(self) -> str:
        return (f"<Damper {self.status} rise={self.successes}/{self.rise} "
                f"fall={self.failures}/{self.fall}>")

    def feed(self, ok: bool) -> str | None:
        """Record one probe result; returns the new status if this result flips it, else None."""
        if ok:
            self.failures = 0
            # Capped: an address that is UP for a year must not grow an unbounded counter.
            self.successes = min(self.successes + 1, self.rise)
            if self.status != UP and self.successes >= self.rise:
                self.status = UP
                return UP
        else:
            self.successes = 0
            self.failures = min(self.failures + 1, self.fall)
            if self.status != DOWN and self.failures >= self.fall:
                self.status = DOWN
                return DOWN
        return None

    def reset(self, status: str | None) -> None:
        """Adopt a status decided elsewhere (a newer write in etcd) and start counting afresh."""
        if status not in (UP, DOWN, None):
            raise ValueError(f"status must be UP, DOWN or None, got {status!r}")
        self.status = status
        self.successes = 0
        self.failures = 0
