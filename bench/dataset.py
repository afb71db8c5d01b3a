"""The benchmark data set: records written to etcd in transactions, and a dnsperf query file.

Names live in `skydns.local.`: `h<i>.bench` hold one address each, `multi.bench` holds several,
`s<j>.srv` are SRV names with two targets each. NXDOMAIN queries ask for `nx<i>.bench`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from aetcd import rpc

from skydns.store import make_client

ZONE = "skydns.local."
BASE = "/skydns/local/skydns"
STATUS = "/skydns/monitor/status/"
TXN_OPS = 128  # etcd's default --max-txn-ops
DEFAULT_MIX = "A=79,MULTI=1,SRV=5,AAAA=5,NX=10"

_SINGLE = int(ipaddress.IPv4Address("10.0.0.0"))
_MULTI = int(ipaddress.IPv4Address("172.16.0.1"))
_SRV = int(ipaddress.IPv4Address("172.20.0.1"))


def ip(base: int, n: int) -> str:
    return str(ipaddress.IPv4Address(base + n))


@dataclass(frozen=True)
class DataSet:
    names: int = 10_000  # single-address names
    multi: int = 8  # addresses of the one multi-address name
    srv: int = 100  # SRV names (two targets each)

    @staticmethod
    def single_name(i: int) -> str:
        return f"h{i}.bench.{ZONE}"

    @staticmethod
    def single_key(i: int) -> str:
        return f"{BASE}/bench/h{i}"

    @staticmethod
    def single_ip(i: int) -> str:
        return ip(_SINGLE, i)

    multi_name = f"multi.bench.{ZONE}"

    def multi_ips(self) -> list[str]:
        return [ip(_MULTI, k) for k in range(self.multi)]

    def records(self, start: int = 0) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) of every record; `start` skips single names already written."""
        for i in range(start, self.names):
            yield self.single_key(i).encode(), b'{"host":"%s"}' % self.single_ip(i).encode()
        if start:
            return
        for k, addr in enumerate(self.multi_ips()):
            yield f"{BASE}/bench/multi/{k}".encode(), json.dumps({"host": addr}).encode()
        for j in range(self.srv):
            for t in range(2):
                value = {"host": ip(_SRV, 2 * j + t), "port": 8080, "priority": 10, "weight": 50}
                yield f"{BASE}/srv/s{j}/{t}".encode(), json.dumps(value).encode()

    def query_lines(self, count: int, mix: dict[str, float], seed: int = 1) -> list[str]:
        """`count` queryperf lines (`name TYPE`), kinds drawn with the weights in `mix`."""
        rng = random.Random(seed)
        kinds = rng.choices(list(mix), weights=list(mix.values()), k=count)
        lines = []
        for n, kind in enumerate(kinds):
            if kind == "A":
                lines.append(f"{self.single_name(rng.randrange(self.names))} A")
            elif kind == "AAAA":  # the names hold IPv4 only: NOERROR without answers (NODATA)
                lines.append(f"{self.single_name(rng.randrange(self.names))} AAAA")
            elif kind == "MULTI":
                lines.append(f"{self.multi_name} A")
            elif kind == "SRV":
                lines.append(f"s{rng.randrange(self.srv)}.srv.{ZONE} SRV")
            else:  # NX: every line its own name
                lines.append(f"nx{n}.bench.{ZONE} A")
        return lines


def parse_mix(text: str) -> dict[str, float]:
    """'A=79,SRV=5,...' -> weights; kinds A, MULTI, SRV, AAAA, NX."""
    mix = {}
    for part in text.split(","):
        kind, _, weight = part.partition("=")
        kind = kind.strip().upper()
        if kind not in ("A", "MULTI", "SRV", "AAAA", "NX"):
            raise ValueError(f"unknown query kind {kind!r} in --mix")
        mix[kind] = float(weight)
    if not any(mix.values()):
        raise ValueError("--mix has no positive weight")
    return mix


async def _write(endpoint: str, items: Iterable[tuple[bytes, bytes]], concurrency: int) -> int:
    client = make_client({"etcd-servers": endpoint, "etcd-timeout": 60})
    await client.connect()
    slots = asyncio.Semaphore(concurrency)
    written = 0

    async def txn(batch: list) -> None:
        try:
            ops = [rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=v)) for k, v in batch]
            await client.kvstub.Txn(rpc.TxnRequest(success=ops), timeout=60)
        finally:
            slots.release()

    tasks = set()
    batch: list = []
    try:
        for item in items:
            batch.append(item)
            if len(batch) == TXN_OPS:
                await slots.acquire()  # bounds both in-flight txns and batches held in memory
                tasks.add(asyncio.create_task(txn(batch)))
                written += len(batch)
                batch = []
                done = {t for t in tasks if t.done()}
                tasks -= done
                for task in done:
                    task.result()
        if batch:
            await slots.acquire()
            tasks.add(asyncio.create_task(txn(batch)))
            written += len(batch)
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await client.close()
    return written


def write_records(endpoint: str, items: Iterable[tuple[bytes, bytes]], concurrency=16) -> int:
    """Put `items` into etcd, TXN_OPS puts per transaction, `concurrency` transactions at once."""
    return asyncio.run(_write(endpoint, items, concurrency))
