"""TSIG (RFC 8945) on every message: read a request's TSIG, check it, answer its errors, sign.

Keys come from `[Dns] tsig-key` and `tsig-keys` (skydns/tsigkey.py). A request that carries a
TSIG record is checked as RFC 8945 5.2 orders, whatever its opcode and transport:

- the TSIG not the last additional record, a second one, or one that cannot be read:
  FORMERR, no TSIG (5.2);
- a key name we do not hold, or another algorithm than the key's: NOTAUTH, TSIG error BADKEY,
  unsigned (5.2.1: an error about the key or MAC is never signed);
- a MAC longer than the digest or shorter than max(10, half the digest): FORMERR (5.2.2.1);
  a MAC that does not match: NOTAUTH + BADSIG, unsigned (5.2.2);
- signed outside its fudge of our clock: NOTAUTH + BADTIME, signed with the key, the client's
  time echoed and ours in the other data (5.2.3);
- otherwise the normal answer, signed with the same key (5.3). A MAC truncated as far as
  5.2.2.1 allows is accepted (our policy's minimum is the RFC's, so BADTRUNC never arises) and
  chained into the reply's MAC as received; our own MACs are never truncated.

The answer itself is made for the message with its TSIG taken off (`Request.stripped`), so
the answer cache only ever holds unsigned replies, and signing happens per request on top.
Pure: bytes in, bytes out; the clock is handed in.
"""

from __future__ import annotations

import hmac
import struct
import time
from dataclasses import dataclass

from skydns.dnssec.message import ParseError, read_name
from skydns.dnssec.names import to_text
from skydns.tsigkey import TsigError, TsigKey, parse_key

from .querycheck import Malformed, skip_name

__all__ = ["TsigError", "TsigKey", "parse_key", "TsigFormErr", "Request", "Verdict",
           "read_request", "by_wire", "check", "error_reply", "sign_reply", "Signer"]

T_TSIG = 250
CLASS_ANY = 255
FUDGE = 300
RCODE_FORMERR, RCODE_NOTAUTH = 1, 9
BADSIG, BADKEY, BADTIME, BADTRUNC = 16, 17, 18, 22
ERROR_NAMES = {BADSIG: "BADSIG", BADKEY: "BADKEY", BADTIME: "BADTIME", BADTRUNC: "BADTRUNC"}


class TsigFormErr(TsigError):
    """The message's TSIG is misplaced, repeated or unreadable: FORMERR (RFC 8945 5.2)."""


def _read_name(data: bytes, i: int) -> tuple[bytes, int]:
    """(the name at `i` in lower-case, uncompressed wire form, the offset past it)."""
    try:
        return read_name(data, i)
    except ParseError as err:
        raise TsigFormErr(str(err)) from None


@dataclass(slots=True)
class Request:
    """A request's TSIG record (RFC 8945 4.2) and where it sits."""

    start: int  # offset of the TSIG record: the message before it is what was signed
    qend: int  # end of the question section
    name_wire: bytes  # key name, lower-case, uncompressed (as digested)
    algorithm_wire: bytes
    time_signed: int
    fudge: int
    mac: bytes
    original_id: int
    error: int
    other: bytes

    @property
    def name(self) -> str:
        return to_text(self.name_wire)

    @property
    def algorithm(self) -> str:
        return to_text(self.algorithm_wire).rstrip(".")

    def stripped(self, data: bytes) -> bytes:
        """The message as it was before signing (ARCOUNT one less), with the ID it came
        with: what we answer."""
        arcount = ((data[10] << 8) | data[11]) - 1
        return data[:10] + bytes((arcount >> 8, arcount & 0xFF)) + data[12 : self.start]


def read_request(data: bytes) -> Request | None:
    """The TSIG of `data`, None if it has none, or TsigFormErr (misplaced, repeated,
    unreadable). The caller has checked the header is there and it is not a response.

    Every record is walked (a TSIG may hide in any section), each step past at least 11
    octets, so the work is bounded by the message's length."""
    qdcount, ancount, nscount, arcount = struct.unpack("!HHHH", data[4:12])
    n = len(data)
    total = ancount + nscount + arcount
    found = None
    try:
        i = 12
        for _ in range(qdcount):
            i = skip_name(data, i) + 4
        qend = i
        for index in range(total):
            start = i
            i = skip_name(data, i)
            if i + 10 > n:
                raise TsigFormErr("record cut short")
            if data[i] == 0 and data[i + 1] == T_TSIG:
                if found is not None:
                    raise TsigFormErr("more than one TSIG record")
                found = (start, i, index)
            i += 10 + ((data[i + 8] << 8) | data[i + 9])
            if i > n:
                raise TsigFormErr("record data cut short")
    except (TsigFormErr, Malformed) as err:
        if found is None:
            return None  # no TSIG seen: the query checks say what is wrong with the message
        if isinstance(err, Malformed):
            raise TsigFormErr(err.why) from None
        raise
    if found is None:
        return None
    start, j, index = found
    if index != total - 1 or arcount == 0:
        raise TsigFormErr("the TSIG record is not the last additional record")
    name_wire, _ = _read_name(data, start)
    rclass, ttl, rdlen = struct.unpack("!HIH", data[j + 2 : j + 10])
    if rclass != CLASS_ANY or ttl != 0:
        raise TsigFormErr("TSIG class is not ANY or TTL not 0")
    rdata = j + 10
    end = rdata + rdlen
    algorithm_wire, k = _read_name(data, rdata)
    if k + 10 > end:
        raise TsigFormErr("TSIG data cut short")
    time_hi, time_lo, fudge, mac_size = struct.unpack("!HIHH", data[k : k + 10])
    k += 10
    mac = data[k : k + mac_size]
    k += mac_size
    if k + 6 > end:
        raise TsigFormErr("TSIG data cut short")
    original_id, error, other_len = struct.unpack("!HHH", data[k : k + 6])
    k += 6
    if k + other_len != end:
        raise TsigFormErr("TSIG data does not fill its record")
    return Request(start, qend, name_wire, algorithm_wire, (time_hi << 32) | time_lo, fudge,
                   mac, original_id, error, data[k:end])


@dataclass(slots=True)
class Verdict:
    """What checking a request's TSIG found: error 0 and the key, or a TSIG error."""

    request: Request
    error: int = 0
    key: TsigKey | None = None  # the key that signed it (also for BADTIME, which is signed)
    why: str = ""


def _timers(time_signed: int, fudge: int) -> bytes:
    return struct.pack("!HIH", (time_signed >> 32) & 0xFFFF, time_signed & 0xFFFFFFFF, fudge)


def _variables(key_name_wire: bytes, algorithm_wire: bytes, timers: bytes, error: int,
               other: bytes) -> bytes:
    """The TSIG variables a MAC covers (RFC 8945 4.3.3)."""
    return (key_name_wire + struct.pack("!HI", CLASS_ANY, 0) + algorithm_wire + timers
            + struct.pack("!HH", error, len(other)) + other)


def by_wire(keys) -> dict[bytes, TsigKey]:
    """Keys by their names' wire form, as `check` looks them up."""
    return {key.name_wire: key for key in keys}


def check(data: bytes, request: Request, keys: dict[bytes, TsigKey], now: float) -> Verdict:
    """The checks of RFC 8945 5.2.1-5.2.3 in their order, with `keys` from `by_wire`;
    TsigFormErr for a MAC size 5.2.2.1 forbids."""
    key = keys.get(request.name_wire)
    if key is None:
        return Verdict(request, BADKEY, None, f"unknown key {request.name}")
    if key.algorithm_wire != request.algorithm_wire:
        return Verdict(request, BADKEY, None, f"algorithm {request.algorithm} is not the key's")
    size = key.mac_size
    mac = request.mac
    if len(mac) > size or len(mac) < max(10, size // 2):
        raise TsigFormErr(f"MAC of {len(mac)} octets for a {size}-octet digest")
    message = struct.pack("!H", request.original_id) + request.stripped(data)[2:]
    timers = _timers(request.time_signed, request.fudge)
    variables = _variables(request.name_wire, request.algorithm_wire, timers, request.error,
                           request.other)
    want = hmac.digest(key.secret, message + variables, key.digest)[: len(mac)]
    if not hmac.compare_digest(want, mac):
        return Verdict(request, BADSIG, None, "bad signature")
    if abs(now - request.time_signed) > request.fudge:
        return Verdict(request, BADTIME, key,
                       f"signed at {request.time_signed}, {int(now - request.time_signed)}s off")
    return Verdict(request, 0, key)


def _tsig_record(name_wire: bytes, algorithm_wire: bytes, timers: bytes, mac: bytes,
                 original_id: int, error: int, other: bytes) -> bytes:
    rdata = (algorithm_wire + timers + struct.pack("!H", len(mac)) + mac
             + struct.pack("!HHH", original_id, error, len(other)) + other)
    return name_wire + struct.pack("!HHIH", T_TSIG, CLASS_ANY, 0, len(rdata)) + rdata


def _append(msg: bytes, record: bytes) -> bytes:
    arcount = ((msg[10] << 8) | msg[11]) + 1
    return msg[:10] + bytes((arcount >> 8, arcount & 0xFF)) + msg[12:] + record


def error_reply(data: bytes, verdict: Verdict, now: float) -> bytes:
    """NOTAUTH with the TSIG error: the header (ID, opcode, RD echoed) and the question,
    then a TSIG record; with an empty MAC for BADKEY/BADSIG (no key to trust), signed for
    BADTIME with the client's time echoed and ours in the other data (RFC 8945 5.2.3)."""
    req = verdict.request
    flags = 0x8000 | (((data[2] << 8) | data[3]) & 0x7900) | RCODE_NOTAUTH
    msg = data[:2] + struct.pack("!HHHHH", flags, (data[4] << 8) | data[5], 0, 0, 0)
    msg += data[12 : req.qend]
    timers = _timers(req.time_signed, req.fudge)
    if verdict.error != BADTIME or verdict.key is None:
        return _append(msg, _tsig_record(req.name_wire, req.algorithm_wire, timers, b"",
                                         req.original_id, verdict.error, b""))
    key = verdict.key
    server = int(now)
    other = struct.pack("!HI", (server >> 32) & 0xFFFF, server & 0xFFFFFFFF)
    body = (struct.pack("!H", len(req.mac)) + req.mac + struct.pack("!H", req.original_id)
            + msg[2:] + _variables(key.name_wire, key.algorithm_wire, timers, BADTIME, other))
    mac = hmac.digest(key.secret, body, key.digest)
    return _append(msg, _tsig_record(key.name_wire, key.algorithm_wire, timers, mac,
                                     req.original_id, BADTIME, other))


def _question_end(msg: bytes) -> int:
    i = 12
    for _ in range((msg[4] << 8) | msg[5]):
        i = skip_name(msg, i) + 4
    return i


class Signer:
    """Signs the messages of one reply as they are made (a transfer streams them): the first
    over the request's MAC, each next one over the previous message's MAC (RFC 8945 5.3.1,
    every message signed). Each message carries its own signing time; `now` is the clock."""

    def __init__(self, verdict: Verdict, now=time.time):
        self.key = verdict.key
        self.original_id = verdict.request.original_id
        self.prior = verdict.request.mac
        self.first = True
        self.now = now

    def record_size(self) -> int:
        """Bytes the TSIG record adds to a message."""
        key = self.key
        return len(key.name_wire) + 10 + len(key.algorithm_wire) + 16 + key.mac_size

    def sign(self, msg: bytes) -> bytes:
        key = self.key
        timers = _timers(int(self.now()), FUDGE)
        # the digest sees the request's original ID where the message has its own (4.3.1)
        body = (struct.pack("!H", len(self.prior)) + self.prior
                + struct.pack("!H", self.original_id) + msg[2:])
        if self.first:
            body += _variables(key.name_wire, key.algorithm_wire, timers, 0, b"")
            self.first = False
        else:
            body += timers
        mac = hmac.digest(key.secret, body, key.digest)
        self.prior = mac
        return _append(msg, _tsig_record(key.name_wire, key.algorithm_wire, timers, mac,
                                         self.original_id, 0, b""))


def sign_reply(reply: bytes, verdict: Verdict, limit: int, now=time.time) -> bytes:
    """`reply` signed for the request of `verdict`. If the TSIG would take it past `limit`
    (a UDP reply), the reply becomes its header and question with TC=1 and NOERROR, signed,
    so the client retries over TCP (RFC 8945 5.3)."""
    signer = Signer(verdict, now)
    if len(reply) + signer.record_size() > limit:
        qend = _question_end(reply)
        flags = ((reply[2] << 8) | reply[3]) & 0xFFF0 | 0x0200  # TC, rcode 0
        reply = (reply[:2] + struct.pack("!HHHHH", flags, (reply[4] << 8) | reply[5], 0, 0, 0)
                 + reply[12:qend])
    return signer.sign(reply)
