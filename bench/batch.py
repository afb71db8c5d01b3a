"""Cached UDP with batching on and off (issue #28): skydns with `udp-batch` on, skydns with it
off, the minimal uvloop responder (as it is, and reading in batches: the floor of each
transport in Python) and NSD (when installed), all on the same core, measured in
the same interleaved rounds: once under load (dnsperf -c --clients -q --outstanding: CPU per
query, qps) and once with one query in flight (dnsperf -c 1 -q 1: latency). Then lone
queries from this process (`lone_rounds`: one sent when the last was answered), many short
rounds alternating the servers, each server's CPU time from /proc's schedstat (nanoseconds)
and the round-trip times, compared round by round: the measurement that still tells 1 us
apart on a loaded machine. See bench/README.md, "UDP in batches".

    bench/run.py batch --duration 10 --rounds 3
"""

from __future__ import annotations

import os
import socket
import statistics
import struct
import sys
import time
from pathlib import Path

from minimal_responder import precompute, question
from peers import Nsd, zone_text
from procs import ROOT, Skydns, free_port, spawn, stop, wait_answer

TARGET_VS_NSD = 1.1  # cached UDP, CPU per query, skydns (batched) / NSD
LONE_ROUNDS, LONE_QUERIES = 30, 300  # lone_rounds: rounds, queries per server and round

# (label, dnsperf options beyond --duration): the load and the latency runs
LOADS = [("load", {}), ("one in flight", {"clients": 1, "outstanding": 1})]


def _log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def start_servers(env, etcd, ds, qfile: Path) -> list[tuple[str, int, object]]:
    """(label, port, pids or a function giving them) of every server, all pinned to one core."""
    servers = []
    for label, on in (("skydns, udp-batch on", True), ("skydns, udp-batch off", False)):
        sky = Skydns(env.workdir, etcd.endpoint, 1, name=f"batch-{'on' if on else 'off'}",
                     Dns={"udp-batch": on})
        env.stack.callback(sky.stop)
        _log(f"{label}: starting")
        sky.start(env.server_cores, ds.single_name(0))
        if env.server_cores:
            sky.pin(env.one_core)
        servers.append((label, sky.port, sky.worker_pids))
    replies = env.workdir / "replies-batch.marshal"
    count = precompute(servers[0][1], qfile, replies)
    _log(f"minimal responder: {count} replies precomputed from skydns")
    name, qtype = qfile.read_text().split("\n", 1)[0].split()
    for label, extra in (("minimal responder", []), ("minimal responder, batched", ["--batch"])):
        port = free_port()
        cmd = [sys.executable, str(ROOT / "bench" / "minimal_responder.py"),
               "--port", str(port), "--replies", str(replies), *extra]
        proc = spawn(cmd, env.workdir / f"minimal{'-'.join(extra)}.log", env.one_core)
        env.stack.callback(stop, proc)
        wait_answer(port, name, time.monotonic() + 30, proc, qtype=qtype, any_rcode=True)
        servers.append((label, port, [proc.pid]))
    if Nsd.installed():
        zonefile = env.workdir / "bench-batch.zone"
        zonefile.write_text(zone_text(ds))
        nsd = Nsd(env.workdir, zonefile, label="nsd batch")
        env.stack.callback(nsd.stop)
        _log("nsd: starting")
        try:
            nsd.start(env.one_core, ds.single_name(0))
            servers.append(("nsd", nsd.port, lambda nsd=nsd: nsd.pids))
        except RuntimeError as err:
            _log(f"nsd: did not start ({err}); left out, see {nsd.dir}/server.log")
    else:
        _log("nsd: not installed, left out")
    return servers


def bench_batch(env, etcd, ds, qfile: Path) -> dict:
    from run import measure  # the same measurement as the cached table's

    servers = start_servers(env, etcd, ds, qfile)
    for label, port, _pids in servers:
        _log(f"{label}: warm-up pass")
        env.run_dnsperf(port, qfile, runs=1)
    runs: dict[tuple[str, str], list[dict]] = {}
    for n in range(env.args.rounds):
        for load, options in LOADS:
            for label, port, pids in servers:
                _log(f"round {n + 1}/{env.args.rounds}: {load}: {label}, "
                     f"{env.args.duration:g} s")
                pids = pids() if callable(pids) else pids
                row = measure(env, label, port, pids, qfile, **options)
                runs.setdefault((load, label), []).append(row)
    _log(f"lone queries: {LONE_ROUNDS} rounds of {LONE_QUERIES} per server")
    lone = lone_rounds(servers, qfile, LONE_ROUNDS, LONE_QUERIES)
    rows = []
    for (load, label), rounds in runs.items():
        row = {"load": load, "config": label, "rounds": rounds,
               "lost": sum(r["lost"] for r in rounds)}
        for key in ("qps", "cpu_us_per_query"):
            row[key] = round(statistics.median(r[key] for r in rounds), 2)
        row["latency_ms"] = {k: round(statistics.median(r["latency_ms"][k] for r in rounds), 3)
                             for k in ("p50", "p99") if all(k in r["latency_ms"] for r in rounds)}
        rows.append(row)
    return {"rows": rows, "ratios": ratios(runs), "lone": lone}


def cpu_ns(pids: list[int]) -> int:
    """CPU time of the processes (every thread) in nanoseconds: /proc's schedstat, where
    utime and stime count 10 ms ticks, too coarse for a few hundred queries."""
    total = 0
    for pid in pids:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
    return total


def lone_rounds(servers, qfile: Path, rounds: int, queries: int) -> dict:
    """Lone queries (the next sent when the last was answered) to each server in turn, the
    order reversed every round: per server and round the median round trip and the server's
    CPU per query; then, for udp-batch on against off, the differences round by round (load
    that drifts hits both alike within a round)."""
    lines = [line.split() for line in qfile.read_text().splitlines()[:100] if line.strip()]
    asked = [question(name, qtype) for name, qtype in lines]
    per: dict[str, list[tuple[float, float]]] = {label: [] for label, _, _ in servers}
    for n in range(rounds):
        for label, port, pids in (servers if n % 2 == 0 else servers[::-1]):
            pids = pids() if callable(pids) else pids
            per[label].append(_lone_round(port, pids, asked, queries))
    out = {"rounds": rounds, "queries": queries, "servers": {}}
    for label, rows in per.items():
        out["servers"][label] = {
            "p50_us": round(statistics.median(r[0] for r in rows), 1),
            "cpu_us_per_query": round(statistics.median(r[1] for r in rows), 2)}
    on, off = per.get("skydns, udp-batch on"), per.get("skydns, udp-batch off")
    if on and off:
        rtt = [a[0] - b[0] for a, b in zip(on, off, strict=True)]
        cpu = [a[1] - b[1] for a, b in zip(on, off, strict=True)]
        out["on - off"] = {"p50_us": round(statistics.median(rtt), 1),
                           "cpu_us_per_query": round(statistics.median(cpu), 2),
                           "on better (p50, cpu)": [sum(d < 0 for d in rtt),
                                                    sum(d < 0 for d in cpu)]}
    return out


def _lone_round(port: int, pids: list[int], asked: list[bytes], queries: int):
    """(median round trip in us, server CPU us per query) over `queries` lone queries."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("127.0.0.1", port))
        sock.settimeout(1.0)
        rtts = []
        cpu0 = cpu_ns(pids)
        for i in range(queries):
            msg = struct.pack("!HHHHHH", i, 0x0100, 1, 0, 0, 0) + asked[i % len(asked)]
            start = time.perf_counter_ns()
            sock.send(msg)
            try:
                while sock.recv(65535)[:2] != msg[:2]:  # a late reply to an earlier one
                    pass
            except TimeoutError:
                continue  # lost: left out of the times
            rtts.append(time.perf_counter_ns() - start)
        cpu = cpu_ns(pids) - cpu0
    return statistics.median(rtts) / 1000, cpu / queries / 1000


def ratios(runs: dict) -> dict:
    """Per-round ratios of CPU per query (medians), within the same round only."""
    out = {}
    pairs = [("batch on / nsd", "skydns, udp-batch on", "nsd"),
             ("batch off / nsd", "skydns, udp-batch off", "nsd"),
             ("batch on / batch off", "skydns, udp-batch on", "skydns, udp-batch off"),
             ("batch on / minimal responder", "skydns, udp-batch on", "minimal responder"),
             ("batch on / minimal responder, batched", "skydns, udp-batch on",
              "minimal responder, batched")]
    for load, _ in LOADS:
        for name, a, b in pairs:
            x, y = runs.get((load, a)), runs.get((load, b))
            if not x or not y:
                continue
            per_round = [ra["cpu_us_per_query"] / rb["cpu_us_per_query"]
                         for ra, rb in zip(x, y, strict=True) if rb["cpu_us_per_query"]]
            if per_round:
                out[f"{load}: {name}"] = {"median": round(statistics.median(per_round), 2),
                                          "rounds": [round(r, 2) for r in per_round]}
    return out


def report(res: dict, args: dict) -> list[str]:
    from run import _table

    out = [f"\nCached UDP, batching on and off: median of {args['rounds']} interleaved rounds "
           f"of {args['duration']:g} s, every server on one core; load: dnsperf -c "
           f"{args['clients']} -q {args['outstanding']}, one in flight: dnsperf -c 1 -q 1"]
    out.append(_table(
        ["load", "config", "qps", "p50 ms", "p99 ms", "lost", "CPU us/query"],
        [[r["load"], r["config"], r["qps"], r["latency_ms"].get("p50"),
          r["latency_ms"].get("p99"), r["lost"], r["cpu_us_per_query"]] for r in res["rows"]]))
    for name, ratio in res["ratios"].items():
        goal = f" (target <= {TARGET_VS_NSD})" if name == "load: batch on / nsd" else ""
        out.append(f"CPU per query, {name}: {ratio['median']}x, rounds {ratio['rounds']}{goal}")
    lone = res.get("lone")
    if lone:
        out.append(f"\nLone queries from the harness: {lone['rounds']} alternating rounds of "
                   f"{lone['queries']} per server (median of the rounds; CPU from schedstat)")
        out.append(_table(["config", "p50 us", "CPU us/query"],
                          [[label, r["p50_us"], r["cpu_us_per_query"]]
                           for label, r in lone["servers"].items()]))
        diff = lone.get("on - off")
        if diff:
            better = diff["on better (p50, cpu)"]
            out.append(f"udp-batch on - off, round by round (median): p50 {diff['p50_us']:+} us, "
                       f"CPU {diff['cpu_us_per_query']:+} us/query; on better in {better[0]} "
                       f"(p50) and {better[1]} (CPU) of {lone['rounds']} rounds (target: on "
                       "no worse)")
    return out
