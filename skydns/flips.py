"""What a change of an address' health writes, pure: the new `status/<ip>` value and the entry
it adds to `history/<ip>`, for a scanner's flip and an operator's maintenance alike.

status/<ip> (DESIGN.md "Health subsystem"), fields owned here:
    status       "UP" | "DOWN"
    since        ISO time of the last change of `status`
    checker      who decided it (a scanner's hostname)
    reason       why it is DOWN; only while DOWN (an UP drops it)
    lastfailure  {"time", "reason", "checker"} of the last DOWN, kept after recovery
    maintenance  {"reason", "by", "since"}: set and cleared by an operator through the API;
                 a scanner's flip keeps it as it is
    updatetime   when the scanner last wrote (the original suite's field)
Every other field (ports, checks, fields of newer tools) is written back unchanged.

history/<ip> is a JSON array of at most HISTORY_MAX changes, newest first:
    {"time", "from", "to", "reason", "checker"}   (from/to: UP, DOWN, MAINT; from may be null)
It is written in the same etcd transaction as the status value it describes. Its key is the
canonical address (skydns.keys.canonical_ip), whatever spelling the status key uses.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from .monitor import iso_time, json_object

UP, DOWN, MAINT = "UP", "DOWN", "MAINT"
HISTORY_MAX = 20  # a flapping address rewrites the same bounded list, it never grows
# A reason names a check and what it got; past this it is someone's response text, not that.
MAX_REASON = 300
MAX_MAINT_REASON = 200  # the API refuses longer ones (an operator's sentence, not a log)
# Fields that describe a DOWN and go away with the next UP (a confirmation of a past
# failure must not stay on a healthy address).
DOWN_ONLY = ("reason", "confirmedby")


@dataclass(frozen=True, slots=True)
class Flip:
    """One decided change of status and the facts behind it.

    `extra`: more fields to set in the status value with this flip (e.g. who confirmed a
    DOWN); they are written as given and are not part of the history entry.
    """

    status: str  # UP or DOWN
    checker: str
    time: datetime
    reason: str | None = None
    extra: Mapping[str, object] = field(default_factory=dict)


def render_flip(fields: dict | None, old_status: str | None, flip: Flip
                ) -> tuple[dict, dict]:
    """(the new status object, the history entry) of `flip` applied to `fields`."""
    if flip.status not in (UP, DOWN):
        raise ValueError(f"status must be UP or DOWN, got {flip.status!r}")
    when = iso_time(flip.time)
    reason = flip.reason[:MAX_REASON] if flip.reason else None
    out = dict(fields or {})
    for key in DOWN_ONLY:
        out.pop(key, None)
    out["status"] = flip.status
    out["checker"] = flip.checker
    out["updatetime"] = when
    if flip.status != old_status:
        out["since"] = when
    if flip.status == DOWN:
        if reason:
            out["reason"] = reason
        out["lastfailure"] = {"time": when, "reason": reason, "checker": flip.checker}
    out.update(flip.extra)
    entry = {"time": when, "from": old_status, "to": flip.status,
             "reason": reason if flip.status == DOWN else None, "checker": flip.checker}
    return out, entry


def dump(obj) -> bytes:
    # ASCII escapes: a hand-written value may hold lone surrogates, which UTF-8 cannot carry.
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


# --- history ---------------------------------------------------------------------------------


def read_history(value: bytes | None) -> list[dict]:
    """The entries of a history value; [] for none or an unreadable one (only objects kept)."""
    if not value:
        return []
    try:
        items = json.loads(value)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return []
    if not isinstance(items, list):
        return []
    return [item for item in items if isinstance(item, dict)][:HISTORY_MAX]


def push_history(value: bytes | None, entry: dict) -> bytes:
    """The history value with `entry` first and the oldest dropped past HISTORY_MAX."""
    return dump([entry, *read_history(value)][:HISTORY_MAX])


# --- maintenance -----------------------------------------------------------------------------


def maintenance_of(fields: Mapping | None) -> dict | None:
    """The `maintenance` object of a status value, or None when the address is not in it.

    Anything set there counts (an operator who writes `"maintenance": true` by hand means it);
    only a missing, null, false or empty value means "not in maintenance"."""
    if not isinstance(fields, Mapping):
        return None
    maint = fields.get("maintenance")
    if not maint:
        return None
    return dict(maint) if isinstance(maint, Mapping) else {"reason": str(maint)}


def set_maintenance(fields: dict | None, reason: str, by: str, now: datetime
                    ) -> tuple[dict, dict]:
    """(status object with maintenance set, history entry). The scanners' fields stay: they
    keep probing, so `status` is current when maintenance ends."""
    out = dict(fields or {})
    if not isinstance(out.get("status"), str):
        out["status"] = UP  # a new key: no scanner verdict yet, and no verdict means UP
    when = iso_time(now)
    out["maintenance"] = {"reason": reason, "by": by, "since": when}
    entry = {"time": when, "from": _status_word(out), "to": MAINT, "reason": reason,
             "checker": by}
    return out, entry


def clear_maintenance(fields: dict, by: str, now: datetime) -> tuple[dict, dict]:
    """(status object without maintenance, history entry back to the scanners' verdict)."""
    out = dict(fields)
    out.pop("maintenance", None)
    entry = {"time": iso_time(now), "from": MAINT, "to": _status_word(out), "reason": None,
             "checker": by}
    return out, entry


def _status_word(fields: Mapping) -> str:
    status = fields.get("status")
    return status.upper() if isinstance(status, str) and status.upper() in (UP, DOWN) else UP


# --- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Facts:
    """What the operator's views show of one status value (None: not recorded; values from
    before these fields existed, `{"status": "UP"}`, have none of them)."""

    status: str | None
    since: str | None = None
    reason: str | None = None
    checker: str | None = None
    maintenance: dict | None = None
    lastfailure: dict | None = None
    confirmedby: tuple[str, ...] | None = None  # the scanners that confirmed this DOWN


def _text(value) -> str | None:
    return value if isinstance(value, str) and value else None


def read_facts(value: bytes) -> Facts:
    obj = json_object(value)
    return Facts(None) if obj is None else facts_of(obj)


def facts_of(obj: Mapping) -> Facts:
    """The Facts of a status value already read as a JSON object."""
    status = obj.get("status")
    status = status.upper() if isinstance(status, str) and status.upper() in (UP, DOWN) else None
    last = obj.get("lastfailure")
    return Facts(status, _text(obj.get("since")),
                 _text(obj.get("reason")) if status == DOWN else None,
                 _text(obj.get("checker")), maintenance_of(obj),
                 dict(last) if isinstance(last, dict) else None,
                 confirmed_by(obj) if status == DOWN else None)


def confirmed_by(fields: Mapping) -> tuple[str, ...] | None:
    """The scanners a status value says confirmed its DOWN (`confirmedby`), or None."""
    names = fields.get("confirmedby")
    if not isinstance(names, list):
        return None
    names = tuple(n for n in names if isinstance(n, str) and n)
    return names or None
