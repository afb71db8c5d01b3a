"""When a scanner must stop trusting its own eyes: the isolation rule. Pure (times handed in).

A scanner whose host lost its route to the service network (a NIC, a firewall rule, a
saturated host) still reaches etcd and finds everything it probes failing. Confirmations
already keep it from writing those DOWNs; this rule makes it say so and hand its work over:

  enter  more than `threshold` of the addresses it holds failed their latest check, and the
         recent confirmations (within `window` seconds) mostly disagreed: other scanners
         reach what this one cannot. Both are needed: many failures that others confirm are
         a real outage (a rack gone), a disagreement about one address is that address.
  leave  most of them answer again (more than half, and no more than `threshold` failing)
         in `leave_after` evaluations in a row.

Any failed check counts (refused, timed out, unreachable): the vantage point decides, not
the kind of error. A check that could not run at all (no socket here) counts for neither.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

ENTER = "enter"
LEAVE = "leave"


class Isolation:
    """The isolation state of one scanner, fed with confirmation outcomes as they come and
    evaluated with the latest check result of every address it holds (True: answered,
    False: failed, None: not checked yet or could not be checked)."""

    def __init__(self, threshold: float, window: float, leave_after: int = 2):
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self.window = window
        self.leave_after = max(1, leave_after)
        self.isolated = False
        self.reason: str | None = None
        self._outcomes: deque[tuple[float, bool]] = deque()  # (when, agreed)
        self._good = 0  # evaluations in a row that would let an isolated scanner go

    def note_confirmation(self, agreed: bool, now: float) -> None:
        self._outcomes.append((now, agreed))
        # Bounded by time, and by count for a burst (thousands of addresses at once).
        while len(self._outcomes) > 1000:
            self._outcomes.popleft()

    def recent(self, now: float) -> tuple[int, int]:
        """(agreed, disagreed) confirmations within the window."""
        while self._outcomes and self._outcomes[0][0] < now - self.window:
            self._outcomes.popleft()
        agreed = sum(1 for _, ok in self._outcomes if ok)
        return agreed, len(self._outcomes) - agreed

    def evaluate(self, results: Iterable[bool | None], now: float) -> str | None:
        """ENTER or LEAVE when the state changes with this evaluation, else None."""
        failing = known = 0
        for ok in results:
            if ok is not None:
                known += 1
                failing += not ok
        if not self.isolated:
            agreed, disagreed = self.recent(now)
            if known and failing / known > self.threshold and disagreed and disagreed >= agreed:
                self.isolated = True
                self._good = 0
                self.reason = (f"{failing} of {known} addresses fail from here while other "
                               f"scanners reach them ({disagreed} of {agreed + disagreed} "
                               "confirmations disagreed)")
                return ENTER
            return None
        answering = known - failing
        if not known or (failing / known <= self.threshold and answering / known > 0.5):
            self._good += 1
        else:
            self._good = 0
        if self._good >= self.leave_after:
            self.isolated = False
            self.reason = None
            self._good = 0
            self._outcomes.clear()  # judged afresh from here on
            return LEAVE
        return None
