"""Request validation, pure: URL names and JSON bodies -> normalised `Change` or ApiError(400).

Nothing here touches etcd or HTTP. Every client-supplied value is checked for type, range and
syntax before anything is planned, so the later stages can trust what they get and bad input
always ends as a 400 with a reason, never as an exception further in.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from dataclasses import dataclass

from skydns.checks import CheckError, parse_checks

from .errors import bad_request

TYPES = ("A", "AAAA", "SRV", "CNAME", "NS", "MX", "TXT")
ADDRESS_TYPES = ("A", "AAAA", "SRV")
MAX_VALUES = 50  # per request: keeps every write one etcd transaction of bounded size
MAX_TEXT = 2048
TTL_MAX = 2**31 - 1
DEFAULT_MAIL_PRIORITY = 10

# The body field that carries the values of each type, as the original suite named them.
VALUE_FIELD = {
    "A": "ips",
    "AAAA": "ips",
    "SRV": "ips",
    "CNAME": "alias",
    "NS": "nsHost",
    "MX": "mailHost",
    "TXT": "text",
}
_EXTRA_FIELDS = {
    "A": {"ttl", "ptr", "check", "checks"},
    "AAAA": {"ttl", "ptr", "check", "checks"},
    "SRV": {"ttl", "ports", "priority", "weight", "check", "checks"},
    "CNAME": {"ttl"},
    "NS": {"ttl"},
    "MX": {"ttl", "mailPriority"},
    "TXT": {"ttl"},
}
_LABEL_RE = re.compile(r"[a-z0-9_-]{1,63}")


@dataclass(frozen=True, slots=True)
class Change:
    """A validated write body.

    values are canonical: IPs as `ipaddress` prints them, names lower-case with a trailing dot,
    texts as given. ports/priorities run parallel to values (SRV ports, MX mailPriority).
    values empty on a DELETE means "every value of this type".
    """

    rtype: str
    values: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    priorities: tuple[int, ...] = ()
    ttl: int = 0
    priority: int = 0
    weight: int = 0
    ptr: bool = False
    update: tuple[str, str] | None = None
    # HTTP(S) health checks for the addresses' status keys, in their stored form; None when
    # the request says nothing about them, () to remove them (a PUT).
    checks: tuple[dict, ...] | None = None


# --- names -------------------------------------------------------------------------------------


def _check_labels(name: str, what: str) -> None:
    """name is absolute, lower-case; labels [a-z0-9_-], or `*` alone; 253 octets at most."""
    body = name[:-1]
    if not body:
        raise bad_request(f"{what} is empty")
    if len(body) > 253:
        raise bad_request(f"{what} is longer than 253 characters")
    for label in body.split("."):
        if label == "*":
            continue
        if not label:
            raise bad_request(f"{what} {name!r} has an empty label")
        if not _LABEL_RE.fullmatch(label):
            if len(label) > 63:
                raise bad_request(f"{what} {name!r} has a label longer than 63 characters")
            raise bad_request(
                f"{what} {name!r}: labels may only hold letters, digits, '-' and '_'"
            )


def _text(value, what: str) -> str:
    if not isinstance(value, str):
        raise bad_request(f"{what} must be a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise bad_request(f"{what} is not valid Unicode") from None
    return value


def zone_name(text: str, zone: str, what: str = "domain") -> str:
    """A name inside `zone`, given relative to it (`cctv2`) or fully qualified
    (`cctv2.skydns.local`, with or without the trailing dot). The apex itself is refused:
    API records live at `<id>.<name>` keys, which the apex does not answer from."""
    text = _text(text, what).strip().lower()
    if not text:
        raise bad_request(f"{what} is empty")
    zone_bare = zone.rstrip(".")
    if text.endswith("."):
        name = text
    elif text == zone_bare or text.endswith("." + zone_bare):
        name = text + "."
    else:
        name = f"{text}.{zone}"
    _check_labels(name, what)
    if name == zone:
        raise bad_request(f"{what} is the zone apex {zone}; records need a name inside it")
    if not name.endswith("." + zone):
        raise bad_request(f"{what} {name} is outside the zone {zone}")
    return name


def host_name(text, zone: str, what: str) -> str:
    """A target host (NS, MX): absolute when it ends with '.' or holds a dot, else relative to
    the zone (`ns1` -> `ns1.<zone>`), since hosts often live outside the zone."""
    text = _text(text, what).strip().lower()
    if not text:
        raise bad_request(f"{what} is empty")
    if text.endswith("."):
        name = text
    elif "." in text:
        name = text + "."
    else:
        name = f"{text}.{zone}"
    _check_labels(name, what)
    if "*" in name[:-1].split("."):
        raise bad_request(f"{what} {name!r} may not contain a wildcard")
    if name[:-1].rpartition(".")[2].isdigit():  # RFC 1123 2.1; the DNS server would skip it
        raise bad_request(f"{what} {name!r} is neither an IP address nor a usable name")
    return name


def parse_type(value, what: str = "type") -> str:
    if not isinstance(value, str):
        raise bad_request(f"{what} must be a string, one of {', '.join(TYPES)}")
    rtype = value.strip().upper()
    if rtype not in TYPES:
        shown = value if len(value) <= 20 else value[:20] + "..."
        raise bad_request(f"unknown type {shown!r}; expected one of {', '.join(TYPES)}")
    return rtype


# --- values ------------------------------------------------------------------------------------


def _int(value, what: str, low: int, high: int) -> int:
    # bool is an int in Python; `true` for a port is a client bug, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"{what} must be an integer")
    if not low <= value <= high:
        raise bad_request(f"{what} {value} out of range {low}-{high}")
    return value


def parse_ip(value, rtype: str) -> str:
    text = _text(value, "ip")
    shown = text if len(text) <= 45 else text[:45] + "..."
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise bad_request(f"{shown!r} is not an IP address") from None
    if isinstance(addr, ipaddress.IPv6Address) and addr.scope_id:
        raise bad_request(f"{shown!r}: scoped IPv6 addresses are not supported")
    if rtype == "A" and addr.version != 4:
        raise bad_request(f"{shown!r} is not an IPv4 address (type A)")
    if rtype == "AAAA" and addr.version != 6:
        raise bad_request(f"{shown!r} is not an IPv6 address (type AAAA)")
    return str(addr)


def _list(value, what: str, allow_empty: bool = False) -> list:
    """A JSON list, or one bare value standing for a list of one (`"alias": "tv1"`)."""
    items = value if isinstance(value, list) else [value]
    if not items and not allow_empty:
        raise bad_request(f"{what} is empty")
    if len(items) > MAX_VALUES:
        raise bad_request(f"{what}: at most {MAX_VALUES} values per request")
    return items


def parse_value(rtype: str, value, zone: str) -> str:
    """One value of a type in canonical form: an IP, a name, or a text."""
    if rtype in ADDRESS_TYPES:
        return parse_ip(value, rtype)
    if rtype == "CNAME":
        return zone_name(value, zone, "alias")
    if rtype == "NS":
        return host_name(value, zone, "nsHost")
    if rtype == "MX":
        return host_name(value, zone, "mailHost")
    text = _text(value, "text")
    if not text:
        raise bad_request("text is empty")
    if len(text) > MAX_TEXT:
        raise bad_request(f"text longer than {MAX_TEXT} characters")
    return text


def _values(rtype: str, raw, zone: str, allow_empty: bool = False) -> tuple[list[str], list[int]]:
    """Canonical values, duplicates dropped (first one wins), and their positions in `raw`."""
    field_name = VALUE_FIELD[rtype]
    out: list[str] = []
    positions: list[int] = []
    for i, item in enumerate(_list(raw, field_name, allow_empty)):
        value = parse_value(rtype, item, zone)
        if value not in out:
            out.append(value)
            positions.append(i)
    return out, positions


def _parallel(raw, what: str, count: int, positions: list[int], low: int, high: int) -> list[int]:
    """A per-value number list: one number for all values, or exactly one per value."""
    items = _list(raw, what)
    numbers = [_int(x, what, low, high) for x in items]
    if len(numbers) == 1:
        return numbers * len(positions)
    if len(numbers) != count:
        raise bad_request(f"{what}: give one value for all, or one per value ({count})")
    return [numbers[i] for i in positions]


def _check_fields(obj: dict, allowed: set[str], rtype: str) -> None:
    for key in obj:
        if key not in allowed:
            expected = ", ".join(sorted(allowed - {"type"}))
            shown = key if len(key) <= 30 else key[:30] + "..."
            raise bad_request(f"unknown field {shown!r} for type {rtype} (expected: {expected})")


# Every field a body of any method and type may hold: a key outside it is a typo to name.
_ANY_FIELD = {"type", "update", *VALUE_FIELD.values(), *set().union(*_EXTRA_FIELDS.values())}


def _object(obj) -> dict:
    if not isinstance(obj, dict):
        raise bad_request("body must be a JSON object")
    if "type" not in obj:
        # `{"tpye": "A"}`: name the typo, not the field it hid.
        for key in obj:
            if key not in _ANY_FIELD:
                shown = key if len(key) <= 30 else key[:30] + "..."
                close = difflib.get_close_matches(key, sorted(_ANY_FIELD), n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise bad_request(f"unknown field {shown!r}{hint}; missing field 'type'")
        raise bad_request("missing field 'type'")
    return obj


def parse_health_checks(obj: dict) -> tuple[dict, ...] | None:
    """`"check": {...}` (one) or `"checks": [...]`, validated, as stored; None when absent."""
    if "check" in obj and "checks" in obj:
        raise bad_request('give "check" (one) or "checks" (a list), not both')
    if "check" in obj:
        raw, what = obj["check"], "check"
        if not isinstance(raw, dict):
            raise bad_request('check must be one JSON object, e.g. {"http": "/healthz", '
                              '"port": 8080}; use "checks" for a list')
    elif "checks" in obj:
        raw, what = obj["checks"], "checks"
        if not isinstance(raw, list):
            raise bad_request('checks must be a list of check objects')
    else:
        return None
    try:
        checks, _ = parse_checks(raw, strict=True)
    except CheckError as err:
        raise bad_request(f"{what}: {err}") from None
    return tuple(c.to_dict() for c in checks)


# --- bodies ------------------------------------------------------------------------------------


def parse_body(body: bytes):
    """The JSON value of a request body, or None for an empty body."""
    if not body.strip():
        return None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("body is not UTF-8") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise bad_request("body is nested too deeply") from None
    except ValueError as err:
        # json's message ends in "line 1 column 5 (char 4)"; that much detail helps a curl user.
        raise bad_request(f"body is not valid JSON: {err}") from None


def parse_create(obj, zone: str) -> Change:
    obj = _object(obj)
    rtype = parse_type(obj["type"])
    field_name = VALUE_FIELD[rtype]
    _check_fields(obj, {"type", field_name} | _EXTRA_FIELDS[rtype], rtype)
    if field_name not in obj:
        raise bad_request(f"missing field {field_name!r} for type {rtype}")
    raw = obj[field_name]
    values, positions = _values(rtype, raw, zone)
    count = len(raw) if isinstance(raw, list) else 1
    ports: list[int] = []
    priorities: list[int] = []
    if rtype == "SRV":
        if "ports" not in obj:
            raise bad_request("missing field 'ports' for type SRV")
        ports = _parallel(obj["ports"], "ports", count, positions, 1, 65535)
    if rtype == "MX":
        raw_prio = obj.get("mailPriority", DEFAULT_MAIL_PRIORITY)
        priorities = _parallel(raw_prio, "mailPriority", count, positions, 0, 65535)
    ptr = obj.get("ptr", False)
    if not isinstance(ptr, bool):
        raise bad_request("ptr must be true or false")
    return Change(
        rtype=rtype,
        values=tuple(values),
        ports=tuple(ports),
        priorities=tuple(priorities),
        ttl=_int(obj.get("ttl", 0), "ttl", 0, TTL_MAX),
        priority=_int(obj.get("priority", 0), "priority", 0, 65535),
        weight=_int(obj.get("weight", 0), "weight", 0, 65535),
        ptr=ptr,
        checks=parse_health_checks(obj),
    )


def parse_update(obj, zone: str) -> Change:
    """PUT: `{"type": .., "update": {"old": "new"}}` swaps one value for another;
    `{"type": A|AAAA|SRV, "checks": [...], "ips"?: [...]}` sets the health checks of the
    name's addresses of that type (or of those ips), `"checks": []` removes them."""
    obj = _object(obj)
    rtype = parse_type(obj["type"])
    if "update" not in obj and ("check" in obj or "checks" in obj) and rtype in ADDRESS_TYPES:
        _check_fields(obj, {"type", "ips", "check", "checks"}, rtype)
        values: list[str] = []
        if "ips" in obj:
            values, _ = _values(rtype, obj["ips"], zone)
        return Change(rtype=rtype, values=tuple(values), checks=parse_health_checks(obj))
    _check_fields(obj, {"type", "update"}, rtype)
    update = obj.get("update")
    if not isinstance(update, dict) or len(update) != 1:
        raise bad_request('update must be an object with one pair: {"old": "new"}')
    (old_raw, new_raw), = update.items()
    old = parse_value(rtype, old_raw, zone)
    new = parse_value(rtype, new_raw, zone)
    if old == new:
        raise bad_request(f"update: old and new are the same ({old})")
    return Change(rtype=rtype, values=(old, new), update=(old, new))


def parse_delete(obj, zone: str) -> Change | None:
    """DELETE: no body -> None (the whole name); `{"type": ..}` -> every value of that type;
    with the type's value field -> just those values."""
    if obj is None:
        return None
    obj = _object(obj)
    rtype = parse_type(obj["type"])
    field_name = VALUE_FIELD[rtype]
    _check_fields(obj, {"type", field_name}, rtype)
    if field_name not in obj:
        return Change(rtype=rtype)
    values, _ = _values(rtype, obj[field_name], zone)
    return Change(rtype=rtype, values=tuple(values))
