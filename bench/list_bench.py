"""`skydns dump` and the PowerDNS backend's `list` of a big zone: time, and the longest stretch
of `list` work without a pause (how long the backend's loop would not answer lookups).

    .venv/bin/python bench/list_bench.py [--records 100000]

In process (no etcd, no sockets: the load from etcd is the same as before and not measured):
N address records, 100 per service name as bench/axfr_bench.py writes them, one address in
a hundred DOWN. Measured:

- dump: `dnsserver.dump.rows` to the printed text (as `skydns dump` writes it), cold;
- list cold: `Session.feed_steps` of a `list` request to its reply bytes (the first list,
  which makes the backend's per-name copy), with the longest gap between pauses;
- list warm: the same again (every name from the copy).

(`--old`, the dnslib `served_rrs` it was once compared with, went with issue 27: every name
now comes from the one rule set, rules.answer.) Figures go in bench/README.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from dnsserver.dump import rows  # noqa: E402
from dnsserver.zone.context import ZoneSettings  # noqa: E402
from dnsserver.zone.state import ZoneState  # noqa: E402
from pdnsbackend.protocol import PdnsBackend, Session  # noqa: E402
from skydns.keys import key_to_path  # noqa: E402
from skydns.records import parse_record  # noqa: E402

LIST = b'{"method":"list","parameters":{"zonename":"example.test.","domain_id":-1}}\n'


def make_state(n: int) -> ZoneState:
    state = ZoneState(ZoneSettings(domain="example.test.", ttl=30, min_ttl=10))
    records = []
    for i in range(n):
        key = f"/skydns/test/example/svc{i // 100}/i{i}"
        value = json.dumps({"host": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"}).encode()
        records.append(parse_record(key, key_to_path(key), value))
    state.load(records, 7)
    state.load_health((f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", "DOWN")
                      for i in range(0, n, 100))
    gc.freeze()  # as sync.py does after a load
    return state


def dump_text(state: ZoneState) -> tuple[int, int]:
    lines = size = 0
    for name, ttl, rtype, data, _, health in rows(state, "example.test."):
        line = f"{name} {ttl} IN {rtype} {data}" + (f" ; {health}" if health else "") + "\n"
        lines += 1
        size += len(line)
    return lines, size


GC_PAUSES: list[float] = []


def _gc_timer(phase: str, info: dict) -> None:
    if phase == "start":
        _gc_timer.start = time.perf_counter()
    elif info["generation"] == 2:
        GC_PAUSES.append(time.perf_counter() - _gc_timer.start)


def listed(backend: PdnsBackend) -> str:
    """Reply bytes, the longest gap between pauses (and at which step), the longest full
    cyclic-GC pass meanwhile."""
    GC_PAUSES.clear()
    steps = Session(backend).feed_steps(LIST)
    clock = time.perf_counter
    gap, at, n = 0.0, 0, 0
    last = clock()
    while True:
        try:
            next(steps)
        except StopIteration as done:
            value = done.value
            stopped = True
        else:
            stopped = False
        now = clock()
        if now - last > gap:
            gap, at = now - last, n
        last = now
        if stopped:
            size = sum(map(len, value))
            break
        n += 1
    gc_max = max(GC_PAUSES, default=0.0)
    return (f"{size} bytes, {n} steps, longest gap {gap * 1000:.1f} ms at step {at}, "
            f"{len(GC_PAUSES)} full GC passes (longest {gc_max * 1000:.1f} ms)")


def timed(label: str, fn, *args):
    start = time.perf_counter()
    cpu = time.process_time()
    result = fn(*args)
    wall = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"{label:<12} {wall:8.2f} s  cpu {time.process_time() - cpu:7.2f} s  {result}  "
          f"max RSS {rss} MiB", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()
    start = time.perf_counter()
    state = make_state(args.records)
    print(f"load {args.records} records: {time.perf_counter() - start:.1f} s", flush=True)
    timed("dump", dump_text, state)
    backend = PdnsBackend(state)
    gc.callbacks.append(_gc_timer)
    timed("list cold", listed, backend)
    timed("list warm", listed, backend)
    return 0


if __name__ == "__main__":
    sys.exit(main())
