"""The answer rules, written once: (zone state, question) -> Records. Pure: no sockets, no etcd.

Every question about a name in our zones is answered here: A and AAAA (CNAME chains in the
zone followed, a chain leaving it handed back as `external`, loops and over-long chains
SERVFAIL), SRV with glue, TXT, MX with glue, CNAME, NS (apex and delegations) with glue, SOA,
PTR, NXDOMAIN and NODATA with the SOA (RFC 2308, also at the end of a dangling chain),
wildcards, the `local` name, groups, DOWN addresses left out (fail open when all are DOWN)
and which trailing address records the answer modes pick from.

The answer is a `Records`: its sections hold records in the one wire-ready form every
renderer takes (wire/render.py: the DNS message, `plain` for transfers, dump and the
PowerDNS backend):

    (owner, head, rdata)  owner: the name's labels (bytes); head: type, class IN, TTL packed
                          (8 bytes); rdata: bytes, or a tuple of parts, each bytes or a
                          labels tuple (a name a message may compress)

Names are bytes from end to end: the question's labels as the client sent them (lower-cased),
a record's own name from its key's labels, targets from the host names as stored. So names
with non-ASCII octets, or a dot or backslash inside a label, are answered like any other.
A name that cannot be written (a label longer than 63 octets) leaves its record out.

The RDATA made from a record's values (packed addresses, target labels, TXT strings) and the
heads by (type, TTL) are memoised by value (bounded), an SRV record's RDATA and glue address
by the record itself (records are immutable) while its weight holds, so a hot name's answer
reuses them instead of packing again. Nothing is memoised by question: every answer is made.
The commonest questions (one address, TXT, SRV with address targets) take inlined paths: at
a few hundred instructions per bytecode, calls and lists are most of an answer's cost.
"""

from __future__ import annotations

import socket
import struct

from skydns.keys import Path
from skydns.records import Record

from .context import Context, zone_of

T_A, T_NS, T_CNAME, T_SOA, T_PTR, T_MX, T_TXT, T_AAAA, T_SRV = 1, 2, 5, 6, 12, 15, 16, 28, 33
NOERROR, SERVFAIL, NXDOMAIN = 0, 2, 3
HEAD = struct.Struct(">HHI")  # type, class IN, TTL: the fixed part before RDLENGTH
_head = HEAD.pack
_SRV_DATA = struct.Struct(">HHH")
_SOA_TIMES = struct.Struct(">IIIII")
_MEMO_MAX = 65536  # names remembered per memo; past that the memo starts over
_SMALL_MEMO_MAX = 16384  # addresses and chain paths remembered
_TXT_MEMO_MAX = 4096  # TXT texts remembered (a text may be long)

MAX_CNAME_HOPS = 8
SRV_PRIORITY = 10  # SkyDNS2's and CoreDNS's priority for an SRV record that sets none
_ADDRESS_TYPES = ("", "A", "AAAA", "SRV")  # API-style SRV keys hold addresses too
_CNAME_TYPES = ("", "CNAME")
_SRV_TYPES = ("", "SRV")
_TXT_TYPES = ("", "TXT")
_U16 = [n.to_bytes(2, "big") for n in range(1024)]  # MX preferences, packed once


class Records:
    """An answer as records of the one form (see the module doc), and what it read."""

    __slots__ = (
        "rcode",
        "answer",
        "authority",
        "additional",
        "paths",
        "ips",
        "soa",
        "fail_open",
        "pick_from",
        "picks",
        "zone_path",
        "external",
    )

    def __init__(self):
        self.rcode = NOERROR
        self.answer: list = []
        self.authority: list = []
        self.additional: list = []
        self.paths: set = set()  # index paths read: a change at or below any of them
        self.ips: set = set()  # addresses whose health was read
        self.soa = False  # carries the SOA (its serial moves with every zone change)
        self.fail_open = False  # every address was DOWN, all were returned
        self.pick_from = -1  # answer[pick_from:] are alternative address records, or -1
        self.picks: list = []  # the addresses of those records, same order
        self.zone_path: Path = ()
        self.external = None  # (target labels, qtype): an out-of-zone CNAME target to resolve


# -- names ------------------------------------------------------------------------------------

_labels_memo: dict[str, tuple | None] = {}


def name_labels(name: str) -> tuple | None:
    """`a.b.` -> (b"a", b"b"): a stored host name's labels (UTF-8), None when one of them
    cannot be written (empty, over 63 octets) or the name is over 255."""
    labels = _labels_memo.get(name)
    if labels is None and name not in _labels_memo:
        raw = name[:-1] if name.endswith(".") else name
        labels = tuple(raw.encode().split(b".")) if raw else ()
        if any(not 0 < len(label) < 64 for label in labels) or len(raw) > 253:
            labels = None
        if len(_labels_memo) >= _MEMO_MAX:
            _labels_memo.clear()
        _labels_memo[name] = labels
    return labels


def path_labels(path: Path) -> tuple | None:
    """A key path's name as labels (its own name, or a target made from the key)."""
    labels = tuple(label.encode("utf-8", "surrogateescape") for label in reversed(path))
    if any(not 0 < len(label) < 64 for label in labels) or sum(map(len, labels)) + len(
        labels
    ) > 254:
        return None
    return labels


_paths_memo: dict[tuple, Path] = {}


def target_path_of(labels: tuple) -> Path:
    """labels_path for a target name (CNAME, glue): the same few names again and again."""
    path = _paths_memo.get(labels)
    if path is None:
        path = labels_path(labels)
        if len(_paths_memo) >= _SMALL_MEMO_MAX:
            _paths_memo.clear()
        _paths_memo[labels] = path
    return path


def labels_path(labels: tuple) -> Path:
    """The index path a name's labels (lower-cased) are looked up at. Keys are text: octets
    that are not UTF-8 are kept as surrogates (they match no key, and go back to the same
    octets), and non-ASCII text is lower-cased as keys are."""
    path = []
    for label in reversed(labels):
        if label.isascii():
            path.append(label.decode())
        else:
            path.append(label.decode("utf-8", "surrogateescape").lower())
    return tuple(path)


def plain_name(labels: tuple) -> bytes:
    """A name's uncompressed wire form."""
    wire = _plain_memo.get(labels)
    if wire is None:
        wire = b"".join(bytes((len(x),)) + x for x in labels) + b"\x00"
        if len(_plain_memo) >= _MEMO_MAX:
            _plain_memo.clear()
        _plain_memo[labels] = wire
    return wire


_plain_memo: dict = {}
_targets_memo: dict = {}


def target_labels(rec) -> tuple | None:
    """The labels of rec.target (the host when it is a name, else a name from the key)."""
    if rec.host and not rec.ip:
        return name_labels(rec.host)
    key = (rec.path, rec.targetstrip)
    labels = _targets_memo.get(key)
    if labels is None and key not in _targets_memo:
        path = rec.path[: len(rec.path) - rec.targetstrip] if rec.targetstrip else rec.path
        labels = path_labels(path)
        if len(_targets_memo) >= _MEMO_MAX:
            _targets_memo.clear()
        _targets_memo[key] = labels
    return labels


_domain_paths: dict[str, Path] = {}


def domain_path(ctx: Context) -> Path:
    """ctx.zone.domain_path without building it again for every question."""
    domain = ctx.zone.domain
    path = _domain_paths.get(domain)
    if path is None:
        path = _domain_paths[domain] = ctx.zone.domain_path
    return path


# -- RDATA ------------------------------------------------------------------------------------

_packed: dict[str, bytes] = {}


def packed(rec) -> bytes:
    """The record's address as A/AAAA RDATA."""
    data = _packed.get(rec.ip)
    if data is None:
        family = socket.AF_INET if rec.family == 4 else socket.AF_INET6
        data = socket.inet_pton(family, rec.ip)
        if len(_packed) >= _SMALL_MEMO_MAX:
            _packed.clear()
        _packed[rec.ip] = data
    return data


_txt_memo: dict[str, bytes] = {}


def txt_rdata(text: str) -> bytes:
    """TXT strings are at most 255 octets each; longer text is split, as RFC 7208 3.3 expects."""
    data = _txt_memo.get(text)
    if data is None:
        raw = text.encode()
        data = b"".join(bytes((len(raw[i : i + 255]),)) + raw[i : i + 255]
                        for i in range(0, len(raw), 255)) or b"\x00"
        if len(_txt_memo) >= _TXT_MEMO_MAX:
            _txt_memo.clear()
        _txt_memo[text] = data
    return data


_soa_memo: dict = {}


def soa_rr(ctx: Context, zone_path: Path) -> tuple:
    """The zone's SOA record. The same object for the same zone, serial and settings, so a
    renderer may memoise its bytes by identity (render.py does for negative answers)."""
    settings = ctx.zone
    key = (zone_path, ctx.serial, settings.domain, settings.hostmaster, settings.min_ttl)
    rr = _soa_memo.get(key)
    if rr is None:
        domain = name_labels(settings.domain) or ()
        mname = (b"ns", b"dns", *domain)
        rname = (name_labels(settings.hostmaster) if settings.hostmaster else None) or (
            b"hostmaster", *domain)
        # serials are 32-bit (RFC 1982 arithmetic wraps); the etcd revision may be larger
        times = _SOA_TIMES.pack(ctx.serial & 0xFFFFFFFF, 28800, 7200, 604800, settings.min_ttl)
        owner = tuple(label.encode() for label in reversed(zone_path))
        rr = (owner, _head(T_SOA, 1, settings.min_ttl), (mname, rname, times))
        if len(_soa_memo) >= 64:  # one per zone and serial: old serials are of no more use
            _soa_memo.clear()
        _soa_memo[key] = rr
    return rr


# -- the rules --------------------------------------------------------------------------------

_new = object.__new__
_heads: dict[int, bytes] = {}  # rtype << 32 | TTL -> head
_K_TXT, _K_CNAME, _K_SRV, _K_MX = T_TXT << 32, T_CNAME << 32, T_SRV << 32, T_MX << 32


def head_of(rtype: int, ttl: int) -> bytes:
    """A record's head (type, class IN, TTL packed): the same few pairs again and again, so
    they are packed once (the hot paths read `_heads` themselves, keyed `rtype << 32 | ttl`)."""
    head = _heads.get(rtype << 32 | ttl)
    if head is None:
        head = _head(rtype, 1, ttl)
        if len(_heads) >= _SMALL_MEMO_MAX:
            _heads.clear()
        _heads[rtype << 32 | ttl] = head
    return head


def answer(ctx: Context, path: Path, qtype: int, qlabels: tuple | None = None,
           below: list | None = None) -> Records:
    """Answer one IN-class question for a name inside one of our zones. `qlabels`: the
    question name's labels as the reply writes them (lower-cased); None: made from `path`.
    `below`: `ctx.index.below(path)`, if the caller has it (the zone transfer asks several
    questions of each name and walks the index once; not for the `local` name)."""
    settings = ctx.zone
    domain = _domain_paths.get(settings.domain) or domain_path(ctx)
    zone_path = domain if path[: len(domain)] == domain else zone_of(path, domain)
    assert zone_path is not None, "caller routes only names we are authoritative for"
    if qlabels is None:
        qlabels = path_labels(path) or ()
    index = ctx.index
    # `local.dns.<domain>` reads the [Dns] local name's records
    if settings.local:
        lookup = settings.lookup_path(path)
        paths = {path, lookup}
    else:
        lookup = path
        paths = {path}
    # The apex owns only what is stored at it (plus SOA/NS): answering the whole zone to
    # `zone. A` would dump every record in one reply.
    apex = path == zone_path
    if apex:
        records = index.at(path)
    else:
        records = index.below(lookup) if below is None else below
        if len(records) > 1:
            records = grouped(records)
    r = _new(Records)  # Records(), without the call through __init__
    r.rcode = NOERROR
    r.answer = []
    r.authority = []
    r.additional = []
    r.paths = paths
    r.ips = set()
    r.soa = False
    r.fail_open = False
    r.pick_from = -1
    r.picks = []
    r.zone_path = zone_path
    r.external = None
    if qtype == T_A or qtype == T_AAAA:
        if len(records) == 1:
            # the commonest question: one address, made without the list work of _addresses
            rec = records[0]
            if rec.family == (4 if qtype == T_A else 6) and rec.rtype in _ADDRESS_TYPES:
                if settings.round_robin:
                    r.pick_from = 0
                    r.picks = [rec.ip]
                _lone_address(ctx, r, qlabels, qtype, rec, r.answer)
                return r
        _addresses(ctx, r, qlabels, lookup, qtype, records)
        found = r.answer
        if found and found[-1][1][:2] == b"\x00\x05" and r.external is None:
            r.authority.append(soa_rr(ctx, zone_path))  # a dangling chain
            r.soa = True
            return r
    elif qtype == T_TXT:
        found = r.answer
        for rec in records:
            if rec.text and rec.rtype in _TXT_TYPES:
                ttl = rec.ttl or settings.ttl
                if rec.lease:
                    ttl = ctx.ttl(rec)
                found.append((qlabels, _heads.get(_K_TXT | ttl) or head_of(T_TXT, ttl),
                              _txt_memo.get(rec.text) or txt_rdata(rec.text)))
        if found:
            return r
    elif qtype == T_SRV:
        _srv(ctx, r, qlabels, records)
    elif qtype == T_MX:
        _mx(ctx, r, qlabels, records)
    elif qtype == T_CNAME:
        if not any(_is_address(rec) for rec in records):
            rec = _cname_of(records)
            target = name_labels(rec.host) if rec is not None else None
            if target is not None:
                r.answer.append((qlabels, head_of(T_CNAME, ctx.ttl(rec)), (target,)))
    elif qtype == T_NS:
        _ns(ctx, r, qlabels, zone_path, apex, records)
    elif qtype == T_SOA:
        if apex:
            r.answer.append(soa_rr(ctx, zone_path))
            r.soa = True
    elif qtype == T_PTR:
        for rec in index.at(path):
            if rec.host and not rec.ip and rec.rtype in ("", "PTR"):
                target = name_labels(rec.host)
                if target is not None:
                    r.answer.append((qlabels, head_of(T_PTR, ctx.ttl(rec)), (target,)))

    # Negative answers, also at the end of a CNAME chain, carry the SOA (RFC 2308).
    if not r.answer:
        if r.external is None and r.rcode != SERVFAIL:
            if not apex and not records:
                r.rcode = NXDOMAIN
            r.authority.append(soa_rr(ctx, zone_path))
            r.soa = True
    elif r.rcode == NXDOMAIN:
        r.authority.append(soa_rr(ctx, zone_path))  # a dangling chain
        r.soa = True
    return r


def grouped(records: list[Record]) -> list[Record]:
    """CoreDNS's `group` rule: the shortest keys of the set name the group; then only records
    of that group and records without a group answer. When the shortest keys carry no group,
    or disagree on it, the set is not grouped."""
    for r in records:
        if r.group:
            break
    else:  # no group anywhere: the commonest set
        return records
    shortest = min(len(r.path) for r in records)
    groups = {r.group for r in records if len(r.path) == shortest and r.group}
    if len(groups) != 1:
        return records
    (group,) = groups
    return [r for r in records if not r.group or r.group == group]


def _is_address(rec: Record) -> bool:
    return rec.family != 0 and rec.rtype in _ADDRESS_TYPES


def is_srv_target(rec: Record) -> bool:
    """Whether a record answers SRV questions. A host name below /skydns/arpa/ is a PTR, not
    an SRV target: reverse names answer PTR (as for CNAME, below)."""
    return bool(rec.host and rec.rtype in _SRV_TYPES and not rec.mail
                and (rec.ip or rec.path[:1] != ("arpa",)))


def _cname_of(records: list[Record]) -> Record | None:
    """The record whose host names another name; the first by key, as one owner has one CNAME."""
    for rec in records:
        if rec.host and not rec.ip and not rec.mail and rec.rtype in _CNAME_TYPES:
            if rec.path[:1] != ("arpa",):
                return rec
    return None


def srv_weights(targets: list[Record]) -> list[tuple[Record, int, int]]:
    """(record, priority, weight) per SRV target: priority 10 when unset (SkyDNS2, CoreDNS),
    weights as percentages of their priority's sum (0 counts as 100), floored. Shared by the
    answer rules (rules.py) and the zone as transferred."""
    totals: dict[int, int] = {}
    for rec in targets:
        priority = rec.priority or SRV_PRIORITY
        totals[priority] = totals.get(priority, 0) + (rec.weight or 100)
    return [(rec, priority, (rec.weight or 100) * 100 // totals[priority])
            for rec in targets for priority in (rec.priority or SRV_PRIORITY,)]


def healthy(ctx: Context, r: Records, records: list) -> list:
    """Leave out DOWN addresses; when all are DOWN return all (fail open) rather than nothing."""
    ips = r.ips
    if len(records) == 1:  # the commonest name has one address
        ips.add(records[0].ip)
    else:
        ips.update([rec.ip for rec in records])
    down = ctx.health.down
    if not down:
        return records
    up = [rec for rec in records if rec.ip not in down]
    if not up and records:
        r.fail_open = True
        return records
    return up


def _address_rrs(ctx: Context, owner: tuple, qtype: int, records: list) -> tuple[list, list]:
    rrs, ips, seen = [], [], set()
    zone_ttl = ctx.zone.ttl
    for rec in records:
        ip = rec.ip
        if ip in seen:  # the same address under two keys is one record
            continue
        seen.add(ip)
        ttl = rec.ttl or zone_ttl
        if rec.lease:
            ttl = ctx.ttl(rec)
        rrs.append((owner, _heads.get(qtype << 32 | ttl) or head_of(qtype, ttl),
                    _packed.get(ip) or packed(rec)))
        ips.append(ip)
    return rrs, ips


def _lone_address(ctx: Context, r: Records, owner: tuple, qtype: int, rec: Record,
                  section: list) -> None:
    """One address record into `section`: what healthy() and _address_rrs() do for a list
    of one (it is kept when DOWN: fail open), without the lists."""
    ip = rec.ip
    r.ips.add(ip)
    down = ctx.health.down
    if down and ip in down:
        r.fail_open = True
    ttl = rec.ttl or ctx.zone.ttl
    if rec.lease:
        ttl = ctx.ttl(rec)
    section.append((owner, _heads.get(qtype << 32 | ttl) or head_of(qtype, ttl),
                    _packed.get(ip) or packed(rec)))


def _addresses(ctx, r: Records, owner: tuple, path: Path, qtype: int, records,
               seen=None) -> None:
    """The addresses of `records` (a CNAME's target's, when they have none: `seen` holds the
    chain's names so far, None at its start)."""
    family = 4 if qtype == T_A else 6
    if len(records) == 1:  # the commonest name: one record, without the list work below
        rec = records[0]
        if rec.family and rec.rtype in _ADDRESS_TYPES:
            if rec.family == family:
                if ctx.zone.round_robin:
                    r.pick_from = len(r.answer)
                    r.picks = [rec.ip]
                _lone_address(ctx, r, owner, qtype, rec, r.answer)
            return  # else addresses of the other family only: NODATA, not a CNAME
    else:
        addrs = [rec for rec in records if rec.family == family and rec.rtype in _ADDRESS_TYPES]
        if addrs:
            rrs, ips = _address_rrs(ctx, owner, qtype, healthy(ctx, r, addrs))
            if ctx.zone.round_robin:  # SkyDNS2's round_robin false: key order, no turns
                r.pick_from = len(r.answer)
                r.picks = ips
            r.answer.extend(rrs)
            return
        if any(_is_address(rec) for rec in records):
            return  # addresses of the other family only: NODATA, not a CNAME
    rec = _cname_of(records)
    if rec is None:
        return
    target = name_labels(rec.host)
    if target is None:
        return
    target_path = _paths_memo.get(target) or target_path_of(target)
    if seen is None:
        seen = {path}
    if target_path in seen or len(seen) > MAX_CNAME_HOPS:
        r.rcode = SERVFAIL  # a loop or an over-long chain: fail visibly, never spin
        r.answer.clear()
        return
    seen.add(target_path)
    ttl = rec.ttl or ctx.zone.ttl
    if rec.lease:
        ttl = ctx.ttl(rec)
    r.answer.append((owner, _heads.get(_K_CNAME | ttl) or head_of(T_CNAME, ttl),
                     (target,)))
    domain = _domain_paths.get(ctx.zone.domain) or domain_path(ctx)
    if target_path[: len(domain)] != domain and zone_of(target_path, domain) is None:
        r.external = (target, qtype)  # the rest of the chain is upstream's
        return
    r.paths.add(target_path)
    target_records = ctx.index.below(target_path)
    if not target_records:
        r.rcode = NXDOMAIN  # RFC 6604: the rcode speaks of the last name in the chain
        return
    _addresses(ctx, r, target, target_path, qtype, target_records, seen)


def _glue(ctx: Context, r: Records, rec, labels: tuple) -> None:
    """Additional-section addresses for a target (`labels`): the record's own IP, or an
    in-zone name's."""
    if rec.ip:  # the target's own address: health was read with the target's
        ttl = rec.ttl or ctx.zone.ttl
        if rec.lease:
            ttl = ctx.ttl(rec)
        qtype = T_A if rec.family == 4 else T_AAAA
        r.additional.append((labels, _heads.get(qtype << 32 | ttl) or head_of(qtype, ttl),
                             _packed.get(rec.ip) or packed(rec)))
        return
    target_path = _paths_memo.get(labels) or target_path_of(labels)
    domain = _domain_paths.get(ctx.zone.domain) or domain_path(ctx)
    if target_path[: len(domain)] != domain and zone_of(target_path, domain) is None:
        return
    r.paths.add(target_path)
    below = ctx.index.below(target_path)
    if len(below) == 1:  # the commonest target: one address
        t = below[0]
        if t.family and t.rtype in _ADDRESS_TYPES:
            _lone_address(ctx, r, labels, T_A if t.family == 4 else T_AAAA, t, r.additional)
        return
    found = [t for t in below if _is_address(t)]
    for family, qtype in ((4, T_A), (6, T_AAAA)):
        group = [t for t in found if t.family == family]
        if group:
            r.additional.extend(_address_rrs(ctx, labels, qtype, healthy(ctx, r, group))[0])


_srv_targets: dict[int, tuple] = {}  # id(record) -> (record, labels, weight, rdata, glue)


def _srv(ctx: Context, r: Records, owner: tuple, records) -> None:
    targets = []
    ips = []
    for rec in records:
        if rec.host and rec.rtype in _SRV_TYPES and not rec.mail:
            if rec.ip:
                targets.append(rec)
                ips.append(rec.ip)
            elif rec.path[:1] != ("arpa",):  # is_srv_target, inlined
                targets.append(rec)
    if not targets:
        return
    if ips:  # DOWN IP targets are left out, all DOWN -> all kept, like addresses
        r.ips.update(ips)
        down = ctx.health.down
        if down and not down.isdisjoint(ips):
            with_ip = [rec for rec in targets if rec.ip]
            up = healthy(ctx, r, with_ip)
            if up is not with_ip:
                keep = {rec.path for rec in up}
                targets = [rec for rec in targets if not rec.ip or rec.path in keep]
    # srv_weights, inlined: priority 10 when unset, weights as percentages of their sum
    totals: dict[int, int] = {}
    for rec in targets:
        priority = rec.priority or SRV_PRIORITY
        totals[priority] = totals.get(priority, 0) + (rec.weight or 100)
    seen_targets = []  # a few, most often all different: a list is cheaper than a set
    zone_ttl = ctx.zone.ttl
    answer = r.answer
    additional = r.additional
    for rec in targets:
        priority = rec.priority or SRV_PRIORITY
        weight = (rec.weight or 100) * 100 // totals[priority]
        known = _srv_targets.get(id(rec))
        if known is None or known[0] is not rec or known[2] != weight:
            # the record's target, RDATA and glue address, kept by the record (immutable)
            # while its weight in the set stays the same
            labels = target_labels(rec)
            rdata = None
            if labels is not None:
                # the target is written whole (RFC 2782: no compression): fixed bytes
                rdata = _SRV_DATA.pack(priority, weight, rec.port) + plain_name(labels)
            glue = None
            if rec.ip:
                glue = ((T_A if rec.family == 4 else T_AAAA), packed(rec))
            known = (rec, labels, weight, rdata, glue)
            if len(_srv_targets) >= _SMALL_MEMO_MAX:
                _srv_targets.clear()
            _srv_targets[id(rec)] = known
        _, labels, _, rdata, glue = known
        if labels is None:
            continue
        ttl = rec.ttl or zone_ttl
        if rec.lease:
            ttl = ctx.ttl(rec)
        answer.append((owner, _heads.get(_K_SRV | ttl) or head_of(T_SRV, ttl), rdata))
        if labels not in seen_targets:
            seen_targets.append(labels)
            if glue is not None:  # _glue, inlined for the target's own address
                qtype, address = glue
                additional.append((labels, _heads.get(qtype << 32 | ttl) or head_of(qtype, ttl),
                                   address))
            else:
                _glue(ctx, r, rec, labels)


def _mx(ctx: Context, r: Records, owner: tuple, records) -> None:
    for rec in records:
        if rec.mail and rec.host:
            labels = _labels_memo.get(rec.host) if not rec.ip else None
            if labels is None:
                labels = target_labels(rec)
                if labels is None:
                    continue
            ttl = rec.ttl or ctx.zone.ttl
            if rec.lease:
                ttl = ctx.ttl(rec)
            preference = rec.priority
            rdata = (_U16[preference] if preference < 1024 else preference.to_bytes(2, "big"),
                     labels)
            r.answer.append((owner, _heads.get(_K_MX | ttl) or head_of(T_MX, ttl), rdata))
            _glue(ctx, r, rec, labels)


def _ns(ctx: Context, r: Records, owner: tuple, zone_path: Path, apex: bool, records) -> None:
    if apex:
        ns_path = zone_path + ("dns", "ns")
        r.paths.add(ns_path)
        records = [rec for rec in ctx.index.below(ns_path) if rec.host]
    else:
        records = [rec for rec in records if rec.rtype == "NS" and rec.host]
    for rec in records:
        labels = target_labels(rec)
        if labels is None:
            continue
        r.answer.append((owner, head_of(T_NS, ctx.ttl(rec)), (labels,)))
        _glue(ctx, r, rec, labels)
