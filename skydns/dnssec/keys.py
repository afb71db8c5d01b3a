"""BIND key files (`dnssec-keygen` output) -> signing keys, their timing, and the DS digest.

A key is a pair `K<zone>.+<alg>+<tag>.key` (the DNSKEY record) and `.private` (the private key
and the timing fields). Algorithms 13 (ECDSA P-256 SHA-256) and 15 (Ed25519). Flags 257 (SEP)
make a KSK, which signs the DNSKEY RRset; 256 a ZSK, which signs the rest. A zone whose only
active keys are KSKs uses them for everything (a CSK).
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import os
import time
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from . import names

ECDSAP256SHA256 = 13
ED25519 = 15
ALGORITHMS = {ECDSAP256SHA256: "ECDSAP256SHA256", ED25519: "ED25519"}
SEP = 0x0001
ZONE_KEY = 0x0100
TIMING_FIELDS = ("Publish", "Activate", "Inactive", "Delete")


class KeyFileError(Exception):
    """A key file we cannot use; `path` names the file, the message says why."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def key_tag(rdata: bytes) -> int:
    """RFC 4034 appendix B."""
    acc = 0
    for i, byte in enumerate(rdata):
        acc += byte if i & 1 else byte << 8
    acc += (acc >> 16) & 0xFFFF
    return acc & 0xFFFF


@dataclass(eq=False)
class Key:
    zone: bytes  # canonical wire name
    flags: int
    algorithm: int
    public: bytes  # DNSKEY public key field
    private: object = field(repr=False)  # a cryptography private key
    path: str = ""  # the basename it came from, for messages
    publish: float | None = None  # epoch seconds; None: from the start
    activate: float | None = None
    inactive: float | None = None  # None: never
    delete: float | None = None

    @property
    def rdata(self) -> bytes:
        return self.flags.to_bytes(2, "big") + bytes((3, self.algorithm)) + self.public

    @property
    def tag(self) -> int:
        return key_tag(self.rdata)

    @property
    def ksk(self) -> bool:
        return bool(self.flags & SEP)

    def published(self, now: float) -> bool:
        return (self.publish is None or self.publish <= now) and (
            self.delete is None or now < self.delete
        )

    def active(self, now: float) -> bool:
        return (
            self.published(now)
            and (self.activate is None or self.activate <= now)
            and (self.inactive is None or now < self.inactive)
        )

    def times(self) -> list[float]:
        return [t for t in (self.publish, self.activate, self.inactive, self.delete) if t]

    def sign(self, data: bytes) -> bytes:
        """The RRSIG signature field over `data` (RFC 6605: r || s; RFC 8080: raw Ed25519)."""
        if self.algorithm == ED25519:
            return self.private.sign(data)
        r, s = decode_dss_signature(self.private.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def ds(self, digest_type: int = 2) -> str:
        """The DS record (SHA-256) in presentation form, as dnssec-dsfromkey -2 prints it."""
        digest = hashlib.sha256(self.zone + self.rdata).hexdigest().upper()
        return (
            f"{names.to_text(self.zone)} IN DS {self.tag} {self.algorithm} {digest_type} {digest}"
        )


def _basename(path: str) -> str:
    for suffix in (".key", ".private"):
        if path.endswith(suffix):
            return path[: -len(suffix)]
    return path


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii") as fh:
            return fh.read()
    except OSError as err:
        raise KeyFileError(path, err.strerror or str(err)) from None
    except UnicodeDecodeError:
        raise KeyFileError(path, "not a text key file") from None


def _parse_dnskey(path: str, text: str) -> tuple[str, int, int, bytes]:
    for line in text.splitlines():
        line = line.split(";", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        try:
            at = [f.upper() for f in fields].index("DNSKEY")
        except ValueError:
            raise KeyFileError(path, "no DNSKEY record in it") from None
        try:
            flags, proto, alg = int(fields[at + 1]), int(fields[at + 2]), int(fields[at + 3])
            public = base64.b64decode("".join(fields[at + 4 :]), validate=True)
        except (IndexError, ValueError):
            raise KeyFileError(path, "unreadable DNSKEY record") from None
        if proto != 3 or not flags & ZONE_KEY:
            raise KeyFileError(path, "not a DNSSEC zone key (protocol 3, flags 256 or 257)")
        return fields[0], flags, alg, public
    raise KeyFileError(path, "no DNSKEY record in it")


def _parse_time(path: str, name: str, value: str) -> float:
    try:
        return float(calendar.timegm(time.strptime(value.strip()[:14], "%Y%m%d%H%M%S")))
    except ValueError:
        raise KeyFileError(path, f"{name}: not a YYYYMMDDHHMMSS time: {value.strip()!r}") from None


def _parse_private(path: str, text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        if ":" in line:
            name, value = line.split(":", 1)
            fields[name.strip()] = value.strip()
    if "PrivateKey" not in fields or "Algorithm" not in fields:
        raise KeyFileError(path, "not a BIND private key file (no Algorithm/PrivateKey)")
    return fields


def load_key(basename: str, zone: str) -> Key:
    """Load `basename`.key and `basename`.private for `zone`; KeyFileError names the file at
    fault (wrong zone, unsupported algorithm, a .private that is not the .key's)."""
    base = _basename(basename)
    key_path, private_path = base + ".key", base + ".private"
    owner, flags, alg, public = _parse_dnskey(key_path, _read(key_path))
    zone_wire = names.to_wire(zone)
    try:
        owner_wire = names.to_wire(owner)
    except ValueError:
        raise KeyFileError(key_path, f"bad owner name {owner!r}") from None
    if owner_wire != zone_wire:
        raise KeyFileError(key_path, f"key is for {owner}, not for the zone {zone}")
    if alg not in ALGORITHMS:
        raise KeyFileError(
            key_path, f"algorithm {alg} not supported (13 ECDSAP256SHA256 or 15 ED25519)"
        )
    fields = _parse_private(private_path, _read(private_path))
    try:
        private_alg = int(fields["Algorithm"].split()[0])
        secret = base64.b64decode(fields["PrivateKey"], validate=True)
    except (ValueError, IndexError):
        raise KeyFileError(private_path, "unreadable Algorithm or PrivateKey") from None
    if private_alg != alg:
        raise KeyFileError(private_path, f"algorithm {private_alg} does not match the .key ({alg})")
    try:
        if alg == ED25519:
            private = ed25519.Ed25519PrivateKey.from_private_bytes(secret)
            derived = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        else:
            private = ec.derive_private_key(int.from_bytes(secret, "big"), ec.SECP256R1())
            point = private.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
            derived = point[1:]
    except ValueError as err:
        raise KeyFileError(private_path, f"bad private key: {err}") from None
    if derived != public:
        raise KeyFileError(private_path, f"private key does not match {os.path.basename(key_path)}")
    timing = {}
    for name in TIMING_FIELDS:
        if fields.get(name):
            timing[name.lower()] = _parse_time(private_path, name, fields[name])
    return Key(zone_wire, flags, alg, public, private, base, **timing)


def load_keys(basenames, zone: str) -> list[Key]:
    keys = [load_key(b, zone) for b in basenames]
    seen: dict[tuple, str] = {}
    for key in keys:
        ident = (key.algorithm, key.public)
        if ident in seen:
            raise KeyFileError(key.path + ".key", f"the same key as {seen[ident]}.key")
        seen[ident] = key.path
    return keys


@dataclass(frozen=True)
class KeyState:
    """Which keys do what at one moment."""

    published: tuple  # in the DNSKEY RRset
    dnskey_signers: tuple  # sign the DNSKEY RRset
    zone_signers: tuple  # sign everything else
    until: float  # the next moment a key's state changes (inf: none)

    @property
    def ident(self) -> tuple:
        return tuple(k.tag for k in self.published), tuple(k.tag for k in self.zone_signers)


def key_state(keys: list[Key], now: float) -> KeyState:
    published = tuple(k for k in keys if k.published(now))
    active = [k for k in published if k.active(now)]
    ksks = tuple(k for k in active if k.ksk)
    zsks = tuple(k for k in active if not k.ksk)
    until = min((t for k in keys for t in k.times() if t > now), default=float("inf"))
    return KeyState(published, ksks or zsks, zsks or ksks, until)
