"""API records <-> etcd keys and values, pure.

Layout (DESIGN.md "etcd key layout", API style): every value of a record is one key
`<id>.<name>`, i.e. `name_to_key(name) + "/" + id`, holding a JSON object the DNS server reads:

    A/AAAA  {"host": ip, "type": "A", "owner": o, "ttl"?: n, "ptr"?: true}
    SRV     {"host": ip, "type": "SRV", "port": p, "priority"?: n, "weight"?: n, "owner": o}
            (the Kubernetes sync also writes SRV with a name as host: its target, no address)
    CNAME   {"host": "cctv2.skydns.local.", "type": "CNAME", "owner": o}   at the alias' name
    NS      {"host": ns, "type": "NS", "owner": o}
    MX      {"host": mail, "type": "MX", "priority": n, "owner": o}
    TXT     {"text": t, "type": "TXT", "owner": o}

The id is the first 8 hex digits of the SHA-1 of the value (the canonical IP for addresses,
`"<TYPE>:<value>"` otherwise), so posting the same value again finds the same key. Should two
values of one name ever share 8 digits, the later one takes 16 (then all 40). A name holds at
most one CNAME, so CNAME keys use one fixed id, `CNAME_ID`: the key itself says "this name is an
alias", which lets a write check that with a single key compare.

Besides the records: `status/<ip>` (the scanners' health key, created UP with the SRV ports
and the request's HTTP checks) and `refs/<ip>` ({"keys": [...]}, the record keys that hold
that address) under the monitor prefix; `refs` is what tells "the last reference to an
address is gone" without scanning.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import dataclass

from skydns.config import ADMIN_OWNER
from skydns.keys import key_to_path, name_to_key, path_to_name, reverse_name

from .validate import ADDRESS_TYPES, TYPES

ADMIN = ADMIN_OWNER  # the owner recorded for records made with [SkydnsApi] skydns-auth
CNAME_ID = hashlib.sha1(b"CNAME").hexdigest()[:8]
_ID_LENGTHS = (8, 16, 40)


def value_id(rtype: str, value: str, length: int = 8) -> str:
    text = value if rtype in ADDRESS_TYPES else f"{rtype}:{value}"
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:length]


def candidate_keys(name: str, rtype: str, value: str) -> list[str]:
    """Keys a value may live at, preferred first (see the module doc on collisions)."""
    base = name_to_key(name)
    if rtype == "CNAME":
        return [f"{base}/{CNAME_ID}"]
    ids = [value_id(rtype, value, n) for n in _ID_LENGTHS]
    return [f"{base}/{i}" for i in ids if i != CNAME_ID]


def cname_key(name: str) -> str:
    return f"{name_to_key(name)}/{CNAME_ID}"


def ptr_key(ip: str) -> str:
    return name_to_key(reverse_name(ip))


def ip_sort_key(ip: str) -> tuple[int, int]:
    addr = ipaddress.ip_address(ip)
    return addr.version, int(addr)


def value_sort_key(value: str) -> tuple:
    """Addresses numerically, then names (SRV targets) alphabetically."""
    if value.endswith("."):
        return (1, 0, value)
    return (0, *ip_sort_key(value))


# --- stored values -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stored:
    """One key below a name as the API sees it.

    rtype "" marks a key the API did not write (SkyDNS style, no `type`, or unreadable): it
    still counts for conflicts and ownership, but is never changed by a non-admin.
    """

    key: str
    name: str  # the name the key belongs to: the key without its last segment
    rtype: str
    value: str  # identity: ip, target name or text
    owner: str | None
    mod_revision: int
    port: int = 0
    priority: int = 0
    weight: int = 0
    ttl: int = 0
    ptr: bool = False
    cname_like: bool = False  # answers as a CNAME (a typed CNAME or a SkyDNS host name)
    plain: bool = False  # a SkyDNS-style key (no `type`) that the DNS server answers from
    text: str = ""  # a plain key's text (TXT)
    mail: bool = False  # a plain key's `mail` (MX)

    @property
    def is_address(self) -> bool:
        # An SRV whose target is a name (Kubernetes services) holds no address.
        return self.rtype in ADDRESS_TYPES and not self.value.endswith(".")


def _num(obj: dict, field: str, high: int) -> int:
    value = obj.get(field, 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        return 0
    return value


def _host(raw) -> str:
    if not isinstance(raw, str):
        return ""
    try:
        return str(ipaddress.ip_address(raw.strip()))
    except ValueError:
        name = raw.strip().lower()
        return (name.rstrip(".") + ".") if name else ""


def decode(key: str, value: bytes, mod_revision: int) -> Stored | None:
    """The Stored view of one etcd key under the record tree, None for a key at no name."""
    path = key_to_path(key)
    if not path or len(path) < 2:
        return None
    name = path_to_name(path[:-1])
    try:
        obj = json.loads(value)
    except (ValueError, UnicodeDecodeError, RecursionError):
        obj = None
    if not isinstance(obj, dict):
        return Stored(key, name, "", "", None, mod_revision)
    owner = obj.get("owner")
    owner = owner if isinstance(owner, str) and owner else None
    rtype = obj.get("type")
    rtype = rtype.upper() if isinstance(rtype, str) else ""
    host = _host(obj.get("host"))
    is_ip = bool(host) and not host.endswith(".")
    if rtype not in TYPES:
        # SkyDNS style: a host name without a type answers as a CNAME (see dnsserver/zone/rules.py)
        cname_like = bool(host) and not is_ip and not obj.get("mail")
        text = obj.get("text")
        return Stored(key, name, "", host, owner, mod_revision, cname_like=cname_like,
                      port=_num(obj, "port", 65535), priority=_num(obj, "priority", 65535),
                      weight=_num(obj, "weight", 65535), ttl=_num(obj, "ttl", 2**31 - 1),
                      plain=obj.get("type") in (None, ""),
                      text=text if isinstance(text, str) else "",
                      mail=obj.get("mail") is True)
    if rtype == "TXT":
        text = obj.get("text")
        value_text = text if isinstance(text, str) else ""
    else:
        if (rtype in ADDRESS_TYPES) != is_ip and not (rtype == "SRV" and host):
            return Stored(key, name, "", host, owner, mod_revision)
        value_text = host
    if not value_text:
        return Stored(key, name, "", "", owner, mod_revision)
    return Stored(
        key,
        name,
        rtype,
        value_text,
        owner,
        mod_revision,
        port=_num(obj, "port", 65535),
        priority=_num(obj, "priority", 65535),
        weight=_num(obj, "weight", 65535),
        ttl=_num(obj, "ttl", 2**31 - 1),
        ptr=obj.get("ptr") is True,
        cname_like=rtype == "CNAME",
    )


def encode(rtype: str, value: str, owner: str, *, port: int = 0, priority: int = 0,
           weight: int = 0, ttl: int = 0, ptr: bool = False) -> bytes:
    obj: dict = {"text": value} if rtype == "TXT" else {"host": value}
    obj["type"] = rtype
    if rtype == "SRV":
        obj["port"] = port
        if priority:
            obj["priority"] = priority
        if weight:
            obj["weight"] = weight
    if rtype == "MX":
        obj["priority"] = priority
    if ttl:
        obj["ttl"] = ttl
    if ptr:
        obj["ptr"] = True
    obj["owner"] = owner
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def encode_ptr(name: str, owner: str) -> bytes:
    return json.dumps({"host": name, "type": "PTR", "owner": owner},
                      separators=(",", ":")).encode()


def encode_status(ports: list[int], checks: tuple[dict, ...] | None = None) -> bytes:
    # A new address counts as UP until a scanner has probed it: DOWN would hide it, and no key
    # would keep the scheduler from ever assigning it to a scanner.
    obj: dict = {"status": "UP", "ports": sorted(set(ports))}
    if checks:
        obj["checks"] = list(checks)
    return json.dumps(obj, separators=(",", ":")).encode()


def status_with_checks(value: bytes, checks: tuple[dict, ...]) -> bytes:
    """A status value with its `checks` replaced (removed when empty) and every other field,
    the scanners' verdict above all, as it was. An unreadable value keeps no fields: the
    scanners replace such a value with a valid one anyway."""
    try:
        obj = json.loads(value)
    except (ValueError, UnicodeDecodeError, RecursionError):
        obj = None
    if not isinstance(obj, dict):
        obj = {}
    obj.pop("checks", None)
    if checks:
        obj["checks"] = list(checks)
    # ASCII escapes: a hand-written value may hold lone surrogates, which UTF-8 cannot carry.
    return json.dumps(obj, separators=(",", ":")).encode()


def decode_checks(value: bytes) -> list:
    """The raw `checks` of a status value ([] when none or unreadable), for listings."""
    try:
        obj = json.loads(value)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return []
    checks = obj.get("checks") if isinstance(obj, dict) else None
    if checks is None:
        return []
    return checks if isinstance(checks, list) else [checks]


def decode_refs(value: bytes | None) -> list[str]:
    if not value:
        return []
    try:
        obj = json.loads(value)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return []
    keys = obj.get("keys") if isinstance(obj, dict) else None
    return sorted({k for k in keys if isinstance(k, str)}) if isinstance(keys, list) else []


def encode_refs(keys) -> bytes:
    return json.dumps({"keys": sorted(keys)}, separators=(",", ":")).encode()


def decode_status(value: bytes) -> str | None:
    """ "UP", "DOWN", or None for a value without a readable status.

    Not skydns.health.parse_status: the DNS server must count anything unreadable as UP (and
    logs it), while the API shows it as unknown (no status in listings, null on the page).
    """
    try:
        obj = json.loads(value)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    status = obj.get("status") if isinstance(obj, dict) else None
    if isinstance(status, str) and status.upper() in ("UP", "DOWN"):
        return status.upper()
    return None


def ptr_target(value: bytes | None) -> str | None:
    """The name a PTR key points to (any stored layout), or None."""
    if value is None:
        return None
    try:
        obj = json.loads(value)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    host = _host(obj.get("host")) if isinstance(obj, dict) else ""
    return host if host.endswith(".") else None


# --- listing -----------------------------------------------------------------------------------

_TYPE_ORDER = {t: i for i, t in enumerate(TYPES)}


def _uniform(values: list[int]) -> int:
    return values[0] if values and all(v == values[0] for v in values) else 0


def plain_type(rec: Stored) -> str:
    """The record type a plain SkyDNS key answers as, "" for one the DNS server skips."""
    if not rec.plain:
        return ""
    if rec.value and not rec.value.endswith("."):
        # A key with a port is written for SRV (the SkyDNS way: it answers A/AAAA too, but
        # an operator wrote the port to be seen), so it is listed as SRV with it.
        if rec.port:
            return "SRV"
        return "AAAA" if ":" in rec.value else "A"
    if rec.mail and rec.value:
        return "MX"
    if rec.cname_like:
        return "CNAME"
    return "TXT" if rec.text else ""


def entries(records: list[Stored], statuses: dict[str, str], rtype: str | None = None,
            name: str | None = None, checks: dict[str, list] | None = None,
            maintenance: dict[str, dict] | None = None) -> list[dict]:
    """Listing entries, one per (domain, type), in a stable sorted order.

    Each entry has the shape of the POST body that would create it (`ips`, `alias`, ...) plus
    `domain`, `owner` and, for addresses, `status` (the health of each address that has a
    status key, whoever wrote the record), `maintenance` (ip -> {reason, by, since} of each
    address an operator took out) and `checks` (the health checks of each address that has
    some). SRV entries also carry `srv`: one {target, port, priority, weight} per record. A CNAME is
    listed under its target with the aliases pointing to it, as it is created:
    POST {"type": "cname", "alias": "tv1"} to cctv2 makes tv1 an alias of cctv2.
    With `name`, only that name's entries, and CNAME entries where it is one of the aliases.
    Plain SkyDNS keys written straight into etcd are listed too, in entries of their own with
    `"readonly": true`: the DNS server answers them, the API does not change them.
    """
    groups: dict[tuple[str, str, bool], list[Stored]] = {}
    for rec in records:
        kind = rec.rtype or plain_type(rec)
        if not kind or (rtype and kind != rtype):
            continue
        domain = rec.value if kind == "CNAME" else rec.name
        if name is not None and domain != name and not (kind == "CNAME" and rec.name == name):
            continue
        groups.setdefault((domain, kind, not rec.rtype), []).append(rec)
    out = []
    for (domain, kind, readonly), recs in sorted(
        groups.items(),
        key=lambda item: (item[0][0].rstrip("."), _TYPE_ORDER[item[0][1]], item[0][2]),
    ):
        entry = _entry(domain, kind, recs, statuses, checks or {}, maintenance or {})
        if readonly:
            entry["readonly"] = True
        out.append(entry)
    return out


def _entry(domain: str, rtype: str, recs: list[Stored], statuses: dict[str, str],
           checks: dict[str, list], maintenance: dict[str, dict]) -> dict:
    entry: dict = {"domain": domain, "type": rtype}
    owners = sorted({r.owner or "" for r in recs})
    entry["owner"] = owners[0] if len(owners) == 1 else owners
    if rtype in ADDRESS_TYPES:
        recs = sorted(recs, key=lambda r: value_sort_key(r.value))
        entry["ips"] = [r.value for r in recs]  # an SRV's name targets come last
        if rtype == "SRV":
            entry["ports"] = [r.port for r in recs]
            for field in ("priority", "weight"):
                number = _uniform([getattr(r, field) for r in recs])
                if number:
                    entry[field] = number
            # priority 10 when unset, as the DNS server answers (DESIGN.md "SRV")
            entry["srv"] = [{"target": r.value, "port": r.port,
                             "priority": r.priority or 10, "weight": r.weight} for r in recs]
        ptrs = [r.value for r in recs if r.ptr]
        if ptrs:
            entry["ptr"] = ptrs
        # Every address, whoever wrote its record (a plain SkyDNS key holds one too); an
        # SRV's name targets have no status of their own.
        addresses = [r.value for r in recs if not r.value.endswith(".")]
        entry["status"] = {ip: statuses[ip] for ip in addresses if ip in statuses}
        held = {ip: maintenance[ip] for ip in addresses if ip in maintenance}
        if held:
            entry["maintenance"] = held
        with_checks = {r.value: checks[r.value] for r in recs if checks.get(r.value)}
        if with_checks:
            entry["checks"] = with_checks
    elif rtype == "CNAME":
        entry["alias"] = sorted(r.name for r in recs)
    elif rtype == "NS":
        entry["nsHost"] = sorted(r.value for r in recs)
    elif rtype == "MX":
        recs = sorted(recs, key=lambda r: (r.priority, r.value))
        entry["mailHost"] = [r.value for r in recs]
        entry["mailPriority"] = [r.priority for r in recs]
    else:
        entry["text"] = sorted(r.text or r.value for r in recs)
    ttl = _uniform([r.ttl for r in recs])
    if ttl:
        entry["ttl"] = ttl
    return entry
