"""Change-to-answer delay: from an etcd write returning to the first DNS answer that shows it.

Writes alternate between two kinds, each checked by polling `name A` back to back:
  put     a single-address name gets a new address; done when the answer is that address;
  status  one address of the multi-address name goes DOWN (done when it has left the answer),
          then UP again on the next status write (done when it is back).
"""

from __future__ import annotations

import asyncio
import json
import random
import time

from dataset import STATUS, DataSet, ip
from procs import addresses, query, udp_client

from skydns.store import make_client

_FRESH = 0x64400000  # 100.64.0.0: addresses no record holds yet


def _reflected(kind: str, addrs: set[str], addr: str, down: bool) -> bool:
    if kind == "put":
        return addrs == {addr}
    return (addr not in addrs) if down else (addr in addrs)


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    values = sorted(values)
    n = len(values)
    out = {f"p{q}": values[min(n - 1, n * q // 100)] for q in (50, 99)}
    out["max"] = values[-1]
    return {k: round(v * 1000, 2) for k, v in out.items()}


async def _writes(endpoint: str, port: int, ds: DataSet, count: int, timeout: float) -> dict:
    rng = random.Random(7)
    client = make_client({"etcd-servers": endpoint})
    await client.connect()
    delays: dict[str, list[float]] = {"put": [], "status": []}
    missed = {"put": 0, "status": 0}
    multi = ds.multi_ips()
    try:
        with udp_client(port, timeout=0.2) as sock:
            for i in range(count):
                if i % 2 == 0:
                    k = rng.randrange(ds.names)
                    kind, name, addr = "put", ds.single_name(k), ip(_FRESH, i)
                    key, value = ds.single_key(k), {"host": addr}
                    down = False
                else:
                    flip = i // 2
                    kind, name, addr = "status", ds.multi_name, multi[(flip // 2) % len(multi)]
                    down = flip % 2 == 0
                    key, value = STATUS + addr, {"status": "DOWN" if down else "UP"}
                await client.put(key.encode(), json.dumps(value).encode())
                written = time.perf_counter()
                while True:  # bounded by `timeout`
                    reply = query(sock, name)
                    now = time.perf_counter()
                    if reply is not None and _reflected(kind, addresses(reply), addr, down):
                        delays[kind].append(now - written)
                        break
                    if now - written > timeout:
                        missed[kind] += 1
                        break
    finally:
        await client.close()
    every = delays["put"] + delays["status"]
    return {
        "writes": count,
        "missed": sum(missed.values()),
        "all": percentiles(every),
        **{kind: {**percentiles(delays[kind]), "missed": missed[kind]} for kind in delays},
    }


def measure(endpoint: str, port: int, ds: DataSet, count: int, timeout: float = 2.0) -> dict:
    """`count` writes, each followed by polling until the answer reflects it (ms results)."""
    return asyncio.run(_writes(endpoint, port, ds, count, timeout))
