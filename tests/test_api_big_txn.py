"""A request that changes many keys with many compares: etcd allows a nested transaction only
what its parent's count leaves of --max-txn-ops, so the chunks must shrink with the compares."""

import pytest

from kubeapi.etcd import ETCD_MAX_TXN_OPS, _chunks
from skydns.txn import put_op

from apitest import ADMIN_TOKEN, api_client, run

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_fifty_addresses_with_ptr_in_one_request(etcd):
    ips = [f"192.0.2.{i}" for i in range(1, 51)]

    async def main():
        async with api_client(etcd.endpoint) as client:
            resp = await client.post("/skydns/api/big", json={"type": "A", "ips": ips,
                                                              "ptr": True}, headers=AUTH)
            assert resp.status == 201, await resp.text()
            resp = await client.delete("/skydns/api/big", headers=AUTH)
            assert resp.status == 200, await resp.text()

    run(main())
    assert etcd.get_prefix("/skydns/arpa/") == {}


@pytest.mark.parametrize("ops,compares", [(200, 100), (2000, 3), (300, 0), (129, 100)])
def test_chunks_fit_etcds_limit(ops, compares):
    chunks = _chunks([put_op(f"/k{i}", b"") for i in range(ops)], compares=compares)
    if len(chunks) == ops:
        assert ops <= ETCD_MAX_TXN_OPS
        return
    parent = max(compares, len(chunks))
    assert parent <= ETCD_MAX_TXN_OPS
    assert all(len(c.request_txn.success) <= ETCD_MAX_TXN_OPS - parent for c in chunks)
