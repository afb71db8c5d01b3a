"""TSIG (RFC 8945, hmac-sha256) for zone transfers: check a request's signature, sign replies.

`[Dns] tsig-key = name:hmac-sha256:base64secret`. With a key set, a transfer is allowed to a
client whose request carries a valid signature with it (from any address: that is what the
key is for), and refused to any other; each message of the transfer is signed, the first
over the request's MAC, the next ones over the previous MAC (RFC 8945 5.3.1). Pure: bytes in,
bytes out.
"""

from __future__ import annotations

import hmac
import struct
import time
from dataclasses import dataclass

from skydns.tsigkey import ALGORITHMS, TsigError, TsigKey, parse_key

__all__ = ["TsigError", "TsigKey", "parse_key", "verify_request", "Signer", "sign_messages"]

T_TSIG = 250
CLASS_ANY = 255
FUDGE = 300


def _skip_name(data: bytes, i: int) -> int:
    while True:
        if i >= len(data):
            raise TsigError("name runs past the message")
        n = data[i]
        if n & 0xC0 == 0xC0:
            return i + 2
        if n & 0xC0:
            raise TsigError("bad label type")
        if n == 0:
            return i + 1
        i += 1 + n


def _read_name(data: bytes, i: int) -> tuple[str, int]:
    labels = []
    while True:
        if i >= len(data):
            raise TsigError("name runs past the message")
        n = data[i]
        if n & 0xC0:
            raise TsigError("compressed name in TSIG")
        if n == 0:
            return ".".join(labels).lower() + ".", i + 1
        labels.append(data[i + 1 : i + 1 + n].decode("ascii", "replace"))
        i += 1 + n


@dataclass(slots=True)
class Signed:
    """What a signed request told us: the MAC replies are chained to."""

    mac: bytes
    original_id: int


def find_tsig(data: bytes) -> int | None:
    """Offset of the request's TSIG record (the last additional record), or None."""
    if len(data) < 12:
        return None
    counts = struct.unpack("!HHHH", data[4:12])
    i = 12
    for _ in range(counts[0]):
        i = _skip_name(data, i) + 4
    total = counts[1] + counts[2] + counts[3]
    last = None
    for _ in range(total):
        last = i
        i = _skip_name(data, i)
        if i + 10 > len(data):
            raise TsigError("record cut short")
        rdlen = struct.unpack("!H", data[i + 8 : i + 10])[0]
        i += 10 + rdlen
    if last is None or counts[3] == 0:
        return None
    j = _skip_name(data, last)
    if struct.unpack("!H", data[j : j + 2])[0] != T_TSIG:
        return None
    return last


def verify_request(data: bytes, key: TsigKey, now: float | None = None) -> Signed:
    """The request's signature checked against `key`, or TsigError (unsigned, another key,
    a wrong MAC, out of time)."""
    start = find_tsig(data)
    if start is None:
        raise TsigError("request not signed")
    owner, i = _read_name(data, start)
    rtype, rclass, _ttl, rdlen = struct.unpack("!HHIH", data[i : i + 10])
    rdata = data[i + 10 : i + 10 + rdlen]
    if owner != key.name:
        raise TsigError(f"unknown key {owner}")
    algorithm, j = _read_name(rdata, 0)
    if algorithm.rstrip(".") != key.algorithm:
        raise TsigError(f"algorithm {algorithm} is not the key's")
    time_hi, time_lo, fudge, mac_size = struct.unpack("!HIHH", rdata[j : j + 10])
    signed = (time_hi << 32) | time_lo
    mac = rdata[j + 10 : j + 10 + mac_size]
    k = j + 10 + mac_size
    original_id, error, other_len = struct.unpack("!HHH", rdata[k : k + 6])
    other = rdata[k + 6 : k + 6 + other_len]
    now = time.time() if now is None else now
    if abs(now - signed) > fudge:
        raise TsigError("signature out of time")
    # the message as it was before signing: TSIG left off, ARCOUNT one less, original ID
    arcount = struct.unpack("!H", data[10:12])[0] - 1
    message = struct.pack("!H", original_id) + data[2:10] + struct.pack("!H", arcount)
    message += data[12:start]
    variables = (key.name_wire + struct.pack("!HI", CLASS_ANY, 0) + key.algorithm_wire
                 + rdata[j : j + 8] + struct.pack("!HH", error, other_len) + other)
    want = hmac.new(key.secret, message + variables, ALGORITHMS[key.algorithm]).digest()
    if not hmac.compare_digest(want, mac):
        raise TsigError("bad signature")
    return Signed(mac, original_id)


class Signer:
    """Signs the messages of one reply as they are made (a transfer streams them): the first
    over the request's MAC, each next one over the previous message's MAC (RFC 8945 5.3.1,
    every message signed). Each message carries its own signing time."""

    def __init__(self, key: TsigKey, request: Signed, now=None):
        self.key = key
        self.request = request
        self.prior = request.mac
        self.first = True
        self.now = now  # a fixed time (tests), else the clock at each message

    def sign(self, msg: bytes) -> bytes:
        key = self.key
        signed_at = int(time.time() if self.now is None else self.now)
        timers = struct.pack("!HIH", signed_at >> 32, signed_at & 0xFFFFFFFF, FUDGE)
        body = struct.pack("!H", len(self.prior)) + self.prior + msg
        if self.first:
            body += (key.name_wire + struct.pack("!HI", CLASS_ANY, 0) + key.algorithm_wire
                     + timers + struct.pack("!HH", 0, 0))
            self.first = False
        else:
            body += timers
        mac = hmac.new(key.secret, body, ALGORITHMS[key.algorithm]).digest()
        rdata = (key.algorithm_wire + timers + struct.pack("!H", len(mac)) + mac
                 + struct.pack("!HHH", self.request.original_id, 0, 0))
        rr = key.name_wire + struct.pack("!HHIH", T_TSIG, CLASS_ANY, 0, len(rdata)) + rdata
        arcount = struct.unpack("!H", msg[10:12])[0] + 1
        self.prior = mac
        return msg[:10] + struct.pack("!H", arcount) + msg[12:] + rr


def sign_messages(messages: list[bytes], key: TsigKey, request: Signed,
                  now: float | None = None) -> list[bytes]:
    """Each message of a reply with a TSIG record appended: the first signed over the
    request's MAC, each next one over the previous message's MAC."""
    if now is None:
        now = time.time()
    signer = Signer(key, request, now)
    return [signer.sign(msg) for msg in messages]
