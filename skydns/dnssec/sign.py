"""RRSIGs over RRsets in canonical form (RFC 4034 3.1.8.1, 6.3), with a signature cache.

Signatures are cached by (owner, type, TTL, sorted rdata set): the order an answer shows its
records in does not matter (shuffles, rotations cost nothing), a health flip that changes the
set costs one signature, and flipping back finds the old one. NSEC3 white lies, one per random
name in an NXDOMAIN flood, go to a small LRU of their own, so they never push out the rest and
never grow memory without bound.
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict

from . import names
from .keys import Key, KeyState, key_state
from .message import T_DNSKEY, T_NSEC3, RRset

BACKDATE = 3600  # inception an hour back: clocks of validators that run a little behind
VALIDITY = 7 * 86400  # expiry a week ahead
JITTER = 3600  # spread expiries so signatures made together are not all renewed together
CACHE_SIZE = 50_000
DENIAL_CACHE_SIZE = 2_000


def signed_data(rrsig_prefix: bytes, rrset: RRset) -> bytes:
    """What an RRSIG signs: its rdata without the signature, then the RRset in canonical
    order (sorted rdata, duplicates once), each record with the original TTL."""
    head = (
        rrset.owner
        + rrset.rtype.to_bytes(2, "big")
        + rrset.rclass.to_bytes(2, "big")
        + rrset.ttl.to_bytes(4, "big")
    )
    parts = [rrsig_prefix]
    for rdata in sorted(set(rrset.rdatas)):
        parts.append(head + len(rdata).to_bytes(2, "big") + rdata)
    return b"".join(parts)


def rrsig_prefix(rrset: RRset, key: Key, inception: int, expiration: int) -> bytes:
    return (
        rrset.rtype.to_bytes(2, "big")
        + bytes((key.algorithm, names.label_count(rrset.owner)))
        + rrset.ttl.to_bytes(4, "big")
        + (expiration & 0xFFFFFFFF).to_bytes(4, "big")
        + (inception & 0xFFFFFFFF).to_bytes(4, "big")
        + key.tag.to_bytes(2, "big")
        + key.zone
    )


class Signer:
    """Signs RRsets of one zone with the keys active at the time; `clock` is time.time."""

    def __init__(
        self,
        keys: list[Key],
        clock=time.time,
        cache_size: int = CACHE_SIZE,
        denial_cache_size: int = DENIAL_CACHE_SIZE,
        validity: int = VALIDITY,
        backdate: int = BACKDATE,
        jitter: int = JITTER,
    ):
        self.keys = keys
        self.clock = clock
        self.validity = validity
        self.backdate = backdate
        self.jitter = jitter
        self._state: KeyState | None = None
        self._sizes = (cache_size, denial_cache_size)
        self._caches: tuple[OrderedDict, OrderedDict] = (OrderedDict(), OrderedDict())
        self.made = 0  # signatures computed (tests and stats: the cache's effect)

    def state(self, now: float | None = None) -> KeyState:
        """The keys' roles now; a role change (rollover step) empties the signature cache."""
        now = self.clock() if now is None else now
        st = self._state
        if st is None or now >= st.until:
            new = key_state(self.keys, now)
            if st is None or new.ident != st.ident or new.dnskey_signers != st.dnskey_signers:
                for cache in self._caches:
                    cache.clear()
            self._state = st = new
        return st

    def dnskey_rrset(self, ttl: int, now: float | None = None) -> RRset:
        st = self.state(now)
        zone = self.keys[0].zone
        return RRset(zone, T_DNSKEY, 1, ttl, [k.rdata for k in st.published])

    def sign(self, rrset: RRset, now: float | None = None) -> float:
        """Put the RRSIGs on `rrset.sigs`; returns the time they are due to be renewed (half
        their validity), or the next key event if that comes first."""
        now = self.clock() if now is None else now
        st = self.state(now)
        denial = rrset.rtype == T_NSEC3
        cache = self._caches[denial]
        ckey = (rrset.owner, rrset.rtype, rrset.ttl, tuple(sorted(set(rrset.rdatas))))
        found = cache.get(ckey)
        if found is not None and found[1] > now:
            cache.move_to_end(ckey)
            rrset.sigs = list(found[0])
            return min(found[1], st.until)
        signers = st.dnskey_signers if rrset.rtype == T_DNSKEY else st.zone_signers
        inception = int(now) - self.backdate
        expiration = (
            int(now) + self.validity + (random.randrange(self.jitter) if self.jitter else 0)
        )
        sigs = []
        for key in signers:
            prefix = rrsig_prefix(rrset, key, inception, expiration)
            sigs.append(prefix + key.sign(signed_data(prefix, rrset)))
            self.made += 1
        renew = inception + (expiration - inception) / 2
        cache[ckey] = (sigs, renew)
        if len(cache) > self._sizes[denial]:
            cache.popitem(last=False)
        rrset.sigs = list(sigs)
        return min(renew, st.until)
