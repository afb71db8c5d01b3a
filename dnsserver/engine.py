"""Engine: from query bytes to reply bytes, everything the transports share.

Transports call the cache themselves for hits (the hot path, see udp.py); `miss` does the rest.
A question for our zones goes one way: read with byte slicing (`question_key`; messages it
does not key are read with bounded work by querycheck.py), answered by the rules
(zone/rules.py: records of one form), rendered (wire/render.py: compression, truncation,
OPT), signed when DNSSEC applies (zone/signing.py), and kept in the cache with its variants.
Other questions are routed: sub-domain servers and upstreams (forwarded as bytes), errors.
`miss` returns reply bytes, None (stay silent) or a coroutine when the answer needs the
network (forwarding, a CNAME chain leaving the zone).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import struct
import time
from collections import Counter

from dnslib import QTYPE, RCODE

from skydns.keys import name_to_path
from skydns.rendezvous import choose
from skydns.tsigkey import keyring

from .front.cache import AnswerCache, Entry, split_reply
from .front.forward import cache_ttl, forward
from .front.latency import Latency
from .front.namecount import NameCounts
from .front.ratelog import RateLimitedLog
from .front.stats import wire_to_name
from .wire import tsig
from .wire.message import (
    TCP_LIMIT,
    FormErr,
    Query,
    address_ring,
    error_reply,
    header_reply,
    lower_labels,
    parse_query,
    question_bytes,
    question_key,
    udp_limit,
    upstream_answer,
    wire_labels,
)
from .wire.querycheck import Malformed, check_query
from .wire.render import message, name_wire, opt_record
from .zone import rules
from .zone.context import answer_mode, is_reverse, owns, owns_reverse, zone_settings
from .zone.plainnx import PlainNx
from .zone.records import reverse_zones
from .zone.rules import labels_path
from .zone.signing import ZoneSigning
from .zone.state import Change, ZoneState
from .zone.transfer import PAUSE, Snapshot, record_ends, soa_wire

log = logging.getLogger("skydns.engine")
tsig_log = RateLimitedLog(log)  # bad signatures come as fast as anyone can send them

_clock = time.perf_counter
_NAMES_KEPT = 16384  # questions remembered (names as labels and paths); past that, start over
_MAX_VARIANTS = 16  # rotations kept for shuffled answers that cannot be rotated as bytes
_BADVERS = 16
NOT_KEYED = object()  # miss(): the transport made no question_key for this query
_QTYPE_ANY, _QTYPE_AXFR, _QTYPE_IXFR = 255, 252, 251
_ROUTED_TYPES = (b"\x00\xff", b"\x00\xfc", b"\x00\xfb")  # ANY, AXFR, IXFR: not _zone_wire's
MAX_NAMES = 100_000  # names counted for stats; past that only those already seen
NAME_BYTES = 8 << 20  # and at most this much memory for them (see namecount)
FORWARD_CACHE_MAX = 3600  # seconds an upstream answer is kept at most
# Record bytes per AXFR message: names are written whole (transfer.py), so no compression
# pointer limits the size; the rest of 64 KB leaves room for the question, OPT and TSIG (a
# single record bigger than this, a long TXT, goes alone in its message).
_AXFR_BYTES = 60_000
_AXFR_SLICE = 0.002  # seconds of transfer work between the pauses that let other queries in


class Engine:
    """Answers queries from a ZoneState (the sync fills it) and keeps the answer cache equal to
    it by subscribing to its changes."""

    def __init__(self, cfg: dict, state: ZoneState | None = None):
        dns = cfg["Dns"]
        self.nameservers = list(dns["nameservers"])
        # longest zone first, so the most specific sub-domain server wins
        self.subdomains = sorted(dns["subDomainServers"].items(), key=lambda item: -len(item[0]))
        self.state = state if state is not None else ZoneState(zone_settings(cfg))
        self.zone = self.state.zone
        self.cache = AnswerCache(dns["cacheSize"])
        self.state.subscribe(self._on_change)
        self.snapshot = Snapshot(self.state)  # the zone transfer's copy, made by the first one
        keys = dns.get("dnssec")
        # DNSSEC is a layer over finished replies (signing.py): without keys, nothing changes.
        self.signing = ZoneSigning(keys, self.state) if keys else None
        self.max_udp = dns["max-udp-size"]
        self._domain_path = self.zone.domain_path
        # cache key -> what _question says: the questions asked lately
        self._asked: dict[bytes, list] = {}
        self._gen = 0  # zone changes so far
        self._counted: list[list] = []  # the remembered questions asked since fold_names
        self._ra = self.zone.recursion
        # the OPT record of a reply by the key's EDNS flag: "-" none, "E" EDNS, "D" with DO
        self._opts = {0x2D: b"", 0x45: opt_record(self.max_udp, False),
                      0x44: opt_record(self.max_udp, True)}
        self.mode = answer_mode(cfg)
        self.forward_timeout = dns["forward-timeout"]
        self.allow = list(dns["forward-allow"])
        self.axfr_allow = list(dns["axfr-allow"])
        # every key a signed message may use (RFC 8945, any opcode); with any, transfers
        # need one of them instead of an allowed address
        self.tsig_keys = tsig.by_wire(
            keyring(dns.get("tsig-key", ""), dns.get("tsig-keys", [])).values())
        self.clock = time.time  # TSIG's time check and signing times (a test hands in another)
        self._allowed: dict[str, bool] = {}
        self.log_queries = cfg["Log"].get("log-queries", False)
        self.tap = None  # dnstap (tap.TapWriter), set by the server before it binds
        self.tap_forwarder = None  # its hook for our upstream exchanges (forward.py)
        self.stats: Counter = Counter()
        self.built_time = Latency("built")  # misses answered from the zone
        self.forward_time = Latency("forwarded")  # misses answered by an upstream
        # names asked on the slow path (hits: cache), bounded by bytes against random floods
        self.query_names = NameCounts(NAME_BYTES, MAX_NAMES)
        self.plain_nx = PlainNx(self.state)
        self.plain_nx.admit = self.cache.size > 0

    def _on_change(self, change: Change) -> None:
        """Drop the cached answers that read what changed."""
        self.plain_nx.forget()  # its replies carry the serial
        self._gen += 1
        cache = self.cache
        if change.everything:
            cache.clear()
            return
        for path in change.paths:
            cache.invalidate_path(path)
        for ip in change.ips:
            cache.invalidate_ip(ip)

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

    def forwards(self, wire: bytes) -> bool:
        """Whether the question of a query (or reply) is for a name we forward: its dnstap
        messages are CLIENT_*, not AUTH_*."""
        qname = wire_to_name(wire[12:]).lower()
        return self._servers_for(qname) is not None or not owns(self.state, qname)

    def log_query(self, data: bytes, client: str, tcp: bool) -> None:
        """[Log] log-queries: one line per query, hit or miss (the transports call this only
        when it is on, so the hot path never pays for it)."""
        try:
            q = parse_query(data)
        except FormErr:
            try:  # signed with an OPT too: two additional records, read without the TSIG
                request = tsig.read_request(data) if len(data) >= 12 else None
                if request is None:
                    return  # miss() logs it as malformed
                q = parse_query(request.stripped(data))
            except (FormErr, tsig.TsigFormErr):
                return
        log.info("query", extra={"kv": {"client": client, "name": q.qname,
                                        "type": QTYPE.get(q.qtype), "tcp": tcp}})

    def miss(self, data: bytes, client: str, tcp: bool, keyed=NOT_KEYED):
        """The reply to a query the cache did not answer: bytes, None (stay silent), or a
        coroutine when it needs the network. Answers made here are timed (miss latency).
        `keyed`: the transport's question_key of `data` for this transport, if it made one
        for the hit it did not find (None: not a plain query)."""
        start = _clock()
        if keyed is NOT_KEYED:
            keyed = question_key(data, tcp, self.max_udp)
        if keyed is None:
            # Records besides the question: maybe a TSIG (a keyed query has at most an OPT,
            # so plain EDNS misses skip the walk).
            if len(data) >= 12 and data[6:12] != b"\0\0\0\0\0\0" and not data[2] & 0x80:
                try:
                    request = tsig.read_request(data)
                except tsig.TsigFormErr as err:
                    return self._tsig_formerr(data, client, err)
                if request is not None:
                    return self._signed(data, request, client, tcp)
        self.cache.misses += 1  # a request too (stats.py adds them up)
        reply = None if keyed is None else self._zone_wire(data, keyed, client, tcp)
        if reply is None:
            reply = self._routed(data, client, tcp)
        if reply.__class__ is bytes:
            self.built_time.observe(_clock() - start)
        return reply

    def _answer(self, data: bytes, client: str, tcp: bool, signed=None):
        """The reply to a message without TSIG (or with it taken off: `signed` is then the
        verdict, which a transfer needs to sign its messages)."""
        keyed = question_key(data, tcp, self.max_udp)
        reply = None if keyed is None else self._zone_wire(data, keyed, client, tcp)
        return self._routed(data, client, tcp, signed) if reply is None else reply

    def _routed(self, data: bytes, client: str, tcp: bool, signed=None):
        """What `_zone_wire` does not answer, read with bounded work (querycheck.py) and
        routed: other classes, ANY/AXFR/IXFR, forwarded names, not loaded yet, unkeyed."""
        try:
            q = parse_query(data)
        except FormErr as err:
            self.stats["formerr"] += 1
            log.debug("malformed query", extra={"kv": {"client": client, "size": len(data),
                                                       "why": str(err)}})
            return err.reply
        self.query_names.add(q.qname)  # only names that passed the checks: at most 255 octets
        if q.edns and q.edns_version != 0:
            return self._error(q, _BADVERS)
        if q.qclass != 1:
            return self._error(q, RCODE.REFUSED)  # CHAOS, HESIOD, ANY class: not served here
        if q.qtype in (_QTYPE_AXFR, _QTYPE_IXFR):
            # IXFR is answered with the whole zone, AXFR-style (RFC 1995 section 4 allows it)
            return self._axfr(q, data, client, tcp, signed)
        if q.qtype == _QTYPE_ANY:
            return self._error(q, RCODE.NOTIMP)

        servers = self._servers_for(q.qname)
        if servers is None:
            qlabels = lower_labels(q.qlabels)
            path = labels_path(qlabels)
            if self._owns(path):
                if not self.state.ready:
                    return self._error(q, RCODE.SERVFAIL)
                question = name_wire(qlabels) + struct.pack("!HH", q.qtype, q.qclass)
                opt = opt_record(self.max_udp, q.do) if q.edns else b""
                asked = Asked(data, client, tcp, question_key(data, tcp, self.max_udp), path,
                              q.qtype, qlabels, question, self._limit(q, tcp), opt, q.do, q.rd)
                return self._zone(asked)
            servers = self.nameservers
        if not servers or not self.allowed(client):
            self.stats["refused"] += 1
            return self._error(q, RCODE.REFUSED)
        return self._forward(q, data, tcp, servers)

    # -- TSIG (tsig.py) ---------------------------------------------------------------------

    def _tsig_formerr(self, data: bytes, client: str, err: Exception) -> bytes:
        self.stats["requests"] += 1
        self.stats["formerr"] += 1
        tsig_log.warning("bad TSIG record", {"client": client, "why": str(err)})
        return header_reply(data, tsig.RCODE_FORMERR)

    def _signed(self, data: bytes, request, client: str, tcp: bool):
        """A request with a TSIG: checked (RFC 8945 5.2); if good, answered as the message
        without it (cache hit or miss, both unsigned bytes) and the reply signed with the
        request's key. Nothing signed is ever cached: every signature is per request."""
        now = self.clock()
        try:
            verdict = tsig.check(data, request, self.tsig_keys, now)
        except tsig.TsigFormErr as err:
            return self._tsig_formerr(data, client, err)
        if verdict.error:
            self.stats["requests"] += 1
            self.stats["tsig_failed"] += 1
            tsig_log.warning("TSIG check failed", {
                "client": client, "key": request.name,
                "error": tsig.ERROR_NAMES[verdict.error], "why": verdict.why})
            return tsig.error_reply(data, verdict, now)
        self.stats["tsig_signed"] += 1
        inner = request.stripped(data)
        keyed = question_key(inner, tcp, self.max_udp)
        hit = self.cache.hit(inner, keyed, client, self.allowed) if keyed is not None else None
        if hit is not None:  # counted as a request by its entry, like any hit
            reply = inner[:2] + hit[0]
        else:
            self.cache.misses += 1
            reply = self._answer(inner, client, tcp, verdict)
        if keyed is not None:  # the key ends in the reply's size limit, as the cache keeps it
            limit = int.from_bytes(keyed[0][-3:], "big")
        else:
            limit = TCP_LIMIT if tcp else self._request_limit(inner)
        return self._sign(reply, verdict, limit)

    def _request_limit(self, data: bytes) -> int:
        """What a UDP reply to `data` may hold (its EDNS0 size), 512 if it cannot tell."""
        try:
            c = check_query(data)
        except Malformed:
            return 512
        return udp_limit(c.edns_size, self.max_udp) if c.edns else 512

    def _sign(self, reply, verdict, limit: int):
        """`_answer`'s reply signed: bytes now, an awaited one (forwarding) when it comes."""
        if reply is None or hasattr(reply, "__anext__"):  # a transfer signs its own messages
            return reply
        if isinstance(reply, bytes):
            return tsig.sign_reply(reply, verdict, limit, self.clock)
        return self._sign_later(reply, verdict, limit)

    async def _sign_later(self, pending, verdict, limit: int):
        return self._sign(await pending, verdict, limit)

    # -- answering from the zone: question -> rules -> records -> renderer -> cache ----------

    def _owns(self, path) -> bool:
        """Whether a name (its path) is ours to answer: our domain, or a reverse name we hold
        records for."""
        domain = self._domain_path
        return path[: len(domain)] == domain or owns_reverse(self.state, path)

    def _zone_wire(self, data: bytes, keyed: tuple, client: str, tcp: bool) -> bytes | None:
        """A query the cache keys (one IN question, at most an OPT) for a name in our zones,
        read with byte slicing and answered; None: `_routed` parses and routes it (other
        classes, ANY/AXFR/IXFR, forwarded names, not loaded yet)."""
        key, qend, rd = keyed
        asked = self._asked.get(key)
        nx = None
        # A name the flood path turned down since the last zone change is turned down again.
        if asked is None or asked[3] != self._gen:
            if asked is None and (key[qend - 14 : qend - 12] != b"\x00\x01"
                                  or key[qend - 16 : qend - 14] in _ROUTED_TYPES):
                return None  # not class IN, or ANY/AXFR/IXFR (the key ends in 8 bytes)
            if not self.subdomains and key[-4] != 0x44:  # DO ("D"): the signer's
                nx = self.plain_nx.shape(key, qend - 16, tcp)
                if nx is not None:
                    reply = self.plain_nx.reply(nx, data, qend, rd, key)
                    if reply is not None:  # a copy, cached nowhere: floods stay cheap
                        self.stats["nxdomain"] += 1
                        return reply
                elif asked is not None:
                    asked[3] = self._gen
            if asked is None:  # what the question is, once per key
                asked = self._question(key, qend, nx)
                if asked is None:
                    return None
        if not asked[5] and (asked[5] is False or not owns_reverse(self.state, asked[1])):
            return None  # not ours (None: a reverse name, ours while we hold records there)
        if not self.state.ready or (self.subdomains and self._servers_for(asked[2])):
            return None
        if asked[4]:  # asked again: counted here, folded into query_names later
            asked[4] += 1
        else:
            asked[4] = 1
            self._counted.append(asked)
        qlabels = asked[0]
        if self.cache.size <= 0 and self.signing is None:  # nothing to keep, nothing to sign
            rec = rules.answer(self.state, asked[1], asked[6], qlabels)
            if rec.external is None:
                return self._one(rec, data, client, qend, rd, qlabels, asked[7], asked[8], nx)
        else:
            rec = None
        question = Asked(data, client, tcp, keyed, asked[1], asked[6], qlabels, None, asked[7],
                         asked[8], key[-4] == 0x44, rd)
        return self._zone(question, nx, rec)

    def _question(self, key: bytes, qend: int, nx) -> list | None:
        """What the engine remembers of a question (by its cache key): [name labels
        (lower-cased), index path, text, the zone generation at which the flood path last
        turned it down (or -1), times asked since the last fold_names, whether the name is
        ours (True/False; None: a reverse name, ours while we hold records there), type, size
        limit, the reply's OPT record]. None: not one `_zone_wire` answers."""
        qwire = key[: qend - 16]
        if len(qwire) > 255:
            return None  # FORMERR on the checked path (querycheck.py)
        qlabels = wire_labels(qwire)
        path = labels_path(qlabels)
        domain = self._domain_path
        ours = True if path[: len(domain)] == domain else None if is_reverse(path) else False
        asked = [qlabels, path, b".".join(qlabels).decode("latin-1") + ".",
                 -1 if nx is not None else self._gen, 0, ours,
                 key[qend - 16] << 8 | key[qend - 15],
                 int.from_bytes(key[-3:], "big"), self._opts[key[-4]]]
        if len(self._asked) >= _NAMES_KEPT:
            self.fold_names()
            self._asked.clear()
        self._asked[key] = asked
        return asked

    def fold_names(self) -> None:
        """Move the counts of names asked on the miss path into query_names (the stats read
        it): counted in the remembered names, one increment per query."""
        add = self.query_names.add
        for named in self._counted:
            add(named[2], named[4])
            named[4] = 0
        self._counted.clear()

    def _zone(self, asked: Asked, nx=None, rec=None):
        """The rules' answer to an in-zone question (`rec` when made already), rendered,
        signed if it must be, kept."""
        if rec is None:
            rec = rules.answer(self.state, asked.path, asked.qtype, asked.qlabels)
        if rec.external is not None:
            if self.nameservers and self.allowed(asked.client):
                return self._resolve_external(asked, rec)
            # The chain as far as our zone goes; the client resolves the rest itself,
            # and the cache keeps nothing: its entry is the resolved answer.
            rec.external = None
            return self._finish(asked, rec, cacheable=False)
        return self._finish(asked, rec, nx=nx)

    def _one(self, rec, data: bytes, client: str, qend: int, rd: int, qlabels: tuple,
             limit: int, opt: bytes, nx=None) -> bytes:
        """The reply to a keyed query when nothing is kept (cacheSize = 0, or an answer no
        entry may hold) and nothing signed: only the variant this query gets, rendered
        straight with its ID, RD bit and question bytes (0x20 case)."""
        wire = message(rec, data[12:qend], qlabels, limit, self._ra, opt,
                       self._variant(rec, client) if len(rec.picks) > 1 else None,
                       data[0] << 8 | data[1], rd)
        if rec.rcode or not rec.answer or rec.fail_open or wire[2] & 0x02:
            self._count(rec, wire)  # (a plain answer counts nothing: every miss passes here)
        if nx is not None:
            self.plain_nx.learn(nx, wire, qend)
        return wire

    def _variant(self, rec, client: str) -> list | None:
        """The answer records of a reply made alone: None (all, as the rules gave them), or
        of several addresses the client's rendezvous pick (hone-one), a random pick
        (random-one) or a rotation, as a cached ring would give at a random turn."""
        n = len(rec.picks)
        if n < 2:
            return None
        head, group = rec.answer[: rec.pick_from], rec.answer[rec.pick_from :]
        if self.mode == "hone":
            return head + [group[choose(client, rec.picks)]]
        if self.mode:
            return head + [random.choice(group)]
        r = random.randrange(n)
        return head + group[r:] + group[:r]

    def _finish(self, asked: Asked, rec, expires=0.0, cacheable=True, restricted=False,
                nx=None) -> bytes:
        """Render the answer's variants (the ring of a shuffled answer, one reply per address
        for random-one/hone-one, else rotations), sign them if DNSSEC applies, keep them in
        the cache and reply; with nothing to keep, render only the reply this query gets."""
        signing = self.signing
        if signing is not None and not signing.applies(asked.path, asked.qtype, asked.do):
            signing = None
        picks = rec.picks
        n = len(picks)
        question, qlabels, limit, opt = asked.question, asked.qlabels, asked.limit, asked.opt
        ra = self.zone.recursion
        keyed = asked.keyed
        if question is None:
            question = keyed[0][:-4]  # the key: the question lower-cased, EDNS flag, limit
        if keyed is None or not cacheable or self.cache.size <= 0:
            if signing is None and keyed is not None:
                return self._one(rec, asked.data, asked.client, keyed[1], asked.rd, qlabels,
                                 limit, opt, nx)
            answer = self._variant(rec, asked.client)
            if signing is None:
                wire = message(rec, question, qlabels, limit, ra, opt, answer)
            else:  # signed as a whole, then fitted to the limit (signing.py)
                full = message(rec, question, qlabels, TCP_LIMIT, ra, opt, answer)
                wire = signing.sign([full], asked.do, limit)[0][0]
            self._count(rec, wire)
            return asked.reply(wire)
        ring = None
        addrs, mode = [], ""
        renew_only = False  # expires only because signatures are due for renewal
        if n > 1 and not self.mode and signing is None:
            wire = message(rec, question, qlabels, limit, ra, opt)
            full = wire
            if wire[2] & 0x02:
                full = message(rec, question, qlabels, TCP_LIMIT, ra, opt)
            ring = address_ring(wire, full, rec.pick_from, n)
            if ring is not None:
                wires, mode = [wire], "ring"
        if ring is None:
            lists = [None]
            if n > 1:
                head, group = rec.answer[: rec.pick_from], rec.answer[rec.pick_from :]
                if self.mode:
                    lists, addrs, mode = [head + [rr] for rr in group], list(picks), self.mode
                else:
                    step = max(1, n // _MAX_VARIANTS)
                    lists = [head + group[r:] + group[:r] for r in range(0, n, step)]
                    lists, mode = lists[:_MAX_VARIANTS], "random"
            if signing is None:
                wires = [message(rec, question, qlabels, limit, ra, opt, rrs) for rrs in lists]
            else:  # signed as a whole, then fitted to the limit (signing.py)
                full = [message(rec, question, qlabels, TCP_LIMIT, ra, opt, rrs)
                        for rrs in lists]
                wires, renew, read = signing.sign(full, asked.do, limit)
                if renew:
                    renew_only = not expires
                    expires = min(expires, renew) if expires else renew
                rec.paths.update(read)
        self._count(rec, wires[0])
        key, qend, rd = keyed
        if nx is not None:
            self.plain_nx.learn(nx, wires[0], qend)
        entry = Entry(
            [split_reply(w, qend) for w in wires],
            addrs=addrs,
            mode=mode,
            paths=rec.paths,
            ips=rec.ips,
            # Only the SOA answer itself must follow every serial change; negative answers
            # (SOA in authority) are dropped by the paths they read, serial slightly old.
            soa=rec.soa and asked.qtype == _QTYPE_SOA,
            expires=expires,
            kind=_kind(rec, wires[0]),
            ring=ring,
            restricted=restricted,
            renew=renew_only,
        )
        if cacheable:
            self.cache.put(key, entry)
        data = asked.data
        return data[:2] + entry.reply(data, qend, rd, asked.client)

    # -- zone transfer -----------------------------------------------------------------------

    def _axfr(self, q: Query, data: bytes, client: str, tcp: bool, signed=None):
        """AXFR (and IXFR) over TCP to allowed clients: a list of messages, SOA first and last,
        holding the zone as it is answered (served.py), so a secondary answers like we do.
        `signed`: the verdict on the request's (good) TSIG, None if it had none."""
        path = name_to_path(q.qname)
        zones = [self.zone.domain_path, *reverse_zones(self.state)]
        if self.tsig_keys and signed is None:
            # with keys, a key decides (a secondary anywhere may hold one), not the address
            log.warning("zone transfer refused", extra={"kv": {"client": client,
                                                                 "why": "request not signed"}})
            self.stats["refused"] += 1
            return self._error(q, RCODE.REFUSED)
        if path not in zones or (signed is None and not self._axfr_allowed(client)):
            self.stats["refused"] += 1
            return self._error(q, RCODE.REFUSED)
        if not self.state.ready:
            return self._error(q, RCODE.SERVFAIL)
        if not tcp:
            if q.qtype == _QTYPE_IXFR:  # RFC 1995 2: over UDP, our SOA says "ask over TCP"
                rec = rules.Records()
                rec.answer.append(rules.soa_rr(self.state, path))
                qlabels = lower_labels(q.qlabels)
                question = name_wire(qlabels) + struct.pack("!HH", q.qtype, q.qclass)
                opt = opt_record(self.max_udp, q.do) if q.edns else b""
                return message(rec, question, qlabels, 512, self.zone.recursion, opt,
                               qid=q.id, rd=q.rd)
            return self._error(q, RCODE.FORMERR)  # RFC 5936 4.2: AXFR needs a stream
        return self._transfer(q, path, client, signed)

    async def _transfer(self, q: Query, path, client: str, signed):
        """The transfer as an async iterator of messages, made as they are sent: the first
        goes out before the rest of the zone is read, memory holds one message at a time, and
        every few milliseconds of work the loop runs other queries (tcp.py writes each message
        and waits while the client is slow to read). The records are transfer.py's: the zone
        as served.py says it is answered, each name kept between transfers until it changes."""
        self.stats["axfr"] += 1
        state = self.state
        snapshot = self.snapshot
        snapshot.active = True
        soa = soa_wire(state, path)
        flags = 0x8400 | (0x80 if self.zone.recursion else 0) | (0x100 if q.rd else 0)
        question = b"".join(bytes((len(label),)) + label.lower() for label in q.qlabels)
        question += b"\x00" + struct.pack("!HH", q.qtype, q.qclass)
        opt = opt_record(self.max_udp, q.do) if q.edns else b""
        header = struct.Struct("!HHHHHH")
        signer = tsig.Signer(signed, self.clock) if signed is not None else None
        parts: list[bytes] = []
        size = count = records = messages = 0

        def message() -> bytes:
            nonlocal parts, size, count, records, messages
            msg = b"".join((header.pack(q.id, flags, 1, count, 0, 1 if opt else 0), question,
                            *parts, opt))
            records += count
            messages += 1
            parts, size, count = [], 0, 0
            return signer.sign(msg) if signer is not None else msg

        clock = time.perf_counter
        until = clock() + _AXFR_SLICE
        for piece in snapshot.records(path, soa):
            if piece is not PAUSE:
                wire, n = piece
                if size + len(wire) > _AXFR_BYTES:
                    if parts:
                        yield message()
                    if len(wire) > _AXFR_BYTES and n > 1:  # a name too big for a message
                        start = 0
                        for end in record_ends(wire):
                            if size + end - start > _AXFR_BYTES and parts:
                                yield message()
                            parts.append(wire[start:end])
                            size += end - start
                            count += 1
                            start = end
                        wire = None
                if wire is not None:
                    parts.append(wire)
                    size += len(wire)
                    count += n
            if clock() > until:
                await asyncio.sleep(0)  # let the loop answer other queries
                until = clock() + _AXFR_SLICE
        if size + len(soa) > _AXFR_BYTES:
            yield message()
        parts.append(soa)
        count += 1
        yield message()
        log.info("zone transfer", extra={"kv": {"client": client, "zone": q.qname,
                                                "records": records, "messages": messages}})

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

    def _count(self, ans, wire: bytes) -> None:
        if ans.rcode == _NXDOMAIN:
            self.stats["nxdomain"] += 1
        elif ans.rcode == _SERVFAIL:
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
        start = _clock()
        reply = await forward(servers, data, self.forward_timeout, tcp=tcp,
                              tap=self.tap_forwarder)
        self.forward_time.observe(_clock() - start)
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

    async def _resolve_external(self, asked: Asked, rec) -> bytes:
        """Complete a CNAME chain that leaves our zone by asking the upstream resolvers."""
        generation = self.cache.generation
        target, qtype = rec.external
        rec.external = None
        expires, cacheable = 0.0, False
        ask = (random.getrandbits(16).to_bytes(2, "big") + b"\x01\x00\x00\x01" + bytes(6)
               + name_wire(target) + struct.pack("!HH", qtype, 1))
        reply = await forward(self.nameservers, ask, self.forward_timeout, tcp=asked.tcp,
                              tap=self.tap_forwarder)
        if reply is not None:
            try:
                rcode, records = upstream_answer(reply)
                rec.answer.extend(records)
                if rcode == _NXDOMAIN:
                    rec.rcode = _NXDOMAIN
                ttl = min((int.from_bytes(rr[1][4:], "big") for rr in records),
                          default=self.zone.min_ttl)
                expires = time.monotonic() + ttl
                # A change while we waited may have made this answer stale: serve, don't keep.
                cacheable = generation == self.cache.generation and ttl > 0
            except Exception:  # a broken upstream reply: answer with the chain we have
                log.warning("unreadable upstream reply",
                            extra={"kv": {"name": b".".join(target).decode("latin-1")}})
        # Upstream data in the answer: a hit serves it only to clients allowed to forward.
        return self._finish(asked, rec, expires=expires, cacheable=cacheable, restricted=True)


_NXDOMAIN, _SERVFAIL = 3, 2


def _kind(ans, wire: bytes) -> str:
    """What a hit on this answer counts as in the stats: one kind, "+truncated" if TC."""
    if ans.rcode == _NXDOMAIN:
        kind = "nxdomain"
    elif ans.rcode == _SERVFAIL:
        kind = "servfail"
    elif not ans.answer:
        kind = "nodata"
    else:
        kind = "fail_open" if ans.fail_open else ""
    return kind + "+truncated" if wire[2] & 0x02 else kind


def _with_rd(wire: bytes, rd: int) -> bytes:
    return wire[:2] + bytes(((wire[2] & 0xFE) | rd,)) + wire[3:]


_QTYPE_SOA = 6


class Asked:
    """A question for our zones as the answer path needs it: the query, its cache key (or
    None), the name as labels (lower-cased) and path, the question's bytes as a cached reply
    writes them (None: the key's), the size limit, the OPT record of the reply (or b"") and
    the DO and RD bits."""

    __slots__ = ("data", "client", "tcp", "keyed", "path", "qtype", "qlabels", "question",
                 "limit", "opt", "do", "rd")

    def __init__(self, data, client, tcp, keyed, path, qtype, qlabels, question, limit, opt,
                 do, rd):
        self.data = data
        self.client = client
        self.tcp = tcp
        self.keyed = keyed
        self.path = path
        self.qtype = qtype
        self.qlabels = qlabels
        self.question = question
        self.limit = limit
        self.opt = opt
        self.do = do
        self.rd = rd

    def reply(self, wire: bytes) -> bytes:
        """A rendered reply (ID 0, RD 0) as this query gets it: its ID, its RD bit, and for a
        keyed query its own question bytes (the client's 0x20 casing)."""
        data = self.data
        if self.keyed is None:
            return data[:2] + _with_rd(wire, self.rd)[2:]
        qend = self.keyed[1]
        return data[:2] + bytes((wire[2] | self.rd,)) + wire[3:12] + data[12:qend] + wire[qend:]
