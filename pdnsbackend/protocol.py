"""The PowerDNS remote backend protocol: request dict -> reply dict, and JSON lines framing.

Pure: no sockets, no asyncio, no etcd. `PdnsBackend.handle` answers one request from a
ZoneState with the same answer rules as `skydns` (health filtering, the SkyDNS rule that a
name answers with the instances below it, random-one/hone-one); `Session` turns the bytes of
one connection into reply bytes, one JSON object per line each way. server.py puts a unix
socket around them.

What PowerDNS (4.x, checked against 4.7.3) expects, and where it differs from the docs' hints:
- names carry a trailing dot; method names are matched case-insensitively here;
- records are {"qtype", "qname", "content", "ttl", "auth", "domain_id"}; the priority of MX
  and SRV is part of content ("10 mail.x.", "10 25 5432 target.") since 4.0;
- `lookup` is asked for ANY (the answer is chosen by pdns) and for SOA at every ancestor of
  the question to find the zone: SOA must be answered at a zone apex only, and with nothing
  but the SOA;
- pdns decides NXDOMAIN when an ANY lookup of the name, and of its parents up to the zone,
  returns nothing. A name that exists only through the records below it (an empty
  non-terminal) therefore answers ANY with one record of empty qtype (type 0, pdns's ENT):
  pdns skips it in answers and AXFR but then answers NODATA;
- pdns probes wildcards itself by looking up `*.<parent>`. Here a `*` in a question matches
  any label, so such a probe is answered only when that literal name is stored; otherwise a
  probe would match every sibling and turn NXDOMAIN into answers.
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter

from dnsserver.zone.context import REVERSE_ZONES, Context, zone_of
from dnsserver.zone.records import reverse_zones
from dnsserver.zone.rows import (
    T_A,
    T_AAAA,
    T_CNAME,
    T_MX,
    T_NS,
    T_PTR,
    T_SRV,
    T_TXT,
    Row,
    plain_rows,
    served_rows,
    txt_strings,
    type_name,
)
from dnsserver.zone.rules import answer, path_labels, soa_rr
from dnsserver.zone.served import rtype_of
from dnsserver.zone.state import ZoneState
from dnsserver.zone.transfer import PAUSE, Snapshot
from skydns.keys import Path, name_to_path, path_to_name
from skydns.rendezvous import choose

log = logging.getLogger("skydns.pdns")

MAX_LINE = 1024 * 1024  # a request line longer than this closes the connection
MEMO_MAX = 50_000  # memoized lookups kept between changes of the data
MEMO_BYTES = 16 << 20  # and about this much memory for them (see memo_size)
LIST_STEP = 2_000  # names between the pauses of `list`'s search for empty non-terminals
PART_BYTES = 1 << 16  # a `list` reply is written in parts of about this size
_SHARDS = 256  # `list`'s owner names in this many sets: resizing one set of a million
# names stops the loop for tens of milliseconds

# What an ANY lookup collects, by zone kind. PTR is a reverse-zone type here, as in skydns
# (the forward zone answers PTR only for keys that are PTR records, an oddity not worth
# copying into every ANY answer).
_FORWARD_TYPES = (T_A, T_AAAA, T_TXT, T_MX, T_SRV, T_NS)
_REVERSE_TYPES = (T_PTR, T_TXT, T_NS)
_SINGLE_TYPES = {
    "A": T_A,
    "AAAA": T_AAAA,
    "CNAME": T_CNAME,
    "TXT": T_TXT,
    "MX": T_MX,
    "SRV": T_SRV,
    "NS": T_NS,
    "PTR": T_PTR,
}
_ADDRESS = (T_A, T_AAAA)


class BadRequest(ValueError):
    """A request we cannot act on; the message goes back to pdns's log."""


class LineTooLong(Exception):
    """A request line exceeded MAX_LINE bytes; the connection must be closed.

    `replies` holds the answers to the complete requests before it, still to be sent.
    """

    def __init__(self, message: str, replies: bytes = b""):
        super().__init__(message)
        self.replies = replies


def zone_id(zone_path: Path, ctx: Context) -> int:
    """Stable ids: 1 for the cluster zone, 2 for in-addr.arpa., 3 for ip6.arpa."""
    if zone_path == ctx.zone.domain_path:
        return 1
    return 2 + REVERSE_ZONES.index(zone_path)


def served_zones(ctx: Context) -> list[Path]:
    """The cluster zone and the reverse zones that hold records."""
    return [ctx.zone.domain_path, *reverse_zones(ctx)]


def serial(ctx: Context) -> int:
    """The SOA serial: the etcd revision of the last record change, in 32 bits."""
    return ctx.serial & 0xFFFFFFFF


def _served_zone_of(ctx: Context, path: Path) -> Path | None:
    zone = zone_of(path, ctx.zone.domain_path)
    if zone is None or (zone != ctx.zone.domain_path and not ctx.index.exists(zone)):
        return None
    return zone


def _fqdn(name) -> str:
    """An absolute name (pdns before 4.0 sent names without the trailing dot)."""
    if not isinstance(name, str) or not name:
        raise BadRequest(f"expected a domain name, got {name!r}")
    return name if name.endswith(".") else name + "."


def txt_content(rdata: bytes) -> str:
    """TXT strings in zone-file form, each quoted, `"` and `\\` escaped, other bytes as \\DDD."""
    parts = []
    for raw in txt_strings(rdata):
        out = []
        for byte in raw:
            if byte in (0x22, 0x5C):
                out.append("\\" + chr(byte))
            elif 0x20 <= byte < 0x7F:
                out.append(chr(byte))
            else:
                out.append(f"\\{byte:03d}")
        parts.append('"' + "".join(out) + '"')
    return " ".join(parts)


def content(row: Row) -> str:
    """A record's data as pdns wants it: zone-file text (rows.py), priorities inside (MX,
    SRV), TXT strings quoted pdns's way."""
    return row.data if row.raw is None else txt_content(row.raw)


def record(row: Row, zid: int, qname: str | None = None) -> dict:
    return {
        "qtype": type_name(row.rtype),
        "qname": qname or row.name,
        "content": content(row),
        "ttl": row.ttl,
        "auth": True,
        "domain_id": zid,
    }


def memo_size(qname: str, found: list[dict]) -> int:
    """Rough bytes a memoized lookup holds: a dict of six fields is about 350 bytes."""
    return 150 + len(qname) + sum(350 + len(r["qname"]) + len(r["content"]) for r in found)


def ent(qname: str, zid: int) -> dict:
    """An empty non-terminal: the name exists, it has no records of its own."""
    return {"qtype": "", "qname": qname, "content": "", "ttl": 0, "auth": True, "domain_id": zid}


def _literal_exists(ctx: Context, path: Path) -> bool:
    """Whether `path`, `*` labels read literally, is stored (not matched by a wildcard)."""
    if not ctx.index.wildcards:
        return False  # no stored `*` key at all: pdns's probes after every NXDOMAIN cost O(1)
    n = len(path)
    return any(rec.path[:n] == path for rec in ctx.index.below(path))


class PdnsBackend:
    """Answers remote backend requests from a ZoneState (the sync fills it).

    mode: "" all healthy addresses, "random" or "hone" one of them per lookup (the Engine's
    answer policy; hone-one hashes the `remote` address pdns passes). Until the state's first
    load is in (`ready`), data requests fail (pdns then answers REFUSED).
    """

    def __init__(self, state: ZoneState, mode: str = ""):
        self.state = state
        self.mode = mode
        state.subscribe(self._on_change)
        # `list`'s records: the zone transfer's copy, kept per name between lists (made by
        # the first one) as skydns keeps it between AXFRs
        self.snapshot = Snapshot(state)
        self.methods = {
            "initialize": self.initialize,
            "lookup": self.lookup,
            "list": self.list,
            "getalldomains": self.get_all_domains,
            "getdomaininfo": self.get_domain_info,
            "getalldomainmetadata": self.get_all_domain_metadata,
            "getdomainmetadata": self.get_domain_metadata,
        }
        self._needs_data = {"lookup", "list", "getalldomains", "getdomaininfo"}
        # (method, "ok" | "fail") -> requests, for /metrics; method names outside the protocol
        # count as "unknown", so a confused client cannot grow the label set.
        self.counts: Counter[tuple[str, str]] = Counter()
        self._memo: dict[tuple[str, str], tuple[str, list[dict]]] = {}
        self._memo_bytes = 0

    def _on_change(self, change) -> None:
        self._memo.clear()  # rare next to lookups; working out which answers it touched is not
        self._memo_bytes = 0

    def handle(self, request) -> dict:
        """One request object -> one reply object; never raises for bad input."""
        reply = self._handle(request)
        method = request.get("method") if isinstance(request, dict) else None
        name = method.lower() if isinstance(method, str) else ""
        self.counts[name if name in self.methods else "unknown",
                    "fail" if reply.get("result") is False else "ok"] += 1
        return reply

    def handle_steps(self, request):
        """`handle` for the socket server, as a generator that returns the reply line in
        parts (bytes; joined, `encode(handle(request))`) and yields PAUSE where the server may
        let other work run. Only `list` pauses: a big zone's list is seconds of work, its
        reply one JSON document, built piece by piece and never joined here (joining 50 MB
        would stop the loop too)."""
        params = _list_params(request)
        if params is None or not self.state.ready:
            return [encode(self.handle(request))]
        try:
            pieces = self.list_steps(params, as_json=True)
        except BadRequest as err:
            self.counts["list", "fail"] += 1
            return [encode(_fail(f"{request['method']}: {err}"))]
        # parts of about PART_BYTES: millions of small ones would cost a pause to free
        parts: list[bytes] = []
        buf = [b'{"result":[']
        size = 0
        first = True
        for piece in pieces:
            if piece is PAUSE:
                yield PAUSE
            elif piece:
                if not first:
                    buf.append(b",")
                first = False
                text = piece.encode()
                buf.append(text)
                size += len(text)
                if size > PART_BYTES:
                    parts.append(b"".join(buf))
                    buf = []
                    size = 0
                yield PAUSE
        buf.append(b"]}\n")
        parts.append(b"".join(buf))
        self.counts["list", "ok"] += 1
        return parts

    def _handle(self, request) -> dict:
        if not isinstance(request, dict):
            return _fail(f"request must be a JSON object, got {type(request).__name__}")
        method = request.get("method")
        if not isinstance(method, str):
            return _fail("request has no method")
        handler = self.methods.get(method.lower())
        if handler is None:
            return {"result": False}
        params = request.get("parameters", request.get("params")) or {}
        if not isinstance(params, dict):
            return _fail(f"{method}: parameters must be a JSON object")
        if method.lower() in self._needs_data and not self.state.ready:
            return _fail(f"{method}: records not loaded from etcd yet")
        try:
            return {"result": handler(params)}
        except BadRequest as err:
            return _fail(f"{method}: {err}")

    # -- methods -----------------------------------------------------------------------------

    def initialize(self, params: dict):
        return True

    def lookup(self, params: dict) -> list[dict]:
        qname = _fqdn(params.get("qname"))
        qtype = str(params.get("qtype", "ANY")).upper()
        remote = str(params.get("remote") or "")
        return self.lookup_records(qname, qtype, remote)

    def lookup_records(self, qname: str, qtype: str, remote: str = "") -> list[dict]:
        if self.mode:  # one address per client or per query: nothing to reuse
            return self._lookup(qname, qtype, remote)
        # pdns asks the same few names again and again (ANY, then SOA probes up the tree),
        # each answer costing several walks of the index; reuse it until the data changes.
        if len(self._memo) >= MEMO_MAX or self._memo_bytes > MEMO_BYTES:
            self._memo.clear()
            self._memo_bytes = 0
        # Keyed by the folded name: case variants of one name (0x20 randomising resolvers, or
        # a flood of them) share one entry instead of one each.
        key = (qname.lower(), qtype)
        memo = self._memo.get(key)
        if memo is None:
            found = self._lookup(qname, qtype, remote)
            self._memo[key] = (qname, found)
            self._memo_bytes += memo_size(qname, found)
            return found
        spelled, found = memo
        if spelled == qname:
            return found
        return [dict(r, qname=qname) if r["qname"] == spelled else r for r in found]

    def _lookup(self, qname: str, qtype: str, remote: str) -> list[dict]:
        ctx = self.state
        path = name_to_path(qname)
        zone = _served_zone_of(ctx, path)
        if zone is None:
            return []
        zid = zone_id(zone, ctx)
        apex = path == zone
        if qtype == "SOA":  # pdns finds the zone with these: the apex has one, nothing else
            return [record(row, zid, qname) for row in plain_rows([soa_rr(ctx, zone)])] \
                if apex else []
        if "*" in path and not _literal_exists(ctx, path):
            return []  # pdns's own wildcard probe, see the module docstring
        if qtype == "ANY":
            rows = self._any(path, zone, apex, remote)
            if rows:
                return [record(row, zid, qname) for row in rows]
            return [ent(qname, zid)] if ctx.index.exists(path) else []
        rtype = _SINGLE_TYPES.get(qtype)
        if rtype is None:
            return []
        rows = self._pick(self._of_type(path, rtype), remote)
        return [record(row, zid, qname) for row in rows]

    def _of_type(self, path: Path, rtype: int) -> list[Row]:
        """The records of one type owned by the name itself (a CNAME chain's tail is pdns's),
        as the rules answer them."""
        owner = path_labels(path)
        if owner is None:
            return []
        got = answer(self.state, path, rtype, owner)
        return plain_rows([rr for rr in got.answer if rr[0] == owner and rtype_of(rr) == rtype])

    def _any(self, path: Path, zone: Path, apex: bool, remote: str) -> list[Row]:
        ctx = self.state
        out: list[Row] = []
        if apex:
            out += plain_rows([soa_rr(ctx, zone)])
        reverse = zone != ctx.zone.domain_path
        if not reverse and not apex:
            cname = self._of_type(path, T_CNAME)
            if cname:
                return cname  # a name with a CNAME has nothing else (RFC 1034 3.6.2)
        for rtype in _REVERSE_TYPES if reverse else _FORWARD_TYPES:
            rows = self._of_type(path, rtype)
            out.extend(self._pick(rows, remote) if rtype in _ADDRESS else rows)
        return out

    def _pick(self, rows: list[Row], remote: str) -> list[Row]:
        """random-one / hone-one over the (already health-filtered) addresses of one type."""
        if not self.mode or len(rows) < 2 or rows[0].rtype not in _ADDRESS:
            return rows
        if self.mode == "random":
            return [random.choice(rows)]
        return [rows[choose(remote, [row.data for row in rows])]]

    def list(self, params: dict) -> list[dict]:
        """The whole zone for AXFR as it is answered (what `skydns dump` prints, what an AXFR
        from skydns sends), plus the empty non-terminals."""
        out: list[dict] = []
        for piece in self.list_steps(params):
            if piece is not PAUSE:
                out += piece
        return out

    def list_steps(self, params: dict, as_json: bool = False):
        """`list` in pieces: yields lists of records (`as_json`: the records' JSON text,
        comma-separated, as `encode` writes them), and PAUSE where the caller may let other
        work run (the socket server answers other connections' lookups meanwhile). Raises
        BadRequest before the first piece."""
        ctx = self.state
        name = _fqdn(params.get("zonename") or params.get("zone") or params.get("name"))
        zone = name_to_path(name)
        if zone not in served_zones(ctx):
            raise BadRequest(f"not a zone served here: {name}")
        return self._list_pieces(zone, as_json)

    def _list_pieces(self, zone: Path, as_json: bool):
        ctx = self.state
        zid = zone_id(zone, ctx)
        self.snapshot.active = True
        owners: list[set[Path]] = [set() for _ in range(_SHARDS)]
        last = None
        for piece in served_rows(self.snapshot, zone):
            if piece is PAUSE:
                yield PAUSE
                continue
            out = []
            for row in piece:
                name = row.name
                if name is not last:  # a name's records come together
                    path = name_to_path(name)
                    owners[hash(path) % _SHARDS].add(path)
                    last = name
                    # dnslib writes names in printable ASCII: plain JSON unless " or \
                    plain_name = '"' not in name and "\\" not in name
                raw = row.raw
                text = row.data if raw is None else txt_content(raw)  # TXT: pdns's quoting
                if as_json and raw is None and plain_name and '"' not in text \
                        and "\\" not in text:  # the bulk (addresses, SRV): nothing to escape
                    out.append(f'{{"qtype":"{type_name(row.rtype)}","qname":"{name}",'
                               f'"content":"{text}","ttl":{row.ttl},"auth":true,'
                               f'"domain_id":{zid}}}')
                    continue
                record = {"qtype": type_name(row.rtype), "qname": name, "content": text,
                          "ttl": row.ttl, "auth": True, "domain_id": zid}
                out.append(_JSON.encode(record) if as_json else record)
            yield ",".join(out) if as_json else out
        ents = set()
        n = 0
        for shard in owners:
            for owner in shard:
                n += 1
                if n % LIST_STEP == 0:
                    yield PAUSE
                for depth in range(len(zone) + 1, len(owner)):
                    parent = owner[:depth]
                    if parent not in owners[hash(parent) % _SHARDS]:
                        ents.add(parent)
        for shard in owners:  # freed in steps too: a million names take a while
            shard.clear()
            yield PAUSE
        ents = [ent(path_to_name(p), zid) for p in sorted(ents)]
        yield _JSON.encode(ents)[1:-1] if as_json else ents

    def domain_info(self, zone: Path) -> dict:
        ctx = self.state
        return {
            "id": zone_id(zone, ctx),
            "zone": path_to_name(zone),
            "serial": serial(ctx),
            "notified_serial": serial(ctx),
            "kind": "native",
            "masters": [],
        }

    def get_all_domains(self, params: dict) -> list[dict]:
        return [self.domain_info(zone) for zone in served_zones(self.state)]

    def get_domain_info(self, params: dict):
        name = _fqdn(params.get("name") or params.get("zone") or params.get("zonename"))
        zone = name_to_path(name)
        if zone not in served_zones(self.state):
            return False
        return self.domain_info(zone)

    def get_all_domain_metadata(self, params: dict) -> dict:
        return {}

    def get_domain_metadata(self, params: dict) -> list:
        return []


_JSON = json.JSONEncoder(separators=(",", ":"))  # as `encode`


def _list_params(request) -> dict | None:
    """The parameters of a well-formed `list` request, else None."""
    if not isinstance(request, dict):
        return None
    method = request.get("method")
    if not isinstance(method, str) or method.lower() != "list":
        return None
    params = request.get("parameters", request.get("params")) or {}
    return params if isinstance(params, dict) else None


def _fail(message: str) -> dict:
    return {"result": False, "log": [f"skydns-pdns-backend: {message}"]}


def encode(reply: dict) -> bytes:
    return json.dumps(reply, separators=(",", ":")).encode() + b"\n"


class Session:
    """One connection's framing: bytes in, reply bytes out, one reply per request line.

    A request may arrive in any number of pieces and several may arrive at once; blank lines
    are ignored; a line that is not a JSON object gets {"result": false, "log": [...]} and the
    session goes on. A line longer than max_line raises LineTooLong (close the connection:
    resynchronising inside an over-long line is guesswork).
    """

    def __init__(self, backend: PdnsBackend, max_line: int = MAX_LINE):
        self.backend = backend
        self.max_line = max_line
        self.buffer = bytearray()
        self._scanned = 0  # bytes of buffer known to hold no newline
        self.requests = 0

    def feed(self, data: bytes) -> bytes:
        steps = self.feed_steps(data)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return b"".join(done.value)

    def feed_steps(self, data: bytes):
        """`feed` as a generator: yields PAUSE where the caller may let other work run (a
        `list` is long), returns the reply bytes in parts (to write one after the other)."""
        self.buffer += data
        replies = []
        start = 0
        buf = self.buffer
        while True:
            end = buf.find(b"\n", max(start, self._scanned))
            if end < 0:
                break
            line = bytes(buf[start:end])
            start = end + 1
            self._scanned = start
            if len(line) > self.max_line:
                raise LineTooLong(f"request line of {len(line)} bytes", b"".join(replies))
            if line.strip():
                replies += yield from self.line_steps(line)
        del buf[:start]
        self._scanned = len(buf)
        if len(buf) > self.max_line:
            raise LineTooLong(
                f"request line over {self.max_line} bytes without a newline", b"".join(replies)
            )
        return replies

    def line_steps(self, line: bytes):
        """One request line -> its reply line in parts (a generator, see `feed_steps`)."""
        self.requests += 1
        try:
            request = json.loads(line)
        except (ValueError, RecursionError) as err:  # UnicodeDecodeError is a ValueError
            return [encode(_fail(f"bad request, not JSON: {err}"))]
        try:
            return (yield from self.backend.handle_steps(request))
        except Exception:  # a bug must cost one answer, never the connection
            text = line[:200].decode("utf-8", "replace")
            log.exception("request failed", extra={"kv": {"request": text}})
            return [encode(_fail("internal error, see the backend's log"))]
