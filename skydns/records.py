"""The record model: one etcd key holding a JSON object, in either layout of the original tools.

SkyDNS style: every key below a name is an instance of it, the kind of answer follows from what
is set (`host` an IP -> address, a name -> CNAME/SRV target, `text` -> TXT, `mail` -> MX).
API style: `<id>.<name>` keys with `type` set. Both decode into the same `Record`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .keys import Path, canonical_ip, path_to_key, path_to_name, valid_hostname

TYPES = frozenset({"A", "AAAA", "CNAME", "SRV", "NS", "MX", "TXT", "PTR"})
_U16 = 65535
_TTL_MAX = 2**31 - 1
# TXT text kept to what fits one TCP message with its name, question and OPT around it
TEXT_MAX = 64_000


class RecordError(ValueError):
    """The value stored at a key is not a valid record."""


@dataclass(frozen=True, slots=True)
class Record:
    path: Path  # the key's labels; the key itself is derived, to save memory at 1M records
    host: str = ""  # a normalised IP (see `ip`) or a lower-case absolute name, or ""
    ip: str = ""  # the host as a canonical IP address, "" when host is a name
    family: int = 0  # 4, 6, or 0 when host is not an address
    port: int = 0
    priority: int = 0
    weight: int = 0
    ttl: int = 0  # 0: the configured default
    text: str = ""
    rtype: str = ""  # explicit `type` of API-style records, "" for SkyDNS style
    mail: bool = False
    targetstrip: int = 0
    group: str = ""
    lease: int = 0
    mod_revision: int = 0

    @property
    def key(self) -> str:
        return path_to_key(self.path)

    @property
    def name(self) -> str:
        """The record's own DNS name, the key read back as a name."""
        return path_to_name(self.path)

    @property
    def target(self) -> str:
        """Target name for SRV/MX/NS: the host when it is a name, else a name made from the key.

        `targetstrip` drops that many leading labels of the key's name, as in SkyDNS.
        """
        if self.host and not self.ip:
            return self.host
        path = self.path[: len(self.path) - self.targetstrip] if self.targetstrip else self.path
        return path_to_name(path)


def _int(obj: dict, field: str, low: int, high: int) -> int:
    value = obj.get(field)
    if value is None:
        return 0
    if type(value) is int and low <= value <= high:  # the common case, checked first: loads
        return value  # of a million records spend their time here
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise RecordError(f"{field} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise RecordError(f"{field} {value} out of range {low}-{high}")
    return int(value)


def unservable_path(path: Path) -> str:
    """Why a key's name cannot be a DNS name ("" if it can): labels of 1-63 octets, 255 in all
    on the wire. Keys are free text in etcd; such a record would break every answer holding it."""
    size = 1
    for label in path:
        n = len(label) if label.isascii() else len(label.encode())
        if n > 63:
            return f"key label {label[:20]!r}... is longer than 63 octets"
        size += n + 1
    if size > 255:
        return "key is longer than a DNS name can be (255 octets)"
    return ""


def parse_record(
    key: str, path: Path, value: bytes, lease: int = 0, mod_revision: int = 0
) -> Record:
    """Decode and validate one etcd value; RecordError says what is wrong with it."""
    try:
        obj = json.loads(value.decode() if isinstance(value, bytes) else value)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise RecordError(f"not valid JSON: {err}") from None
    if not isinstance(obj, dict):
        raise RecordError("not a JSON object")

    host = obj.get("host", "") or ""
    text = obj.get("text", "") or ""
    if not isinstance(host, str):
        raise RecordError("host must be a string")
    if not isinstance(text, str):
        raise RecordError("text must be a string")
    rtype = obj.get("type", "") or ""
    if not isinstance(rtype, str) or (rtype and rtype.upper() not in TYPES):
        raise RecordError(f"unknown type {rtype!r}")
    rtype = rtype.upper()
    mail = obj.get("mail", False)
    if not isinstance(mail, bool):
        raise RecordError("mail must be true or false")
    group = obj.get("group", "") or ""
    if not isinstance(group, str):
        raise RecordError("group must be a string")

    problem = unservable_path(path)
    if problem:
        raise RecordError(problem)
    ip, family = "", 0
    host = host.strip()
    if host:
        ip, family = canonical_ip(host)
        if ip:
            host = ip
        elif valid_hostname(host):
            host = host.lower().rstrip(".") + "."
        else:
            raise RecordError(f"host {host!r} is neither an IP address nor a valid name")
    if len(text) > TEXT_MAX // 4 and len(text.encode()) > TEXT_MAX:  # cheap test first
        raise RecordError(f"text is longer than {TEXT_MAX} octets")
    if not host and not text:
        raise RecordError("neither host nor text is set")
    if rtype in ("A", "AAAA") and family != (4 if rtype == "A" else 6):
        raise RecordError(f"type {rtype} needs an IPv{4 if rtype == 'A' else 6} host")
    if rtype in ("CNAME", "PTR") and (not host or ip):
        raise RecordError(f"type {rtype} needs a host name")
    if rtype == "TXT" and not text:
        raise RecordError("type TXT needs text")

    return Record(
        path=path,
        host=host,
        ip=ip,
        family=family,
        port=_int(obj, "port", 0, _U16),
        priority=_int(obj, "priority", 0, _U16),
        weight=_int(obj, "weight", 0, _U16),
        ttl=_int(obj, "ttl", 0, _TTL_MAX),
        text=text,
        rtype=rtype,
        mail=mail or rtype == "MX",
        targetstrip=_int(obj, "targetstrip", 0, 127),
        group=group,
        lease=lease,
        mod_revision=mod_revision,
    )
