"""The hot set's cost under a random-subdomain flood, measured in process (issue #17).

dnsperf's CPU per query mixes the hot and random halves of a flood run, and subtracting the
random names' cost measured alone was too noisy to say anything (0.48x-2.07x). Here only the
hot queries are timed: each goes through the real UDP handler (`UdpServer.datagram_received`:
front, key, cache, miss path), with `perf_counter_ns` around that one call, in two runs that
send the same hot queries in the same order:

- alone: hot queries back to back;
- flood: each hot query follows a never-repeated random name under the zone (a miss that
  answers NXDOMAIN: through the flood path, plainnx.py, which builds and caches nothing).

Only the hot calls are summed, so the random names' own cost is left out and what remains is
what the flood does to the hot set: evictions, the CPU caches it pollutes, the garbage
collections its allocations trigger. The send is a no-op sink (no sockets): the kernel's
share per query is the same in both runs and would only dilute the ratio. Runs alternate
(alone, flood, alone, ...) so that other load on the machine hits both alike; the ratio is
the median over rounds of (flood total / alone total). Calls above 200 µs (the process was
preempted, not slowed) are dropped from both, and counted.

Back-to-back hot calls in a loop are the best case a CPU cache can have: in a server the
event loop and the kernel's receive and send run between any two queries. So a third part
(`hot_set_in_server`) runs the same handler in a running server (uvloop, a real UDP socket,
dnsperf on the other core at a fixed rate) and times the hot calls there: the hot set alone
at the hot rate, with the flood added (twice the packets), and alone at that doubled rate.

    .venv/bin/python bench/flood.py [--rounds 9] [--hot-queries 200000] [--no-server]
"""

from __future__ import annotations

import gc
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dataset import ZONE, DataSet  # noqa: E402

HOT_NAMES = 1000  # as the dnsperf flood scenario (miss.py)
PREEMPTED_NS = 200_000


class _Sink:
    """The transport: replies are counted, not sent; or, with `sock`, sent for real to a
    loopback socket nobody reads (the kernel's send path runs, the receiver drops)."""

    def __init__(self, sock=None, to=None):
        self.sent = 0
        self.sock, self.to = sock, to

    def sendto(self, data, addr):
        self.sent += 1
        if self.sock is not None:
            self.sock.sendto(data, self.to)

    def is_closing(self):
        return False


def _query(name: str, qid: int) -> bytes:
    """A query as dnsperf sends it: RD set, no EDNS."""
    out = bytearray(qid.to_bytes(2, "big") + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00")
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return bytes(out + b"\x00\x00\x01\x00\x01")


def _server(ds: DataSet):
    """An engine with the data set loaded (default config, the bench zone) and its UDP
    handler, not yet bound to a transport."""
    from dnsserver.engine import Engine
    from dnsserver.front.udp import UdpServer
    from skydns.config import load_config
    from skydns.keys import key_to_path
    from skydns.records import parse_record

    cfg = load_config(None, "dns")
    cfg["Dns"]["dns-domain"] = ZONE
    engine = Engine(cfg)
    engine.state.load(
        [parse_record(k.decode(), key_to_path(k.decode()), v) for k, v in ds.records()], 1)
    return engine, UdpServer(engine)


def hot_set_under_flood(ds: DataSet, rounds: int = 9, hot_queries: int = 200_000,
                        send: bool = False) -> dict:
    engine, server = _server(ds)
    if send:
        import socket

        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        drop = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        drop.bind(("127.0.0.1", 0))
        sink = _Sink(sock, drop.getsockname())
    else:
        sink = _Sink()
    server.connection_made(sink)
    handle = server.datagram_received
    addr = ("127.0.0.1", 53000)

    rng = random.Random(7)
    hot = [ds.single_name(rng.randrange(ds.names)) for _ in range(HOT_NAMES)]
    for name in hot:  # warm: a miss, then a hit that puts it in the front
        handle(_query(name, 1), addr)
        handle(_query(name, 2), addr)
    hot_wire = [_query(hot[rng.randrange(HOT_NAMES)], rng.getrandbits(16))
                for _ in range(hot_queries)]
    serial = iter(range(10**9))

    def random_wire() -> list[bytes]:
        return [_query(f"w{next(serial)}x{rng.getrandbits(32):08x}.bench.{ZONE}",
                       rng.getrandbits(16)) for _ in range(hot_queries)]

    def run(flood: list[bytes] | None) -> tuple[int, int]:
        clock = time.perf_counter_ns
        total = dropped = 0
        for data, noise in zip(hot_wire, flood or [None] * len(hot_wire), strict=True):
            if noise is not None:
                handle(noise, addr)
            t0 = clock()
            handle(data, addr)
            dt = clock() - t0
            if dt < PREEMPTED_NS:
                total += dt
            else:
                dropped += 1
        return total, dropped

    ratios, alone_us, flood_us, dropped = [], [], [], [0, 0]
    misses_before = engine.cache.evictions
    hits_before = engine.cache.hits
    for _ in range(rounds):
        flood = random_wire()  # built outside the timed calls
        gc.collect()
        a, da = run(None)
        gc.collect()
        f, df = run(flood)
        del flood
        alone_us.append(a / (hot_queries - da) / 1000)
        flood_us.append(f / (hot_queries - df) / 1000)
        ratios.append(flood_us[-1] / alone_us[-1])
        dropped[0] += da
        dropped[1] += df
    hot_hits = engine.cache.hits - hits_before  # the front counts its hits on the entries too
    if send:
        sock.close()
        drop.close()
    return {
        "send": send,
        "hot_us_alone": round(statistics.median(alone_us), 3),
        "hot_us_flood": round(statistics.median(flood_us), 3),
        "ratio": round(statistics.median(ratios), 3),
        "ratios": [round(r, 3) for r in ratios],
        "hot_queries_per_run": hot_queries,
        "rounds": rounds,
        "preempted_dropped": {"alone": dropped[0], "flood": dropped[1]},
        "hot_hit_rate": round(min(1.0, hot_hits / (2 * rounds * hot_queries)), 4),
        "evictions": engine.cache.evictions - misses_before,
        "negative_entries": len(engine.cache.negatives),
        "positive_entries": len(engine.cache.entries),
    }


def hot_set_in_server(ds: DataSet, rounds: int = 3, duration: float = 8.0,
                      rate: int = 8000) -> dict:
    """The same question in a running server: uvloop, a real UDP socket, dnsperf on the other
    core sending the hot set at `rate` q/s, alone and then with as many never-repeated random
    names interleaved (so the hot load is the same). The handler time of the hot queries alone
    is summed, now with the event loop and the kernel's receive and send between them as in
    production; the process's whole CPU per query is reported beside it."""
    import asyncio
    import os
    import tempfile

    import dnsperf as perf
    import uvloop

    perf.ensure_dnsperf()
    cores = sorted(os.sched_getaffinity(0))
    server_cores, client_cores = ({cores[0]}, cores[1:2]) if len(cores) > 1 else (None, None)
    engine, server = _server(ds)
    rng = random.Random(7)
    hot = [ds.single_name(rng.randrange(ds.names)) for _ in range(HOT_NAMES)]
    hot_keys = {_query(name, 0)[2:] for name in hot}  # as dnsperf asks: RD, no EDNS
    acc = [0, 0]
    handle = server.datagram_received

    def timed(data, addr, clock=time.perf_counter_ns):
        if data[2:] in hot_keys:
            t0 = clock()
            handle(data, addr)
            acc[0] += clock() - t0
            acc[1] += 1
        else:
            handle(data, addr)

    server.datagram_received = timed  # before the transport binds the method
    work = Path(tempfile.mkdtemp(prefix="skydns-flood-"))
    hot_file = work / "hot.txt"
    mixed_file = work / "mixed.txt"
    n = int(rate * duration * 1.2)
    hot_file.write_text("".join(f"{hot[rng.randrange(HOT_NAMES)]} A\n" for _ in range(n)))
    lines = []
    for i in range(n):
        lines.append(f"{hot[rng.randrange(HOT_NAMES)]} A\n")
        lines.append(f"f{i}x{rng.getrandbits(32):08x}.bench.{ZONE} A\n")
    mixed_file.write_text("".join(lines))

    async def serve() -> dict:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: server,
                                                           local_addr=("127.0.0.1", 0))
        port = transport.get_extra_info("sockname")[1]

        async def one(qfile: Path, qps: int) -> dict:
            cmd = perf.command(port, qfile, duration=duration, clients=1, outstanding=200,
                               rate=qps)
            acc[0] = acc[1] = 0
            cpu0 = time.process_time()
            res = await loop.run_in_executor(None, perf.run, cmd, work / "dnsperf.out",
                                             client_cores, duration + 60)
            cpu = time.process_time() - cpu0
            return {"hot_us": acc[0] / max(1, acc[1]) / 1000, "hot": acc[1],
                    "cpu_us_per_query": cpu / max(1, res.completed) * 1e6,
                    "lost": res.lost, "completed": res.completed}

        await one(hot_file, rate)  # warm: every hot name cached, its front key set
        runs: dict[str, list] = {"alone": [], "flood": [], "alone_2x": []}
        for _ in range(rounds):
            runs["alone"].append(await one(hot_file, rate))
            runs["flood"].append(await one(mixed_file, 2 * rate))
            runs["alone_2x"].append(await one(hot_file, 2 * rate))
        transport.close()
        return runs

    if server_cores:
        os.sched_setaffinity(0, server_cores)
    try:
        runs = uvloop.run(serve())
    finally:
        if server_cores:
            os.sched_setaffinity(0, set(cores))
    ratios = [f["hot_us"] / a["hot_us"] for a, f in zip(runs["alone"], runs["flood"],
                                                         strict=True)]
    ratios_2x = [f["hot_us"] / a["hot_us"] for a, f in zip(runs["alone_2x"], runs["flood"],
                                                            strict=True)]
    med = {k: {m: round(statistics.median(r[m] for r in v), 3)
               for m in ("hot_us", "cpu_us_per_query")} for k, v in runs.items()}
    return {
        "rate": rate, "duration": duration, "rounds": rounds,
        "hot_us_alone": med["alone"]["hot_us"], "hot_us_flood": med["flood"]["hot_us"],
        "ratio": round(statistics.median(ratios), 3), "ratios": [round(r, 3) for r in ratios],
        "hot_us_alone_2x": med["alone_2x"]["hot_us"],
        "ratio_2x": round(statistics.median(ratios_2x), 3),
        "ratios_2x": [round(r, 3) for r in ratios_2x],
        "cpu_us_alone_2x": med["alone_2x"]["cpu_us_per_query"],
        "cpu_us_alone": med["alone"]["cpu_us_per_query"],
        "cpu_us_flood": med["flood"]["cpu_us_per_query"],
        "lost": {k: sum(r["lost"] for r in v) for k, v in runs.items()},
        "hot_timed": {k: sum(r["hot"] for r in v) for k, v in runs.items()},
        "plain_nx_served": engine.plain_nx.served,
        "negative_entries": len(engine.cache.negatives),
    }


def report_server(res: dict) -> list[str]:
    return [
        f"Hot set under a 50% random-name flood, in a running server (uvloop, real UDP, "
        f"dnsperf at {res['rate']} hot q/s alone, then + {res['rate']} random q/s; "
        f"{res['rounds']} rounds of {res['duration']:g} s): handler us per hot query alone "
        f"{res['hot_us_alone']}, under the flood {res['hot_us_flood']}: {res['ratio']}x "
        f"(target <= 1.1), rounds {res['ratios']}; against the hot set alone at the same "
        f"packet rate ({2 * res['rate']} q/s: {res['hot_us_alone_2x']} us) "
        f"{res['ratio_2x']}x, rounds {res['ratios_2x']}; whole process CPU us per query: hot "
        f"alone {res['cpu_us_alone']}, at the same packet rate {res['cpu_us_alone_2x']}, "
        f"mixed {res['cpu_us_flood']}; lost {res['lost']}; "
        f"random names answered by the flood path {res['plain_nx_served']}, negative "
        f"entries cached {res['negative_entries']}"
    ]


def report(res: dict) -> list[str]:
    send = "real sendto to a loopback socket" if res["send"] else "send not counted"
    return [
        "Hot set under a 50% random-name flood, in process (UDP handler, hot calls timed "
        f"alone, {send}; {res['rounds']} alternating rounds of "
        f"{res['hot_queries_per_run']} hot queries): us per hot query alone "
        f"{res['hot_us_alone']}, under the flood {res['hot_us_flood']}: "
        f"{res['ratio']}x (target <= 1.1), rounds {res['ratios']}; hot hit rate "
        f"{res['hot_hit_rate']}; {res['evictions']} evictions, all negative "
        f"({res['positive_entries']} positive entries kept); calls dropped as preempted "
        f"{res['preempted_dropped']}"
    ]


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--hot-queries", type=int, default=200_000)
    p.add_argument("--names", type=int, default=10_000)
    p.add_argument("--json", help="also save the results here")
    p.add_argument("--no-server", action="store_true", help="skip the running-server part")
    p.add_argument("--server-rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=8.0, help="seconds per dnsperf run")
    p.add_argument("--rate", type=int, default=8000, help="hot queries per second")
    a = p.parse_args()
    ds = DataSet(names=a.names, multi=8, srv=100)
    results = [hot_set_under_flood(ds, a.rounds, a.hot_queries, send) for send in (False, True)]
    for res in results:
        print("\n".join(report(res)))
    if not a.no_server:
        results.append(hot_set_in_server(ds, a.server_rounds, a.duration, a.rate))
        print("\n".join(report_server(results[-1])))
    if a.json:
        import json

        Path(a.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
