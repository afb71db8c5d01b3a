"""The stats server of skydns: counters summed over workers, per-name counts, Prometheus text."""

from __future__ import annotations

import json
import os
import signal
import urllib.error
import urllib.request

import pytest

from dnstest import Skydns, free_port
from etcdtest import wait_for


def get(port: int, path: str, token: str | None = "s3cret"):
    url = f"http://127.0.0.1:{port}{path}"
    if token:
        url += ("&" if "?" in url else "?") + f"token={token}"
    with urllib.request.urlopen(url, timeout=5) as resp:
        body = resp.read()
    return json.loads(body) if path.startswith("/skydns") else body.decode()


@pytest.fixture
def stats_server(etcd):
    etcd.put("/skydns/test/example/api/x", {"host": "10.0.0.1"})
    etcd.put("/skydns/test/example/api/y", {"host": "10.0.0.2"})
    etcd.put("/skydns/monitor/status/10.0.0.2", {"status": "DOWN"})
    port = free_port()
    srv = Skydns(etcd.endpoint, Dns={"workers": 2},
                 Stats={"statsServer": f"127.0.0.1:{port}", "statsServerAuthToken": "s3cret"})
    srv.start()
    yield srv, port
    srv.stop()


def test_counters_names_and_metrics(stats_server):
    srv, port = stats_server
    for _ in range(30):
        srv.query("api.example.test.")
    for _ in range(5):
        srv.query("nope.example.test.")
    srv.query("api.example.test.", "AAAA")

    def settled():
        stats = get(port, "/skydns/stats")
        return stats if stats["requests"] >= 37 else None  # 36 + the readiness probes

    stats = wait_for(settled, timeout=10, message="counters never added up")
    assert stats["nxdomain"] >= 5 and stats["nodata"] >= 1
    assert stats["cache_hits"] > 0 and stats["workers"] == 2
    assert stats["records"] == 2 and stats["down_addresses"] == 1
    assert get(port, "/skydns/stats/api.example.test")["queries"] >= 31
    top = get(port, "/skydns/stats/top/2")
    assert top[0]["name"] == "api.example.test."
    metrics = get(port, "/metrics")
    assert "skydns_requests_total" in metrics and "skydns_cache_size" in metrics

    # a worker killed: its counts stay in the totals
    before = stats["requests"]
    pids = [int(line.split()[0]) for line in os.popen(f"ps -o pid= --ppid {srv.proc.pid}")]
    os.kill(pids[0], signal.SIGKILL)
    wait_for(lambda: get(port, "/skydns/stats")["workers"] == 2, timeout=15)
    assert get(port, "/skydns/stats")["requests"] >= before


def test_token_required(stats_server):
    _, port = stats_server
    with pytest.raises(urllib.error.HTTPError) as err:
        get(port, "/skydns/stats", token=None)
    assert err.value.code == 401
    with pytest.raises(urllib.error.HTTPError) as err:
        get(port, "/metrics", token="wrong")
    assert err.value.code == 401
    req = urllib.request.Request(f"http://127.0.0.1:{port}/skydns/stats",
                                 headers={"Authorization": "Bearer s3cret"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200
