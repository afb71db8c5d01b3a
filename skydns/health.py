"""Health status of addresses, as the scanners write it under the status path.

`/skydns/monitor/status/<ip>` -> `{"status": "UP"|"DOWN", "ports": [...]}`. Only DOWN takes an
address out of answers: a missing key, an unknown status or a value we cannot read counts as UP,
so a broken scanner can never blank out a service. An operator's `maintenance` field counts as
DOWN whatever the status says: read here, once, so every answer path (DNS, the PowerDNS
backend, transfers, dump, the janitor's purges) leaves the address out alike, and fail-open
treats it as it treats DOWN.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from .flips import maintenance_of
from .monitor import json_object

log = logging.getLogger("skydns.health")


def report_owner(value: bytes) -> str | None:
    """The scanner hostname a report value (`{"hostname": ..., "updatetime": ...}`, written by
    the scheduler) names; None when the value is unreadable."""
    obj = json_object(value)
    host = obj.get("hostname") if obj is not None else None
    return host if isinstance(host, str) and host else None


def heart_isolation(value: bytes) -> str | None:
    """Why a scanner says it is isolated, from its heartbeat value (`{"hostname": ...,
    "isolated": true, "isolation": "<why>"}`); None when it is not (or the value is
    unreadable: a live scanner that says nothing readable counts as one that works)."""
    return isolation_of(json_object(value))


def isolation_of(heart: Mapping | None) -> str | None:
    """heart_isolation of a heartbeat value already read (None: unreadable)."""
    if heart is None or heart.get("isolated") is not True:
        return None
    why = heart.get("isolation")
    return why if isinstance(why, str) and why else "isolated"


def scanner_warnings(hearts: Mapping[str, str | None]) -> list[str]:
    """What an operator must hear about the live scanners (name -> why it is isolated, or
    None): nobody to confirm a failure with, or nobody probing at all."""
    working = sorted(name for name, why in hearts.items() if why is None)
    isolated = len(hearts) - len(working)
    also = f" ({isolated} more isolated)" if isolated else ""
    if not working:
        return [f"no live scanner that can probe{also}: addresses are not checked"]
    if len(working) == 1:
        return [f"one live scanner ({working[0]}){also}: nobody can confirm its failures, "
                "it writes DOWN alone; run scanners on several hosts"]
    return []


def parse_status(key: str, value: bytes) -> str:
    """ "UP" or "DOWN" from a status value; anything unreadable is logged and counts as UP.
    An address in maintenance is DOWN."""
    obj = json_object(value)
    if obj is not None and maintenance_of(obj) is not None:
        return "DOWN"
    status = obj.get("status", "UP") if obj is not None else None
    if not isinstance(status, str) or status.upper() not in ("UP", "DOWN"):
        log.warning("unreadable status value, counted as UP", extra={"kv": {"key": key}})
        return "UP"
    return status.upper()


class HealthView:
    """The set of DOWN addresses; everything else is UP. `version` moves whenever the set
    changes, so answers memoized elsewhere (the pdns backend) know when they are stale."""

    __slots__ = ("down", "version")

    def __init__(self) -> None:
        self.down: set[str] = set()
        self.version = 0

    def is_down(self, ip: str) -> bool:
        return ip in self.down

    def clear(self) -> None:
        self.down.clear()
        self.version += 1

    def set(self, ip: str, status: str | None) -> bool:
        """Record a status (None: key deleted); True when the DOWN set changed."""
        was = ip in self.down
        if status == "DOWN":
            self.down.add(ip)
        else:
            self.down.discard(ip)
        changed = was != (ip in self.down)
        if changed:
            self.version += 1
        return changed
