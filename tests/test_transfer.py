"""The streamed zone transfer (transfer.py): the fast per-name bytes equal served.py's
(`answer()`), the copy kept per name follows every kind of change and equals a build from
scratch, and the first message leaves before the zone has been read."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import struct
import time

import dns.message
import dns.query
import pytest
from test_engine import make_engine

from dnsserver.front.tcp import TcpConnection
from dnsserver.zone.index import below_node
from dnsserver.zone.served import _key, name_rrs, served_names, served_rrs
from dnsserver.zone.transfer import PAUSE, Snapshot, plain_name, record_ends, rr_wire, soa_wire
from skydns.keys import key_to_path
from skydns.records import parse_record

from dnstest import Skydns

P = "/skydns/test/example/"

# Record shapes of names that hold only addresses (the bulk of a big zone): each table entry
# is a zone; every name of it is compared.
PLAIN_SHAPES = {
    "one v4": {"a/x": {"host": "10.0.0.1"}},
    "one v6": {"a/x": {"host": "2001:db8::1"}},
    "v4-mapped v6": {"a/x": {"host": "::ffff:1.2.3.4"}},
    "many": {f"svc/i{i}": {"host": f"10.0.1.{i}"} for i in range(1, 30)},
    "both families": {"m/a": {"host": "10.0.2.1"}, "m/b": {"host": "2001:db8::2"},
                      "m/c": {"host": "10.0.2.3"}},
    "same address twice": {"d/a": {"host": "10.0.3.1"}, "d/b": {"host": "10.0.3.1"},
                           "d/c": {"host": "10.0.3.2"}},
    "ports and weights": {"s/a": {"host": "10.0.4.1", "port": 80, "weight": 30},
                          "s/b": {"host": "10.0.4.2", "port": 8080, "weight": 10},
                          "s/c": {"host": "10.0.4.3", "port": 81, "priority": 20},
                          "s/d": {"host": "10.0.4.4", "priority": 20, "weight": 5}},
    "ttls": {"t/a": {"host": "10.0.5.1", "ttl": 60}, "t/b": {"host": "10.0.5.2", "ttl": 5}},
    "record above its children": {"n": {"host": "10.0.6.1"}, "n/c": {"host": "10.0.6.2"}},
    "one child": {"p/only": {"host": "10.0.7.1", "port": 53}},
    "deep": {"a/b/c/d": {"host": "10.0.8.1"}, "a/b/e": {"host": "10.0.8.2"}},
    "down": {"h/a": {"host": "10.9.0.1"}, "h/b": {"host": "10.9.0.2"},
             "h/c": {"host": "2001:db8::9"}},
    "all down": {"f/a": {"host": "10.9.1.1"}, "f/b": {"host": "10.9.1.2"}},
}
DOWN = ("10.9.0.1", "10.9.0.2", "10.9.1.1", "10.9.1.2")

# Shapes the fast path must leave to answer() (it returns None for them).
OTHER_SHAPES = {
    "cname": {"c/x": {"host": "web.example.test"}},
    "text": {"t/x": {"host": "10.1.0.1", "text": "hi"}},
    "mail": {"m/x": {"host": "10.1.0.2", "mail": True}},
    "typed": {"y/x": {"host": "10.1.0.3", "type": "A"}},
    "group": {"g/x": {"host": "10.1.0.4", "group": "g1"}},
    "targetstrip": {"s/x/y": {"host": "10.1.0.5", "port": 80, "targetstrip": 1}},
    "dotted label": {"dot/a.b": {"host": "10.1.0.6"}},
}


def engine_of(records: dict, down=(), **dns):
    engine = make_engine({P + k: v for k, v in records.items()}, **dns)
    for n, ip in enumerate(down):
        engine.state.set_health(ip, "DOWN", 10 + n)
    return engine


def reference_name(ctx, path, kinds) -> list[bytes]:
    """served.py's records of one name, rendered as transfer.py renders them."""
    rrs, _ = name_rrs(ctx, path, kinds)
    seen, out = set(), []
    for rr in rrs:
        key = _key(rr)
        if key is not None and key not in seen:
            seen.add(key)
            out.append(rr_wire(rr))
    return out


def split(wire: bytes) -> list[bytes]:
    out, start = [], 0
    for end in record_ends(wire):
        out.append(wire[start:end])
        start = end
    return out


@pytest.mark.parametrize("shape", sorted(PLAIN_SHAPES))
def test_plain_names_equal_answer_rules(shape):
    engine = engine_of(PLAIN_SHAPES[shape], DOWN)
    engine.state.add_lease_ttls({})
    ctx = engine.state
    for path, kinds in served_names(ctx, ctx.zone.domain_path).items():
        records = below_node(ctx.index.node(path))
        plain = plain_name(ctx, path, records)
        assert plain is not None, (shape, path)
        wire, count = plain
        assert split(wire) == reference_name(ctx, path, kinds), (shape, path)
        assert count == len(split(wire))


def test_plain_names_with_a_lease_ttl():
    records = {P + "l/a": {"host": "10.0.0.1"}, P + "l/b": {"host": "10.0.0.2"}}
    engine = make_engine({})
    engine.state.load([parse_record(k, key_to_path(k), json.dumps(v).encode(),
                                    lease=7 if k.endswith("a") else 0)
                       for k, v in records.items()], 1)
    engine.state.add_lease_ttls({7: 3})
    ctx = engine.state
    for path, kinds in served_names(ctx, ctx.zone.domain_path).items():
        wire, _ = plain_name(ctx, path, below_node(ctx.index.node(path)))
        assert split(wire) == reference_name(ctx, path, kinds)
    aggregate = key_to_path(P + "l")
    assert b"\x00\x01\x00\x01\x00\x00\x00\x03" in plain_name(
        ctx, aggregate, below_node(ctx.index.node(aggregate)))[0]  # a's A, TTL 3


@pytest.mark.parametrize("shape", sorted(OTHER_SHAPES))
def test_other_shapes_are_left_to_the_answer_rules(shape):
    engine = engine_of(OTHER_SHAPES[shape])
    ctx = engine.state
    path = key_to_path(P + next(iter(OTHER_SHAPES[shape])))
    assert plain_name(ctx, path, below_node(ctx.index.node(path))) is None


# -- the whole zone -------------------------------------------------------------------------

ZONE = {
    "web/a1": {"host": "10.1.0.1"},
    "web/a2": {"host": "10.1.0.2"},
    "alias/x": {"host": "web.example.test"},
    "mixed/c": {"host": "web.example.test"},  # a CNAME beside text: the chain's addresses
    "mixed/t": {"text": "beside a cname"},
    "east/staging/s1": {"host": "10.2.0.1", "port": 80},
    "east/staging/s2": {"host": "10.2.0.2", "port": 80},
    "mail/mx1": {"host": "mx.out.test", "mail": True, "priority": 5},
    "mail/mx2": {"host": "smtp.example.test", "mail": True, "priority": 10},
    "svc/_tcp/x": {"host": "target.example.test", "port": 443},
    "motd/x": {"text": "maintenance at 02:00"},
    "dns/ns/ns1": {"host": "10.0.9.1"},
    "grp/a": {"host": "10.4.0.1", "group": "g1"},
    "grp/b/c": {"host": "10.4.0.2", "group": "g2"},
    **{f"big/i{i:03d}": {"host": f"10.5.{i // 200}.{i % 200 + 1}"} for i in range(300)},
}


def reference_zone(engine) -> list[bytes]:
    ctx = engine.state
    return [rr_wire(rr) for rr in served_rrs(ctx, ctx.zone.domain_path)]


def streamed_zone(snapshot: Snapshot) -> list[bytes]:
    ctx = snapshot.state
    zone = ctx.zone.domain_path
    out = []
    for piece in snapshot.records(zone, soa_wire(ctx, zone)):
        if piece is not PAUSE:
            wire, count = piece
            records = split(wire)
            assert len(records) == count
            out += records
    return out


def check(engine, snapshot) -> None:
    want = reference_zone(engine)
    assert streamed_zone(snapshot) == want
    assert streamed_zone(Snapshot(engine.state, keep=False)) == want


@pytest.mark.parametrize("extra", [{}, {"wild/*": {"host": "10.3.0.1"}}], ids=["", "wildcard"])
def test_streamed_zone_is_served_py_zone(extra):
    engine = engine_of({**ZONE, **extra})
    check(engine, Snapshot(engine.state))


def test_local_name_is_transferred():
    engine = engine_of(ZONE, local="web.example.test.")
    snapshot = Snapshot(engine.state)
    check(engine, snapshot)
    got = b"".join(streamed_zone(snapshot))
    assert b"\x05local\x03dns\x07example\x04test\x00" in got


def put(engine, key: str, value: dict, rev: int) -> None:
    path = key_to_path(P + key)
    engine.state.put(parse_record(P + key, path, json.dumps(value).encode()), rev)


def test_kept_copy_follows_changes_and_recomputes_only_what_they_touched():
    engine = engine_of(ZONE)
    state = engine.state
    snapshot = Snapshot(state)
    snapshot.active = True
    check(engine, snapshot)
    names = len(served_names(state, state.zone.domain_path))
    assert snapshot.computed >= names

    def changed(change) -> int:
        before = snapshot.computed
        change()
        check(engine, snapshot)
        return snapshot.computed - before

    assert changed(lambda: None) == 0  # nothing changed: everything from the copy
    # a new address: the leaf and its aggregate, plus the names reading `web` from outside
    assert 0 < changed(lambda: put(engine, "web/a3", {"host": "10.1.0.3"}, 20)) < 10
    # deleted
    assert 0 < changed(lambda: state.delete(P + "big/i007", None, 21)) < 10
    # a DOWN address: the names holding it and those whose CNAME chain ends in it
    assert 0 < changed(lambda: state.set_health("10.1.0.1", "DOWN", 22)) < 10
    assert 0 < changed(lambda: state.set_health("10.5.0.5", "DOWN", 23)) < 10
    assert 0 < changed(lambda: state.set_health("10.1.0.1", None, 24)) < 10
    # a CNAME pointed elsewhere, and its new target changing afterwards
    assert 0 < changed(lambda: put(engine, "mixed/c", {"host": "east.example.test"}, 25)) < 10
    assert 0 < changed(lambda: put(engine, "east/x", {"host": "10.2.0.9"}, 26)) < 10
    # glue: the MX target gets an address of its own
    assert 0 < changed(lambda: put(engine, "smtp/a", {"host": "10.6.0.1"}, 27)) < 10
    # a stored wildcard: everything
    assert changed(lambda: put(engine, "wild/*", {"host": "10.3.0.1"}, 28)) >= names
    assert changed(lambda: state.delete(P + "wild/*", None, 29)) >= names
    # a full reload
    assert changed(lambda: state.load(list(state.index.records()), 30)) >= names


# -- streaming -------------------------------------------------------------------------------

def test_first_message_leaves_before_the_zone_is_read():
    records = {f"s{i // 100}/i{i}": {"host": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"}
               for i in range(30_000)}
    engine = engine_of(records)
    engine.axfr_allow = [ipaddress.ip_network("127.0.0.0/8")]
    query = dns.message.make_query("example.test.", "AXFR").to_wire()

    async def first_two():
        stream = engine.miss(query, "127.0.0.1", True)
        first = await stream.__anext__()
        computed = engine.snapshot.computed
        second = await stream.__anext__()
        await stream.aclose()
        return first, computed, second

    first, computed, second = asyncio.run(first_two())
    assert 0 < computed < 30_000 // 2  # not the whole zone
    one = dns.message.from_wire(first)
    assert one.answer[0].rdtype == dns.rdatatype.SOA
    assert len(second) <= 65535


def _recv(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        assert chunk, "connection closed"
        buf += chunk
    return buf


def test_other_queries_are_answered_while_a_transfer_waits_and_runs(etcd):
    etcd.put_many({P + f"s{i // 100}/i{i}": {"host": f"10.7.{i // 250}.{i % 250 + 1}"}
                   for i in range(5000)})
    srv = Skydns(etcd.endpoint, Dns={"axfr-allow": "127.0.0.0/8", "cacheSize": 0}).start()
    try:
        query = dns.message.make_query("example.test.", "AXFR").to_wire()
        with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(struct.pack("!H", len(query)) + query)
            (size,) = struct.unpack("!H", _recv(sock, 2))
            first = dns.message.from_wire(_recv(sock, size))
            assert first.answer[0].rdtype == dns.rdatatype.SOA
            # the transfer now waits on us (we do not read): the worker answers others
            deadline = time.monotonic() + 20
            for n in range(50):
                reply = srv.query(f"i{n * 97}.s{n * 97 // 100}.example.test.", timeout=2)
                assert reply.answer, n
                assert time.monotonic() < deadline
            rrs, soas = sum(len(r) for r in first.answer), 1
            while soas < 2:
                (size,) = struct.unpack("!H", _recv(sock, 2))
                msg = dns.message.from_wire(_recv(sock, size))
                rrs += sum(len(r) for r in msg.answer)
                soas += sum(1 for r in msg.answer if r.rdtype == dns.rdatatype.SOA)
            assert rrs > 5000 * 2
    finally:
        srv.stop()


def test_transfer_to_a_client_that_stops_reading_is_aborted():
    records = {f"s{i // 100}/i{i}": {"host": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"}
               for i in range(30_000)}  # about 8 MB of messages: more than socket buffers hold
    engine = engine_of(records)
    engine.axfr_allow = [ipaddress.ip_network("127.0.0.0/8")]
    query = dns.message.make_query("example.test.", "AXFR").to_wire()

    async def main():
        loop = asyncio.get_running_loop()
        conns = []

        def made():
            conns.append(TcpConnection(engine, 0.5))
            return conns[-1]

        server = await loop.create_server(made, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        await loop.sock_sendall(sock, struct.pack("!H", len(query)) + query)
        deadline = loop.time() + 30
        while not (conns and conns[0].transport is not None
                   and conns[0].transport.is_closing() and not conns[0].streaming):
            assert loop.time() < deadline, "a transfer nobody reads was kept"
            await asyncio.sleep(0.05)
        assert conns[0].write_paused  # it was waiting on us, not done
        sock.close()
        server.close()
        await server.wait_closed()

    asyncio.run(main())
