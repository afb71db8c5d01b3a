"""The values the scanner reads and writes, as pure functions over bytes.

status/<ip> -> {"status": "UP"|"DOWN", "ports": [80, 443], ...}: the scanner owns "status" and
adds "checker" and "updatetime"; every other field (ports, fields of newer tools) belongs to
someone else and is written back unchanged.
report/<ip> -> {"hostname": "<scanner>", "updatetime": "..."}: written by the scheduler.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .damping import DOWN, UP


@dataclass(frozen=True, slots=True)
class StatusValue:
    fields: dict | None  # the whole JSON object; None when the value is not one
    status: str | None  # UP, DOWN, or None when absent or not one of those
    ports: tuple[int, ...]  # valid ports listed in "ports"; () when none
    problems: tuple[str, ...] = field(default=())  # what was wrong with the value, for a log


def read_status(value: bytes) -> StatusValue:
    try:
        obj = json.loads(value)
    except (ValueError, UnicodeDecodeError, RecursionError):  # nesting too deep is bad JSON too
        return StatusValue(None, None, (), ("not valid JSON",))
    if not isinstance(obj, dict):
        return StatusValue(None, None, (), (f"a JSON {type(obj).__name__}, not an object",))
    problems: list[str] = []
    status = obj.get("status")
    if isinstance(status, str) and status.upper() in (UP, DOWN):
        status = status.upper()
    else:
        if status is not None:
            problems.append(f"status {status!r} is neither UP nor DOWN")
        status = None
    ports, bad = parse_ports(obj.get("ports"))
    if bad:
        problems.append(f"ignored ports {bad!r}")
    return StatusValue(obj, status, ports, tuple(problems))


def parse_ports(raw) -> tuple[tuple[int, ...], list]:
    """(valid ports in order without repeats, entries that are not ports)."""
    if raw is None:
        return (), []
    items = raw if isinstance(raw, list) else [raw]
    ports: list[int] = []
    bad = []
    for item in items:
        port = None
        # bool is an int in Python; `true` in JSON is no port.
        if isinstance(item, int) and not isinstance(item, bool):
            port = item
        elif isinstance(item, str) and item.strip().isdigit():
            port = int(item.strip())
        if port is None or not 1 <= port <= 65535:
            bad.append(item)
        elif port not in ports:
            ports.append(port)
    return tuple(ports), bad


def render_status(fields: dict | None, status: str, checker: str,
                  now: datetime | None = None) -> bytes:
    """The new value: every existing field kept, status set, who and when noted."""
    if status not in (UP, DOWN):
        raise ValueError(f"status must be UP or DOWN, got {status!r}")
    out = dict(fields or {})
    out["status"] = status
    out["checker"] = checker
    out["updatetime"] = iso_time(now)
    return json.dumps(out, separators=(",", ":"), sort_keys=True).encode()


def iso_time(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
