"""DNSSEC for the engine: the zone as the signer sees it, and the hook the miss path calls.

The signing itself (skydns/dnssec/) is pure and works on wire replies; this module only says
which replies get signed (DO questions in our zone, and the apex DNSKEY question), and answers
the signer's two questions about the zone from the ZoneState with the same answer rules the
replies come from: does a name exist, and what types does a query for it answer with.
"""

from __future__ import annotations

import time

from dnslib import QTYPE

from skydns.dnssec import names
from skydns.dnssec.keys import Key
from skydns.dnssec.response import sign_reply
from skydns.dnssec.sign import Signer
from skydns.keys import Path, is_subdomain, name_to_path

from ..wire.message import Query
from .answer import answer
from .state import Change, ZoneState

TYPES_CACHED = 10_000  # names whose type bitmaps are kept

# The types a name can answer with (answer.py); the bitmap of an NSEC3 lists those it does.
_PROBED = (
    QTYPE.A,
    QTYPE.AAAA,
    QTYPE.SRV,
    QTYPE.TXT,
    QTYPE.MX,
    QTYPE.CNAME,
    QTYPE.NS,
    QTYPE.PTR,
    QTYPE.SOA,
)


class ZoneSigning:
    def __init__(self, keys: list[Key], state: ZoneState, clock=time.time):
        self.state = state
        self.domain = state.zone.domain
        self.zone = names.to_wire(self.domain)
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
        return self.state.index.exists(name_to_path(names.to_text(name)))

    def types(self, name: bytes) -> set[int]:
        text = names.to_text(name)
        path = name_to_path(text)
        found = self._types.get(path)
        if found is None:
            if len(self._types) >= TYPES_CACHED:
                self._types.clear()
            found = self._types[path] = self._probe(name, text)
        return found

    def _probe(self, name: bytes, text: str) -> set[int]:
        found = set()
        for qtype in _PROBED:
            ans = answer(self.state, text, qtype)
            if any(rr.rtype == qtype and str(rr.rname).lower() == text for rr in ans.answer):
                found.add(qtype)
        if name == self.zone:
            found.add(QTYPE.DNSKEY)
        return found

    # -- the hook ------------------------------------------------------------------------

    def applies(self, q: Query) -> bool:
        """Whether the reply to `q` goes through the signer: DO questions in our zone, and the
        apex DNSKEY question (zone data, answered with or without DO)."""
        if q.do:
            return is_subdomain(q.qname, self.domain)
        return q.qtype == QTYPE.DNSKEY and q.qname == self.domain

    def sign(self, wires: list[bytes], q: Query, limit: int) -> tuple[list[bytes], float, set]:
        """Sign untruncated replies `wires` (the variants of one answer) for `q`.

        Returns the signed replies within `limit`, the time.monotonic() deadline to rebuild
        them by (signatures at half-life, a key event), 0.0 for none, and the index paths the
        denial proofs read (for the cache to drop them when those change).
        """
        now = self.clock()
        out, renew, paths = [], float("inf"), set()
        for wire in wires:
            signed = sign_reply(
                wire, self.signer, self, self.zone, limit, self.state.zone.ttl, q.do, now
            )
            out.append(signed.wire)
            renew = min(renew, signed.renew)
            paths.update(_path(n) for n in signed.denial)
        deadline = 0.0 if renew == float("inf") else time.monotonic() + max(0.0, renew - now)
        return out, deadline, paths


def _path(name: bytes) -> Path:
    return name_to_path(names.to_text(name))
