"""Frame Streams (https://farsightsec.github.io/fstrm/), the framing dnstap travels in: pure
encoding and parsing, no sockets (tap.py does the I/O).

A data frame is a 4-byte big-endian length and the payload. A control frame starts with a
zero length (the "escape"), then its own length, its type, and fields (only the content type
exists). The writer of a bidirectional stream sends READY, waits for ACCEPT, sends START and
then data frames; it ends with STOP and waits for FINISH.

Why not the `fstrm` package from PyPI: it is this much code, raises bare Exception for every
problem, and accumulates its input buffer by copying; a dozen lines of struct do the job.
"""

from __future__ import annotations

import struct

ACCEPT, START, STOP, READY, FINISH = 1, 2, 3, 4, 5
NAMES = {ACCEPT: "ACCEPT", START: "START", STOP: "STOP", READY: "READY", FINISH: "FINISH"}
CONTENT_TYPE_FIELD = 1
DNSTAP = b"protobuf:dnstap.Dnstap"
MAX_CONTROL = 512  # the spec's limit on a control frame's length

_U32 = struct.Struct("!I")
_HEAD = struct.Struct("!III")  # escape, control frame length, control type


class FstrmError(Exception):
    """The peer broke the Frame Streams protocol."""


def control(kind: int, *content_types: bytes) -> bytes:
    """One control frame of `kind` carrying `content_types`."""
    fields = b"".join(_U32.pack(CONTENT_TYPE_FIELD) + _U32.pack(len(ct)) + ct
                      for ct in content_types)
    return _HEAD.pack(0, 4 + len(fields), kind) + fields


def data_frame(payload: bytes) -> bytes:
    return _U32.pack(len(payload)) + payload


def control_length(head: bytes) -> int:
    """The length of the control frame whose first 8 bytes are `head` (escape, length)."""
    escape, length = struct.unpack("!II", head)
    if escape != 0:
        raise FstrmError(f"expected a control frame, got a data frame of {escape} bytes")
    if not 4 <= length <= MAX_CONTROL:
        raise FstrmError(f"control frame length {length} out of range 4-{MAX_CONTROL}")
    return length


def parse_control(body: bytes) -> tuple[int, list[bytes]]:
    """(type, content types) of a control frame's body (what follows its length)."""
    if len(body) < 4:
        raise FstrmError("control frame shorter than its type")
    (kind,) = _U32.unpack_from(body)
    types = []
    i = 4
    while i < len(body):
        if len(body) - i < 8:
            raise FstrmError("truncated control field")
        field, length = struct.unpack_from("!II", body, i)
        i += 8
        if field != CONTENT_TYPE_FIELD or length > len(body) - i:
            raise FstrmError(f"bad control field {field} of {length} bytes")
        types.append(body[i : i + length])
        i += length
    return kind, types


def check_accept(kind: int, types: list[bytes], content_type: bytes = DNSTAP) -> None:
    """What a writer expects after READY: ACCEPT, with our content type when it lists any."""
    if kind != ACCEPT:
        raise FstrmError(f"expected ACCEPT, got {NAMES.get(kind, kind)}")
    if types and content_type not in types:
        raise FstrmError(f"collector accepts {b', '.join(types).decode(errors='replace')}, "
                         f"not {content_type.decode()}")
