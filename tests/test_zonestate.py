"""ZoneState: every write publishes what it touched, and every reader sees the same state."""

from __future__ import annotations

import json

import dns.message

from dnsserver.engine import Engine
from dnsserver.zone.context import ZoneSettings
from dnsserver.zone.state import EVERYTHING, Change, ZoneState
from dnsserver.zone.sync import StoreSync
from pdnsbackend.protocol import PdnsBackend
from skydns.config import load_config
from skydns.keys import key_to_path
from skydns.records import parse_record
from skydns.store import KV


def rec(key: str, value: dict, lease: int = 0):
    return parse_record(key, key_to_path(key), json.dumps(value).encode(), lease)


def recording_state():
    state = ZoneState(ZoneSettings(domain="example.test."))
    seen: list[Change] = []
    state.subscribe(seen.append)
    return state, seen


def test_each_write_publishes_what_it_touched():
    state, seen = recording_state()
    assert not state.ready
    state.load([rec("/skydns/test/example/a/x", {"host": "10.0.0.1"}, lease=7)], 5)
    assert state.ready and state.serial == 5 and seen == [EVERYTHING]

    state.put(rec("/skydns/test/example/b/x", {"host": "10.0.0.2"}), 6)
    b_path = key_to_path("/skydns/test/example/b/x")
    assert state.serial == 6 and seen[-1] == Change(paths=(b_path,))

    state.put(rec("/skydns/test/example/w/*", {"host": "10.0.0.3"}), 7)
    assert seen[-1] == EVERYTHING  # a wildcard answers for names no path bounds

    seen.clear()
    state.delete("/skydns/test/example/b/x", None, 8)
    assert seen == [Change(paths=(b_path,))]
    state.delete("/skydns/test/example/none/x", None, 9)  # nothing there, no path: nothing
    assert len(seen) == 1 and state.serial == 8

    assert state.set_health("10.0.0.1", "DOWN") and seen[-1] == Change(ips=("10.0.0.1",))
    assert not state.set_health("10.0.0.1", "DOWN") and len(seen) == 2  # no change, no news

    state.add_lease_ttls({7: 5})
    assert seen[-1] == Change(paths=(key_to_path("/skydns/test/example/a/x"),))
    assert state.lease_ttls == {7: 5}
    state.add_lease_ttls({})
    assert len(seen) == 3

    state.load_health([("10.0.0.9", "DOWN")])
    assert seen[-1] == EVERYTHING and state.health.down == {"10.0.0.9"}


def test_engine_and_backend_read_one_state():
    cfg = load_config(None, "dns")
    cfg["Dns"]["dns-domain"] = "example.test."
    engine = Engine(cfg)
    state = engine.state
    backend = PdnsBackend(state)
    state.load([rec("/skydns/test/example/api/x", {"host": "10.0.0.1"})], 3)

    def dns_answer():
        wire = dns.message.make_query("api.example.test.", "A").to_wire()
        reply = dns.message.from_wire(engine.miss(wire, "127.0.0.1", False))
        return sorted(rr.address for rrset in reply.answer for rr in rrset)

    def pdns_answer():
        found = backend.lookup_records("api.example.test.", "A")
        return sorted(r["content"] for r in found)

    assert dns_answer() == pdns_answer() == ["10.0.0.1"]
    assert len(engine.cache) == 1
    state.put(rec("/skydns/test/example/api/y", {"host": "10.0.0.2"}), 4)
    assert len(engine.cache) == 0  # the engine's cache heard of it
    assert dns_answer() == pdns_answer() == ["10.0.0.1", "10.0.0.2"]  # and the backend's memo
    state.set_health("10.0.0.1", "DOWN")
    assert dns_answer() == pdns_answer() == ["10.0.0.2"]


def test_dns_reads_status_keys_as_the_monitors_do():
    """A key the scanner and scheduler do not take for an address (trailing slash, nested)
    must not take one out of DNS answers either: one parser, skydns.keys.ip_of_key."""
    etcd = load_config(None, "dns")["Etcd"]
    state = ZoneState(ZoneSettings(domain="example.test."))
    sync = StoreSync(state, etcd)
    status = etcd["status-path"]
    down = b'{"status": "DOWN"}'
    kvs = [KV(status + k, down, 1, 0) for k in ("10.0.0.1/", "x/10.0.0.2", "10.0.0.3")]
    sync.on_status_reset(kvs, 1)
    assert state.health.down == {"10.0.0.3"}
