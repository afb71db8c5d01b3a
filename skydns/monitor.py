"""What the monitor daemons (scanner, scheduler) share: their timestamps, and warnings that
must not flood a log (the IP a monitor key names is skydns.keys.ip_of_key, for every reader).
The daemons never import each other, so this lives in the core.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime

from .keys import ip_of_key
from .logsetup import kv

LOG_EVERY = 10.0  # seconds between repeated warnings of one kind


def iso_time(now: datetime | None = None) -> str:
    """UTC with milliseconds, `2024-05-01T12:00:00.123Z`: the `updatetime` of monitor values."""
    now = now or datetime.now(UTC)
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def json_object(value: bytes | None) -> dict | None:
    """A monitor value (status, heart, history, confirm...) as the JSON object it should be;
    None for none, bad JSON, nesting too deep or another JSON type: nobody's value may take a
    reader down, and each reader says what "unreadable" means for it."""
    if not value:
        return None
    try:
        obj = json.loads(value)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


class Warner:
    """Warnings of one daemon that would otherwise repeat on every round or every reload."""

    def __init__(self, log: logging.Logger, every: float = LOG_EVERY):
        self.log = log
        self.interval = every
        self._last: dict[str, float] = {}
        self._keys: set[str] = set()

    def every(self, what: str, message: str, **fields) -> None:
        """Log at most once per interval for each `what`."""
        now = time.monotonic()
        if now - self._last.get(what, -self.interval) >= self.interval:
            self._last[what] = now
            self.log.warning(message, extra=kv(**fields))

    def ip_of(self, key: str, prefix: str) -> str | None:
        """ip_of_key, warning about a key that names no address once per key: a watch that
        reloads its snapshot must not repeat them all."""
        ip = ip_of_key(key, prefix)
        if ip is None and key not in self._keys:
            self._keys.add(key)
            self.log.warning("key does not name an IP address; ignored", extra=kv(key=key))
        return ip
