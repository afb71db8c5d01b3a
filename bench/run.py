#!/usr/bin/env python3
"""skydns benchmarks (issue #4): throughput and CPU per query against a minimal responder,
change-to-answer delay under load, and load time and memory for big zones. See bench/README.md.

    bench/run.py                      everything below with defaults (about 2 minutes)
    bench/run.py qps                  cached-answer throughput: skydns 1 worker, N, minimal
    bench/run.py delay                etcd write -> changed answer, under dnsperf load
    bench/run.py load --records 1000000   one worker loading a big zone: time and memory
    bench/run.py miss                 uncached answers, a random-name flood, cached TCP and
                                      many-address names, beside PowerDNS, knotd and nsd,
                                      and uncached CPU per query for each kind of question
    bench/run.py miss --miss-scenarios per-type   that last table alone (a few minutes)
    bench/run.py batch                cached UDP with udp-batch on and off beside nsd and the
                                      minimal responder, under load and one query in flight
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import batch
import delay
import dnsperf
import miss
from dataset import DEFAULT_MIX, DataSet, parse_mix, write_records
from minimal_responder import precompute
from procs import (
    ROOT,
    Skydns,
    cpu_seconds,
    free_port,
    machine_busy,
    memory_kib,
    spawn,
    stop,
    wait_answer,
    write_config,
)

from devup.localetcd import LocalEtcd

TARGET_RATIO = 1.25
TARGET_DELAY_P99_MS = 100
TARGET_LOAD_S = 30
TARGET_RSS_MIB = 1024


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Env:
    """What every benchmark shares: the scratch dir, the cleanup stack, the core split."""

    args: argparse.Namespace
    stack: ExitStack
    workdir: Path
    server_cores: list[int] | None  # None: not pinned (one core, or --no-pin)
    client_cores: list[int] | None

    @property
    def one_core(self) -> list[int] | None:
        """Where a single-process server runs: the first server core."""
        return self.server_cores[:1] if self.server_cores else None

    def start_etcd(self, name: str) -> LocalEtcd:
        etcd = LocalEtcd(self.workdir / name, port=free_port())
        self.stack.callback(etcd.stop)
        etcd.start()
        return etcd

    def run_dnsperf(self, port: int, qfile: Path, **kw) -> dnsperf.PerfResult:
        a = self.args
        kw = {"clients": a.clients, "outstanding": a.outstanding, **kw}
        cmd = dnsperf.command(port, qfile, **kw)
        bound = (kw.get("duration") or 0) + 120
        return dnsperf.run(cmd, self.workdir / "dnsperf.out", self.client_cores, bound)


# --- throughput ------------------------------------------------------------------------------


def measure(env: Env, label: str, port: int, pids: list[int], qfile: Path, **kw) -> dict:
    """`--duration` seconds of dnsperf (`kw`: more dnsperf.command options); the server's CPU
    time comes from /proc."""
    cpu0, (busy0, _), client0 = cpu_seconds(pids), machine_busy(), _children_cpu()
    perf = env.run_dnsperf(port, qfile, duration=env.args.duration, verbose=True, **kw)
    cpu1, (busy1, _), client1 = cpu_seconds(pids), machine_busy(), _children_cpu()
    if not perf.completed:
        raise RuntimeError(f"{label}: dnsperf got no answers (try it by hand on port {port})")
    server, client = cpu1 - cpu0, client1 - client0
    wall = perf.runtime or env.args.duration
    return {
        "config": label,
        "qps": round(perf.qps),
        "completed": perf.completed,
        "lost": perf.lost,
        "rcodes": perf.rcodes,
        "latency_ms": perf.latency_ms,
        "cpu_us_per_query": round(server / perf.completed * 1e6, 2),
        "server_cores": round(server / wall, 2),
        "client_cores": round(client / wall, 2),
        "other_cores": round(max(0.0, busy1 - busy0 - server - client) / wall, 2),
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _median_row(runs: list[dict]) -> dict:
    """Each number the median over the rounds (lost: the sum); the rounds kept as they were."""
    row = {"config": runs[0]["config"], "rounds": runs, "lost": sum(r["lost"] for r in runs)}
    for key in ("qps", "cpu_us_per_query", "server_cores", "client_cores", "other_cores"):
        row[key] = round(statistics.median(r[key] for r in runs), 2)
    row["qps"] = round(row["qps"])
    row["latency_ms"] = {k: round(statistics.median(r["latency_ms"][k] for r in runs), 3)
                         for k in runs[0]["latency_ms"]}
    return row


def bench_qps(env: Env, etcd: LocalEtcd, ds: DataSet, qfile: Path) -> dict:
    """skydns with 1 worker, with --workers, and the minimal responder, all up at once (idle
    while another is measured), each warmed by one pass through the file, then measured in
    --rounds interleaved rounds so that drifting background load hits all of them alike."""
    servers = []  # (label, port, pids)
    replies = env.workdir / "replies.marshal"
    for workers in dict.fromkeys((1, env.args.workers)):
        label = f"skydns, {workers} worker" + ("s" if workers > 1 else "")
        sky = Skydns(env.workdir, etcd.endpoint, workers)
        env.stack.callback(sky.stop)
        log(f"{label}: starting")
        sky.start(env.server_cores, ds.single_name(0))
        if env.server_cores:
            sky.pin(env.server_cores)
        if workers == 1:
            count = precompute(sky.port, qfile, replies)
            log(f"minimal responder: {count} replies precomputed from skydns")
        servers.append((label, sky.port, sky.worker_pids))

    port = free_port()
    cmd = [sys.executable, str(ROOT / "bench" / "minimal_responder.py"),
           "--port", str(port), "--replies", str(replies)]
    proc = spawn(cmd, env.workdir / "minimal.log", env.one_core)
    env.stack.callback(stop, proc)
    name, qtype = qfile.read_text().split("\n", 1)[0].split()  # it knows only these questions
    wait_answer(port, name, time.monotonic() + 30, proc, qtype=qtype, any_rcode=True)
    servers.append(("minimal responder", port, [proc.pid]))

    for label, port, _ in servers:
        log(f"{label}: warm-up pass")
        env.run_dnsperf(port, qfile, runs=1)
    runs: dict[str, list[dict]] = {label: [] for label, _, _ in servers}
    for n in range(env.args.rounds):
        for label, port, pids in servers:
            log(f"round {n + 1}/{env.args.rounds}: {label}, {env.args.duration:g} s")
            runs[label].append(measure(env, label, port, pids, qfile))
    rows = [_median_row(r) for r in runs.values()]

    ratios = [a["cpu_us_per_query"] / b["cpu_us_per_query"]
              for a, b in zip(runs[servers[0][0]], runs["minimal responder"], strict=True)]
    return {"rows": rows, "cpu_ratio_1worker_vs_minimal": round(statistics.median(ratios), 2),
            "cpu_ratio_per_round": [round(r, 2) for r in ratios]}


# --- change-to-answer delay ------------------------------------------------------------------


def bench_delay(env: Env, etcd: LocalEtcd, ds: DataSet, qfile: Path) -> dict:
    a = env.args
    sky = Skydns(env.workdir, etcd.endpoint, a.delay_workers)
    env.stack.callback(sky.stop)
    sky.start(env.server_cores, ds.single_name(0))
    if env.server_cores:
        sky.pin(env.server_cores)
    env.run_dnsperf(sky.port, qfile, runs=1)  # warm the cache, as the load below assumes
    out = env.workdir / "dnsperf-delay.out"
    bound = int(a.writes * a.delay_timeout + 60)  # never reached: stopped when the writes end
    cmd = dnsperf.command(sky.port, qfile, duration=bound, rate=a.delay_rate,
                          clients=a.clients, outstanding=a.outstanding)
    load = spawn(cmd, out, env.client_cores)
    env.stack.callback(stop, load)
    try:
        time.sleep(1.0)
        log(f"delay: {a.writes} writes while dnsperf sends {a.delay_rate} qps")
        result = delay.measure(etcd.endpoint, sky.port, ds, a.writes, a.delay_timeout)
    finally:
        stop(load, signal.SIGINT)  # dnsperf prints its statistics on SIGINT
        sky.stop()
    perf = dnsperf.parse(out)
    result.update(workers=a.delay_workers, load_qps=round(perf.qps), load_lost=perf.lost)
    return result


# --- load time and memory --------------------------------------------------------------------


def bench_load(env: Env) -> list[dict]:
    etcd = env.start_etcd("etcd-load")
    rows, written = [], 0
    for count in sorted(set(env.args.records)):
        ds = DataSet(names=count, multi=0, srv=0)
        t0 = time.monotonic()
        written += write_records(etcd.endpoint, ds.records(start=written))
        write_s = time.monotonic() - t0
        settle_s = _settle(etcd.proc.pid)
        log(f"load: {written} records in etcd ({write_s:.1f} s, then {settle_s:.1f} s for etcd "
            "to go idle); starting one worker")
        port = free_port()
        conf = write_config(env.workdir / "load.conf", etcd.endpoint, port,
                            Dns={"dns-domain": "skydns.local."}, Log={"log-level": "warning"})
        etcd_cpu0 = cpu_seconds([etcd.proc.pid])
        t0 = time.monotonic()
        proc = spawn([sys.executable, "-m", "dnsserver", "--worker", "--config-file", str(conf)],
                     env.workdir / "load-worker.log", env.one_core)
        env.stack.callback(stop, proc)
        try:
            wait_answer(port, ds.single_name(count - 1), t0 + env.args.load_timeout, proc, 0.01)
            ready_s = time.monotonic() - t0
            mem, worker_cpu = memory_kib(proc.pid), cpu_seconds([proc.pid])
        finally:
            stop(proc)
        rows.append({
            "records": written,
            "etcd_write_s": round(write_s, 1),
            "etcd_settle_s": round(settle_s, 1),
            "ready_s": round(ready_s, 2),
            "worker_cpu_s": round(worker_cpu, 2),
            "etcd_cpu_s": round(cpu_seconds([etcd.proc.pid]) - etcd_cpu0, 2),
            "rss_mib": round(mem["VmRSS"] / 1024),
            "hwm_mib": round(mem["VmHWM"] / 1024),
        })
        log(f"load: {written} records answered after {ready_s:.1f} s, "
            f"VmRSS {mem['VmRSS'] // 1024} MiB")
    etcd.stop()
    return rows


def _settle(pid: int, timeout: float = 60.0) -> float:
    """Wait until etcd is done with the writes (snapshots, compaction): its CPU use drops
    under 5% of a core. A worker restarting in production meets an etcd at rest."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        cpu = cpu_seconds([pid])
        time.sleep(0.5)
        if cpu_seconds([pid]) - cpu < 0.025:
            break
    return time.monotonic() - t0


# --- report ----------------------------------------------------------------------------------


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                  if line.startswith("model name")), platform.machine())
    version = ""
    if shutil.which("dnsperf"):
        version = subprocess.run(["dnsperf", "-h"], capture_output=True, text=True).stdout
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "dnsperf": next((ln.split()[-1] for ln in version.splitlines() if "Version" in ln), "?"),
        "loadavg_at_start": open("/proc/loadavg").read().split()[:3],
        "busy_cores_before": busy_cores(),
    }


def busy_cores(seconds: float = 1.0) -> float:
    """How many cores other work keeps busy: benchmarks on a busy machine read low."""
    busy0, _ = machine_busy()
    time.sleep(seconds)
    busy = round((machine_busy()[0] - busy0) / seconds, 2)
    if busy > 0.25:
        log(f"warning: the machine is busy with other work ({busy} cores); numbers will be low")
    return busy


def _table(headers: list[str], rows: list[list]) -> str:
    cells = [headers] + [["-" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in
                       enumerate(zip(r, widths, strict=True))) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _target(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(res: dict) -> str:
    m, a, out = res["machine"], res["args"], []
    out.append(f"skydns benchmark, {res['date']}: nproc {m['nproc']} ({m['cpu_model']}), "
               f"Python {m['python']}, dnsperf {m['dnsperf']}; {res['pinning']}; "
               f"busy before start: {m['busy_cores_before']} cores")
    if "dataset" in res:
        d = res["dataset"]
        out.append(f"data: {d['records']} records ({d['names']} names, one with {d['multi']} "
                   f"addresses, {d['srv']} SRV names, {d.get('kinds', 0)} each of AAAA, CNAME, "
                   f"MX, TXT); query file: {d['queries']} lines, mix {d['mix']}")
    if "qps" in res:
        q = res["qps"]
        out.append(f"\nCached answers: median of {a['rounds']} interleaved rounds of "
                   f"{a['duration']:g} s after a warm-up pass "
                   f"(dnsperf -c {a['clients']} -q {a['outstanding']})")
        out.append(_table(
            ["config", "qps", "p50 ms", "p99 ms", "max ms", "lost", "CPU us/query",
             "server cores", "client cores", "other cores"],
            [[r["config"], r["qps"], r["latency_ms"].get("p50"), r["latency_ms"].get("p99"),
              r["latency_ms"].get("max"), r["lost"], r["cpu_us_per_query"], r["server_cores"],
              r["client_cores"], r["other_cores"]] for r in q["rows"]]))
        ratio = q["cpu_ratio_1worker_vs_minimal"]
        if ratio:
            out.append(f"CPU per query, skydns 1 worker / minimal responder: {ratio}x, rounds "
                       f"{q['cpu_ratio_per_round']} "
                       f"(target <= {TARGET_RATIO}x: {_target(ratio <= TARGET_RATIO)})")
    if "batch" in res:
        out.extend(batch.report(res["batch"], a))
    if "miss" in res:
        out.extend(miss.report(res["miss"], a))
    if "delay" in res:
        d = res["delay"]
        out.append(f"\nChange-to-answer delay: {d['writes']} etcd writes, skydns "
                   f"{d['workers']} worker, under dnsperf at {d['load_qps']} qps "
                   f"({d['load_lost']} lost)")
        out.append(_table(["writes", "p50 ms", "p99 ms", "max ms", "missed"], [
            [kind, d[kind].get("p50"), d[kind].get("p99"), d[kind].get("max"),
             d["missed"] if kind == "all" else d[kind]["missed"]]
            for kind in ("all", "put", "status")]))
        p99 = d["all"].get("p99")
        if p99 is not None:
            out.append(f"target p99 < {TARGET_DELAY_P99_MS} ms: "
                       f"{_target(p99 < TARGET_DELAY_P99_MS and not d['missed'])}")
    if "load" in res:
        out.append("\nLoad: one worker, from process start to its first NOERROR answer "
                   "(CPU: the worker's, and etcd's while serving the load)")
        out.append(_table(
            ["records", "etcd write s", "ready s", "worker CPU s", "etcd CPU s", "VmRSS MiB",
             "VmHWM MiB"],
            [[r["records"], r["etcd_write_s"], r["ready_s"], r["worker_cpu_s"], r["etcd_cpu_s"],
              r["rss_mib"], r["hwm_mib"]] for r in res["load"]]))
        for r in res["load"]:
            if r["records"] >= 1_000_000:
                ok = r["ready_s"] < TARGET_LOAD_S and r["hwm_mib"] < TARGET_RSS_MIB
                out.append(f"target for 1M (< {TARGET_LOAD_S} s, < 1 GiB resident): "
                           f"{_target(ok)}")
    return "\n".join(out)


# --- main ------------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    nproc = len(os.sched_getaffinity(0))
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("what", nargs="?", default="all",
                   choices=["all", "qps", "delay", "load", "miss", "batch"])
    p.add_argument("--json", type=Path, metavar="PATH", help="also save the results as JSON")
    p.add_argument("--keep", action="store_true", help="keep the scratch dir (logs, etcd data)")
    g = p.add_argument_group("data set and queries")
    g.add_argument("--names", type=int, default=10_000, help="single-address names")
    g.add_argument("--multi", type=int, default=8, help="addresses of the multi-address name")
    g.add_argument("--srv", type=int, default=100, help="SRV names, two targets each")
    g.add_argument("--type-names", type=int, default=1000,
                   help="names of each kind of the miss part's per-type table: AAAA, CNAME, "
                        "MX, TXT (0: none, and no per-type table)")
    g.add_argument("--queries", type=int, default=20_000, help="lines in the query file")
    g.add_argument("--mix", default=DEFAULT_MIX, help="query kinds and weights (%(default)s)")
    g = p.add_argument_group("load generation")
    g.add_argument("--duration", type=float, default=10, help="seconds per config and round")
    g.add_argument("--rounds", type=int, default=3, help="measurements per config (median)")
    g.add_argument("--miss-duration", type=float, default=5,
                   help="seconds per config and round in the miss part (it has 20 of them)")
    g.add_argument("--miss-scenarios", default="",
                   help="only these scenarios of the miss part, comma separated (e.g. "
                        "'cached TCP,cached'; 'per-type' for the per-type table); default all")
    g.add_argument("--workers", type=int, default=nproc, help="workers of the multi config")
    g.add_argument("--clients", type=int, default=4, help="dnsperf -c (sockets)")
    g.add_argument("--outstanding", type=int, default=100, help="dnsperf -q")
    g.add_argument("--client-cores", type=int, default=1, help="cores kept for dnsperf")
    g.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    g = p.add_argument_group("delay")
    g.add_argument("--writes", type=int, default=1000)
    g.add_argument("--delay-rate", type=int, default=10_000, help="dnsperf -Q meanwhile")
    g.add_argument("--delay-workers", type=int, default=1)
    g.add_argument("--delay-timeout", type=float, default=2.0, help="seconds before a miss")
    g = p.add_argument_group("load")
    g.add_argument("--records", default="100000",
                   type=lambda s: [int(x) for x in s.split(",")],
                   help="zone sizes, comma separated (%(default)s)")
    g.add_argument("--load-timeout", type=float, default=600)
    args = p.parse_args(argv)
    args.mix_weights = parse_mix(args.mix)
    return args


def _split_cores(args) -> tuple[list[int] | None, list[int] | None]:
    cores = sorted(os.sched_getaffinity(0))
    if args.no_pin or len(cores) < 2:
        return None, None
    keep = min(max(1, args.client_cores), len(cores) - 1)
    return cores[:-keep], cores[-keep:]


def run(args: argparse.Namespace, stack: ExitStack) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="skydns-bench-"))
    if args.keep:
        log(f"scratch dir kept: {workdir}")
    else:
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
    server, client = _split_cores(args)
    env = Env(args, stack, workdir, server, client)
    if client:
        os.sched_setaffinity(0, client)  # this process and etcd stay off the server's cores
    res = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine(),
        "pinning": (f"server on cores {server}, dnsperf on {client}" if server
                    else "not pinned"),
        "args": {k: v for k, v in vars(args).items() if k not in ("json", "mix_weights")},
    }
    if args.what in ("all", "qps", "delay", "miss", "batch"):
        etcd = env.start_etcd("etcd")
        ds = DataSet(args.names, args.multi, args.srv, args.type_names)
        t0 = time.monotonic()
        count = write_records(etcd.endpoint, ds.records())
        log(f"data set: {count} records written to etcd in {time.monotonic() - t0:.1f} s")
        qfile = workdir / "queries.txt"
        qfile.write_text("\n".join(ds.query_lines(args.queries, args.mix_weights)) + "\n")
        res["dataset"] = {"records": count, "names": ds.names, "multi": ds.multi,
                          "srv": ds.srv, "kinds": ds.kinds, "queries": args.queries,
                          "mix": args.mix}
        if args.what in ("all", "qps"):
            res["qps"] = bench_qps(env, etcd, ds, qfile)
        if args.what in ("all", "batch"):
            res["batch"] = batch.bench_batch(env, etcd, ds, qfile)
        if args.what in ("all", "miss"):
            res["miss"] = miss.bench_miss(env, etcd, ds, qfile)
        if args.what in ("all", "delay"):
            res["delay"] = bench_delay(env, etcd, ds, qfile)
        etcd.stop()
    if args.what in ("all", "load"):
        res["load"] = bench_load(env)
    return res


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.what != "load":
        dnsperf.ensure_dnsperf()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # unwind and clean up, as Ctrl-C
    try:
        with ExitStack() as stack:
            res = run(args, stack)
    except KeyboardInterrupt:
        log("interrupted; everything stopped")
        return 130
    print(report(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
        log(f"results saved to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
