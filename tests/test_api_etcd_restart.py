"""The API across etcd outages: requests retry within their deadline, then answer 503; the
process never needs a restart. Its own module: it stops the shared etcd."""

import json
import threading

import pytest

from apitest import KubeApi
from etcdtest import wait_for


@pytest.fixture
def make_api(etcd):
    """An API process whose requests retry etcd for 2 x etcd_timeout before answering 503."""
    procs = []

    def make(etcd_timeout: float) -> KubeApi:
        procs.append(KubeApi(etcd.endpoint, Etcd={"etcd-timeout": etcd_timeout}).start())
        return procs[-1]

    yield make
    etcd.ensure_running()
    for proc in procs:
        proc.stop()


def test_a_write_during_an_etcd_restart_succeeds(make_api, etcd):
    api = make_api(2.0)  # room for etcd to come back within one request
    assert api.post("before", {"type": "A", "ips": ["10.0.0.1"]})[0] == 201
    etcd.stop()
    result = {}

    def post():
        result["answer"] = api.post("during", {"type": "A", "ips": ["10.0.0.2"]})

    writer = threading.Thread(target=post)
    writer.start()
    # Bring etcd back only once the request is known to be retrying against the dead one.
    wait_for(lambda: "etcd call failed, retrying" in api.logs(), timeout=5,
             message="the API did not report a failed etcd call")
    etcd.start()
    writer.join(timeout=15)
    assert result["answer"] == (201, "OK\n")
    names = [e["domain"] for e in api.get_json("/skydns/api")["records"]]
    assert names == ["before.skydns.local.", "during.skydns.local."]
    assert api.request("GET", "/healthz", token=None) == (200, "OK\n")


def test_etcd_down_for_longer_than_the_deadline_is_503(make_api, etcd):
    api = make_api(0.5)
    etcd.stop()
    status, text = api.request("GET", "/healthz", token=None)
    assert status == 503 and text.startswith("ERR, etcd unavailable")
    status, text = api.post("x", {"type": "A", "ips": ["10.0.0.3"]})
    assert status == 503 and text.startswith("ERR, etcd unavailable"), text
    status, text = api.request("GET", "/skydns/api",
                               headers={"Accept": "application/json"})
    assert status == 503 and json.loads(text)["status"] == 503
    # Refusals that need no etcd still come first and fast.
    assert api.post("x", {"type": "A", "ips": ["nope"]})[0] == 400
    assert api.post("x", {"type": "A", "ips": ["10.0.0.3"]}, token=None)[0] == 401
    etcd.start()
    wait_for(lambda: api.post("x", {"type": "A", "ips": ["10.0.0.3"]})[0] == 201, timeout=10)
    assert "Traceback" not in api.logs()
