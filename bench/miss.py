"""Beyond the cached UDP figure (issue #17): answers without the cache, a random-subdomain
flood, cached TCP and names with many addresses, with PowerDNS, Knot DNS and NSD measured in
the same run on the same core (when installed). See bench/README.md, "Misses, floods, TCP".

Every server is started first and idles while another is measured; each measurement is
`--duration` seconds of dnsperf, repeated in `--rounds` interleaved rounds (medians shown), so
that the load other work puts on a shared machine hits all of them alike. Compare ratios
within one run, not figures across runs.
"""

from __future__ import annotations

import json
import statistics
import time
import urllib.request
from pathlib import Path

from dataset import TYPE_KINDS, ZONE, DataSet
from peers import Knot, Nsd, Pdns, zone_text
from procs import Skydns, free_port, query, udp_client

FLOOD_NAMES = 600_000  # distinct random names: more than a run sends, so none repeats
HOT_NAMES = 1000


def _log(msg: str) -> None:
    import sys

    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def query_files(workdir: Path, ds: DataSet, mix_file: Path) -> dict[str, Path]:
    import random

    files = {f"type-{kind}": _write(workdir / f"q-type-{kind}.txt",
                                    ds.type_lines(kind, TYPE_QUERIES))
             for kind in (*TYPE_KINDS, "mix")} if ds.kinds else {}
    rng = random.Random(7)
    hot = [f"{ds.single_name(rng.randrange(ds.names))} A" for _ in range(HOT_NAMES)]
    hot_lines = [hot[rng.randrange(HOT_NAMES)] for _ in range(FLOOD_NAMES)]
    flood = []
    for n, line in enumerate(hot_lines):
        flood.append(line)
        flood.append(f"w{n}x{rng.getrandbits(32):08x}.bench.{ZONE} A")
    return {
        **files,
        "mix": mix_file,
        "single": _write(workdir / "q-single.txt",
                         [f"{ds.single_name(rng.randrange(ds.names))} A" for _ in range(20000)]),
        "multi": _write(workdir / "q-multi.txt", [f"{ds.multi_name} A"] * 1000),
        "hot": _write(workdir / "q-hot.txt", hot_lines),
        "flood": _write(workdir / "q-flood.txt", flood),
        "random": _write(workdir / "q-random.txt", flood[1::2]),
    }


class _Server:
    """A started server for the tables: label, port, the pids whose CPU counts (a list, or a
    function giving it: nsd forks its serving processes after it answers)."""

    def __init__(self, label: str, port: int, pids, stats_port: int = 0):
        self.label, self.port, self._pids, self.stats_port = label, port, pids, stats_port

    @property
    def pids(self) -> list[int]:
        return self._pids() if callable(self._pids) else self._pids

    def counters(self) -> dict:
        if not self.stats_port:
            return {}
        url = f"http://127.0.0.1:{self.stats_port}/skydns/stats"
        with urllib.request.urlopen(url, timeout=5) as reply:
            return json.load(reply)


def start_servers(env, etcd, ds: DataSet, probe: str, wanted=None) -> dict[str, _Server]:
    """The servers labelled in `wanted` (None: all of them), started and answering."""
    servers: dict[str, _Server] = {}
    skydns_configs = {
        "skydns, cacheSize 0": {"Dns": {"cacheSize": 0}},
        "skydns, cached": {},
        "skydns, cacheSize 2000": {"Dns": {"cacheSize": 2000}},
        "skydns, random-one": {"Fun": {"random-one": True}},
        "skydns, hone-one": {"Fun": {"hone-one": True}},
        "skydns, dnstap": {"Log": {"dnstap": "collector"}},  # filled in below
    }
    for label, sections in skydns_configs.items():
        if wanted is not None and label not in wanted:
            continue
        if "dnstap" in sections.get("Log", {}):
            sections = {"Log": {"dnstap": _collector(env).target}}
        stats_port = free_port()
        sky = Skydns(env.workdir, etcd.endpoint, 1, name=label.split(", ")[1].replace(" ", ""),
                     Stats={"statsServer": f"127.0.0.1:{stats_port}"}, **sections)
        env.stack.callback(sky.stop)
        _log(f"{label}: starting")
        sky.start(env.server_cores, probe)
        if env.server_cores:
            sky.pin(env.one_core)
        servers[label] = _Server(label, sky.port, sky.worker_pids, stats_port)
    zonefile = env.workdir / "bench.zone"
    zonefile.write_text(zone_text(ds))
    peers = [(Pdns, "PowerDNS, caches off", {}),
             (Pdns, "PowerDNS, packet cache", {"packet_cache": True}),
             (Knot, "knotd", {}), (Nsd, "nsd", {})]
    for cls, label, options in peers:
        if wanted is not None and label not in wanted:
            continue
        if not cls.installed():
            _log(f"{label}: {cls.binary} not installed, left out")
            continue
        peer = cls(env.workdir, zonefile, label=label, **options)
        env.stack.callback(peer.stop)
        _log(f"{label}: starting")
        try:
            peer.start(env.one_core, probe)
        except RuntimeError as err:
            _log(f"{label}: did not start ({err}); left out, see {peer.dir}/server.log")
            continue
        servers[label] = _Server(label, peer.port, lambda peer=peer: peer.pids)
    return servers


def _collector(env):
    """fstrm_capture as the dnstap collector (issue #30), writing to /dev/null: its own CPU
    is not the server's, and a 10 s run would write hundreds of MB. It runs where this
    harness runs (the client cores)."""
    from taptest import Collector

    collector = Collector(env.workdir / "dnstap")
    collector.dir.mkdir(exist_ok=True)
    env.stack.callback(collector.kill)
    return collector.start(output=Path("/dev/null"))


# (scenario, query file, transport, servers)
SCENARIOS = [
    ("uncached", "mix", "udp", ["skydns, cacheSize 0", "PowerDNS, caches off", "knotd", "nsd"]),
    ("cached", "mix", "udp", ["skydns, cached", "PowerDNS, packet cache"]),
    ("insert + evict", "mix", "udp", ["skydns, cacheSize 2000"]),
    ("cached TCP", "mix", "tcp", ["skydns, cached", "PowerDNS, packet cache", "knotd"]),
    ("1 address", "single", "udp", ["skydns, cached", "skydns, random-one", "skydns, hone-one"]),
    ("8 addresses", "multi", "udp", ["skydns, cached", "skydns, random-one", "skydns, hone-one"]),
    ("hot set alone", "hot", "udp", ["skydns, cached"]),
    ("hot set + 50% random names", "flood", "udp", ["skydns, cached"]),
    ("random names alone", "random", "udp", ["skydns, cached"]),
    # every query and response to a dnstap collector, against the same server without
    ("dnstap", "mix", "udp", ["skydns, cached", "skydns, dnstap"]),
]


# The per-type table (issue #27): one row per kind of question (dataset.TYPE_KINDS, then their
# even mix), skydns without a cache beside PowerDNS with its caches off and knotd; the target
# is skydns's CPU per query over PowerDNS's.
PER_TYPE = [  # (row, query file kind, target ratio)
    ("A", "A", 1.0),
    ("AAAA", "AAAA", 1.0),
    ("CNAME -> A", "CNAME", 1.2),
    ("MX", "MX", 1.2),
    ("TXT", "TXT", 1.2),
    ("SRV with glue", "SRV", 1.2),
    ("NODATA (MX of an A name)", "NODATA", 1.2),
    ("NXDOMAIN", "NXDOMAIN", 1.0),
    ("an even mix of the above", "mix", 1.1),
]
PER_TYPE_SERVERS = ["skydns, cacheSize 0", "PowerDNS, caches off", "knotd"]
PER_TYPE_PREFIX = "per-type: "  # scenario names of its rows; --miss-scenarios per-type
TYPE_QUERIES = 20_000  # lines per query file: a 5 s run at skydns's pace reads most of it


def per_type_scenarios() -> list[tuple]:
    return [(PER_TYPE_PREFIX + row, f"type-{kind}", "udp", PER_TYPE_SERVERS)
            for row, kind, _target in PER_TYPE]


def bench_miss(env, etcd, ds: DataSet, mix_file: Path) -> dict:
    duration = env.args.duration
    env.args.duration = env.args.miss_duration  # what measure() runs for
    try:
        return _bench_miss(env, etcd, ds, mix_file)
    finally:
        env.args.duration = duration


def _bench_miss(env, etcd, ds: DataSet, mix_file: Path) -> dict:
    from run import measure  # the same measurement as the cached table's

    files = query_files(env.workdir, ds, mix_file)
    only = {s.strip() for s in getattr(env.args, "miss_scenarios", "").split(",") if s.strip()}
    scenarios = SCENARIOS + (per_type_scenarios() if ds.kinds else [])
    if "per-type" in only:
        only |= {scenario for scenario, *_ in scenarios if scenario.startswith(PER_TYPE_PREFIX)}
    wanted = {name for scenario, _f, _m, names in scenarios if scenario in only
              for name in names} if only else None
    servers = start_servers(env, etcd, ds, ds.single_name(0), wanted)
    plan = [(scenario, files[f], mode, [servers[s] for s in names if s in servers])
            for scenario, f, mode, names in scenarios if not only or scenario in only]
    sections = {}
    if any(scenario.startswith(PER_TYPE_PREFIX) for scenario, *_ in plan):
        sections = compare_sections(ds, [servers[s] for s in PER_TYPE_SERVERS if s in servers])
    for _scenario, qfile, mode, group in plan:  # warm caches: one pass through each file
        if qfile in (files["hot"], files["flood"], files["random"]):
            continue  # warmed below, with the hot names only
        for server in group:
            env.run_dnsperf(server.port, qfile, runs=1, mode=mode)
    if any(qfile in (files["hot"], files["flood"]) for _s, qfile, _m, _g in plan):
        hot_warm = _write(env.workdir / "q-hot-warm.txt",
                          sorted(set(files["hot"].read_text().splitlines())))
        env.run_dnsperf(servers["skydns, cached"].port, hot_warm, runs=1)

    runs: dict[tuple, list[dict]] = {}
    for n in range(env.args.rounds):
        for scenario, qfile, mode, group in plan:
            for server in group:
                _log(f"round {n + 1}/{env.args.rounds}: {scenario}: {server.label}")
                before = server.counters()
                row = measure(env, server.label, server.port, server.pids, qfile, mode=mode)
                if server.stats_port and qfile in (files["hot"], files["flood"]):
                    row["hot_hit_rate"] = _hot_hit_rate(server, before, row, qfile, files)
                if server.label == "skydns, dnstap":
                    row.update(_dnstap_counts(server, before, row))
                runs.setdefault((scenario, server.label), []).append(row)
    rows = []
    for (scenario, label), rounds in runs.items():
        if scenario.startswith(PER_TYPE_PREFIX):
            continue  # their own table, below
        row = {"scenario": scenario, "config": label, "rounds": rounds}
        for key in ("qps", "cpu_us_per_query", "hot_hit_rate"):
            values = [r[key] for r in rounds if key in r]
            if values:
                row[key] = round(statistics.median(values), 4 if key == "hot_hit_rate" else 2)
        row["lost"] = sum(r["lost"] for r in rounds)
        for key in ("dnstap_sent", "dnstap_dropped"):
            if key in rounds[0]:
                row[key] = sum(r[key] for r in rounds)
        rows.append(row)
    res = {"rows": rows, "ratios": ratios(rows)}
    if sections:
        res["per_type"] = per_type_rows(runs)
        res["per_type_sections"] = sections
    if not only:
        _log("hit path in process: one address, 8 addresses in each mode, 100,000 clients")
        res["hit_path_us"] = hit_path_in_process(ds)
    if not only or "hot set + 50% random names" in only:
        import flood

        _log("hot set under a flood, in process: handler only, then with a real sendto")
        res["flood_in_process"] = [flood.hot_set_under_flood(ds, send=send)
                                   for send in (False, True)]
        _log("hot set under a flood, in a running server (uvloop, real UDP, dnsperf)")
        res["flood_in_server"] = flood.hot_set_in_server(ds)
    return res


def section_shape(reply) -> dict:
    """What a reply holds, to compare two servers' work: rcode and the record types of each
    section (their counts follow). TTLs, names and order are left out."""
    from dnslib import QTYPE, RCODE

    def types(rrs):
        return sorted(QTYPE.get(rr.rtype, str(rr.rtype)) for rr in rrs)

    return {"rcode": RCODE.get(reply.header.rcode), "answer": types(reply.rr),
            "authority": types(reply.auth), "additional": types(reply.ar)}


def shape_text(shape: dict | None) -> str:
    if shape is None:
        return "no reply"
    return (f"{shape['rcode']}, " + ", ".join(
        f"{section} {len(shape[section])}" + (f" ({' '.join(shape[section])})"
                                              if shape[section] else "")
        for section in ("answer", "authority", "additional")))


def compare_sections(ds: DataSet, servers: list[_Server]) -> dict:
    """Ask every server the first question of each per-type query file; a reply whose
    sections differ from skydns's (the first server) would make the ratio compare unequal
    work, so it is logged as a warning and reported. Returns {kind: {question, shapes
    (label -> shape), differ (labels)}}."""
    out = {}
    for kind in TYPE_KINDS:
        line = ds.type_lines(kind, 1)[0]
        name, qtype = line.split()
        shapes = {}
        for server in servers:
            with udp_client(server.port, timeout=2.0) as sock:
                reply = query(sock, name, qtype)
            shapes[server.label] = section_shape(reply) if reply is not None else None
        first, *rest = servers
        differ = [s.label for s in rest if shapes[s.label] != shapes[first.label]]
        out[kind] = {"question": line, "shapes": shapes, "differ": differ}
        for label in differ:
            _log(f"warning: {line}: {first.label} answers {shape_text(shapes[first.label])}; "
                 f"{label} answers {shape_text(shapes[label])}")
    return out


def per_type_rows(runs: dict[tuple, list[dict]]) -> list[dict]:
    """One row per PER_TYPE question: each server's median CPU per query, and skydns over
    PowerDNS taken within each round, then the median (as the batch part does)."""
    sky, pdns = PER_TYPE_SERVERS[0], PER_TYPE_SERVERS[1]
    rows = []
    for row_name, kind, target in PER_TYPE:
        scenario = PER_TYPE_PREFIX + row_name
        row = {"question": row_name, "kind": kind, "target": target, "cpu_us_per_query": {},
               "qps": {}, "lost": {}, "rcodes": {}, "rounds": {}}
        for label in PER_TYPE_SERVERS:
            rounds = runs.get((scenario, label))
            if not rounds:
                continue  # a peer not installed
            row["cpu_us_per_query"][label] = round(
                statistics.median(r["cpu_us_per_query"] for r in rounds), 2)
            row["qps"][label] = round(statistics.median(r["qps"] for r in rounds))
            row["lost"][label] = sum(r["lost"] for r in rounds)
            row["rcodes"][label] = rcode_shares(rounds)
            row["rounds"][label] = rounds
        if sky in row["rounds"] and pdns in row["rounds"]:
            each = [a["cpu_us_per_query"] / b["cpu_us_per_query"]
                    for a, b in zip(row["rounds"][sky], row["rounds"][pdns], strict=True)]
            row["ratio_rounds"] = [round(r, 2) for r in each]
            row["ratio"] = round(statistics.median(each), 2)
            row["met"] = row["ratio"] <= target
        rows.append(row)
    return rows


def rcode_shares(rounds: list[dict]) -> dict[str, float]:
    """Each rcode's share of the answers over all rounds (dnsperf's count per rcode)."""
    counts: dict[str, int] = {}
    for r in rounds:
        for code, n in r.get("rcodes", {}).items():
            counts[code] = counts.get(code, 0) + n
    total = sum(counts.values()) or 1
    return {code: round(n / total, 4) for code, n in sorted(counts.items())}


def rcode_differences(row: dict, tolerance: float = 0.02) -> list[str]:
    """Servers whose rcode shares in a per-type row differ from skydns's: the one question
    compared before the run stands for the whole file only if the whole run agrees too (a
    SERVFAIL or a missing record would make one side's work cheaper). The even mix stops
    anywhere in its cycle of eight, hence the tolerance."""
    shares = row.get("rcodes", {})
    base = shares.get(PER_TYPE_SERVERS[0])
    if base is None:
        return []
    return [label for label, other in shares.items() if label != PER_TYPE_SERVERS[0]
            and any(abs(base.get(c, 0) - other.get(c, 0)) > tolerance
                    for c in set(base) | set(other))]


def per_type_report(res: dict) -> list[str]:
    from run import _table, _target

    sky, pdns, knot = PER_TYPE_SERVERS
    out = ["Per question type, CPU us per query (issue #27): skydns 1 worker cacheSize 0, "
           "PowerDNS bind backend caches off, knotd, the same records; skydns/PowerDNS taken "
           "per round, then the median"]
    rows = []
    for r in res["per_type"]:
        cpu = r["cpu_us_per_query"]
        ratio = r.get("ratio")
        rows.append([r["question"], cpu.get(sky), cpu.get(pdns), cpu.get(knot), ratio,
                     f"<= {r['target']}", None if ratio is None else _target(r["met"])])
    out.append(_table(["question", "skydns", "PowerDNS", "knotd", "skydns/PowerDNS",
                       "target", "result"], rows))
    lost: dict[str, int] = {}
    for r in res["per_type"]:
        for label, n in r["lost"].items():
            lost[label] = lost.get(label, 0) + n
    lost = {label: n for label, n in lost.items() if n}
    if lost:
        out.append("lost queries in the per-type runs: "
                   + ", ".join(f"{label} {n}" for label, n in lost.items()))
    differ = 0
    for kind, check in res.get("per_type_sections", {}).items():
        first = next(iter(check["shapes"]))
        for label in check["differ"]:
            differ += 1
            out.append(f"warning: {kind} ({check['question']}): {first} answers "
                       f"{shape_text(check['shapes'][first])}, {label} answers "
                       f"{shape_text(check['shapes'][label])}: that row compares unequal work")
    for r in res["per_type"]:
        for label in rcode_differences(r):
            differ += 1
            out.append(f"warning: {r['question']}: rcodes over the run differ: {sky} "
                       f"{r['rcodes'][sky]}, {label} {r['rcodes'][label]}")
    if not differ:
        out.append("answers alike: each server gave one question of each kind the rcode and "
                   "record types per section skydns gave, and the same rcodes over every run")
    return out


def _hot_hit_rate(server: _Server, before: dict, row: dict, qfile: Path, files) -> float:
    """Hits over hot queries answered: the flood file alternates hot and random names, and
    a random name never repeats within a run, so every hit is a hot one."""
    deadline = time.monotonic() + 5  # the worker folds its counters into the stats each second
    after = server.counters()
    while after.get("cache_misses", 0) + after.get("cache_hits", 0) < (
        before.get("cache_misses", 0) + before.get("cache_hits", 0) + row["completed"] * 0.999
    ) and time.monotonic() < deadline:
        time.sleep(0.2)
        after = server.counters()
    hits = after.get("cache_hits", 0) - before.get("cache_hits", 0)
    hot = row["completed"] / 2 if qfile == files["flood"] else row["completed"]
    return round(min(1.0, hits / hot), 4) if hot else 0.0


def _dnstap_counts(server: _Server, before: dict, row: dict) -> dict:
    """Messages sent and dropped during the run (a query and a response per answer): a
    writer that dropped everything would be cheap, so the figure counts only if few were."""
    deadline = time.monotonic() + 5  # the worker writes its counters each second
    while True:
        after = server.counters()
        sent = after.get("dnstap_sent", 0) - before.get("dnstap_sent", 0)
        dropped = after.get("dnstap_dropped", 0) - before.get("dnstap_dropped", 0)
        if sent + dropped >= 2 * row["completed"] or time.monotonic() > deadline:
            return {"dnstap_sent": sent, "dnstap_dropped": dropped}
        time.sleep(0.2)


def ratios(rows: list[dict]) -> dict:
    cpu = {(r["scenario"], r["config"]): r.get("cpu_us_per_query") for r in rows}

    def ratio(a, b):
        x, y = cpu.get(a), cpu.get(b)
        return round(x / y, 2) if x and y else None

    out = {
        "uncached skydns / PowerDNS caches off": ratio(
            ("uncached", "skydns, cacheSize 0"), ("uncached", "PowerDNS, caches off")),
        "uncached skydns / knotd": ratio(("uncached", "skydns, cacheSize 0"),
                                         ("uncached", "knotd")),
        "uncached skydns / nsd": ratio(("uncached", "skydns, cacheSize 0"), ("uncached", "nsd")),
        "uncached / cached skydns": ratio(("uncached", "skydns, cacheSize 0"),
                                          ("cached", "skydns, cached")),
        "insert + evict / uncached skydns": ratio(("insert + evict", "skydns, cacheSize 2000"),
                                                  ("uncached", "skydns, cacheSize 0")),
        "cached TCP skydns / PowerDNS packet cache": ratio(
            ("cached TCP", "skydns, cached"), ("cached TCP", "PowerDNS, packet cache")),
        "flood / no flood, CPU per query": ratio(("hot set + 50% random names", "skydns, cached"),
                                                 ("hot set alone", "skydns, cached")),
        "cached UDP, dnstap on / off": ratio(("dnstap", "skydns, dnstap"),
                                             ("dnstap", "skydns, cached")),
    }
    # The hot half's share of the flood run: the run's CPU per query twice over, less what a
    # random name costs alone (measured beside it); next to the hot set without a flood.
    # Too noisy to decide anything (0.48x-2.07x between runs): bench/flood.py measures it.
    flood = cpu.get(("hot set + 50% random names", "skydns, cached"))
    alone = cpu.get(("random names alone", "skydns, cached"))
    hot = cpu.get(("hot set alone", "skydns, cached"))
    if flood and alone and hot:
        out["hot half under flood (estimated) / hot set alone"] = round((2 * flood - alone) / hot,
                                                                        2)
    for mode in ("cached", "random-one", "hone-one"):
        out[f"8 addresses / 1 address, {mode}"] = ratio(("8 addresses", f"skydns, {mode}"),
                                                        ("1 address", f"skydns, {mode}"))
    return out


def report(res: dict, args) -> list[str]:
    from run import _table

    rounds, duration = args["rounds"], args["miss_duration"]
    clients, outstanding = args["clients"], args["outstanding"]
    out = [f"\nMisses, floods, TCP, many addresses: median of {rounds} interleaved rounds of "
           f"{duration:g} s, every server on one core (dnsperf -c {clients} -q {outstanding})"]
    if res["rows"]:  # none when only the per-type table ran
        out.append(_table(
            ["scenario", "config", "qps", "lost", "CPU us/query", "hot hit rate"],
            [[r["scenario"], r["config"], r.get("qps"), r["lost"], r.get("cpu_us_per_query"),
              r.get("hot_hit_rate")] for r in res["rows"]]))
    targets = {
        "uncached skydns / PowerDNS caches off": "<= 2",
        "cached TCP skydns / PowerDNS packet cache": "<= 1",
        "8 addresses / 1 address, cached": "<= 1.2",
        "8 addresses / 1 address, random-one": "<= 1.2",
        "8 addresses / 1 address, hone-one": "<= 1.2",
        "cached UDP, dnstap on / off": "<= 1.5",
    }
    for name, value in res["ratios"].items():
        if value is None:
            continue  # a scenario left out (--miss-scenarios) or a peer not installed
        goal = targets.get(name)
        out.append(f"CPU per query, {name}: {value}x" + (f" (target {goal})" if goal else ""))
    for r in res["rows"]:
        if "dnstap_sent" in r:
            total = r["dnstap_sent"] + r["dnstap_dropped"]
            out.append(f"dnstap messages: {r['dnstap_sent']} sent, {r['dnstap_dropped']} "
                       f"dropped ({r['dnstap_dropped'] / max(total, 1):.2%})")
    if res.get("per_type"):
        if res["rows"]:
            out.append("")
        out.extend(per_type_report(res))
    if res.get("flood_in_process"):
        import flood

        for one in res["flood_in_process"]:
            out.extend(flood.report(one))
        if res.get("flood_in_server"):
            out.extend(flood.report_server(res["flood_in_server"]))
    hits = res.get("hit_path_us")
    if hits:
        out.append("In process, us per AnswerCache.hit (no sockets; the UDP front, which "
                   "answers one-address names, is cheaper still): "
                   + ", ".join(f"{k} {v}" for k, v in hits.items()))
    return out


def hit_path_in_process(ds: DataSet, clients: int = 100_000, queries: int = 200_000) -> dict:
    """µs per cached hit through AnswerCache.hit (the path every transport shares after the
    UDP front), in this process: one address, and the 8-address name in each mode, hone-one
    with `clients` distinct client addresses (dnsperf sends from one), each seen once before
    the clock runs. No sockets: what the answer choice costs, not the send."""
    import ipaddress
    import random
    import timeit

    from dnslib import DNSRecord

    from dnsserver.engine import Engine
    from dnsserver.wire.message import question_key
    from skydns.config import load_config
    from skydns.keys import key_to_path
    from skydns.records import parse_record

    records = [parse_record(k.decode(), key_to_path(k.decode()), v) for k, v in ds.records()]
    rng = random.Random(3)
    many = [str(ipaddress.IPv4Address(0x0A000000 + rng.getrandbits(24))) for _ in range(clients)]
    out = {}
    for mode in ("", "random", "hone"):
        cfg = load_config(None, "dns")
        cfg["Dns"]["dns-domain"] = ZONE
        cfg["Fun"]["random-one"], cfg["Fun"]["hone-one"] = mode == "random", mode == "hone"
        engine = Engine(cfg)
        engine.state.load(records, 1)
        hit = engine.cache.hit
        allowed = engine.allowed
        for label, name in (("1 address", ds.single_name(1)), ("8 addresses", ds.multi_name)):
            data = bytes(DNSRecord.question(name, "A").pack())
            engine.miss(data, "127.0.0.1", False)
            keyed = question_key(data, False, engine.max_udp)
            assert hit(data, keyed, "127.0.0.1", allowed) is not None
            n = queries

            def one_client(data=data, keyed=keyed, hit=hit, allowed=allowed):
                return hit(data, keyed, "127.0.0.1", allowed)

            out[f"{label}, {mode or 'rotation'}"] = round(
                timeit.timeit(one_client, number=n) / n * 1e6, 3)
            if mode == "hone" and label == "8 addresses":
                for client in many:  # every client once: then the steady state is measured
                    hit(data, keyed, client, allowed)
                it = iter(many * (n // clients + 1))

                def many_clients(data=data, keyed=keyed, it=it, hit=hit, allowed=allowed):
                    return hit(data, keyed, next(it), allowed)

                out[f"{label}, hone, {clients} clients"] = round(
                    timeit.timeit(many_clients, number=n) / n * 1e6, 3)
    return out
