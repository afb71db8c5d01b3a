"""Error lines at a bounded rate: a packet flood that hits one bug must not flood the log.

The first `burst` lines of a message per `interval` are written (with the traceback); the rest
are counted, and the next line written says how many were left out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RateLimitedLog:
    def __init__(self, logger: logging.Logger, burst: int = 5, interval: float = 60.0,
                 clock: Callable[[], float] = time.monotonic):
        self.logger = logger
        self.burst = burst
        self.interval = interval
        self.clock = clock  # handed in so a test can move time instead of reading the machine's
        self._window: dict[str, tuple[float, int, int]] = {}  # msg -> (start, written, dropped)

    def _allow(self, msg: str) -> int | None:
        """None to drop this line, else how many lines of `msg` were dropped before it."""
        now = self.clock()
        start, written, dropped = self._window.get(msg, (now, 0, 0))
        if now - start >= self.interval:
            start, written = now, 0
        if written >= self.burst:
            self._window[msg] = (start, written, dropped + 1)
            return None
        self._window[msg] = (start, written + 1, 0)
        return dropped

    def exception(self, msg: str, kv: dict) -> None:
        dropped = self._allow(msg)
        if dropped is None:
            return
        if dropped:
            kv = {**kv, "suppressed": dropped}
        self.logger.exception(msg, extra={"kv": kv})

    def warning(self, msg: str, kv: dict) -> None:
        dropped = self._allow(msg)
        if dropped is None:
            return
        if dropped:
            kv = {**kv, "suppressed": dropped}
        self.logger.warning(msg, extra={"kv": kv})
