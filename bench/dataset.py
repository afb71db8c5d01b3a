"""The benchmark data set: records written to etcd in transactions, and a dnsperf query file.

Names live in `skydns.local.`: `h<i>.bench` hold one address each, `multi.bench` holds several,
`s<j>.srv` are SRV names with two targets each. NXDOMAIN queries ask for `nx<i>.bench`.
For the per-type table of the miss part (issue #27), `kinds` names of each other kind:
`v<i>.six` one IPv6 address, `c<i>.alias` a CNAME to an `h` name, `m<i>.mail` an MX whose
exchange is an `h` name, `t<i>.text` one TXT string. bench/peers.py writes the same records
as a zone file for the C servers.
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
_SIX = int(ipaddress.IPv6Address("fd00:0:0:6::1"))

# The questions of the per-type table, each kind asked of many distinct names:
# A of an h name, AAAA of a v name, A of a c name (CNAME -> A), MX of an m name (glue: the
# exchange's A), TXT of a t name, SRV of an s name (two targets, glue), MX of an h name (the
# name exists without that type: NODATA) and A of a name never asked before (NXDOMAIN).
TYPE_KINDS = ("A", "AAAA", "CNAME", "MX", "TXT", "SRV", "NODATA", "NXDOMAIN")


def ip(base: int, n: int) -> str:
    return str(ipaddress.IPv4Address(base + n))


@dataclass(frozen=True)
class DataSet:
    names: int = 10_000  # single-address names
    multi: int = 8  # addresses of the one multi-address name
    srv: int = 100  # SRV names (two targets each)
    kinds: int = 0  # names of each per-type kind: AAAA, CNAME, MX, TXT (needs `names`)

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

    @staticmethod
    def six_ip(i: int) -> str:
        return str(ipaddress.IPv6Address(_SIX + i))

    def target_name(self, i: int) -> str:
        """The h name a CNAME or MX of index `i` points at."""
        return self.single_name(i % self.names)

    @staticmethod
    def text(i: int) -> str:
        return f"v=spf1 ip4:10.{i % 256}.0.0/16 -all"

    def kind_records(self) -> Iterator[tuple[str, str, dict]]:
        """(label under the zone, etcd key below BASE, record) of the per-type names."""
        if not self.names:
            return
        for i in range(self.kinds):
            yield f"v{i}.six", f"six/v{i}", {"host": self.six_ip(i)}
            yield f"c{i}.alias", f"alias/c{i}", {"host": self.target_name(i)}
            yield f"m{i}.mail", f"mail/m{i}", {"host": self.target_name(i), "mail": True,
                                               "priority": 10}
            yield f"t{i}.text", f"text/t{i}", {"text": self.text(i)}

    def type_lines(self, kind: str, count: int, seed: int = 2) -> list[str]:
        """`count` queryperf lines asking one kind of TYPE_KINDS, or "mix": all of them in
        turn (an even mix). Names drawn at random; every NXDOMAIN line its own name."""
        rng = random.Random(seed)
        kinds = TYPE_KINDS if kind == "mix" else (kind,)
        lines = []
        for n in range(count):
            k = kinds[n % len(kinds)]
            if k == "A":
                lines.append(f"{self.single_name(rng.randrange(self.names))} A")
            elif k == "AAAA":
                lines.append(f"v{rng.randrange(self.kinds)}.six.{ZONE} AAAA")
            elif k == "CNAME":
                lines.append(f"c{rng.randrange(self.kinds)}.alias.{ZONE} A")
            elif k == "MX":
                lines.append(f"m{rng.randrange(self.kinds)}.mail.{ZONE} MX")
            elif k == "TXT":
                lines.append(f"t{rng.randrange(self.kinds)}.text.{ZONE} TXT")
            elif k == "SRV":
                lines.append(f"s{rng.randrange(self.srv)}.srv.{ZONE} SRV")
            elif k == "NODATA":
                lines.append(f"{self.single_name(rng.randrange(self.names))} MX")
            elif k == "NXDOMAIN":
                lines.append(f"nx{n}.bench.{ZONE} A")
            else:
                raise ValueError(f"unknown per-type kind {k!r}")
        return lines

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
        for _label, key, value in self.kind_records():
            yield f"{BASE}/{key}".encode(), json.dumps(value).encode()

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
