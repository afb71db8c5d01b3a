"""The stats server of skydns: counters summed over workers, per-name counts, Prometheus text."""

from __future__ import annotations

import json
import os
import signal
import socket
import urllib.error
import urllib.request

import pytest

from dnstest import Skydns, Upstream, free_port
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
        # 36 + the readiness probes; both workers' snapshots in (under load the second one's
        # first snapshot may come after the queries are counted)
        settled = stats["requests"] >= 37 and stats["workers"] == 2
        # each worker reports its etcd watches connected in a snapshot of its own
        return stats if settled and stats["etcd_watch_connected"] == 1 else None

    stats = wait_for(settled, timeout=10, message="counters never added up")
    assert stats["nxdomain"] >= 5 and stats["nodata"] >= 1
    assert stats["cache_hits"] > 0
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
    # the API's rules (skydns.httpauth): another scheme alone is named, beside ?token= ignored
    req = urllib.request.Request(f"http://127.0.0.1:{port}/skydns/stats",
                                 headers={"Authorization": "Basic eDp5"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    assert err.value.code == 401 and b"use Bearer" in err.value.read()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/skydns/stats?token=s3cret",
                                 headers={"Authorization": "Basic eDp5"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200


def test_non_ascii_digit_in_top_is_an_answer_not_a_traceback(stats_server):
    """'²' (a raw 0xB2 byte, read as latin-1) passes str.isdigit() but not int()."""
    _, port = stats_server
    for path in (b"/skydns/stats/top/\xb2", b"/skydns/stats/top/\xd9\xa3"):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET " + path + b"?token=s3cret HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
        status = data.split(b"\r\n", 1)[0]
        assert status.startswith(b"HTTP/1.0 4"), (path, data[:200])
    assert isinstance(get(port, "/skydns/stats/top/1"), list)  # still serving


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} missing from /metrics")


def test_forward_truncation_fail_open_and_miss_counters_move(etcd):
    for i in range(1, 41):  # 40 addresses: over 512 bytes, so plain UDP gets TC=1
        etcd.put(f"/skydns/test/example/big/i{i:02d}", {"host": f"10.1.0.{i}"})
    etcd.put("/skydns/test/example/dead/x", {"host": "10.0.5.1"})
    etcd.put("/skydns/monitor/status/10.0.5.1", {"status": "DOWN"})
    port = free_port()
    with Upstream({"host.other.test": "192.0.2.11"}) as up:
        srv = Skydns(
            etcd.endpoint,
            Dns={"workers": 2, "nameservers": f"127.0.0.1:{up.port}"},
            Stats={"statsServer": f"127.0.0.1:{port}", "statsServerAuthToken": "s3cret"},
        ).start()
        try:
            before = get(port, "/skydns/stats")
            for _ in range(3):  # a miss, then hits (in one worker or the other)
                assert srv.addresses("host.other.test.") == ["192.0.2.11"]
                assert srv.query("big.example.test.").flags & 0x0200  # TC
                assert srv.addresses("dead.example.test.") == ["10.0.5.1"]
            moved = ("forward", "truncated", "fail_open")

            def counted():
                stats = get(port, "/skydns/stats")
                grown = all(stats[name] >= before[name] + 3 for name in moved)
                return grown and stats["cache_misses"] >= before["cache_misses"] + 3 and stats

            stats = wait_for(counted, timeout=10, interval=0.2, message="counters did not move")
            assert stats["forward_fail"] == before["forward_fail"]
            metrics = get(port, "/metrics")
            for name in (*moved, "cache_misses"):
                assert _metric(metrics, f"skydns_{name}_total") >= stats[name]
            # miss latency: the forwarded misses and the ones built from the zone, timed
            assert _metric(metrics, 'skydns_miss_duration_seconds_count{kind="forwarded"}') >= 1
            assert _metric(metrics, 'skydns_miss_duration_seconds_count{kind="built"}') >= 2
            assert _metric(metrics, 'skydns_miss_duration_seconds_bucket{kind="built",le="+Inf"}'
                           ) == _metric(metrics, 'skydns_miss_duration_seconds_count{kind="built"}')
            assert "latency" not in stats  # the JSON stays counters and gauges
        finally:
            srv.stop()


def test_latency_buckets_add_up_across_workers():
    from collections import Counter

    from dnsserver.front.latency import BUCKETS, Latency, buckets

    one, two = Latency("built"), Latency("built")
    for seconds in (0.00001, 0.0003, 0.0003, 7.0):
        one.observe(seconds)
    two.observe(0.0003)
    total = Counter(one.flat())
    total.update(two.flat())  # what StatsBook does with the workers' snapshots
    cumulative, seconds = buckets(total, "built")
    assert dict(cumulative)[repr(BUCKETS[0])] == 1
    assert dict(cumulative)["0.0005"] == 4 and dict(cumulative)["+Inf"] == 5
    assert total["built:count"] == 5 and abs(seconds - 7.00091) < 1e-9


def test_etcd_watch_connected_follows_etcd(etcd):
    """skydns_etcd_watch_connected: 0 while a worker has lost etcd (it keeps answering from
    its copy), 1 again once it is back; what the 'etcd unreachable' alert reads."""
    etcd.put("/skydns/test/example/api/x", {"host": "10.0.0.1"})
    port = free_port()
    srv = Skydns(etcd.endpoint, Stats={"statsServer": f"127.0.0.1:{port}"}).start()
    try:
        wait_for(lambda: get(port, "/skydns/stats", None)["etcd_watch_connected"] == 1,
                 timeout=10, interval=0.2, message="not connected")
        etcd.stop()
        wait_for(lambda: _metric(get(port, "/metrics", None), "skydns_etcd_watch_connected") == 0,
                 timeout=30, interval=0.2, message="still connected with etcd down")
        assert srv.addresses("api.example.test.") == ["10.0.0.1"]
        etcd.start()
        wait_for(lambda: get(port, "/skydns/stats", None)["etcd_watch_connected"] == 1,
                 timeout=30, interval=0.2, message="never reconnected")
    finally:
        etcd.ensure_running()
        srv.stop()
