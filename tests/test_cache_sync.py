"""The wire cache against a real etcd: a change drops exactly the answers that read it."""

from __future__ import annotations

import asyncio
import threading

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from dnsserver.front.server import DnsServer
from skydns.config import load_config

from dnstest import free_port
from etcdtest import wait_for


@pytest.fixture
def inproc(etcd):
    """A DnsServer in a thread of this process, so the test can read its cache counters."""
    etcd.put("/skydns/test/example/a/x", {"host": "10.8.0.1"})
    etcd.put("/skydns/test/example/b/x", {"host": "10.8.0.2"})
    cfg = load_config(None, "dns")
    cfg["Dns"].update({"dns-domain": "example.test.", "dns-addr": ("127.0.0.1", free_port())})
    cfg["Etcd"]["etcd-servers"] = [etcd.endpoint]
    loop = asyncio.new_event_loop()
    server = DnsServer(cfg)
    started = threading.Event()

    def run():
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        started.set()
        loop.run_until_complete(server.stopped.wait())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(20)
    yield server
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
    thread.join(10)
    loop.close()


def ask(server, name):
    q = dns.message.make_query(name, "A")
    port = server.cfg["Dns"]["dns-addr"][1]
    reply = dns.query.udp(q, "127.0.0.1", port=port, timeout=2)
    return sorted(rr.address for rrset in reply.answer for rr in rrset)


def test_unrelated_change_keeps_hits_related_change_drops(inproc, etcd):
    cache = inproc.engine.cache
    assert ask(inproc, "a.example.test.") == ["10.8.0.1"]
    assert ask(inproc, "b.example.test.") == ["10.8.0.2"]
    hits = cache.hits
    assert ask(inproc, "a.example.test.") == ["10.8.0.1"]
    assert cache.hits == hits + 1

    etcd.put("/skydns/test/example/c/x", {"host": "10.8.0.3"})  # unrelated name
    index = inproc.engine.state.index
    wait_for(lambda: index.get("/skydns/test/example/c/x") is not None, timeout=2)
    hits = cache.hits
    ask(inproc, "a.example.test.")
    ask(inproc, "b.example.test.")
    assert cache.hits == hits + 2, "an unrelated change flushed cached answers"

    etcd.put("/skydns/monitor/status/10.8.0.1", {"status": "DOWN"})  # a's address only
    wait_for(lambda: inproc.engine.state.health.is_down("10.8.0.1"), timeout=2)
    hits = cache.hits
    ask(inproc, "b.example.test.")
    assert cache.hits == hits + 1
    ask(inproc, "a.example.test.")
    assert cache.hits == hits + 1  # rebuilt: a read 10.8.0.1's health

    etcd.put("/skydns/test/example/b/y", {"host": "10.8.0.4"})  # below b: b's answer changes
    wait_for(lambda: ask(inproc, "b.example.test.") == ["10.8.0.2", "10.8.0.4"], timeout=2)
    hits = cache.hits
    ask(inproc, "a.example.test.")
    assert cache.hits == hits + 1


def query(server, name, rdtype="A"):
    port = server.cfg["Dns"]["dns-addr"][1]
    return dns.query.udp(dns.message.make_query(name, rdtype), "127.0.0.1", port=port, timeout=2)


def test_negative_answers_dropped_only_by_their_path(inproc, etcd):
    cache = inproc.engine.cache
    assert query(inproc, "q.r.example.test.").rcode() == dns.rcode.NXDOMAIN
    hits = cache.hits
    assert query(inproc, "q.r.example.test.").rcode() == dns.rcode.NXDOMAIN
    assert cache.hits == hits + 1

    # Beside the name (r/other is neither at nor below q.r): the NXDOMAIN stays cached,
    # although the zone's serial moved.
    etcd.put("/skydns/test/example/r/other", {"host": "10.8.0.7"})
    wait_for(lambda: ask(inproc, "r.example.test.") == ["10.8.0.7"], timeout=2)
    hits = cache.hits
    assert query(inproc, "q.r.example.test.").rcode() == dns.rcode.NXDOMAIN
    assert cache.hits == hits + 1, "an unrelated put dropped a negative answer"

    # Below the name: it exists now, and the cached NXDOMAIN must not be served again.
    etcd.put("/skydns/test/example/r/q/x", {"host": "10.8.0.8"})
    wait_for(lambda: ask(inproc, "q.r.example.test.") == ["10.8.0.8"], timeout=2)


def test_front_path_follows_record_and_health_changes(inproc, etcd):
    cache = inproc.engine.cache
    q = dns.message.make_query("a.example.test.", "A")
    front_key = q.to_wire()[2:]
    for _ in range(3):  # miss, hit (fills the front), front hit
        assert ask(inproc, "a.example.test.") == ["10.8.0.1"]
    assert front_key in cache.front
    hits = cache.hits
    assert ask(inproc, "a.example.test.") == ["10.8.0.1"]
    assert cache.hits == hits + 1  # front hits are counted like any other

    etcd.put("/skydns/test/example/a/x", {"host": "10.8.0.9"})
    wait_for(lambda: ask(inproc, "a.example.test.") == ["10.8.0.9"], timeout=2)

    etcd.put("/skydns/test/example/a/y", {"host": "10.8.0.10"})
    wait_for(lambda: ask(inproc, "a.example.test.") == ["10.8.0.10", "10.8.0.9"], timeout=2)
    for _ in range(3):
        ask(inproc, "a.example.test.")
    assert front_key not in cache.front  # two addresses: shuffled variants never go in front

    etcd.delete("/skydns/test/example/a/y")
    wait_for(lambda: ask(inproc, "a.example.test.") == ["10.8.0.9"], timeout=2)
    for _ in range(3):
        ask(inproc, "a.example.test.")
    assert front_key in cache.front
    etcd.put("/skydns/test/example/b/y", {"host": "10.8.0.9"})  # b shares the address
    for _ in range(3):
        assert ask(inproc, "b.example.test.") == ["10.8.0.2", "10.8.0.9"]
    etcd.put("/skydns/monitor/status/10.8.0.2", {"status": "DOWN"})
    wait_for(lambda: ask(inproc, "b.example.test.") == ["10.8.0.9"], timeout=2)
    for _ in range(3):
        ask(inproc, "b.example.test.")
    b_key = dns.message.make_query("b.example.test.", "A").to_wire()[2:]
    assert b_key in cache.front  # one healthy address left: one variant
    etcd.put("/skydns/monitor/status/10.8.0.2", {"status": "UP"})
    wait_for(lambda: ask(inproc, "b.example.test.") == ["10.8.0.2", "10.8.0.9"], timeout=2)
    assert b_key not in cache.front


def test_https_questions_hit_the_cache(inproc):
    """Type 65 (HTTPS) is 0x41, "A": case-folding the type made it uncacheable."""
    cache = inproc.engine.cache
    for rdtype in ("HTTPS", "TYPE66"):
        assert query(inproc, "a.example.test.", rdtype).rcode() == dns.rcode.NOERROR
        hits = cache.hits
        reply = query(inproc, "a.example.test.", rdtype)
        assert reply.rcode() == dns.rcode.NOERROR and not reply.answer and reply.authority
        assert reply.question[0].rdtype == dns.rdatatype.from_text(rdtype)
        assert cache.hits == hits + 1, f"{rdtype} not answered from the cache"
