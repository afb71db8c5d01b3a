"""NSEC3 white lies (RFC 7129 appendix B, RFC 5155): denial records made up per question.

An online signer need not hold a chain of hashed names: for a hash H it serves an NSEC3 from
H-1 to H+1, which covers H and nothing else that exists. A name that exists gets an NSEC3 at
its own hash (next: hash+1) carrying its real type bitmap. Parameters per RFC 9276: SHA-1, no
salt, no extra iterations, no opt-out.
"""

from __future__ import annotations

import base64
import hashlib

from .message import T_NSEC3, T_RRSIG, RRset

SHA1 = 1
ITERATIONS = 0
SALT = b""
_B32 = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789abcdefghijklmnopqrstuv")
_MAX = (1 << 160) - 1


def hash_name(name: bytes) -> bytes:
    """RFC 5155 5: IH(salt, name) with 0 extra iterations."""
    digest = hashlib.sha1(name + SALT).digest()
    for _ in range(ITERATIONS):
        digest = hashlib.sha1(digest + SALT).digest()
    return digest


def b32hex(digest: bytes) -> bytes:
    return base64.b32encode(digest).translate(_B32)


def type_bitmap(types) -> bytes:
    """RFC 4034 4.1.2 windowed bitmap of `types`."""
    windows: dict[int, bytearray] = {}
    for t in sorted(set(types)):
        bits = windows.setdefault(t >> 8, bytearray(32))
        low = t & 0xFF
        bits[low >> 3] |= 0x80 >> (low & 7)
    out = bytearray()
    for window in sorted(windows):
        bits = bytes(windows[window]).rstrip(b"\x00")
        out += bytes((window, len(bits))) + bits
    return bytes(out)


def _add(digest: bytes, delta: int) -> bytes:
    return ((int.from_bytes(digest, "big") + delta) & _MAX).to_bytes(20, "big")


def _record(owner_hash: bytes, next_hash: bytes, zone: bytes, types, ttl: int) -> RRset:
    owner = bytes((32,)) + b32hex(owner_hash) + zone
    rdata = (
        bytes((SHA1, 0))
        + ITERATIONS.to_bytes(2, "big")
        + bytes((len(SALT),))
        + SALT
        + bytes((20,))
        + next_hash
        + type_bitmap(types)
    )
    return RRset(owner, T_NSEC3, 1, ttl, [rdata])


def matching(name: bytes, zone: bytes, types, ttl: int) -> RRset:
    """An NSEC3 that matches `name` (it exists) with its types; RRSIG added when it has any."""
    digest = hash_name(name)
    types = set(types)
    if types:
        types.add(T_RRSIG)
    return _record(digest, _add(digest, 1), zone, types, ttl)


def covering(name: bytes, zone: bytes, ttl: int) -> RRset:
    """An NSEC3 that covers the hash of `name` (it does not exist) and no other hash."""
    digest = hash_name(name)
    return _record(_add(digest, -1), _add(digest, 1), zone, (), ttl)
