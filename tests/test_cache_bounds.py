"""What bounds the answer cache's memory besides cacheSize: the hone-one client memos."""

from __future__ import annotations

import json

import dns.message

from dnsserver.engine import Engine
from dnsserver.wire.message import question_key
from skydns.config import load_config
from skydns.keys import key_to_path
from skydns.records import parse_record
from skydns.rendezvous import choose


def test_hone_memos_share_one_budget_and_still_pick_by_rendezvous():
    cfg = load_config(None, "dns")
    cfg["Dns"]["dns-domain"] = "example.test."
    cfg["Fun"]["hone-one"] = True
    engine = Engine(cfg)
    records = {f"/skydns/test/example/{name}/{i}": {"host": f"10.{n}.0.{i}"}
               for n, name in enumerate(("a", "b")) for i in range(1, 9)}
    engine.state.load(
        [parse_record(k, key_to_path(k), json.dumps(v).encode()) for k, v in records.items()], 1)
    cache = engine.cache
    cache.hone_budget[1] = 100
    wires = [dns.message.make_query(f"{name}.example.test.", "A").to_wire() for name in "ab"]
    for wire in wires:
        engine.miss(wire, "127.0.0.1", False)
    for i in range(1000):
        client = f"192.0.{i // 256}.{i % 256}"
        for n, wire in enumerate(wires):
            reply = cache.hit(wire, question_key(wire, False, 1232), client, engine.allowed)
            got = dns.message.from_wire(wire[:2] + reply[0]).answer[0][0].address
            want = choose(client, [f"10.{n}.0.{i}" for i in range(1, 9)])
            assert got == f"10.{n}.0.{want + 1}"
    memos = sum(len(entry.memo) for entry in cache.entries.values())
    assert memos == cache.hone_budget[0] <= 100
    engine.state.load([], 2)  # everything dropped: the budget is free again
    assert cache.hone_budget[0] == 0
