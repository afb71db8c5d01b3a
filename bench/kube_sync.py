"""How fast the Kubernetes sync fills etcd, and what one endpoint change costs.

    .venv/bin/python bench/kube_sync.py                       # 5,000 services, 50,000 endpoints
    .venv/bin/python bench/kube_sync.py --services 500 --endpoints 10 --json

A private etcd on a free loopback port, the fake API server (tests/fakekube.py) holding
`--services` headless services with one EndpointSlice of `--endpoints` ready endpoints each
(one named port, so every endpoint is an A record at the service and an SRV record), and the
sync itself (kubeapi.kubesync.KubeSync, in this process, as skydns-kubeapi runs it). Measures:

  initial   seconds from the sync's start to every record key in etcd (polled every 0.2 s),
            and keys written per second
  change    one endpoint turning not ready, then ready again (--changes times): etcd keys
            put/deleted per change, transactions per change, and the time until the key is
            gone from / back in etcd
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from aetcd import rpc  # noqa: E402

from kubeapi.etcd import EtcdStore  # noqa: E402
from kubeapi.kubesync import KubeSync  # noqa: E402
from kubeapi.plan import Layout  # noqa: E402
from skydns.store import prefix_range_end  # noqa: E402

from etcdtest import EtcdServer  # noqa: E402
from fakekube import FakeKubeThread, endpoint_slice, service  # noqa: E402

ZONE = "cluster.bench."
SVC_PREFIX = b"/skydns/bench/cluster/svc/"
TOKEN = "bench-token"


def endpoint_ip(service_index: int, endpoint_index: int) -> str:
    n = service_index * 100 + endpoint_index
    return f"10.{64 + n // 65536}.{n // 256 % 256}.{n % 256}"


def slice_for(i: int, endpoints: int, not_ready: int | None = None) -> dict:
    return endpoint_slice(f"svc{i}", [(endpoint_ip(i, j), j != not_ready, None)
                                      for j in range(endpoints)], namespace="bench")


async def count_keys(store: EtcdStore) -> int:
    resp = await store._call("Range", rpc.RangeRequest(
        key=SVC_PREFIX, range_end=prefix_range_end(SVC_PREFIX), count_only=True),
        asyncio.get_running_loop().time() + 10)
    return resp.count


async def revision(store: EtcdStore) -> int:
    resp = await store._call("Range", rpc.RangeRequest(key=b"/", limit=1),
                             asyncio.get_running_loop().time() + 10)
    return resp.header.revision


async def bench(args, etcd: EtcdServer, fake: FakeKubeThread, token_file: str) -> dict:
    store = EtcdStore(etcd.etcd_section(**{"etcd-timeout": 10.0}))
    kube = {"kube-enable": True, "kube-master": fake.url, "kube-token-file": token_file,
            "kube-cafile": "", "kube-config": "", "kube-namespaces": [],
            "kube-ip-source": ["external", "cluster"], "kube-watch-timeout": 300.0,
            "kube-backoff-max": 1.0}
    layout = Layout(ZONE, "/skydns/monitor/status/", "/skydns/monitor/refs/")
    sync = KubeSync(kube, store, layout)
    want = args.services * args.endpoints * 2  # an A and an SRV key per endpoint
    loop = asyncio.get_running_loop()
    start = loop.time()
    await sync.start()
    while await count_keys(store) < want:
        await asyncio.sleep(0.2)
    initial = loop.time() - start
    await asyncio.sleep(0.5)
    out = {"services": args.services, "endpoints": args.services * args.endpoints,
           "record_keys": want, "initial_seconds": round(initial, 2),
           "record_keys_per_second": round(want / initial),
           "etcd_ops_initial": sync.stats.etcd_ops}
    ops, txns, delays = [], [], []
    for n in range(args.changes):
        i = (n * 7919) % args.services
        for not_ready in (0, None):
            before_ops, before_rev = sync.stats.etcd_ops, await revision(store)
            t0 = loop.time()
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(
                fake.kube.put("endpointslices", slice_for(i, args.endpoints, not_ready)),
                fake.loop))
            while sync.stats.etcd_ops == before_ops:
                await asyncio.sleep(0.002)
            delays.append(loop.time() - t0)
            await asyncio.sleep(0.05)
            ops.append(sync.stats.etcd_ops - before_ops)
            txns.append(await revision(store) - before_rev)
    out.update(changes=len(ops), etcd_ops_per_change=statistics.mean(ops),
               etcd_ops_per_change_max=max(ops), txns_per_change=statistics.mean(txns),
               change_to_etcd_ms_median=round(statistics.median(delays) * 1000, 1),
               change_to_etcd_ms_max=round(max(delays) * 1000, 1))
    await sync.stop()
    await store.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=5000)
    parser.add_argument("--endpoints", type=int, default=10, help="per service")
    parser.add_argument("--changes", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    fake = FakeKubeThread(token=TOKEN)
    t0 = time.monotonic()

    async def load():
        for i in range(args.services):
            await fake.kube.put("services", service(f"svc{i}", "bench", headless=True))
            await fake.kube.put("endpointslices", slice_for(i, args.endpoints))

    fake.call(load(), timeout=600)
    fake.start()
    print(f"fake API server loaded in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    try:
        with tempfile.TemporaryDirectory() as tmp, EtcdServer() as etcd:
            token_file = Path(tmp) / "token"
            token_file.write_text(TOKEN)
            result = asyncio.run(bench(args, etcd, fake, str(token_file)))
    finally:
        fake.close()
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:28} {value}")


if __name__ == "__main__":
    main()
