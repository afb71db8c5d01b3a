"""Statistics of skydns: per-worker snapshots, summed by the supervisor, served over HTTP.

Workers cannot share counters, so each one writes a snapshot (JSON, totals since it started)
to the supervisor's stats directory once a second (see write_snapshots); the supervisor sums
them, keeping the totals of workers that were replaced so counters never go backwards, and answers:

    GET /skydns/stats            counters and gauges (JSON)
    GET /skydns/stats/{name}     queries for one name
    GET /skydns/stats/top/{N}    the N most asked names
    GET /metrics                 the same in Prometheus text format

with `statsServerAuthToken` (when set) as `?token=` or `Authorization: Bearer`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from skydns.httpauth import UnsupportedScheme, request_token

from . import latency
from .cache import FOLD_SLICE

log = logging.getLogger("skydns.stats")

STATS_DIR_ENV = "SKYDNS_STATS_DIR"
SNAPSHOT_INTERVAL = 1.0
NAMES_INTERVAL = 10.0  # per-name counts feed top-N lists: for many names, fresher is not worth it
NAMES_SMALL = 20_000  # up to this many names, rebuilding them each second costs a few ms of CPU

COUNTERS = (
    "requests",
    "cache_hits",
    "cache_misses",
    "forward",
    "forward_fail",
    "nxdomain",
    "nodata",
    "servfail",
    "refused",
    "formerr",
    "truncated",
    "fail_open",
    "axfr",
    "udp_dropped",
    "tsig_signed",  # signed requests answered (signed)
    "tsig_failed",  # signed requests answered NOTAUTH (BADKEY, BADSIG, BADTIME)
    "dnstap_sent",  # messages written to the dnstap collector
    "dnstap_dropped",  # messages lost: collector absent, slow or restarting
)
GAUGES = ("cache_size", "records", "down_addresses", "cache_evictions", "etcd_watch_connected")
# what a cache hit counts as besides a request, from its entry's kind ("nodata+truncated")
HIT_KINDS = ("nxdomain", "nodata", "servfail", "fail_open", "forward", "truncated")


def wire_to_name(wire: bytes) -> str:
    labels, i = [], 0
    while i < len(wire) and wire[i]:
        labels.append(wire[i + 1 : i + 1 + wire[i]].decode("latin-1"))
        i += wire[i] + 1
    return ".".join(labels) + "."


# -- worker side ---------------------------------------------------------------------------


def _counters(engine) -> dict:
    """Counters from what the cache has folded so far (see AnswerCache.fold)."""
    kinds = engine.cache.kind_hits
    hits = sum(kinds.values())
    built = engine.stats
    counters = {name: built.get(name, 0) for name in COUNTERS}
    counters["cache_hits"] = hits
    counters["cache_misses"] = engine.cache.misses
    # every miss is a request; the engine's own "requests" are those that are neither a hit
    # nor a miss (signed requests turned down)
    counters["requests"] = hits + engine.cache.misses + built.get("requests", 0)
    for kind, count in kinds.items():
        for part in kind.split("+"):
            if part in HIT_KINDS:
                counters[part] += count
    return counters


def _gauges(engine, etcd_connected=None) -> dict:
    return {
        "cache_size": len(engine.cache),
        "records": len(engine.state.index),
        "down_addresses": len(engine.state.health.down),
        "cache_evictions": engine.cache.evictions,
        # 1 while the worker's etcd watches are connected (None: not known, a test engine)
        "etcd_watch_connected": int(etcd_connected()) if etcd_connected else 1,
    }


def snapshot(engine) -> dict:
    """Everything at once (for tests and tools); the worker task builds the same in slices."""
    engine.cache.fold()
    engine.fold_names()
    names = Counter(engine.query_names)
    for wire, count in engine.cache.name_hits.items():
        names[wire_to_name(wire)] += count
    return {
        "pid": os.getpid(),
        "counters": _counters(engine),
        "gauges": _gauges(engine),
        "latency": _latency(engine),
        "names": dict(names),
    }


def _latency(engine) -> dict:
    return {**engine.built_time.flat(), **engine.forward_time.flat()}


async def _fold_in_slices(cache) -> None:
    entries = cache.all_entries()
    for start in range(0, len(entries), FOLD_SLICE):
        cache.fold(entries[start : start + FOLD_SLICE])
        await asyncio.sleep(0)


class _NamesJson:
    """The per-name counts as a JSON object, rebuilt in slices between queries."""

    def __init__(self) -> None:
        self.text = "{}"
        self.count = 0
        self.spelled: dict[bytes, str] = {}  # wire name -> text, so each is decoded once

    async def rebuild(self, engine) -> None:
        engine.fold_names()
        names = Counter(engine.query_names)
        await asyncio.sleep(0)
        spelled = self.spelled
        if len(spelled) > 2 * len(engine.cache.name_hits) + 1000:
            spelled.clear()
        hits = engine.cache.name_hits
        wires = list(hits)  # keys only: 100k (key, count) tuples at once took 6 ms
        for start in range(0, len(wires), FOLD_SLICE):
            for wire in wires[start : start + FOLD_SLICE]:
                text = spelled.get(wire)
                if text is None:
                    text = spelled[wire] = wire_to_name(wire)
                names[text] += hits.get(wire, 0)
            await asyncio.sleep(0)
        keys = list(names)
        parts = []
        for start in range(0, len(keys), FOLD_SLICE):
            part = {k: names[k] for k in keys[start : start + FOLD_SLICE]}
            parts.append(json.dumps(part)[1:-1])
            await asyncio.sleep(0)
        self.text = "{" + ",".join(p for p in parts if p) + "}"
        self.count = len(keys)


async def write_snapshots(engine, etcd_connected=None) -> None:
    """Worker task: keep `<stats dir>/worker-<pid>.json` current (atomic replace).

    Counters are written each SNAPSHOT_INTERVAL when they changed; per-name counts (only
    for top-N lists) with them, or past NAMES_SMALL names every NAMES_INTERVAL. No step walks
    the cache in one go: a 20 ms pause each second showed as the latency maximum under load.
    """
    directory = os.environ.get(STATS_DIR_ENV)
    if not directory:
        return
    path = Path(directory) / f"worker-{os.getpid()}.json"
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    names = _NamesJson()
    names_due = 0.0
    names_stale = True
    last = None
    while True:
        await _fold_in_slices(engine.cache)
        head = json.dumps(
            {"pid": os.getpid(), "counters": _counters(engine),
             "gauges": _gauges(engine, etcd_connected), "latency": _latency(engine)}
        )
        names_stale = names_stale or head != last
        renamed = names_stale and time.monotonic() >= names_due
        if renamed:
            await names.rebuild(engine)
            names_stale = False
            big = names.count > NAMES_SMALL
            names_due = time.monotonic() + (NAMES_INTERVAL if big else 0.0)
        if head != last or renamed:
            try:
                tmp.write_text(head[:-1] + ', "names": ' + names.text + "}")
                tmp.replace(path)
                last = head
            except OSError as err:
                log.warning("cannot write stats snapshot", extra={"kv": {"error": str(err)}})
        await asyncio.sleep(SNAPSHOT_INTERVAL)


# -- supervisor side -----------------------------------------------------------------------


def _add(total: dict, snap: dict) -> None:
    for section in ("counters", "names", "latency"):
        bucket = total.setdefault(section, Counter())
        bucket.update(snap.get(section, {}))


class StatsBook:
    """Sums the workers' snapshots; remembers the totals of replaced workers."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.retired: dict = {}
        self.lock = threading.Lock()

    def _read(self) -> dict[str, dict]:
        snaps = {}
        for path in sorted(self.directory.glob("worker-*.json")):  # ties in top-N: stable
            try:
                snaps[path.stem] = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # being replaced right now; next read gets it
        return snaps

    def retire(self, pid: int) -> None:
        """A worker has exited: keep what it counted, so totals do not drop."""
        path = self.directory / f"worker-{pid}.json"
        try:
            snap = json.loads(path.read_text())
            path.unlink()
        except (OSError, ValueError):
            return
        with self.lock:
            _add(self.retired, snap)

    def totals(self) -> dict:
        snaps = self._read()
        with self.lock:
            total = {section: Counter(self.retired.get(section, {}))
                     for section in ("counters", "names", "latency")}
        gauges: Counter = Counter()
        for snap in snaps.values():
            _add(total, snap)
            gauges.update(snap.get("gauges", {}))
        counters = {name: total["counters"].get(name, 0) for name in COUNTERS}
        # every worker holds the whole zone: records and DOWN are the same in each, not a sum
        per_worker = [snap.get("gauges", {}) for snap in snaps.values()]
        return {
            **counters,
            "cache_size": gauges.get("cache_size", 0),
            "cache_evictions": gauges.get("cache_evictions", 0),
            "records": max((g.get("records", 0) for g in per_worker), default=0),
            "down_addresses": max((g.get("down_addresses", 0) for g in per_worker), default=0),
            # 0 as soon as one worker has lost etcd (it answers from its last copy meanwhile)
            "etcd_watch_connected": min((g.get("etcd_watch_connected", 0) for g in per_worker),
                                        default=0),
            "workers": len(snaps),
            "names": total["names"],
            "latency": total["latency"],  # latency.Latency.flat(), summed
        }


class _Collector:
    def __init__(self, book: StatsBook):
        self.book = book

    def collect(self):
        totals = self.book.totals()
        for name in COUNTERS:
            metric = CounterMetricFamily(f"skydns_{name}", f"skydns {name.replace('_', ' ')}")
            metric.add_metric([], totals[name])
            yield metric
        for name in (*GAUGES, "workers"):
            metric = GaugeMetricFamily(f"skydns_{name}", f"skydns {name.replace('_', ' ')}")
            metric.add_metric([], totals.get(name, 0))
            yield metric
        metric = HistogramMetricFamily(
            "skydns_miss_duration_seconds", "Time to answer a query the cache did not: built "
            "from the zone, or forwarded (the upstream's round trip)", labels=["kind"])
        for kind in ("built", "forwarded"):
            metric.add_metric([kind], *latency.buckets(totals["latency"], kind))
        yield metric


def serve(book: StatsBook, addr: tuple[str, int], token: str) -> ThreadingHTTPServer:
    """Start the stats HTTP server in a daemon thread of the supervisor."""
    registry = CollectorRegistry()
    registry.register(_Collector(book))

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):  # one line per request would flood the journal
            log.debug("stats request", extra={"kv": {"path": self.path}})

        def _send(self, status: int, body: bytes, ctype="application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _refusal(self, query: dict) -> str | None:
            """Why the request may not read (None: it may)."""
            if not token:
                return None
            try:
                given = request_token(self.headers.get("Authorization"),
                                      (query.get("token") or [""])[0])
            except UnsupportedScheme as err:
                return str(err)
            if hmac.compare_digest((given or "").encode(), token.encode()):
                return None
            return "missing or wrong token"

        def do_GET(self):  # noqa: N802 - the name http.server calls
            url = urlsplit(self.path)
            refusal = self._refusal(parse_qs(url.query))
            if refusal is not None:
                return self._send(401, json.dumps({"error": refusal}).encode() + b"\n")
            parts = [p for p in url.path.split("/") if p]
            if parts == ["metrics"]:
                return self._send(
                    200, generate_latest(registry), "text/plain; version=0.0.4; charset=utf-8"
                )
            if parts[:2] != ["skydns", "stats"]:
                return self._send(404, b'{"error": "not found"}\n')
            totals = book.totals()
            names = totals.pop("names")
            totals.pop("latency")  # in /metrics, as a histogram
            # ASCII digits only: isdigit() takes "²" (a raw 0xB2 byte), which int() refuses
            count = parts[3] if len(parts) == 4 and parts[2] == "top" else ""
            if len(parts) == 2:
                body = totals
            elif count.isascii() and count.isdigit():
                n = min(int(count), 10_000)
                body = [{"name": k, "queries": v} for k, v in names.most_common(n)]
            elif len(parts) == 3:
                name = parts[2].lower().rstrip(".") + "."
                body = {"name": name, "queries": names.get(name, 0)}
            else:
                return self._send(404, b'{"error": "not found"}\n')
            return self._send(200, json.dumps(body).encode() + b"\n")

    server = ThreadingHTTPServer(addr, Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="stats-http", daemon=True).start()
    return server
