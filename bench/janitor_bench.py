"""How fast a DOWN flip in etcd leaves a PowerDNS Recursor's answers with skydns-janitor running.

    .venv/bin/python bench/janitor_bench.py [--flips 50] [--names 1000] [--json out.json]

Starts a real etcd, skydns, pdns_recursor (forwarding the zone to skydns, API on) and the
janitor, all on 127.0.0.1. Each round caches web.bench.test. (two addresses, TTL 300 s) in
the recursor, writes status DOWN for one address, and polls the recursor every 2 ms until its
answer no longer holds it; then the same for the flip back UP. The time runs from just before
the etcd write (etcdctl, so it includes starting that process: an upper bound). Target (issue
19): p99 under 1 s; without the janitor it is the record's TTL. `--names` adds that many
other records (each with its own address) so the janitor's index is not trivially small.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from dnstest import Skydns  # noqa: E402  (tests/ is not a package)
from etcdtest import EtcdServer, wait_for  # noqa: E402
from recursortest import Janitor, PdnsRecursor, recursor_missing  # noqa: E402

NAME = "web.bench.test."
TTL = 300


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"n": len(ordered), "p50_ms": at(0.50) * 1000, "p99_ms": at(0.99) * 1000,
            "max_ms": ordered[-1] * 1000}


def until(recursor: PdnsRecursor, want: list[str], timeout: float = 30.0) -> float:
    start = time.monotonic()
    while recursor.answer(NAME) != want:
        if time.monotonic() - start > timeout:
            raise SystemExit(f"recursor did not answer {want} within {timeout} s")
        time.sleep(0.002)
    return time.monotonic()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flips", type=int, default=50, help="DOWN (and back UP) rounds")
    parser.add_argument("--names", type=int, default=1000, help="other records in the zone")
    parser.add_argument("--gap", type=float, default=1.0,
                        help="seconds between flips: the janitor purges a name at most once "
                        "per [Janitor] coalesce and repeats each purge after settle, so flips "
                        "closer than those measure the coalescing, not the path")
    parser.add_argument("--json", metavar="PATH", help="also write the results here")
    args = parser.parse_args()
    missing = recursor_missing()
    if missing:
        print(f"janitor bench: {missing}", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="skydns-janitor-bench-"))
    etcd = EtcdServer(work / "etcd")
    etcd.start()
    procs = []
    try:
        items = {f"/skydns/test/bench/web/a{i}": {"host": f"10.0.0.{i}", "ttl": TTL}
                 for i in (1, 2)}
        items.update({f"/skydns/test/bench/other/n{i}": {"host": f"10.1.{i // 250}.{i % 250}",
                                                         "ttl": TTL}
                      for i in range(args.names)})
        etcd.put_many(items)
        skydns = Skydns(etcd.endpoint, Dns={"dns-domain": "bench.test."})
        skydns.ready = lambda: skydns.proc.poll() is None and _answers(skydns)
        skydns.start()
        procs.append(skydns)
        recursor = PdnsRecursor(skydns.port, zones=("bench.test.",)).start()
        procs.append(recursor)
        janitor = Janitor(etcd.endpoint, [recursor], domain="bench.test.").start()
        procs.append(janitor)
        both, one = ["10.0.0.1", "10.0.0.2"], ["10.0.0.1"]
        wait_for(lambda: recursor.answer(NAME) == both, timeout=20)

        down, up = [], []
        for _ in range(args.flips):
            time.sleep(args.gap)
            recursor.answer(NAME)  # cached now
            start = time.monotonic()
            etcd.put("/skydns/monitor/status/10.0.0.2", {"status": "DOWN"})
            down.append(until(recursor, one) - start)
            time.sleep(args.gap)
            recursor.answer(NAME)
            start = time.monotonic()
            etcd.put("/skydns/monitor/status/10.0.0.2", {"status": "UP"})
            up.append(until(recursor, both) - start)
        result = {"down": percentiles(down), "up": percentiles(up), "names": args.names + 2,
                  "ttl_s": TTL, "gap_s": args.gap}
    finally:
        for proc in reversed(procs):
            proc.stop()
        etcd.stop()
        shutil.rmtree(work, ignore_errors=True)

    print(f"DOWN/UP flip in etcd -> recursor answer, {result['names']} records, TTL {TTL} s, "
          f"{args.gap:g} s between flips (without the janitor: up to the TTL)")
    print(f"{'flip':6} {'n':>4} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for kind in ("down", "up"):
        r = result[kind]
        print(f"{kind:6} {r['n']:>4} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['max_ms']:>8.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def _answers(skydns: Skydns) -> bool:
    try:
        return skydns.addresses(NAME, timeout=0.5) == ["10.0.0.1", "10.0.0.2"]
    except Exception:
        return False


if __name__ == "__main__":
    sys.exit(main())
