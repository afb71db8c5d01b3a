"""`skydns dump` and the PowerDNS backend's `list` read the zone transfer's record stream
(zone/rows.py): the same records, in the same order, as served.py's `served_rrs` (the
reference, `answer()` per name), and a big `list` leaves the backend's loop free for lookups."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from test_transfer import ZONE, P

from dnsserver.dump import rows as dump_rows
from dnsserver.zone.rows import rows_of, served_rows
from dnsserver.zone.served import served_rrs
from dnsserver.zone.state import ZoneState
from dnsserver.zone.transfer import PAUSE, Snapshot
from pdnsbackend.protocol import PdnsBackend, Session, encode, ent, record, zone_id
from pdnsbackend.server import PdnsServer
from skydns.config import load_config
from skydns.keys import key_to_path, name_to_path, path_to_name
from skydns.records import parse_record

from samples import EXAMPLES

# Every shape the transfer tests use, and the rarer ones: wildcards, CNAMEs (one beside
# text), SRV, MX inside and outside the zone, TXT needing escapes, IPv6 spellings, DOWN
# addresses (some names all DOWN), labels dnslib escapes, the reverse zone.
RICH = {
    **{P + k: v for k, v in ZONE.items()},
    **EXAMPLES,
    P + "wild/*": {"host": "10.3.0.1"},
    P + "txt/q": {"text": 'say "hi" \\ back\ttab é'},
    P + "v6/b": {"host": "1:0:0:2:0:0:0:3"},
    P + "v6/c": {"host": "::ffff:1.2.3.4"},
    P + "odd/a!b": {"host": "10.7.0.1"},
    P + 'odd/q"b': {"host": "10.7.0.2", "port": 80},  # JSON escapes in names and targets
    P + "odd/s\\b": {"host": "10.7.0.3"},
    P + "down/a": {"host": "10.9.0.1"},
    P + "down/b": {"host": "10.9.0.2"},
    P + "down/c": {"host": "10.9.0.3"},
    P + "alldown/a": {"host": "10.9.1.1"},
    "/skydns/arpa/in-addr/10/0/0/2": {"host": "web.example.test"},
}
DOWN = ("10.9.0.1", "10.9.0.2", "10.9.1.1", "10.1.0.1")


def make_state(records: dict, local: str = "", down=DOWN) -> ZoneState:
    cfg = load_config(None, "dns")
    cfg["Dns"]["dns-domain"] = "example.test."
    if local:
        cfg["Dns"]["local"] = local
    from dnsserver.engine import zone_settings

    state = ZoneState(zone_settings(cfg))
    state.load([parse_record(k, key_to_path(k), json.dumps(v).encode())
                for k, v in records.items()], 7)
    state.load_health((ip, "DOWN") for ip in down)
    return state


ZONES = ["example.test.", "in-addr.arpa."]
CASES = {
    "rich": lambda: make_state(RICH),
    "rich, local name": lambda: make_state(RICH, local="web.example.test."),
    "no wildcard": lambda: make_state({k: v for k, v in RICH.items() if "*" not in k}),
    # the local name alone below dns.: an empty non-terminal
    "local name, no dns/": lambda: make_state({k: v for k, v in RICH.items() if "/dns/" not in k},
                                              local="web.example.test."),
}


def old_list(state: ZoneState, zone_name: str) -> list[dict]:
    """pdns `list` as it was: served_rrs, then the empty non-terminals."""
    zone = name_to_path(zone_name)
    zid = zone_id(zone, state)
    out = [record(rr, zid, state) for rr in served_rrs(state, zone)]
    owners = {name_to_path(r["qname"]) for r in out}
    ents = set()
    for owner in owners:
        for depth in range(len(zone) + 1, len(owner)):
            if owner[:depth] not in owners:
                ents.add(owner[:depth])
    return out + [ent(path_to_name(p), zid) for p in sorted(ents)]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("zone", ZONES)
def test_rows_are_served_rrs(case, zone):
    state = CASES[case]()
    want = [(str(rr.rname), rr.rtype, rr.ttl, rr.rdata.toZone())
            for rr in served_rrs(state, name_to_path(zone))]
    assert len(want) > (2 if zone.endswith("arpa.") else 5)  # a reverse zone: SOA and PTRs
    got = [row[:4] for piece in served_rows(Snapshot(state, keep=False), name_to_path(zone))
           if piece is not PAUSE for row in piece]
    assert got == want


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("zone", ZONES)
def test_dump_prints_served_rrs(case, zone):
    from dnslib import QTYPE

    state = CASES[case]()
    want = [(str(rr.rname), rr.ttl, QTYPE.get(rr.rtype), rr.rdata.toZone(), None, "")
            for rr in served_rrs(state, name_to_path(zone))]
    assert list(dump_rows(state, zone)) == want


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("zone", ZONES)
def test_pdns_list_is_the_served_rrs_list(case, zone):
    state = CASES[case]()
    want = old_list(state, zone)
    if zone == "example.test.":
        assert any(r["qtype"] == "TXT" for r in want)
        assert any(r["qtype"] == "" for r in want) == (case == "local name, no dns/")
    backend = PdnsBackend(state)
    request = {"method": "list", "parameters": {"zonename": zone, "domain_id": -1}}
    assert backend.handle(request) == {"result": want}
    # the socket path (built in pieces, with pauses): the same bytes as one json.dumps
    line = json.dumps(request).encode() + b"\n"
    assert Session(backend).feed(line) == encode({"result": want})
    # and again, from the copy kept since the first list
    assert Session(backend).feed(line) == encode({"result": want})


def test_kept_copy_follows_changes():
    state = make_state(RICH)
    backend = PdnsBackend(state)
    request = {"method": "list", "parameters": {"zonename": "example.test."}}
    assert backend.handle(request)["result"] == old_list(state, "example.test.")
    state.set_health("10.1.0.2", "DOWN", 20)
    state.put(parse_record(P + "web/a3", key_to_path(P + "web/a3"),
                           b'{"host": "10.1.0.3"}'), 21)
    state.delete(P + "alias/x", None, 22)
    assert backend.handle(request)["result"] == old_list(state, "example.test.")


def test_rows_of_escapes_as_dnslib():
    from dnslib import RR, A

    from dnsserver.zone.transfer import rr_wire

    rr = RR("a\\032b.x\\255.example.", rdata=A("10.0.0.1"), ttl=5)
    (row,) = rows_of(rr_wire(rr), 1)
    assert row[:4] == (str(rr.rname), 1, 5, "10.0.0.1")


def test_list_request_pauses_and_bad_zone_fails_without_pausing():
    records = {f"{P}s{i // 50}/i{i}": {"host": f"10.8.{i >> 8 & 255}.{i & 255}"}
               for i in range(3000)}
    backend = PdnsBackend(make_state(records, down=()))
    session = Session(backend)
    steps = session.feed_steps(b'{"method":"list","parameters":{"zonename":"example.test."}}\n')
    pauses = 0
    while True:
        try:
            assert next(steps) is PAUSE
            pauses += 1
        except StopIteration as done:
            reply = json.loads(b"".join(done.value))
            break
    assert pauses > 10 and len(reply["result"]) > 6000
    steps = session.feed_steps(b'{"method":"list","parameters":{"zonename":"x.test."}}\n')
    with pytest.raises(StopIteration) as done:
        next(steps)
    assert b"not a zone" in b"".join(done.value.value)
    assert backend.counts["list", "ok"] == 1 and backend.counts["list", "fail"] == 1


def test_lookups_are_answered_while_a_big_list_runs(tmp_path):
    """The backend's loop keeps serving other connections during a list of a big zone."""
    records = {f"{P}s{i // 100}/i{i}": {"host": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"}
               for i in range(30_000)}
    cfg = load_config(None, "dns")
    cfg["Dns"]["dns-domain"] = "example.test."
    server = PdnsServer(cfg, str(tmp_path / "pdns.sock"), 0o600)
    server.state.load([parse_record(k, key_to_path(k), json.dumps(v).encode())
                       for k, v in records.items()], 7)
    path = str(tmp_path / "pdns.sock")

    async def main():
        unix = await asyncio.start_unix_server(server._serve, path=path, limit=1 << 16)
        lister = await asyncio.open_unix_connection(path, limit=1 << 26)
        looker = await asyncio.open_unix_connection(path)
        done = asyncio.Event()
        answered = 0

        async def look():
            nonlocal answered
            reader, writer = looker
            deadline = time.monotonic() + 60
            while not done.is_set():
                assert time.monotonic() < deadline
                writer.write(b'{"method":"lookup","parameters":{"qname":"s7.example.test.",'
                             b'"qtype":"A"}}\n')
                reply = json.loads(await reader.readline())
                assert len(reply["result"]) == 100
                if not done.is_set():
                    answered += 1

        reader, writer = lister
        writer.write(b'{"method":"list","parameters":{"zonename":"example.test."}}\n')
        await writer.drain()
        looking = asyncio.create_task(look())
        # the reply is written once complete: count the lookups answered before it starts
        first = await asyncio.wait_for(reader.readexactly(1), 120)
        done.set()
        reply = first + await asyncio.wait_for(reader.readline(), 120)
        await asyncio.wait_for(looking, 30)
        for _, w in (lister, looker):
            w.close()
        unix.close()
        await unix.wait_closed()
        return json.loads(reply), answered

    reply, answered = asyncio.run(main())
    assert len(reply["result"]) > 60_000
    # a blocked loop would answer at most the one lookup read before the list began
    assert answered >= 5, answered
