"""Domain names as the signer needs them: text <-> uncompressed lower-case wire form."""

from __future__ import annotations


def to_wire(name: str) -> bytes:
    """'a.B.c.' -> b'\\x01a\\x01b\\x01c\\x00' (lower-cased: the canonical form, RFC 4034 6.2)."""
    out = bytearray()
    for label in name.rstrip(".").split(".") if name not in ("", ".") else ():
        raw = label.encode("latin-1").lower()
        if not 0 < len(raw) < 64:
            raise ValueError(f"bad label in {name!r}")
        out.append(len(raw))
        out += raw
    out.append(0)
    return bytes(out)


def to_text(wire: bytes) -> str:
    labels, i = [], 0
    while wire[i]:
        labels.append(wire[i + 1 : i + 1 + wire[i]].decode("latin-1"))
        i += wire[i] + 1
    return ".".join(labels) + "."


def labels(wire: bytes) -> list[bytes]:
    out, i = [], 0
    while wire[i]:
        out.append(wire[i + 1 : i + 1 + wire[i]])
        i += wire[i] + 1
    return out


def from_labels(parts) -> bytes:
    return b"".join(bytes((len(p),)) + p for p in parts) + b"\x00"


def parent(wire: bytes) -> bytes:
    return wire[wire[0] + 1 :] if wire[0] else wire


def is_below(wire: bytes, zone: bytes) -> bool:
    """Whether `wire` is `zone` or under it (both canonical)."""
    if not wire.endswith(zone):
        return False
    cut = len(wire) - len(zone)
    if cut == 0:
        return True
    # the suffix must start at a label boundary
    i = 0
    while i < cut:
        i += wire[i] + 1
    return i == cut


def label_count(wire: bytes) -> int:
    """Labels of an owner for the RRSIG Labels field: the root and a leading `*` not counted."""
    n = len(labels(wire))
    return n - 1 if wire[:2] == b"\x01*" else n
