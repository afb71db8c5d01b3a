"""Name <-> etcd key mapping: a DNS name is stored under its labels reversed.

`x.rails.east.skydns.local.` <-> `/skydns/local/skydns/east/rails/x`. Paths are tuples of
lower-case labels in key order (TLD first); every index and cache in the suite speaks paths,
so the mapping lives here once.
"""

from __future__ import annotations

import ipaddress
import socket
import sys

PREFIX = "/skydns"
# [Etcd] keys of the health subsystem's prefixes: scanner, scheduler and API state, which
# may live below PREFIX too and is never a DNS record.
MONITOR_PATHS = ("status-path", "report-path", "heart-path", "lock-path", "refs-path",
                 "confirm-path", "history-path")

Path = tuple[str, ...]


def not_record_prefixes(etcd_section) -> tuple[str, ...]:
    """The prefixes a reader of the record tree skips: the monitor tree and every one of
    MONITOR_PATHS as configured."""
    return tuple({PREFIX + "/monitor/"} | {etcd_section[k] for k in MONITOR_PATHS})


def name_to_path(name: str) -> Path:
    """`a.b.c.` -> ("c", "b", "a"); case-folded, the root is ()."""
    labels = [label for label in name.lower().rstrip(".").split(".") if label]
    labels.reverse()
    return tuple(labels)


def path_to_name(path: Path) -> str:
    if not path:
        return "."
    return ".".join(reversed(path)) + "."


def path_to_key(path: Path, prefix: str = PREFIX) -> str:
    return prefix.rstrip("/") + "/" + "/".join(path) if path else prefix.rstrip("/")


def name_to_key(name: str, prefix: str = PREFIX) -> str:
    return path_to_key(name_to_path(name), prefix)


def key_to_path(key: str, prefix: str = PREFIX) -> Path | None:
    """The path of a record key, or None for a key outside `prefix`.

    Empty segments (`/skydns//x`, a trailing slash) are dropped, as etcdctl users make them.
    """
    head = prefix.rstrip("/") + "/"
    if not key.startswith(head):
        return None
    # Interned: a million keys share a few thousand distinct labels ("local", "i0", ...).
    return tuple(sys.intern(seg) for seg in key[len(head) :].lower().split("/") if seg)


def is_subdomain(name: str, zone: str) -> bool:
    """True when `name` is `zone` or below it (both absolute or both relative, any case)."""
    name, zone = name.lower().rstrip("."), zone.lower().rstrip(".")
    return zone == "" or name == zone or name.endswith("." + zone)


def reverse_name(ip: str) -> str:
    """10.0.0.1 -> 1.0.0.10.in-addr.arpa."""
    return ipaddress.ip_address(ip).reverse_pointer + "."


def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def canonical_ip(text: str) -> tuple[str, int]:
    """(canonical address, 4 or 6), or ("", 0) when `text` is not an IP address.

    inet_pton/inet_ntop instead of the ipaddress module: the same strict parse (no leading
    zeros, no shorthand IPv4) at a tenth of the cost, which matters when loading 1M records.
    """
    family = socket.AF_INET6 if ":" in text else socket.AF_INET
    try:
        packed = socket.inet_pton(family, text.split("%")[0] if family == socket.AF_INET6 else text)
    except (OSError, ValueError):
        return "", 0
    return socket.inet_ntop(family, packed), 6 if family == socket.AF_INET6 else 4


def ip_of_key(key: str, prefix: str) -> str | None:
    """The canonical IP `prefix + ip` names, or None (not under prefix, nested, a trailing
    slash, not an IP): the one reading of status/report/refs keys, for the DNS server, the
    API, the scanner and the scheduler alike, so they never disagree on which keys are
    addresses. Canonical, so `2001:DB8::1` and `2001:db8::1` are one address."""
    if not key.startswith(prefix):
        return None
    rest = key[len(prefix) :]
    if not rest or "/" in rest:
        return None
    ip, _ = canonical_ip(rest)
    return ip or None


def valid_hostname(name: str) -> bool:
    """A plausible DNS name: labels of 1-63 octets, 253 in all; `*` and `_` are allowed.

    An all-numeric last label is refused (RFC 1123 2.1): `999.1.1.1` is a mistyped address,
    not a name anyone can resolve."""
    name = name.rstrip(".")
    if not name or len(name) > 253:
        return False
    if name.rpartition(".")[2].isdigit():
        return False
    for label in name.split("."):
        if not 0 < len(label) <= 63:
            return False
        if not all(c.isalnum() or c in "-_*" for c in label) or not label.isascii():
            return False
    return True
