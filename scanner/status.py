"""The values the scanner reads and writes, as pure functions over bytes.

status/<ip> -> {"status": "UP"|"DOWN", "ports": [80, 443], "checks": [...], ...}: the scanner
owns "status" and what each flip records with it (since, checker, reason while DOWN,
confirmedby while a confirmed DOWN, lastfailure, updatetime: skydns/flips.py); every other
field (ports, checks, an operator's maintenance, fields of newer tools) belongs to someone
else and is written back unchanged.
report/<ip> -> {"hostname": "<scanner>", "updatetime": "..."}: written by the scheduler.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from skydns.checks import HttpCheck, parse_checks
from skydns.flips import Flip, dump, render_flip

from .damping import DOWN, UP

# A check opens one socket per port, so a value listing thousands of ports would take every
# probe slot of the scanner; no real service needs more than a few.
MAX_PORTS = 32


@dataclass(frozen=True, slots=True)
class StatusValue:
    fields: dict | None  # the whole JSON object; None when the value is not one
    status: str | None  # UP, DOWN, or None when absent or not one of those
    ports: tuple[int, ...]  # valid ports listed in "ports"; () when none
    problems: tuple[str, ...] = field(default=())  # what was wrong with the value, for a log
    checks: tuple[HttpCheck, ...] = field(default=())  # valid entries of "checks"


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
        problems.append(f"ignored ports {_listing(bad)}")
    if len(ports) > MAX_PORTS:
        problems.append(f"ignored ports {_listing(list(ports[MAX_PORTS:]))}: "
                        f"at most {MAX_PORTS} are probed")
        ports = ports[:MAX_PORTS]
    checks, bad_checks = parse_checks(obj.get("checks"), strict=False)
    problems.extend(bad_checks)
    return StatusValue(obj, status, ports, tuple(problems), tuple(checks))


def _listing(items: list) -> str:
    """The first MAX_PORTS entries and a count of the rest: a log line, not a dump."""
    if len(items) <= MAX_PORTS:
        return repr(items)
    return f"{items[:MAX_PORTS]!r} and {len(items) - MAX_PORTS} more"


def parse_ports(raw) -> tuple[tuple[int, ...], list]:
    """(valid ports in order without repeats, entries that are not ports)."""
    if raw is None:
        return (), []
    items = raw if isinstance(raw, list) else [raw]
    ports: dict[int, None] = {}  # ordered, and a repeat costs O(1) whatever the length
    bad = []
    for item in items:
        port = None
        # bool is an int in Python; `true` in JSON is no port.
        if isinstance(item, int) and not isinstance(item, bool):
            port = item
        elif isinstance(item, str) and _is_port_text(item.strip()):
            port = int(item.strip())
        if port is None or not 1 <= port <= 65535:
            bad.append(item)
        else:
            ports[port] = None
    return tuple(ports), bad


def _is_port_text(text: str) -> bool:
    # int() refuses what str.isdigit() accepts beyond ASCII ("²") and beyond 4300 digits.
    return 0 < len(text) <= 5 and text.isascii() and text.isdigit()


def scanner_flip(status: str, checker: str, now: datetime | None = None,
                 reason: str | None = None, confirmedby: Sequence[str] = ()) -> Flip:
    """The flip a scanner writes: `reason` and `confirmedby` (the other scanners that
    confirmed) go only with a DOWN."""
    down = status == DOWN
    extra = {"confirmedby": list(confirmedby)} if down and confirmedby else {}
    return Flip(status, checker, now or datetime.now(UTC), reason if down else None, extra)


def render_status(fields: dict | None, status: str, checker: str,
                  now: datetime | None = None, reason: str | None = None,
                  old: str | None = None, confirmedby: Sequence[str] = ()) -> bytes:
    """The new value of a flip from `old` to `status` (skydns.flips.render_flip), as bytes;
    `confirmedby` is there exactly while the status is a DOWN other scanners confirmed."""
    flip = scanner_flip(status, checker, now, reason, confirmedby)
    return dump(render_flip(fields, old, flip)[0])
