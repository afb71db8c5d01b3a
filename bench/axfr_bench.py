"""Zone transfer of a big zone: transfer time, and UDP answer latency on the same worker meanwhile.

    .venv/bin/python bench/axfr_bench.py [--records 20000]

Starts a real etcd and one `skydns` worker on free 127.0.0.1 ports, loads N address records
(100 per service name), transfers the zone once with dnspython while a second thread asks
`svc0.example.test A` over UDP as fast as answers come, and prints the transfer time and the
latency of those answers (p50/p99/max). Figures go in bench/README.md, not in tests.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import dns.message  # noqa: E402
import dns.query  # noqa: E402

from dnstest import Skydns  # noqa: E402
from etcdtest import EtcdServer  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20000)
    args = parser.parse_args()
    n = args.records
    with tempfile.TemporaryDirectory() as tmp, EtcdServer(Path(tmp) / "etcd") as etcd:
        etcd.put_many({f"/skydns/test/example/svc{i // 100}/i{i}":
                       {"host": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"}
                       for i in range(n)})
        srv = Skydns(etcd.endpoint, Dns={"axfr-allow": "127.0.0.0/8", "cacheSize": 0})
        srv.start()
        try:
            latencies: list[float] = []
            done = threading.Event()

            def ask():
                q = dns.message.make_query("svc0.example.test.", "A")
                while not done.is_set():
                    t = time.perf_counter()
                    try:
                        dns.query.udp(q, "127.0.0.1", port=srv.port, timeout=30)
                    except Exception:
                        continue
                    latencies.append(time.perf_counter() - t)

            asker = threading.Thread(target=ask)
            asker.start()
            t0 = time.perf_counter()
            rrs = 0
            for msg in dns.query.xfr("127.0.0.1", "example.test.", port=srv.port, lifetime=3600):
                rrs += sum(len(r) for r in msg.answer)
            took = time.perf_counter() - t0
            done.set()
            asker.join()
        finally:
            srv.stop()
    lat = sorted(latencies) or [0.0]
    print(f"records {n}: transferred {rrs} RRs in {took:.2f} s; "
          f"{len(latencies)} answers meanwhile, latency p50 "
          f"{statistics.median(lat) * 1000:.1f} ms, p99 {lat[int(len(lat) * 0.99) - 1] * 1000:.1f}"
          f" ms, max {lat[-1] * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
