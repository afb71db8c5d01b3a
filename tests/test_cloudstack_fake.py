"""The fake CloudStack API (tests/fakecloudstack.py) checked against an independent client,
the `cs` package from PyPI: same key pair -> answers in CloudStack's shapes; a wrong secret
-> CloudStack's 401 error object. And skydns-cloudstack's own client against the fake."""

from datetime import timedelta

import pytest
from cs import CloudStack, CloudStackApiException

from cloudstack.api import CloudStackClient, Missing, sign

from etcdtest import run_async
from fakecloudstack import FakeCloudStackThread, cloudstack_signature, make_vm

KEY, SECRET = "api-key-1", "s3cr3t/with+odd chars~"


@pytest.fixture
def fake():
    cs = FakeCloudStackThread({KEY: SECRET})
    dom = cs.cs.add_domain("dev", networkdomain="dev.cloud.test")
    acc = cs.cs.add_account("alice", dom)
    for i in range(7):
        cs.cs.add_vm(make_vm(f"vm{i}", acc, f"10.1.0.{i + 1}"))
    cs.start()
    yield cs
    cs.close()


def test_cs_client_with_the_key_pair_gets_answers(fake):
    client = CloudStack(endpoint=fake.url, key=KEY, secret=SECRET)  # signatureVersion 3
    vms = client.listVirtualMachines(listall=True, fetch_list=True)
    assert sorted(v["name"] for v in vms) == [f"vm{i}" for i in range(7)]
    assert fake.cs.requests[-1]["signatureVersion"] == "3"
    paged = client.listVirtualMachines(listall=True, page=2, pagesize=3)
    assert paged["count"] == 7 and [v["name"] for v in paged["virtualmachine"]] == \
        ["vm3", "vm4", "vm5"]
    accounts = client.listAccounts(name="alice", listall=True)
    assert accounts["account"][0]["name"] == "alice"
    # Version 1 signatures (no expiry) are CloudStack's too.
    old = CloudStack(endpoint=fake.url, key=KEY, secret=SECRET, expiration=-1)
    assert old.listDomains(listall=True)["domain"][0]["networkdomain"] == "dev.cloud.test"
    assert "signatureVersion" not in fake.cs.requests[-1]
    assert fake.cs.refused == 0


def test_cs_client_with_a_wrong_secret_gets_cloudstacks_401(fake):
    client = CloudStack(endpoint=fake.url, key=KEY, secret="wrong")
    with pytest.raises(CloudStackApiException) as err:
        client.listVirtualMachines(listall=True)
    assert err.value.response.status_code == 401
    assert err.value.error == {"uuidList": [], "errorcode": 401, "cserrorcode": 9999,
                               "errortext": "unable to verify user credentials and/or "
                                            "request signature"}
    expired = CloudStack(endpoint=fake.url, key=KEY, secret=SECRET,
                         expiration=timedelta(seconds=0))
    expired.expiration = timedelta(seconds=-1) + timedelta(seconds=0.5)  # already past
    with pytest.raises(CloudStackApiException):
        expired.listVirtualMachines(listall=True, expires="2000-01-01T00:00:00+0000",
                                    signatureVersion="3")
    assert fake.cs.refused == 2


def test_own_signing_agrees_with_the_cs_package():
    """The daemon's signer and the fake's checker against cs's own signer, on values that
    need encoding (spaces, '+', '/', '*', '=', non-ASCII, upper case)."""
    params = {"apiKey": KEY, "command": "listVirtualMachines", "response": "json",
              "name": "web 1+2/3*=ü", "keyword": "ABC def", "listall": "true"}
    theirs = dict(params)
    CloudStack(endpoint="http://127.0.0.1:1/client/api", key=KEY, secret=SECRET)._sign(theirs)
    assert sign(params, SECRET) == theirs["signature"]
    assert cloudstack_signature(list(params.items()), SECRET) == theirs["signature"]
    assert sign(params, SECRET) != sign(params, SECRET + "x")


def test_own_client_pages_and_knows_missing_entities(fake):
    async def main():
        client = CloudStackClient({"endpoint": fake.url, "api-key": KEY, "secret-key": SECRET,
                                   "verify-tls": True, "timeout": 5.0, "page-size": 3})
        try:
            vms = await client.list_all("listVirtualMachines", "virtualmachine", listall=True)
            assert len(vms) == 7 and client.calls == 3
            one = vms[0]
            assert (await client.virtual_machine(one["id"]))["name"] == one["name"]
            assert await client.virtual_machine("0b6ad6b0-0000-4000-8000-000000000000") is None
            with pytest.raises(Missing):
                await client.call("listDomains", id="nope")
        finally:
            await client.close()

    run_async(main())
