"""A TSIG key from the config: `name:algorithm:base64secret` (`[Dns] tsig-key`).

Here, not in dnsserver/tsig.py (which signs and checks with it), so the config checks can
parse it without reaching into the DNS server's package.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

ALGORITHMS = {"hmac-sha256": hashlib.sha256}


def name_wire(name: str) -> bytes:
    """A name in uncompressed, lower-case wire form (as TSIG digests it)."""
    out = b""
    for label in name.lower().rstrip(".").split("."):
        if label:
            out += bytes((len(label),)) + label.encode()
    return out + b"\0"


class TsigError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class TsigKey:
    name: str  # lower case, with the trailing dot
    algorithm: str  # "hmac-sha256"
    secret: bytes

    @property
    def name_wire(self) -> bytes:
        return name_wire(self.name)

    @property
    def algorithm_wire(self) -> bytes:
        return name_wire(self.algorithm + ".")


def parse_key(text: str) -> TsigKey:
    """`name:algorithm:secret` (secret in base64), or TsigError saying what is wrong."""
    parts = text.strip().split(":", 2)
    if len(parts) != 3 or not all(parts):
        raise TsigError("expected name:algorithm:base64-secret")
    name, algorithm, secret = parts
    algorithm = algorithm.lower().rstrip(".")
    if algorithm not in ALGORITHMS:
        raise TsigError(f"algorithm {algorithm!r} not supported (use hmac-sha256)")
    try:
        raw = base64.b64decode(secret, validate=True)
    except (binascii.Error, ValueError):
        raise TsigError("the secret is not base64") from None
    if not raw:
        raise TsigError("the secret is empty")
    return TsigKey(name.lower().rstrip(".") + ".", algorithm, raw)


