"""DNSSEC for the engine: the zone as the signer sees it, and the hook the miss path calls.

The signing itself (skydns/dnssec/) is pure and works on wire replies; this module only says
which replies get signed (DO questions in our zone, and the apex DNSKEY question), and answers
the signer's two questions about the zone from the ZoneState with the same answer rules the
replies come from: does a name exist, and what types does a query for it answer with.
"""

from __future__ import annotations

import time

from skydns.dnssec import names
from skydns.dnssec.keys import Key
from skydns.dnssec.response import sign_reply
from skydns.dnssec.sign import Signer
from skydns.keys import Path

from .rules import answer, labels_path
from .state import Change, ZoneState

TYPES_CACHED = 10_000  # names whose type bitmaps are kept

# The types a name can answer with (rules.py); the bitmap of an NSEC3 lists those it does:
# A, AAAA, SRV, TXT, MX, CNAME, NS, PTR, SOA.
_PROBED = (1, 28, 33, 16, 15, 5, 2, 12, 6)
_DNSKEY = 48


class ZoneSigning:
    def __init__(self, keys: list[Key], state: ZoneState, clock=time.time):
        self.state = state
        self.domain = state.zone.domain
        self.zone = names.to_wire(self.domain)
        self.domain_path = labels_path(tuple(names.labels(self.zone)))
        self.signer = Signer(keys, clock=clock)
        self.clock = clock
        # Type bitmaps by name path: asking the answer rules is costly for a name with many
        # records below it, and a random-name NXDOMAIN flood asks for the same encloser's.
        self._types: dict[Path, set[int]] = {}
        state.subscribe(self._on_change)

    def _on_change(self, change: Change) -> None:
        """A name's types depend on the records at and below it: a change at P drops the
        cached types of P and every name above it (health never changes types: fail open)."""
        if change.everything:
            self._types.clear()
            return
        for path in change.paths:
            for depth in range(len(path) + 1):
                self._types.pop(path[:depth], None)

    # -- the ZoneView the signer asks -----------------------------------------------------

    def exists(self, name: bytes) -> bool:
        if name == self.zone:
            return True
        return self.state.index.exists(_path(name))

    def types(self, name: bytes) -> set[int]:
        labels = tuple(names.labels(name))
        path = labels_path(labels)
        found = self._types.get(path)
        if found is None:
            if len(self._types) >= TYPES_CACHED:
                self._types.clear()
            found = self._types[path] = self._probe(name, labels, path)
        return found

    def _probe(self, name: bytes, labels: tuple, path: Path) -> set[int]:
        """The types the rules answer `name` itself with (not a CNAME chain's target's)."""
        found = set()
        if path[: len(self.domain_path)] != self.domain_path:
            return found
        for qtype in _PROBED:
            head = qtype.to_bytes(2, "big")
            if any(rr[1][:2] == head and rr[0] == labels
                   for rr in answer(self.state, path, qtype, labels).answer):
                found.add(qtype)
        if name == self.zone:
            found.add(_DNSKEY)
        return found

    # -- the hook ------------------------------------------------------------------------

    def applies(self, path: Path, qtype: int, do: bool) -> bool:
        """Whether the reply to a question (its name's path, type and DO bit) goes through the
        signer: DO questions in our zone, and the apex DNSKEY question (zone data, answered
        with or without DO)."""
        if do:
            return path[: len(self.domain_path)] == self.domain_path
        return qtype == _DNSKEY and path == self.domain_path

    def sign(self, wires: list[bytes], do: bool, limit: int) -> tuple[list[bytes], float, set]:
        """Sign untruncated replies `wires` (the variants of one answer) for a question with
        or without the DO bit.

        Returns the signed replies within `limit`, the time.monotonic() deadline to rebuild
        them by (signatures at half-life, a key event), 0.0 for none, and the index paths the
        denial proofs read (for the cache to drop them when those change).
        """
        now = self.clock()
        out, renew, paths = [], float("inf"), set()
        for wire in wires:
            signed = sign_reply(
                wire, self.signer, self, self.zone, limit, self.state.zone.ttl, do, now
            )
            out.append(signed.wire)
            renew = min(renew, signed.renew)
            paths.update(_path(n) for n in signed.denial)
        deadline = 0.0 if renew == float("inf") else time.monotonic() + max(0.0, renew - now)
        return out, deadline, paths


def _path(name: bytes) -> Path:
    return labels_path(tuple(names.labels(name)))
