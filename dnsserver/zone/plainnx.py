"""NXDOMAIN for names that plainly do not exist: a label-tree walk and a copy (the flood path).

A random-subdomain flood (`<random>.zone`, each name asked once) is all misses. Building each
of those answers, even on the byte path (wireanswer.py), runs enough code between two hot
queries to push the hot path out of the CPU's caches: the hot set then costs 2-3x as much
per query. This path runs little code and keeps almost nothing: it never builds records,
never creates a cache entry, never evicts one. It only remembers the last few thousand
questions it answered: one asked again (a resolv.conf search suffix, a misconfigured client
retrying) goes to the normal path the second time and is cached there like any answer.

When a name is plainly absent (under our domain, no stored wildcard on its way down the label
tree, no query-side `*`, not under `dns.<domain>` where SkyDNS2's `local` name lives, not
itself a name the SOA record spells), its NXDOMAIN differs from any other such name's only
by the question: the SOA after it is compressed against the question's last labels, i.e.
against the parent name. So the reply after the question is learned once per shape (parent
name, length of the first label, EDNS, transport) from an answer the normal miss path
built, and copied after that. Learned replies are forgotten on every zone change (the
serial is in them).

Pure: no sockets, no etcd; the engine feeds it the normal path's replies.
"""

from __future__ import annotations

from .state import ZoneState

_MEMO_MAX = 4096  # shapes remembered (parents x first-label lengths); past that, start over
_SEEN_MAX = 8192  # questions remembered to tell a repeated one from a flood's; then start over
_ODD = b"*.\\" + bytes(range(128, 256))


class PlainNx:
    def __init__(self, state: ZoneState):
        self.state = state
        zone = state.zone
        labels = [label.lower().encode() for label in zone.domain.rstrip(".").split(".") if label]
        self._domain = tuple(reversed([label.decode() for label in labels]))
        self._domain_wire = b"".join(bytes((len(x),)) + x for x in labels) + b"\x00"
        self._domain_len = len(self._domain_wire)
        self._dns_wire = b"\x03dns" + self._domain_wire
        # the names the SOA record writes, whole: a question spelling one of them is compressed
        # differently from its siblings (pointers into its first label)
        soa_names = ("ns.dns." + zone.domain, zone.hostmaster or "hostmaster." + zone.domain)
        self._soa_wires = {_wire(name) for name in soa_names}
        self.tails: dict[tuple, tuple[tuple[bytes, bytes], bytes]] = {}
        self.served = 0  # answers given from learned shapes
        # questions answered here lately: the second time one comes, it is cached instead
        self.seen: set[bytes] = set()
        self.admit = True  # False with the cache off: nothing would be kept anyway

    def forget(self) -> None:
        self.tails.clear()

    def shape(self, key: bytes, name_len: int, tcp: bool) -> tuple | None:
        """The shape of a cache key's question if its name plainly does not exist, else None.
        `key` is wire.question_key's (lower-cased name first), `name_len` the name's length."""
        state = self.state
        if not state.ready:
            return None
        wire = key[:name_len]
        end = name_len - self._domain_len
        # one pass drops what needs the normal path: `*` (a query-side wildcard), `\\` and `.`
        # (dnslib spells such labels otherwise; a length byte of 46 is a false alarm, harmless)
        # and non-ASCII; then the domain must end the name and the SOA names must not be it
        if (len(wire.translate(None, _ODD)) != name_len or wire[end:] != self._domain_wire
                or wire in self._soa_wires or wire.endswith(self._dns_wire)):
            return None
        # the labels above the domain, checked to end exactly at its first label
        labels = []
        i = 0
        while i < end:
            j = i + 1 + wire[i]
            labels.append(wire[i + 1 : j].decode())
            i = j
        if i != end or not labels:
            return None
        # Down the label tree: a missing label means nothing is stored at or below the name.
        # A stored `*` on the way may match the label asked: then the answer needs building.
        index = state.index
        wild = index.wildcards
        node = index._root
        labels.reverse()
        for label in (*self._domain, *labels):
            children = node.children
            if not children:
                break
            if wild and "*" in children:
                return None
            node = children.get(label)
            if node is None:
                break
        else:
            return None  # it exists
        first = wire[0]
        return wire[first + 1 :], first, key[-4], tcp

    def reply(self, shape: tuple, data: bytes, qend: int, rd: int, key: bytes) -> bytes | None:
        """The reply to `data` from a learned shape, or None: not learned yet, or the question
        was asked before (then the normal path answers and caches it: a name asked again and
        again, as resolv.conf search suffixes are, becomes a cache hit like any other)."""
        learned = self.tails.get(shape)
        if learned is None:
            return None
        if self.admit:
            seen = self.seen
            if key in seen:
                return None
            if len(seen) >= _SEEN_MAX:
                seen.clear()
            seen.add(key)
        self.served += 1
        heads, tail = learned
        return data[:2] + heads[rd] + data[12:qend] + tail

    def learn(self, shape: tuple, wire: bytes, qend: int) -> None:
        """Remember the normal path's NXDOMAIN `wire` (ID 0, RD 0) for this shape."""
        if wire[3] & 0x0F != 3 or wire[4:12] != b"\x00\x01\x00\x00\x00\x01" + wire[10:12]:
            return  # not a plain NXDOMAIN with one SOA: leave it to the normal path
        if len(self.tails) >= _MEMO_MAX:
            self.tails.clear()
        mid = wire[3:12]
        self.tails[shape] = ((bytes((wire[2] & 0xFE,)) + mid, bytes((wire[2] | 1,)) + mid),
                             wire[qend:])


def _wire(name: str) -> bytes:
    labels = [label.lower().encode() for label in name.rstrip(".").split(".") if label]
    return b"".join(bytes((len(x),)) + x for x in labels) + b"\x00"
