"""The API's etcd access, kept thin: consistent snapshots, guarded commits, retries, a ping.

Calls go straight to etcd's KV RPCs (as skydns.store does) because a snapshot is one read-only
transaction of many ranges, and a plan one transaction with compares on ranges, neither of
which aetcd's helpers can express. Transient failures (etcd restarting, no leader, a dropped
connection) are retried with jittered backoff until the request's deadline, then reported as
EtcdUnavailable (HTTP 503). A commit is never blindly resent: if its outcome is unknown,
CommitUnknown tells the caller to look at etcd again before deciding anything.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

import grpc
from aetcd import rpc

from skydns.store import KV, backoff, describe_error, make_client, prefix_range_end, usable_key
from skydns.txn import delete_op, mod_is, put_op

from .plan import MAX_OPS_PER_TXN, Plan, Snapshot

log = logging.getLogger("skydns.kubeapi.etcd")

_RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.CANCELLED,
}
BACKOFF_MIN = 0.05
BACKOFF_MAX = 1.0


class EtcdUnavailable(Exception):
    """etcd did not answer within the request's deadline."""


class EtcdRefused(Exception):
    """etcd answered with an error retrying cannot fix (a bug on our side, or its limits)."""


class CommitUnknown(Exception):
    """A commit failed in transit: it may or may not have been applied."""


ETCD_MAX_TXN_OPS = 128  # etcd's default --max-txn-ops


def _chunks(ops: list, size: int = MAX_OPS_PER_TXN, compares: int = 0) -> list:
    """Ops as one flat list if small enough, else as nested transactions: etcd limits the ops
    per transaction level (--max-txn-ops, 128 by default), not the total; but a nested
    transaction may only hold what its parent's count (its compares or its ops, whichever is
    more) leaves of that limit."""
    if len(ops) <= max(size, compares):
        return ops
    size = max(1, min(size, ETCD_MAX_TXN_OPS - 1 - compares))
    while size > 1 and ETCD_MAX_TXN_OPS - max(compares, -(-len(ops) // size)) < size:
        size -= 1
    return [rpc.RequestOp(request_txn=rpc.TxnRequest(success=ops[i:i + size]))
            for i in range(0, len(ops), size)]


def _flatten(responses) -> list:
    out = []
    for resp in responses:
        if resp.WhichOneof("response") == "response_txn":
            out.extend(_flatten(resp.response_txn.responses))
        else:
            out.append(resp)
    return out


# skydns.store has the same converter, but private to it (store.py is shared code this
# component does not change), so the three lines are repeated rather than imported.
def _kv(kv) -> KV:
    return KV(kv.key.decode("utf-8", errors="replace"), kv.value, kv.mod_revision, kv.lease)


class EtcdStore:
    def __init__(self, etcd_section: dict):
        self.timeout = float(etcd_section.get("etcd-timeout") or 5.0)
        self.client = make_client(etcd_section)
        # For the metrics: failed calls by (RPC, gRPC code), and how many were tried again.
        self.errors: Counter[tuple[str, str]] = Counter()
        self.retries = 0

    async def close(self) -> None:
        try:
            await self.client.close()
        except Exception as exc:  # closing a broken channel is best effort
            log.debug("closing etcd client failed", extra={"kv": {"error": describe_error(exc)}})

    async def _call(self, method: str, request, deadline: float, retry: bool = True):
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise EtcdUnavailable("etcd did not answer in time")
            try:
                await self.client.connect()
                stub = self.client.kvstub
                return await getattr(stub, method)(
                    request, timeout=min(self.timeout, remaining), metadata=self.client.metadata
                )
            except grpc.aio.AioRpcError as err:
                self.errors[(method, err.code().name)] += 1
                if err.code() not in _RETRYABLE:
                    raise EtcdRefused(describe_error(err)) from None
                if not retry:
                    raise CommitUnknown(describe_error(err)) from None
                attempt += 1
                reason = describe_error(err)
                if attempt == 1 or attempt % 20 == 0:
                    log.warning("etcd call failed, retrying", extra={"kv": {
                        "call": method, "attempt": attempt, "error": reason}})
                delay = backoff(attempt, BACKOFF_MIN, BACKOFF_MAX)
                if loop.time() + delay >= deadline:
                    raise EtcdUnavailable(f"etcd unavailable ({reason})") from None
                self.retries += 1
                await asyncio.sleep(delay)

    async def snapshot(self, keys, prefixes, deadline: float) -> Snapshot:
        """The given keys and prefixes, read in one transaction: one revision for all."""
        prefixes = sorted(set(prefixes))
        # A prefix inside another, or a key inside a prefix, would be read twice for nothing.
        prefixes = [p for p in prefixes if not any(p != q and p.startswith(q) for q in prefixes)]
        keys = sorted(k for k in set(keys) if not any(k.startswith(p) for p in prefixes))
        ops = [rpc.RequestOp(request_range=rpc.RangeRequest(
                   key=p.encode(), range_end=prefix_range_end(p.encode())))
               for p in prefixes]
        ops += [rpc.RequestOp(request_range=rpc.RangeRequest(key=k.encode())) for k in keys]
        resp = await self._call("Txn", rpc.TxnRequest(success=_chunks(ops)), deadline)
        kvs: dict[str, KV] = {}
        for op in _flatten(resp.responses):
            for kv in op.response_range.kvs:
                if not usable_key(kv.key):
                    continue  # logged; a mangled name would list, and change, another key
                item = _kv(kv)
                kvs[item.key] = item
        return Snapshot(resp.header.revision, kvs, keys, prefixes)

    async def commit(self, plan: Plan, deadline: float) -> bool:
        """Apply a plan if its guards hold; False when they did not (nothing was written)."""
        compares = [mod_is(key, revision) for key, revision in plan.key_guards.items()]
        for prefix, kind in plan.range_guards.items():
            raw = prefix.encode()
            if kind == "create":
                compares.append(rpc.Compare(
                    key=raw, range_end=prefix_range_end(raw), target=rpc.Compare.CREATE,
                    result=rpc.Compare.LESS, create_revision=plan.revision + 1))
            else:
                compares.append(rpc.Compare(
                    key=raw, range_end=prefix_range_end(raw), target=rpc.Compare.MOD,
                    result=rpc.Compare.LESS, mod_revision=plan.revision + 1))
        ops = [put_op(k, v) for k, v in plan.puts.items()]
        ops += [delete_op(k) for k in plan.deletes]
        request = rpc.TxnRequest(compare=compares,
                                 success=_chunks(ops, compares=len(compares)))
        resp = await self._call("Txn", request, deadline, retry=False)
        return resp.succeeded

    async def ping(self, timeout: float) -> str | None:
        """None when etcd answers a status request within timeout, else why not."""
        try:
            await self.client.connect()
            await self.client.maintenancestub.Status(
                rpc.StatusRequest(), timeout=timeout, metadata=self.client.metadata)
        except grpc.aio.AioRpcError as err:
            self.errors[("Status", err.code().name)] += 1
            return describe_error(err)
        except (TimeoutError, OSError) as err:
            return describe_error(err)
        return None
