"""Engine: from query bytes to reply bytes, everything the transports share.

Transports call the cache themselves for hits (the hot path, see udp.py); `miss` does the rest:
parse with dnslib, route (sub-domain servers, our zone, upstream), build with the answer rules,
render the variants and store them. It returns reply bytes, None (stay silent) or a coroutine
when the answer needs the network (forwarding).
"""

from __future__ import annotations

import ipaddress
import logging
import struct
import time
from collections import Counter

from dnslib import QTYPE, RCODE, DNSRecord

from skydns.health import HealthView
from skydns.keys import name_to_path

from .answer import Answer, Context, ZoneSettings, answer, owns
from .cache import AnswerCache, Entry, split_reply
from .forward import forward
from .index import RecordIndex
from .wire import (
    TCP_LIMIT,
    FormErr,
    Query,
    error_reply,
    parse_query,
    question_bytes,
    question_key,
    render,
    udp_limit,
)
from .zone import reverse_zones, zone_rrs

log = logging.getLogger("skydns.engine")

_MAX_VARIANTS = 16  # rotations kept for shuffled answers that cannot be rotated as bytes
_BADVERS = 16
_QTYPE_ANY, _QTYPE_AXFR, _QTYPE_IXFR = 255, 252, 251
MAX_NAMES = 100_000  # names counted for stats; past that only those already seen
FORWARD_CACHE_MAX = 3600  # seconds an upstream answer is kept at most
_AXFR_CHUNK = 100  # records per AXFR message: well under 64 KB even with long TXT


class Engine:
    def __init__(self, cfg: dict):
        dns = cfg["Dns"]
        fun = cfg["Fun"]
        self.nameservers = list(dns["nameservers"])
        # longest zone first, so the most specific sub-domain server wins
        self.subdomains = sorted(dns["subDomainServers"].items(), key=lambda item: -len(item[0]))
        self.zone = ZoneSettings(
            domain=dns["dns-domain"],
            ttl=dns["ttl"],
            min_ttl=dns["min-ttl"],
            recursion=bool(self.nameservers or self.subdomains),
            local=dns.get("local", ""),
            hostmaster=dns.get("hostmaster", ""),
            # random-one and hone-one pick among the addresses whatever round_robin says
            round_robin=dns.get("round-robin", True) or bool(fun["random-one"] or fun["hone-one"]),
        )
        self.index = RecordIndex()
        self.health = HealthView()
        self.ctx = Context(self.index, self.health, self.zone)
        self.cache = AnswerCache(dns["cacheSize"])
        self.max_udp = dns["max-udp-size"]
        self.mode = "random" if fun["random-one"] else "hone" if fun["hone-one"] else ""
        self.forward_timeout = dns["forward-timeout"]
        self.allow = list(dns["forward-allow"])
        self.axfr_allow = list(dns["axfr-allow"])
        self._allowed: dict[str, bool] = {}
        self.log_queries = cfg["Log"].get("log-queries", False)
        self.ready = False  # set once the first etcd load is in: before that, zone answers SERVFAIL
        self.stats: Counter = Counter()
        self.query_names: Counter = Counter()  # names asked on the slow path (hits: cache)

    # -- routing -----------------------------------------------------------------------------

    def allowed(self, client: str) -> bool:
        """Whether `client` may use us as a resolver (no open resolver)."""
        ok = self._allowed.get(client)
        if ok is None:
            try:
                addr = ipaddress.ip_address(client.split("%")[0])
                ok = any(addr in net for net in self.allow)
            except ValueError:
                ok = False
            if len(self._allowed) > 65536:
                self._allowed.clear()
            self._allowed[client] = ok
        return ok

    def _servers_for(self, qname: str):
        for zone, servers in self.subdomains:
            if qname == zone or qname.endswith("." + zone):
                return servers
        return None

    def log_query(self, data: bytes, client: str, tcp: bool) -> None:
        """[Log] log-queries: one line per query, hit or miss (the transports call this only
        when it is on, so the hot path never pays for it)."""
        try:
            q = parse_query(data)
        except FormErr:
            return  # miss() logs it as malformed
        log.info("query", extra={"kv": {"client": client, "name": q.qname,
                                        "type": QTYPE.get(q.qtype), "tcp": tcp}})

    def miss(self, data: bytes, client: str, tcp: bool):
        self.stats["requests"] += 1
        self.cache.misses += 1
        try:
            q = parse_query(data)
        except FormErr as err:
            self.stats["formerr"] += 1
            log.debug("malformed query", extra={"kv": {"client": client, "size": len(data)}})
            return err.reply
        if q.qname in self.query_names or len(self.query_names) < MAX_NAMES:
            self.query_names[q.qname] += 1
        if q.edns and q.edns_version != 0:
            return self._error(q, _BADVERS)
        if q.qclass != 1:
            return self._error(q, RCODE.REFUSED)  # CHAOS, HESIOD, ANY class: not served here
        if q.qtype == _QTYPE_AXFR:
            return self._axfr(q, client, tcp)
        if q.qtype in (_QTYPE_ANY, _QTYPE_IXFR):
            return self._error(q, RCODE.NOTIMP)

        servers = self._servers_for(q.qname)
        if servers is None:
            if owns(self.ctx, q.qname):
                if not self.ready:
                    return self._error(q, RCODE.SERVFAIL)
                ans = answer(self.ctx, q.qname, q.qtype)
                if ans.external is not None:
                    if self.nameservers and self.allowed(client):
                        return self._resolve_external(q, data, client, tcp, ans)
                    # The chain as far as our zone goes; the client resolves the rest itself,
                    # and the cache keeps nothing: its entry is the resolved answer.
                    ans.external = None
                    return self._finish(q, data, client, tcp, ans, cacheable=False)
                return self._finish(q, data, client, tcp, ans)
            servers = self.nameservers
        if not servers or not self.allowed(client):
            self.stats["refused"] += 1
            return self._error(q, RCODE.REFUSED)
        return self._forward(q, data, tcp, servers)

    # -- zone transfer -----------------------------------------------------------------------

    def _axfr(self, q: Query, client: str, tcp: bool):
        """AXFR over TCP to allowed clients: a list of messages, SOA first and last."""
        if not tcp:
            return self._error(q, RCODE.FORMERR)  # RFC 5936 4.2: AXFR needs a stream
        path = name_to_path(q.qname)
        zones = [self.zone.domain_path, *reverse_zones(self.ctx)]
        if path not in zones or not self._axfr_allowed(client):
            self.stats["refused"] += 1
            return self._error(q, RCODE.REFUSED)
        if not self.ready:
            return self._error(q, RCODE.SERVFAIL)
        rrs = [rr for rr, _ in zone_rrs(self.ctx, path)]
        rrs.append(rrs[0])
        self.stats["axfr"] += 1
        log.info(
            "zone transfer", extra={"kv": {"client": client, "zone": q.qname, "records": len(rrs)}}
        )
        messages = []
        for start in range(0, len(rrs), _AXFR_CHUNK):
            wire = render(
                q,
                RCODE.NOERROR,
                rrs[start : start + _AXFR_CHUNK],
                [],
                [],
                TCP_LIMIT,
                aa=True,
                ra=self.zone.recursion,
                max_udp=self.max_udp,
                rd=q.rd,
            )
            messages.append(struct.pack("!H", q.id) + wire[2:])
        return messages

    def _axfr_allowed(self, client: str) -> bool:
        try:
            addr = ipaddress.ip_address(client.split("%")[0])
        except ValueError:
            return False
        return any(addr in net for net in self.axfr_allow)

    # -- building ----------------------------------------------------------------------------

    def _error(self, q: Query, rcode: int) -> bytes:
        if rcode == RCODE.SERVFAIL:
            self.stats["servfail"] += 1
        return (
            struct.pack("!H", q.id) + error_reply(q, rcode, self.max_udp, self.zone.recursion)[2:]
        )

    def _limit(self, q: Query, tcp: bool) -> int:
        if tcp:
            return TCP_LIMIT
        return udp_limit(q.edns_size, self.max_udp) if q.edns else 512

    def _variants(self, ans: Answer) -> tuple[list[list], list[str], str]:
        """The answer lists to pre-render, the address each one picks, and how to choose."""
        n = len(ans.picks)
        if ans.pick_from < 0 or n < 2:
            return [ans.answer], [], ""
        head, group = ans.answer[: ans.pick_from], ans.answer[ans.pick_from :]
        if self.mode:
            return [head + [rr] for rr in group], list(ans.picks), self.mode
        step = max(1, n // _MAX_VARIANTS)
        rotations = [head + group[r:] + group[:r] for r in range(0, n, step)][:_MAX_VARIANTS]
        return rotations, [], "random"

    def _render(self, q: Query, ans: Answer, rrs: list, limit: int) -> bytes:
        return render(
            q,
            ans.rcode,
            rrs,
            ans.authority,
            ans.additional,
            limit,
            aa=True,
            ra=self.zone.recursion,
            max_udp=self.max_udp,
        )

    def _shuffled(self, q: Query, ans: Answer, limit: int):
        """One reply whose address records a hit rotates as bytes (see cache.Entry.pick), so
        every address takes its turn first without a variant per address; None if the
        rendered records do not allow it."""
        wire = self._render(q, ans, ans.answer, limit)
        full = wire if not wire[2] & 0x02 else self._render(q, ans, ans.answer, TCP_LIMIT)
        ring = address_ring(wire, full, ans.pick_from, len(ans.picks))
        return None if ring is None else (wire, ring)

    def _finish(
        self, q, data, client, tcp, ans: Answer, expires=0.0, cacheable=True, restricted=False
    ) -> bytes:
        limit = self._limit(q, tcp)
        ring = None
        if not self.mode and ans.pick_from >= 0 and len(ans.picks) > 1:
            shuffled = self._shuffled(q, ans, limit)
            if shuffled is not None:
                wires, ring = [shuffled[0]], shuffled[1]
                addrs, mode = [], "ring"
        if ring is None:
            lists, addrs, mode = self._variants(ans)
            wires = [self._render(q, ans, rrs, limit) for rrs in lists]
        self._count(ans, wires[0])
        keyed = question_key(data, tcp, self.max_udp)
        if keyed is None:  # an unusual but valid query: answer it, but it has no cache key
            return struct.pack("!H", q.id) + _with_rd(wires[0], q.rd)[2:]
        key, qend, rd = keyed
        qbytes = question_bytes(data, qend)
        if any(w[12:qend] != qbytes for w in wires):  # dnslib spelled the name otherwise
            return struct.pack("!H", q.id) + _with_rd(wires[0], q.rd)[2:]
        entry = Entry(
            [split_reply(w, qend) for w in wires],
            addrs=addrs,
            mode=mode,
            paths=ans.paths,
            ips=ans.ips,
            # Only the SOA answer itself must follow every serial change; negative answers
            # (SOA in authority) are dropped by the paths they read, serial slightly old.
            soa=ans.soa and q.qtype == QTYPE.SOA,
            expires=expires,
            kind=_kind(ans, wires[0]),
            ring=ring,
            restricted=restricted,
        )
        if cacheable:
            self.cache.put(key, entry)
        variant = entry.pick(client)
        return data[:2] + variant[rd] + data[12:qend] + variant[2]

    def _count(self, ans: Answer, wire: bytes) -> None:
        if ans.rcode == RCODE.NXDOMAIN:
            self.stats["nxdomain"] += 1
        elif ans.rcode == RCODE.SERVFAIL:
            self.stats["servfail"] += 1
        elif not ans.answer:
            self.stats["nodata"] += 1
        if ans.fail_open:
            self.stats["fail_open"] += 1
            log.warning(
                "every address DOWN, answering all (fail open)",
                extra={"kv": {"addresses": ",".join(sorted(ans.ips))}},
            )
        if wire[2] & 0x02:
            self.stats["truncated"] += 1

    async def _forward(self, q: Query, data: bytes, tcp: bool, servers) -> bytes:
        self.stats["forward"] += 1
        reply = await forward(servers, data, self.forward_timeout, tcp=tcp)
        if reply is None:
            self.stats["forward_fail"] += 1
            return self._error(q, RCODE.SERVFAIL)
        self._cache_forwarded(data, tcp, reply)
        return reply

    def _cache_forwarded(self, data: bytes, tcp: bool, reply: bytes) -> None:
        """Keep an upstream answer for its TTL (negative ones for their SOA minimum).

        TTLs in the kept bytes are not counted down, so a downstream cache may hold a record
        up to twice its TTL; FORWARD_CACHE_MAX bounds that for long-TTL records.
        """
        keyed = question_key(data, tcp, self.max_udp)
        if keyed is None:
            return
        key, qend, _ = keyed
        ttl = cache_ttl(reply)
        if ttl <= 0 or question_bytes(reply, qend) != question_bytes(data, qend):
            return
        entry = Entry(
            [split_reply(reply, qend)],
            expires=time.monotonic() + min(ttl, FORWARD_CACHE_MAX),
            kind="forward",
            restricted=True,  # a hit must not make us an open resolver (forward-allow)
        )
        self.cache.put(key, entry)

    async def _resolve_external(self, q, data, client, tcp, ans: Answer) -> bytes:
        """Complete a CNAME chain that leaves our zone by asking the upstream resolvers."""
        generation = self.cache.generation
        target, qtype = ans.external
        ans.external = None
        expires, cacheable = 0.0, False
        reply = None
        if self.nameservers:
            ask = DNSRecord.question(target, QTYPE.get(qtype))
            reply = await forward(self.nameservers, ask.pack(), self.forward_timeout, tcp=tcp)
        if reply is not None:
            try:
                upstream = DNSRecord.parse(reply)
                ans.answer.extend(upstream.rr)
                if upstream.header.rcode == RCODE.NXDOMAIN:
                    ans.rcode = RCODE.NXDOMAIN
                ttl = min((rr.ttl for rr in upstream.rr), default=self.zone.min_ttl)
                expires = time.monotonic() + ttl
                # A change while we waited may have made this answer stale: serve, don't keep.
                cacheable = generation == self.cache.generation and ttl > 0
            except Exception:  # a broken upstream reply: answer with the chain we have
                log.warning("unreadable upstream reply", extra={"kv": {"name": target}})
        # Upstream data in the answer: a hit serves it only to clients allowed to forward.
        return self._finish(
            q, data, client, tcp, ans, expires=expires, cacheable=cacheable, restricted=True
        )


def _kind(ans: Answer, wire: bytes) -> str:
    """What a hit on this answer counts as in the stats: one kind, "+truncated" if TC."""
    if ans.rcode == RCODE.NXDOMAIN:
        kind = "nxdomain"
    elif ans.rcode == RCODE.SERVFAIL:
        kind = "servfail"
    elif not ans.answer:
        kind = "nodata"
    else:
        kind = "fail_open" if ans.fail_open else ""
    return kind + "+truncated" if wire[2] & 0x02 else kind


def _skip_name(wire: bytes, i: int) -> int:
    while True:
        length = wire[i]
        if length >= 0xC0:
            return i + 2
        if length == 0:
            return i + 1
        i += length + 1


def _skip_rr(wire: bytes, i: int) -> int:
    i = _skip_name(wire, i) + 8
    return i + 2 + int.from_bytes(wire[i : i + 2], "big")


def address_ring(wire: bytes, full: bytes, first: int, n: int):
    """The byte layout that lets a hit rotate the address records of a rendered reply.

    `wire` is the reply as sent (maybe truncated to k of the n address records that start at
    answer record `first`), `full` the same untruncated. It works when every address record
    is the same size and its owner is a pointer to a name before them (A/AAAA rdata hold no
    names), so any k consecutive records of the cycle make the same reply with other bytes.
    Returns (prefix, ring, size, n, span, suffix): ring is the n records followed by the
    first k-1 again, so rotation r is ring[r*size : r*size + span]; or None.
    """
    try:
        qend = _skip_name(wire, 12) + 4
        k = int.from_bytes(wire[6:8], "big") - first
        if k < 1 or int.from_bytes(full[6:8], "big") != first + n:
            return None
        start = qend
        for _ in range(first):
            start = _skip_rr(wire, start)
        if full[12:start] != wire[12:start]:
            return None
        size = 0
        for j in range(n):
            i = start + j * size if size else start
            if full[i] < 0xC0 or (int.from_bytes(full[i : i + 2], "big") & 0x3FFF) >= start:
                return None
            if full[i + 2 : i + 4] not in (b"\x00\x01", b"\x00\x1c"):
                return None
            length = _skip_rr(full, i) - i
            if size and length != size:
                return None
            size = length
        group = full[start : start + n * size]
        end = start + k * size
        if wire[start:end] != group[: k * size]:
            return None
    except IndexError:
        return None
    return wire[qend:start], group + group[: (k - 1) * size], size, n, k * size, wire[end:]


def cache_ttl(reply: bytes) -> int:
    """How long an upstream reply may be reused: 0 for errors and truncated replies, the
    smallest TTL for answers, the SOA minimum (capped by the SOA's TTL) for negative ones."""
    try:
        msg = DNSRecord.parse(reply)
    except Exception:
        return 0
    rcode = msg.header.rcode
    if msg.header.tc or rcode not in (RCODE.NOERROR, RCODE.NXDOMAIN):
        return 0
    if msg.rr and rcode == RCODE.NOERROR:
        return min(rr.ttl for rr in msg.rr)
    soas = [rr for rr in msg.auth if rr.rtype == QTYPE.SOA]
    if not soas:
        return 0  # a negative answer without SOA must not be cached (RFC 2308 5)
    return min(soas[0].ttl, soas[0].rdata.times[-1])


def _with_rd(wire: bytes, rd: int) -> bytes:
    return wire[:2] + bytes(((wire[2] & 0xFE) | rd,)) + wire[3:]
