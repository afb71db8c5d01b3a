"""skydns-janitor end to end: a real pdns_recursor forwarding the zone to a real skydns, real etcd.

Records carry a 300 s TTL, so without the janitor the recursor keeps serving what it cached
(the control tests prove that), and with it a DOWN flip, a record change and a delete reach
the recursor's answer as soon as the janitor has purged. The <1 s target itself is measured
by bench/janitor_bench.py; the deadlines here are generous so a loaded machine cannot flake.
"""

from __future__ import annotations

import signal
import time
import urllib.request

import pytest

from dnstest import Skydns, free_port
from etcdtest import wait_for
from recursortest import Janitor, PdnsRecursor, recursor_missing

pytestmark = pytest.mark.skipif(recursor_missing() is not None, reason=str(recursor_missing()))

DEADLINE = 10.0  # far below the 300 s TTL, far above the janitor's sub-second purge
TTL = 300
RECORDS = {
    "/skydns/test/example/web/a1": {"host": "10.0.0.1", "ttl": TTL},
    "/skydns/test/example/web/a2": {"host": "10.0.0.2", "ttl": TTL},
    "/skydns/test/example/db/x": {"host": "10.0.1.1", "ttl": TTL},
    "/skydns/test/example/alias/x": {"host": "web.example.test", "ttl": TTL},
    "/skydns/arpa/in-addr/10/0/0/1": {"host": "a1.web.example.test", "ttl": TTL},
}


@pytest.fixture
def front(etcd):
    """skydns and a pdns_recursor in front of it, the zone loaded; yields (skydns, recursor)."""
    for key, value in RECORDS.items():
        etcd.put(key, value)
    skydns = Skydns(etcd.endpoint).start()
    recursor = PdnsRecursor(skydns.port).start()
    wait_for(lambda: skydns.addresses("web.example.test.") == ["10.0.0.1", "10.0.0.2"])
    yield skydns, recursor
    recursor.stop()
    skydns.stop()


def start_janitor(etcd, recursor, **settings):
    janitor = Janitor(etcd.endpoint, [recursor], **settings).start()
    return janitor


def cached(recursor, name, rdtype="A"):
    """Ask twice: the second answer is from the recursor's cache."""
    recursor.answer(name, rdtype)
    return recursor.answer(name, rdtype)


def skydns_has(skydns, name, want):
    wait_for(lambda: skydns.addresses(name) == want, message=f"skydns {name} -> {want}")


def test_without_janitor_answers_stay_cached(etcd, front):
    skydns, recursor = front
    assert cached(recursor, "web.example.test.") == ["10.0.0.1", "10.0.0.2"]
    assert cached(recursor, "alias.example.test.") == ["10.0.0.1", "10.0.0.2"]
    assert cached(recursor, "db.example.test.") == ["10.0.1.1"]
    etcd.put("/skydns/monitor/status/10.0.0.2", {"status": "DOWN"})
    etcd.put("/skydns/test/example/db/x", {"host": "10.0.1.9", "ttl": TTL})
    etcd.delete("/skydns/test/example/web/a2")
    skydns_has(skydns, "web.example.test.", ["10.0.0.1"])
    skydns_has(skydns, "db.example.test.", ["10.0.1.9"])
    # skydns answers anew; the recursor still answers from its cache:
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        assert recursor.answer("web.example.test.") == ["10.0.0.1", "10.0.0.2"]
        assert recursor.answer("alias.example.test.") == ["10.0.0.1", "10.0.0.2"]
        assert recursor.answer("db.example.test.") == ["10.0.1.1"]
        time.sleep(0.1)


def test_down_flip_reaches_the_recursor(etcd, front):
    skydns, recursor = front
    janitor = start_janitor(etcd, recursor)
    try:
        for name in ("web.example.test.", "a2.web.example.test.", "alias.example.test."):
            assert cached(recursor, name)
        start = time.monotonic()
        etcd.put("/skydns/monitor/status/10.0.0.2", {"status": "DOWN"})
        wait_for(lambda: recursor.answer("web.example.test.") == ["10.0.0.1"],
                 timeout=DEADLINE, interval=0.02, message=janitor.logs())
        took = time.monotonic() - start
        # the name that CNAMEs to it, too
        wait_for(lambda: recursor.answer("alias.example.test.") == ["10.0.0.1"],
                 timeout=DEADLINE, message=janitor.logs())
        print(f"DOWN flip out of the recursor's answer after {took * 1000:.0f} ms")
        # and back UP
        etcd.put("/skydns/monitor/status/10.0.0.2", {"status": "UP"})
        wait_for(lambda: recursor.answer("web.example.test.") == ["10.0.0.1", "10.0.0.2"],
                 timeout=DEADLINE, message=janitor.logs())
    finally:
        janitor.stop()


def test_record_change_and_delete_reach_the_recursor(etcd, front):
    skydns, recursor = front
    janitor = start_janitor(etcd, recursor)
    try:
        assert cached(recursor, "db.example.test.") == ["10.0.1.1"]
        assert cached(recursor, "x.db.example.test.") == ["10.0.1.1"]
        assert cached(recursor, "web.example.test.") == ["10.0.0.1", "10.0.0.2"]
        assert cached(recursor, "a1.web.example.test.") == ["10.0.0.1"]
        assert cached(recursor, "1.0.0.10.in-addr.arpa.", "PTR") == ["a1.web.example.test."]

        etcd.put("/skydns/test/example/db/x", {"host": "10.0.1.9", "ttl": TTL})
        for name in ("db.example.test.", "x.db.example.test."):
            wait_for(lambda n=name: recursor.answer(n) == ["10.0.1.9"], timeout=DEADLINE,
                     message=janitor.logs())

        etcd.delete("/skydns/test/example/web/a1")
        wait_for(lambda: recursor.answer("web.example.test.") == ["10.0.0.2"],
                 timeout=DEADLINE, message=janitor.logs())
        wait_for(lambda: recursor.query("a1.web.example.test.").rcode() == 3,  # NXDOMAIN
                 timeout=DEADLINE, message=janitor.logs())

        etcd.put("/skydns/arpa/in-addr/10/0/0/1", {"host": "b1.web.example.test", "ttl": TTL})
        wait_for(lambda: recursor.answer("1.0.0.10.in-addr.arpa.", "PTR")
                 == ["b1.web.example.test."], timeout=DEADLINE, message=janitor.logs())
    finally:
        janitor.stop()


def test_down_recursor_is_retried_and_others_are_not_held_up(etcd, front):
    skydns, recursor = front
    # a recursor API that accepts connections and never answers, listed first
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    slow_url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    metrics_port = free_port()
    janitor = Janitor(etcd.endpoint, [recursor], timeout=5.0,
                      **{"metrics-addr": f"127.0.0.1:{metrics_port}"})
    text = janitor.config.read_text().replace(f"recursors = {recursor.url}",
                                              f"recursors = {slow_url}, {recursor.url}")
    janitor.config.write_text(text)
    janitor.start()
    try:
        assert cached(recursor, "web.example.test.") == ["10.0.0.1", "10.0.0.2"]
        etcd.put("/skydns/monitor/status/10.0.0.1", {"status": "DOWN"})
        wait_for(lambda: recursor.answer("web.example.test.") == ["10.0.0.2"],
                 timeout=DEADLINE, message=janitor.logs())

        def metrics():
            url = f"http://127.0.0.1:{metrics_port}/metrics"
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.read().decode()

        text = metrics()
        assert f'skydns_janitor_purges_total{{recursor="{recursor.url}"}}' in text
        assert f'skydns_janitor_purge_lag_seconds_count{{recursor="{recursor.url}"}}' in text
        # the silent one times out, counts a failure, and is retried (still pending)
        wait_for(lambda: f'skydns_janitor_purge_failures_total{{recursor="{slow_url}"}} 1'
                 in metrics(), timeout=15, message=janitor.logs())
        assert f'skydns_janitor_recursor_up{{recursor="{slow_url}"}} 0.0' in metrics()
        wait_for(lambda: "recursor purge failed; will retry" in janitor.logs())
    finally:
        janitor.stop()
        silent.close()


def test_sighup_applies_a_new_recursor_list(etcd, front):
    skydns, recursor = front
    janitor = Janitor(etcd.endpoint, [recursor])
    janitor.config.write_text(janitor.config.read_text().replace(
        f"recursors = {recursor.url}", "recursors = http://127.0.0.1:1"))
    janitor.start()
    try:
        assert cached(recursor, "web.example.test.") == ["10.0.0.1", "10.0.0.2"]
        etcd.put("/skydns/monitor/status/10.0.0.2", {"status": "DOWN"})
        skydns_has(skydns, "web.example.test.", ["10.0.0.1"])
        assert recursor.answer("web.example.test.") == ["10.0.0.1", "10.0.0.2"]  # not ours yet
        janitor.config.write_text(janitor.config.read_text().replace(
            "recursors = http://127.0.0.1:1", f"recursors = {recursor.url}"))
        janitor.proc.send_signal(signal.SIGHUP)
        # a recursor added by a reload is purged of the zones: the stale answer goes
        wait_for(lambda: recursor.answer("web.example.test.") == ["10.0.0.1"],
                 timeout=DEADLINE, message=janitor.logs())
        assert "recursor removed" in janitor.logs()
        etcd.put("/skydns/monitor/status/10.0.0.2", {"status": "UP"})
        wait_for(lambda: recursor.answer("web.example.test.") == ["10.0.0.1", "10.0.0.2"],
                 timeout=DEADLINE, message=janitor.logs())
    finally:
        janitor.stop()
