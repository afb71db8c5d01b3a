"""etcd transactions with the answer parts aetcd's `transaction()` leaves out.

aetcd returns neither the header revision of a transaction (the mod revision of what it
wrote, needed to guard the next write) nor the create revision in a usable form, so these
build the gRPC messages directly. Shared by scanner/ and scheduler/.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import aetcd
from aetcd import rpc

from .store import prefix_range_end


@dataclass(frozen=True, slots=True)
class Found:
    """A key read inside a transaction."""

    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    lease: int


@dataclass(frozen=True, slots=True)
class TxnResult:
    succeeded: bool
    revision: int  # the store revision after the transaction (its writes carry this one)
    found: list[Found]  # keys read by get_op in the branch that ran


def mod_is(key: str, revision: int) -> rpc.Compare:
    """The key's last write is at `revision` (0: the key does not exist)."""
    return rpc.Compare(key=key.encode(), target=rpc.Compare.MOD, result=rpc.Compare.EQUAL,
                       mod_revision=revision)


def created_at(key: str, revision: int) -> rpc.Compare:
    """The key exists and was created at `revision` (0: the key does not exist)."""
    return rpc.Compare(key=key.encode(), target=rpc.Compare.CREATE, result=rpc.Compare.EQUAL,
                       create_revision=revision)


def put_op(key: str, value: bytes, lease: int = 0) -> rpc.RequestOp:
    return rpc.RequestOp(request_put=rpc.PutRequest(key=key.encode(), value=value, lease=lease))


def delete_op(key: str) -> rpc.RequestOp:
    return rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=key.encode()))


def delete_prefix_op(prefix: str) -> rpc.RequestOp:
    """Delete every key under prefix."""
    key = prefix.encode()
    return rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(
        key=key, range_end=prefix_range_end(key)))


def get_op(key: str) -> rpc.RequestOp:
    return rpc.RequestOp(request_range=rpc.RangeRequest(key=key.encode()))


async def txn(client: aetcd.Client, compare: Sequence[rpc.Compare],
              success: Sequence[rpc.RequestOp],
              failure: Sequence[rpc.RequestOp] = ()) -> TxnResult:
    await client.connect()
    resp = await client.kvstub.Txn(
        rpc.TxnRequest(compare=list(compare), success=list(success), failure=list(failure)),
        timeout=client._timeout,
        metadata=client.metadata,
    )
    found = [
        Found(kv.key.decode("utf-8", errors="replace"), kv.value, kv.create_revision,
              kv.mod_revision, kv.lease)
        for op in resp.responses
        if op.WhichOneof("response") == "response_range"
        for kv in op.response_range.kvs
    ]
    return TxnResult(resp.succeeded, resp.header.revision, found)
