"""What confirming a DOWN costs: detection time with and without `[Check] confirm`, and the
etcd writes of a confirmation and of the steady state.

    .venv/bin/python bench/confirm_bench.py                  # both modes, 3 rounds each (~1 min)
    .venv/bin/python bench/confirm_bench.py --rounds 10 --json

Real processes: 3 scanners, a scheduler and a DNS server (`skydns`) on a private etcd;
backends on 127.0.0.0/8. `check-interval` 1 s, `rise` 2, `fall` 2. For each mode
(confirm = 1, confirm = 0):

  steady      etcd revisions over --steady seconds with every address UP (every write,
              of anyone, is one revision; lease keep-alives are none): must be 0
  down        a backend stops listening at a random moment of its probe cycle: seconds until
              status/<ip> says DOWN in etcd (status_down) and until the DNS server leaves it
              out of its answer (dns_down, the end to end figure: under 3 s with confirmation)
  writes      etcd revisions from the stop until the DOWN is written and the confirmation
              request is deleted: 1 without confirmation (the status), 4 with it (request,
              verdict, delete of both, status)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from skydns.store import make_client  # noqa: E402

from dnstest import Skydns  # noqa: E402
from etcdtest import EtcdServer, wait_for  # noqa: E402
from healthtest import STATUS, Daemon, Listener, closed_port, reports  # noqa: E402

CONFIRM = "/skydns/monitor/confirm/"
NAME = "bench.example.test."
IPS = ["127.7.0.1", "127.7.0.2", "127.7.0.3"]
CHECK = {"check-interval": 1.0, "rise": 2, "fall": 2, "check-timeout": 1.0,
         "enable-icmp": False}


def summary(values: list[float]) -> dict:
    return {"min_s": round(min(values), 3), "median_s": round(statistics.median(values), 3),
            "max_s": round(max(values), 3), "n": len(values)}


def run_mode(etcd: EtcdServer, confirm: int, rounds: int, steady: float) -> dict:
    etcd.delete_prefix("/skydns")
    port = closed_port(IPS[0])
    backends = {ip: Listener(ip, port).start() for ip in IPS}
    for n, ip in enumerate(IPS):
        etcd.put(f"/skydns/test/example/bench/{n}", {"host": ip, "ttl": 5})
        etcd.put(STATUS + ip, {"ports": [port]})
    dns = Skydns(etcd.endpoint).start()
    daemons = [Daemon("schedule", etcd.endpoint, "sch-b", Log={"log-level": "warning"}).start()]
    daemons += [Daemon("scanner", etcd.endpoint, name, Check={**CHECK, "confirm": confirm},
                       Log={"log-level": "warning"}).start()
                for name in ("scan-b1", "scan-b2", "scan-b3")]
    times: dict[str, list[float]] = {"status_down": [], "dns_down": []}
    writes: list[int] = []
    confirmedby: list = []
    target = IPS[0]
    try:
        wait_for(lambda: set(reports(etcd)) == set(IPS)
                 and all(json.loads(etcd.get(STATUS + ip)).get("status") == "UP" for ip in IPS),
                 timeout=30.0, interval=0.02, message="every address UP")
        revision = etcd.revision()
        time.sleep(steady)
        steady_writes = etcd.revision() - revision

        async def rounds_():
            client = make_client(etcd.etcd_section())

            async def status_is(status, start):
                while True:
                    got = await client.get((STATUS + target).encode())
                    value = json.loads(got.value) if got is not None else {}
                    if value.get("status") == status:
                        confirmedby.append(value.get("confirmedby"))
                        return time.monotonic() - start
                    await asyncio.sleep(0.005)

            async def dns_has(present, start):
                while (target in await asyncio.to_thread(dns.addresses, NAME)) != present:
                    await asyncio.sleep(0.005)
                return time.monotonic() - start

            try:
                for _ in range(rounds):
                    await asyncio.sleep(random.uniform(0, CHECK["check-interval"]))
                    before = await asyncio.to_thread(etcd.revision)
                    backends[target].stop()
                    start = time.monotonic()
                    took_status, took_dns = await asyncio.gather(status_is("DOWN", start),
                                                                 dns_has(False, start))
                    times["status_down"].append(took_status)
                    times["dns_down"].append(took_dns)
                    while await asyncio.to_thread(etcd.get_prefix, CONFIRM):
                        await asyncio.sleep(0.01)
                    writes.append(await asyncio.to_thread(etcd.revision) - before)
                    backends[target] = Listener(target, port).start()
                    await asyncio.gather(status_is("UP", time.monotonic()),
                                         dns_has(True, time.monotonic()))
            finally:
                await client.close()

        asyncio.run(rounds_())
    finally:
        for daemon in daemons:
            daemon.kill()
            daemon.close()
        for backend in backends.values():
            backend.stop()
        dns.stop()
        shutil.rmtree(dns.dir, ignore_errors=True)
    return {"confirm": confirm, "steady_writes": steady_writes, "steady_seconds": steady,
            "status_down": summary(times["status_down"]),
            "dns_down": summary(times["dns_down"]),
            "writes_per_down": sorted(set(writes)),
            "confirmedby": sorted({",".join(c) for c in confirmedby if c})}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="failures per mode (default 3)")
    parser.add_argument("--steady", type=float, default=5.0,
                        help="seconds of all-UP steady state to count writes over")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    results = {"check": CHECK}
    with tempfile.TemporaryDirectory(), EtcdServer() as etcd:
        for confirm in (1, 0):
            results[f"confirm_{confirm}"] = run_mode(etcd, confirm, args.rounds, args.steady)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for section, value in results.items():
            print(f"{section}: {json.dumps(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
