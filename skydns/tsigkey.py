"""TSIG keys from the config: `name:algorithm:base64secret` (`[Dns] tsig-key`, `tsig-keys`).

Here, not in dnsserver/wire/tsig.py (which signs and checks with them), so the config checks can
parse them without reaching into the DNS server's package.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass, field

# RFC 8945 6: hmac-sha256 is the one to use, hmac-sha1 the one every peer has; the others
# are cheap to offer. hmac-md5 (deprecated) and the truncated variants are not.
ALGORITHMS = {
    "hmac-sha1": hashlib.sha1,
    "hmac-sha224": hashlib.sha224,
    "hmac-sha256": hashlib.sha256,
    "hmac-sha384": hashlib.sha384,
    "hmac-sha512": hashlib.sha512,
}


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
    # derived once: signing and checking use them on every signed message
    name_wire: bytes = field(init=False, repr=False, compare=False)
    algorithm_wire: bytes = field(init=False, repr=False, compare=False)
    mac_size: int = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "name_wire", name_wire(self.name))
        object.__setattr__(self, "algorithm_wire", name_wire(self.algorithm + "."))
        object.__setattr__(self, "mac_size", ALGORITHMS[self.algorithm]().digest_size)

    @property
    def digest(self) -> str:
        """The hash's name ("sha256"), as hmac.digest's one-shot (OpenSSL) path takes it."""
        return self.algorithm.removeprefix("hmac-")


def parse_key(text: str) -> TsigKey:
    """`name:algorithm:secret` (secret in base64), or TsigError saying what is wrong (never
    quoting the secret: the message goes to logs and terminals)."""
    parts = text.strip().split(":", 2)
    if len(parts) != 3 or not all(p.strip() for p in parts):
        raise TsigError("expected name:algorithm:base64-secret")
    name, algorithm, secret = (p.strip() for p in parts)
    algorithm = algorithm.lower().rstrip(".")
    if algorithm not in ALGORITHMS:
        raise TsigError(f"algorithm {algorithm!r} not supported (use one of "
                        f"{', '.join(ALGORITHMS)})")
    try:
        raw = base64.b64decode(secret, validate=True)
    except (binascii.Error, ValueError):
        raise TsigError("the secret is not base64") from None
    if not raw:
        raise TsigError("the secret is empty")
    if name == ".":
        return TsigKey(".", algorithm, raw)
    labels = name.lower().rstrip(".").split(".")
    if any(not label or len(label) > 63 for label in labels) or len(name_wire(name)) > 255:
        raise TsigError(f"{name!r} is not a key name")
    return TsigKey(".".join(labels) + ".", algorithm, raw)


def parse_keys(items: list[str]) -> list[TsigKey]:
    """`[Dns] tsig-keys` entries -> keys, or one TsigError naming every bad entry (by its
    place and key name, not its secret) and every key name given twice."""
    keys: list[TsigKey] = []
    problems = []
    seen: dict[str, TsigKey] = {}
    for n, item in enumerate(items, 1):
        label = item.split(":", 1)[0].strip()
        where = f"entry {n} ({label!r})" if label and ":" in item else f"entry {n}"
        try:
            key = parse_key(item)
        except TsigError as err:
            problems.append(f"{where}: {err}")
            continue
        if key.name in seen:
            if seen[key.name] != key:
                problems.append(f"{where}: key {key.name!r} is given twice, differently")
            continue
        seen[key.name] = key
        keys.append(key)
    if problems:
        raise TsigError("; ".join(problems))
    return keys


def keyring(single: str, several: list[str]) -> dict[str, TsigKey]:
    """Every configured key by its name: `tsig-key` (kept for older configs) and the
    `tsig-keys` entries; a name in both must be the same key."""
    keys = {key.name: key for key in parse_keys([i for i in several if i.strip()])}
    if single.strip():
        key = parse_key(single)
        if keys.get(key.name, key) != key:
            raise TsigError(f"key {key.name!r} is also tsig-key, with another algorithm or "
                            "secret")
        keys[key.name] = key
    return keys
