"""Fuzz a real 2-worker skydns over loopback: mutated valid queries, random bytes and crafted
bombs (tests/hostile.py), with a valid query every N packets whose answer is checked.

    .venv/bin/python bench/fuzz.py [--packets 1000000] [--seconds 600] [--every 100]

Reports packets sent, interleaved answers right, worker crashes (pids that changed),
tracebacks in the log, and the workers' RSS before/after. Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from hostile import bomb_cost, fuzz  # noqa: E402

from dnstest import Skydns  # noqa: E402  (tests/ is not a package)
from etcdtest import EtcdServer, wait_for  # noqa: E402
from proctest import children  # noqa: E402


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def run(packets: int, seconds: float, every: int, workers: int = 2, seed: int = 1,
        etcd: EtcdServer | None = None, bombs: int = 5000, **dns) -> dict:
    own = etcd is None
    if own:
        etcd = EtcdServer(tempfile.mkdtemp(prefix="skydns-fuzz-etcd-"))
        etcd.start()
    try:
        etcd.put("/skydns/test/example/h", {"host": "10.9.0.1"})
        srv = Skydns(etcd.endpoint, Dns={"workers": workers, **dns},
                     Log={"log-level": "info"}).start()
        try:
            wait_for(lambda: len(children(srv.proc.pid)) == workers, timeout=20)
            pids = sorted(children(srv.proc.pid))
            fuzz(srv.port, 2000, 30, every=every, seed=seed + 1, expect="10.9.0.1")  # warm up
            time.sleep(1.5)  # a stats snapshot with the warm-up in it
            before = {pid: rss_kb(pid) for pid in pids}
            start = time.monotonic()
            result = fuzz(srv.port, packets, seconds, every=every, seed=seed, expect="10.9.0.1")
            result["seconds"] = round(time.monotonic() - start, 1)
            result.update(bomb_cost(srv.port, pids, bombs))
            time.sleep(1.5)  # let the workers write their stats snapshots once more
            after = {pid: rss_kb(pid) for pid in pids if Path(f"/proc/{pid}").exists()}
            now = sorted(children(srv.proc.pid))
            logs = srv.logs()
            result.update(
                workers_crashed=len(set(pids) - set(now)),
                tracebacks=logs.count("Traceback"),
                rss_before_kb=before,
                rss_after_kb=after,
                rss_growth_kb=max((after.get(p, 0) - before[p] for p in pids), default=0),
                answers_now=bool(srv.query("h.example.test.", timeout=2).answer),
            )
            return result
        finally:
            srv.stop()
    finally:
        if own:
            etcd.stop()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=600.0, help="stop after this long")
    parser.add_argument("--every", type=int, default=100, help="a valid query every N packets")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--bombs", type=int, default=5000, help="pointer-chain datagrams timed")
    parser.add_argument("--cache-size", type=int, default=None, help="[Dns] cacheSize")
    args = parser.parse_args(argv)
    dns = {} if args.cache_size is None else {"cacheSize": args.cache_size}
    result = run(args.packets, args.seconds, args.every, args.workers, args.seed,
                 bombs=args.bombs, **dns)
    print(json.dumps(result, indent=2))
    ok = (result["workers_crashed"] == 0 and result["tracebacks"] == 0
          and result["good"] == result["probes"] and result["answers_now"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
