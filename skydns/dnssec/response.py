"""The signing layer: an assembled unsigned reply (wire) in, the signed reply (wire) out.

Whoever builds answers (today dnslib, tomorrow pre-rendered parts) stays unaware of DNSSEC:
this module re-reads the reply, adds the DNSKEY RRset for an apex DNSKEY question, adds the
authenticated denial (NSEC3 white lies) for NXDOMAIN and NODATA, puts RRSIGs on every RRset
of the zone in every section, and renders it within the size limit. Which names exist and
what types a name has come from a `ZoneView` the caller provides (the answer rules applied
to the zone's records), so the type bitmaps say what a query would really get.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from . import names, nsec3
from .message import T_CNAME, T_DNSKEY, T_RRSIG, T_SOA, ParseError, Reply, RRset, parse, render
from .sign import Signer

MAX_CHAIN = 16
_NOERROR, _SERVFAIL, _NXDOMAIN = 0, 2, 3


class ZoneView(Protocol):
    def exists(self, name: bytes) -> bool:
        """Whether `name` (canonical wire) exists: has records at or below it, or is the apex."""

    def types(self, name: bytes) -> set[int]:
        """The types a query for `name` answers with data (not counting CNAME targets)."""


@dataclass
class Signed:
    wire: bytes
    renew: float  # wall-clock time the reply must be rebuilt by (inf: never)
    denial: list[bytes]  # names whose subtree the denial speaks of: a change there stales it


def final_name(reply: Reply) -> bytes:
    """The last name of the CNAME chain the answer section starts at the question name."""
    target = reply.qname
    answer = reply.sections[0]
    for _ in range(MAX_CHAIN):
        nxt = next((s for s in answer if s.owner == target and s.rtype == T_CNAME), None)
        if nxt is None or not nxt.rdatas:
            break
        target = nxt.rdatas[0]
    return target


def negative_ttl(reply: Reply, default: int) -> int:
    """RFC 9077: NSEC3 TTL = min(SOA TTL, SOA minimum)."""
    for rrset in reply.sections[1]:
        if rrset.rtype == T_SOA and rrset.rdatas:
            return min(rrset.ttl, int.from_bytes(rrset.rdatas[0][-4:], "big"))
    return default


def closest_encloser(name: bytes, zone: bytes, view: ZoneView) -> tuple[bytes, bytes]:
    """(closest encloser, next closer name) of a name that does not exist (RFC 5155 7.2.1):
    walk up until a name exists, the apex at the latest (also when the parent is missing)."""
    nc = name
    ce = names.parent(name)
    while ce != zone and len(ce) > len(zone) and not view.exists(ce):
        nc, ce = ce, names.parent(ce)
    return ce, nc


def denial(reply: Reply, zone: bytes, view: ZoneView, ttl: int) -> tuple[list[RRset], list[bytes]]:
    """The NSEC3 records a validator needs to accept this negative (or CNAME-to-nothing)
    reply, and the names they speak of."""
    target = final_name(reply)
    if not names.is_below(target, zone):
        return [], []  # the chain left our zone: the other zone proves its own denials
    rcode = reply.rcode
    if rcode == _NXDOMAIN:
        ce, nc = closest_encloser(target, zone, view)
        records = [
            nsec3.matching(ce, zone, view.types(ce), ttl),
            nsec3.covering(nc, zone, ttl),
            nsec3.covering(b"\x01*" + ce, zone, ttl),
        ]
        seen, unique = set(), []
        for rrset in records:
            if rrset.owner not in seen:
                seen.add(rrset.owner)
                unique.append(rrset)
        return unique, [ce]
    if rcode != _NOERROR:
        return [], []
    answered = any(
        s.owner == target and (s.rtype == reply.qtype or reply.qtype == T_CNAME)
        for s in reply.sections[0]
    )
    if answered:
        return [], []
    return [nsec3.matching(target, zone, view.types(target), ttl)], [target]


def sign_reply(
    wire: bytes,
    signer: Signer,
    view: ZoneView,
    zone: bytes,
    limit: int,
    dnskey_ttl: int,
    do: bool = True,
    now: float | None = None,
) -> Signed:
    """Sign the unsigned reply `wire` (untruncated) of our zone and fit it into `limit`.

    Without `do` only the apex DNSKEY question is answered (the keys are zone data); the
    rest of such a reply is left as it was built.
    """
    now = signer.clock() if now is None else now
    try:
        reply = parse(wire)
    except ParseError:
        return Signed(wire, float("inf"), [])
    renew = float("inf")
    if reply.qname == zone and reply.qtype == T_DNSKEY:
        reply.sections[0] = [signer.dnskey_rrset(dnskey_ttl, now)]
        reply.sections[1] = []
        reply.header = reply.header[:3] + bytes((reply.header[3] & 0xF0,)) + reply.header[4:]
        renew = signer.state(now).until  # the set changes when a key is published or deleted
    if not do:
        return Signed(render(reply, limit), renew, [])
    if reply.rcode == _SERVFAIL:
        return Signed(wire if len(wire) <= limit else render(reply, limit), float("inf"), [])
    proofs, touched = denial(reply, zone, view, negative_ttl(reply, dnskey_ttl))
    reply.sections[1].extend(proofs)
    for section in reply.sections:
        for rrset in section:
            if rrset.rtype != T_RRSIG and names.is_below(rrset.owner, zone):
                renew = min(renew, signer.sign(rrset, now))
    return Signed(render(reply, limit), renew, touched)
