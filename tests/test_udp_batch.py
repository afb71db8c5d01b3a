"""The batch UDP transport (udpbatch.py, mmsg.py): the same bytes as the event loop's transport,
sends that stop part-way or fail, fairness, a mixed load with nothing lost, every query counted.

In process: a real engine, a real socket on 127.0.0.1 and the real recvmmsg; only sendmmsg is
wrapped where a test needs it to send part of a batch or fail (the kernel will not do that on
demand). End to end: real skydns processes with `udp-batch` on and off, side by side.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import logging
import random
import socket
import struct
import sys
import time

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import pytest
from test_engine import make_engine

from dnsserver.front import mmsg, stats, udpbatch
from dnsserver.front.udpbatch import BatchUdp

from dnstest import Skydns, Upstream
from etcdtest import async_wait_for, run_async, wait_for

pytestmark = pytest.mark.skipif(not udpbatch.available(), reason="no recvmmsg here")

RECORDS = {
    "/skydns/test/example/api/x": {"host": "10.0.0.1"},
    "/skydns/test/example/db/x": {"host": "10.0.0.2"},
    "/skydns/test/example/multi/a": {"host": "10.0.1.1"},
    "/skydns/test/example/multi/b": {"host": "10.0.1.2"},
}
BIG = {f"/skydns/test/example/big/i{i:03d}": {"host": f"10.1.0.{i}"} for i in range(1, 101)}
LONG = {  # one record each: answers in one order, truncated past 512 and past 1232 bytes
    "/skydns/test/example/long/x": {"text": "x" * 1000},
    "/skydns/test/example/longer/x": {"text": "y" * 3000},
}
ROTATED = ("big.example.test.", "multi.example.test.")  # each server starts at a random turn


def wire(name: str, rdtype: str = "A", qid: int = 1, **kw) -> bytes:
    q = dns.message.make_query(name, rdtype, **kw)
    q.id = qid
    return q.to_wire()


def family(value: int) -> bytes:
    return value.to_bytes(2, sys.byteorder)


def test_sockaddr_as_the_event_loop_gives_it():
    v4 = family(socket.AF_INET) + struct.pack("!H", 5353) + socket.inet_aton("127.0.0.2")
    assert mmsg.sockaddr_to_addr(v4 + bytes(8)) == ("127.0.0.2", 5353)
    for host, scope in (("::1", 0), ("::ffff:127.0.0.1", 0), ("fe80::1", 3)):
        v6 = (family(socket.AF_INET6) + struct.pack("!HI", 53, 7)
              + socket.inet_pton(socket.AF_INET6, host) + scope.to_bytes(4, sys.byteorder))
        assert mmsg.sockaddr_to_addr(v6) == (host, 53, 7, scope)


# -- in process -----------------------------------------------------------------------------


class Harness:
    """A BatchUdp on 127.0.0.1 with a real engine, and a client socket to ask it."""

    def __init__(self, engine, **kw):
        self.engine = engine
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        self.addr = sock.getsockname()
        self.transport = BatchUdp(sock, engine, **kw)
        self.client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.client.setblocking(False)

    def send(self, payloads) -> None:
        for payload in payloads:
            self.client.sendto(payload, self.addr)

    async def replies(self, count: int, timeout: float = 10.0) -> list[bytes]:
        got, deadline = [], time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            try:
                got.append(self.client.recv(65535))
            except BlockingIOError:
                await asyncio.sleep(0.005)
        return got

    def close(self) -> None:
        self.transport.close()
        self.client.close()


def ids(replies) -> list[int]:
    return sorted(struct.unpack("!H", r[:2])[0] for r in replies)


def warm(engine, name: str) -> None:
    """Put `name`'s answer into the front, as a first query and a repeat would."""
    from dnsserver.front.udp import answer_slow

    for _ in range(2):
        answer_slow(engine, wire(name), ("127.0.0.1", 1))
    assert engine.cache.front


class Sends:
    """sendmmsg as the kernel does it, except for the answers scripted in `script` (each a
    cap on how many to send, or a negative errno); records every call."""

    def __init__(self, *script):
        self.script = list(script)
        self.calls: list[tuple[int, int]] = []

    def __call__(self, fd: int, hdrs: int, count: int) -> int:
        step = self.script.pop(0) if self.script else None
        self.calls.append((count, step))
        if step is not None and step < 0:
            return step
        return mmsg.sendmmsg(fd, hdrs, count if step is None else min(step, count))


def test_partial_sendmmsg_sends_the_rest():
    async def main():
        engine = make_engine(RECORDS)
        warm(engine, "api.example.test.")
        sends = Sends(3, 2)  # the kernel took 3 of the batch, then 2 of the rest
        h = Harness(engine, sendmmsg=sends)
        try:
            h.send(wire("api.example.test.", qid=i) for i in range(10))
            got = await h.replies(10)
        finally:
            h.close()
        assert ids(got) == list(range(10))
        assert len({r[2:] for r in got}) == 1
        assert sum(count for count, _ in sends.calls) > 10  # some were offered again
        assert engine.stats["udp_dropped"] == 0

    run_async(main())


def test_eagain_waits_for_writable_and_never_blocks_the_loop():
    async def main():
        engine = make_engine(RECORDS)
        warm(engine, "api.example.test.")
        sends = Sends(2, -errno.EAGAIN)  # 2 sent, then the socket is full
        h = Harness(engine, sendmmsg=sends)
        ticks = []
        try:
            h.send(wire("api.example.test.", qid=i) for i in range(6))
            deadline = time.monotonic() + 10
            while h.transport._waiting is None and len(sends.calls) < 3:
                assert time.monotonic() < deadline, "the batch never reached the full socket"
                await asyncio.sleep(0)
                ticks.append(1)  # the loop runs other work meanwhile
            got = await h.replies(6)
        finally:
            h.close()
        assert ids(got) == list(range(6)) and ticks
        assert [step for _, step in sends.calls][:2] == [2, -errno.EAGAIN]
        assert engine.stats["udp_dropped"] == 0

    run_async(main())


def test_enobufs_and_refused_addresses_drop_and_count():
    async def main():
        engine = make_engine(RECORDS)
        warm(engine, "api.example.test.")
        # ENOBUFS: the whole batch is dropped; EINVAL (say a bad address) drops only the
        # reply it hit, the rest of that batch goes out
        sends = Sends(-errno.ENOBUFS)
        h = Harness(engine, sendmmsg=sends)
        try:
            h.send(wire("api.example.test.", qid=i) for i in range(4))
            await async_wait_for(lambda: engine.stats["udp_dropped"] == 4, timeout=10.0,
                                 message="the ENOBUFS batch counted as dropped")
            sends.script = [1, -errno.EINVAL]
            h.send(wire("api.example.test.", qid=i) for i in range(10, 14))
            got = await h.replies(3)
            assert sorted(ids(got)) == [10, 12, 13]
            assert engine.stats["udp_dropped"] == 5
            assert not await h.replies(1, timeout=0.2)  # 0-3 and 11 never came
        finally:
            h.close()

    run_async(main())


def test_one_callback_reads_a_bounded_number_of_batches():
    async def main():
        engine = make_engine(RECORDS)
        warm(engine, "api.example.test.")
        read = []

        def recvmmsg(fd, hdrs, count):
            n = mmsg.recvmmsg(fd, hdrs, count)
            read.append(n)
            return n

        h = Harness(engine, slots=4, batches=2, recvmmsg=recvmmsg)
        try:
            # loopback delivers on sendto: all 20 wait before the loop runs again
            h.send(wire("api.example.test.", qid=i) for i in range(20))
            h.transport._readable()  # what the loop calls when the socket is readable
            assert read == [4, 4]  # two batches, then back to the loop with 12 waiting
            got = await h.replies(20)
        finally:
            h.close()
        assert ids(got) == list(range(20))

    run_async(main())


def test_every_query_counted_and_logged(caplog):
    async def main():
        engine = make_engine({**RECORDS, **BIG})
        engine.log_queries = True
        warm(engine, "api.example.test.")
        h = Harness(engine)
        asked = [wire("api.example.test.", qid=1),  # the front
                 wire("multi.example.test.", qid=2),  # a rotation: the cache's hit path
                 wire("multi.example.test.", qid=3),
                 wire("nope.example.test.", qid=4),  # a miss, NXDOMAIN
                 wire("db.example.test.", "AAAA", qid=5),  # NODATA
                 b"\x00\x06\x01\x00\x00\x01" + b"\x00" * 6 + b"\x05ab"]  # cut: FORMERR
        before = stats.snapshot(engine)["counters"]["requests"]
        try:
            with caplog.at_level(logging.INFO, logger="skydns.engine"):
                h.send(asked)
                got = await h.replies(len(asked))
        finally:
            h.close()
        assert ids(got) == [1, 2, 3, 4, 5, 6]
        assert stats.snapshot(engine)["counters"]["requests"] - before == len(asked)
        logged = [r for r in caplog.records if r.getMessage() == "query"]
        assert len(logged) == len(asked) - 1  # the junk is not a query to log (as today)

    run_async(main())


def test_each_miss_is_answered_for_its_own_sender():
    """Senders are remembered by their sockaddr bytes (udpbatch._addr): misses from two
    addresses and two ports, alone and in batches, each reach the engine as their sender."""
    async def main():
        engine = make_engine({**RECORDS, **BIG}, cacheSize=0)
        seen = []
        miss = engine.miss

        def recording(data, client, tcp, *keyed):
            seen.append((data[:2], client))
            return miss(data, client, tcp, *keyed)

        engine.miss = recording
        h = Harness(engine)
        clients = []
        for host in ("127.0.0.1", "127.0.0.2", "127.0.0.1"):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((host, 0))
            sock.setblocking(False)
            clients.append(sock)
        try:
            expected = []
            for burst in (1, 5, 1, 7):
                for _ in range(burst):
                    qid = len(expected) + 1
                    sock = clients[qid % 3]
                    sock.sendto(wire("api.example.test.", qid=qid), h.addr)
                    expected.append((qid.to_bytes(2, "big"), sock.getsockname()[0]))
                count = len(expected)
                await async_wait_for(lambda n=count: len(seen) >= n, timeout=10)
            assert sorted(seen) == sorted(expected)
            for k, sock in enumerate(clients):  # and each reply went back to its sender
                want = sorted(q for q in range(1, len(expected) + 1) if q % 3 == k)
                got = []
                await async_wait_for(lambda s=sock, g=got, w=want: _read(s, g) >= len(w),
                                     timeout=10)
                assert sorted(got) == want
        finally:
            h.close()
            for sock in clients:
                sock.close()

    run_async(main())


def _read(sock, got: list) -> int:
    """Read what has come to `sock`, its replies' IDs into `got`; how many so far."""
    try:
        while True:
            got.append(struct.unpack("!H", sock.recv(65535)[:2])[0])
    except BlockingIOError:
        return len(got)


def test_lone_datagrams_read_one_by_one_and_bursts_in_batches(caplog):
    """After a read finds one datagram alone, the next are read with recvfrom and answered with
    sendto (the lone path) until a full read every LONE_CHECK-th time finds a burst: lone
    queries and bursts are all answered, counted and logged, front hits and misses alike."""

    async def main():
        engine = make_engine(RECORDS)
        engine.log_queries = True
        warm(engine, "api.example.test.")
        reads = []  # what each recvmmsg returned: the full reads

        def recvmmsg(fd, hdrs, count):
            n = mmsg.recvmmsg(fd, hdrs, count)
            reads.append(n)
            return n

        h = Harness(engine, recvmmsg=recvmmsg)
        before = stats.snapshot(engine)["counters"]["requests"]
        lone = 3 * udpbatch.LONE_CHECK - 1  # the full reads: 3 (every LONE_CHECK-th)
        try:
            with caplog.at_level(logging.INFO, logger="skydns.engine"):
                for i in range(lone):  # one in flight at a time
                    name = "nope.example.test." if i % 5 == 4 else "api.example.test."
                    h.send([wire(name, qid=i)])
                    got = await h.replies(1)
                    assert ids(got) == [i]
                    assert dns.message.from_wire(got[0]).rcode() == (
                        dns.rcode.NXDOMAIN if i % 5 == 4 else dns.rcode.NOERROR)
                assert h.transport._quiet  # still reading one by one
                assert reads == [1] * 3
                burst = [wire("api.example.test.", qid=100 + i) for i in range(50)]
                h.send(burst)
                got = await h.replies(len(burst))
        finally:
            h.close()
        assert ids(got) == list(range(100, 150))
        assert max(reads) > 1  # the burst was seen and read in batches
        counted = stats.snapshot(engine)["counters"]["requests"] - before
        assert counted == lone + len(burst)
        assert len([r for r in caplog.records if r.getMessage() == "query"]) == counted

    run_async(main())


def test_lone_reply_to_a_full_socket_waits_or_is_dropped():
    """The lone path's sendto failing: EAGAIN keeps the reply until the socket is writable,
    another error drops it and counts it, as the batch path does."""

    async def main():
        engine = make_engine(RECORDS)
        warm(engine, "api.example.test.")
        h = Harness(engine)
        libc_sendto = h.transport._sendto
        failures = []

        def sendto(*args):
            if failures:
                ctypes.set_errno(failures.pop(0))
                return -1
            return libc_sendto(*args)

        # the send without errno, and the one that learns why after it failed
        h.transport._sendto = h.transport._sendto_why = sendto
        try:
            h.send([wire("api.example.test.", qid=1)])  # a full read finds it alone
            assert ids(await h.replies(1)) == [1]
            assert h.transport._quiet
            failures.extend([errno.EAGAIN] * 2)
            h.send([wire("api.example.test.", qid=2)])
            assert ids(await h.replies(1)) == [2]  # sent once writable
            failures.extend([errno.EPERM] * 2)
            h.send([wire("api.example.test.", qid=3)])
            await async_wait_for(lambda: engine.stats["udp_dropped"] == 1, timeout=10.0,
                                 message="the refused lone reply counted as dropped")
            h.send([wire("api.example.test.", qid=4)])
            assert ids(await h.replies(1)) == [4]
        finally:
            h.close()

    run_async(main())


# -- end to end: the same bytes with batching on and off ------------------------------------


def _v6only_by_default() -> bool:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        return bool(sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY))


def exchange(host: str, port: int, source: str, payload: bytes, timeout: float = 2.0):
    family = socket.AF_INET6 if ":" in source else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.bind((source, 0))
        for _ in range(3):  # a loaded machine may lose one
            sock.sendto(payload, (host, port))
            try:
                return sock.recv(65535)
            except TimeoutError:
                continue
    return None


ROTATED_WIRE = [dns.name.from_text(n).to_wire() for n in ROTATED]


def question_table() -> list[bytes]:
    """Questions and their variants: cached and not, truncated with and without EDNS, odd."""
    table = []
    for name, rdtype in [("api.example.test.", "A"), ("ApI.eXaMpLe.TeSt.", "A"),
                         ("db.example.test.", "AAAA"), ("nope.example.test.", "A"),
                         ("long.example.test.", "TXT"), ("longer.example.test.", "TXT"),
                         ("big.example.test.", "A"), ("multi.example.test.", "A"),
                         ("example.test.", "SOA"), ("example.test.", "NS"),
                         ("api.example.test.", "TXT"), ("api.example.test.", "ANY"),
                         ("x.y.nope.example.test.", "MX")]:
        table.append(wire(name, rdtype, use_edns=False))
        for size in (512, 1232, 4096):
            table.append(wire(name, rdtype, use_edns=0, payload=size))
        table.append(wire(name, rdtype, use_edns=0, payload=4096, want_dnssec=True))
    table.append(wire("api.example.test.", use_edns=1))  # BADVERS
    chaos = dns.message.make_query("version.bind.", "TXT", "CH")
    table.append(chaos.to_wire())
    table.append(b"\x12\x34" + b"\x01\x00\x00\x01" + b"\x00" * 6 + b"\x03abc")  # cut short
    for qid, payload in enumerate(table):
        table[qid] = struct.pack("!H", qid + 100) + payload[2:]
    return table


@pytest.fixture
def records(etcd):
    for key, value in {**RECORDS, **BIG, **LONG}.items():
        etcd.put(key, value)
    return etcd


@pytest.mark.parametrize("host, sources", [("127.0.0.1", ["127.0.0.1"]),
                                           ("::", ["::1", "127.0.0.1"])],
                         ids=["ipv4", "dual-stack"])
def test_same_bytes_with_batching_on_and_off(records, host, sources):
    if host == "::" and _v6only_by_default():
        sources = ["::1"]  # "::" is not dual-stack on this machine: IPv6 clients only
    servers = [Skydns(records.endpoint, host=host, Dns={"udp-batch": on}) for on in (True, False)]
    try:
        for srv in servers:
            srv.start()
        assert "udp=batch" in servers[0].logs() and "udp=loop" in servers[1].logs()
        table = question_table()
        for source in sources:
            for _round in range(2):  # a miss, then the front or the cache's hit path
                for payload in table:
                    one, other = [exchange(source, srv.port, source, payload) for srv in servers]
                    if one and any(name in payload for name in ROTATED_WIRE):
                        # the same records from another turn: the same header and size
                        one, other = (one[:12], len(one)), (other[:12], len(other))
                    assert one == other, payload
        for name in ("long.example.test.", "longer.example.test.", "big.example.test."):
            sizes = []
            for kw in ({"use_edns": False}, {"use_edns": 0, "payload": 1232},
                       {"use_edns": 0, "payload": 4096}):
                reply = exchange(sources[0], servers[0].port, sources[0], wire(name, "TXT"
                                 if name.startswith("long") else "A", **kw))
                sizes.append(bool(dns.message.from_wire(reply).flags & dns.flags.TC))
            assert sizes[0], name  # the table does hold truncated replies
    finally:
        for srv in servers:
            srv.stop()


def test_mixed_cached_missed_forwarded_load_loses_nothing(records):
    upstream = {f"h{i}.elsewhere.test": f"192.0.2.{i}" for i in range(1, 11)}
    with Upstream(upstream) as up:
        srv = Skydns(records.endpoint,
                     Dns={"nameservers": f"127.0.0.1:{up.port}", "forward-timeout": 2.0})
        srv.start()
        try:
            assert "udp=batch" in srv.logs()
            rng = random.Random(5)
            expected = {}  # (socket, id) -> (rcode, addresses)
            plans = []
            for s in range(3):
                plan = []
                for qid in range(200):
                    kind = rng.randrange(4)
                    if kind == 0:
                        name, want = "api.example.test.", (0, ["10.0.0.1"])
                    elif kind == 1:
                        name, want = f"n{s}x{qid}.example.test.", (3, [])
                    elif kind == 2:
                        i = rng.randrange(1, 11)
                        name, want = f"h{i}.elsewhere.test.", (0, [f"192.0.2.{i}"])
                    else:
                        name, want = "multi.example.test.", (0, ["10.0.1.1", "10.0.1.2"])
                    plan.append(wire(name, qid=qid))
                    expected[(s, qid)] = want
                plans.append(plan)
            got = _blast(srv.port, plans, window=32)
            assert set(got) == set(expected), f"{len(set(expected) - set(got))} unanswered"
            for key, reply in got.items():
                msg = dns.message.from_wire(reply)
                addrs = sorted(rr.address for rrset in msg.answer for rr in rrset
                               if rrset.rdtype == 1)
                assert (msg.rcode(), addrs) == expected[key], (key, msg)
        finally:
            srv.stop()


def _blast(port: int, plans: list[list[bytes]], window: int, timeout: float = 30.0) -> dict:
    """Send every plan's queries from its own socket, `window` unanswered at a time; the
    replies by (socket, id). Nothing is sent twice: a lost answer stays missing."""
    socks = []
    for _ in plans:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.connect(("127.0.0.1", port))
        socks.append(sock)
    got, sent = {}, [0] * len(plans)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and len(got) < sum(map(len, plans)):
            for s, sock in enumerate(socks):
                answered = sum(1 for key in got if key[0] == s)
                while sent[s] < len(plans[s]) and sent[s] - answered < window:
                    sock.send(plans[s][sent[s]])
                    sent[s] += 1
                while True:
                    try:
                        reply = sock.recv(65535)
                    except BlockingIOError:
                        break
                    got[(s, struct.unpack("!H", reply[:2])[0])] = reply
            time.sleep(0.001)
    finally:
        for sock in socks:
            sock.close()
    return got


def test_udp_batch_false_is_the_event_loop_transport(records):
    srv = Skydns(records.endpoint, Dns={"udp-batch": False}).start()
    try:
        assert "udp=loop" in srv.logs()
        assert srv.addresses("api.example.test.") == ["10.0.0.1"]
    finally:
        srv.stop()
    wait_for(lambda: srv.proc.poll() is not None, timeout=10)
