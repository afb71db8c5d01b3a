"""Cached answers over TCP (issue #17): pipelined queries answered from the TCP front in one
write, IDs patched, a reply truncated over UDP served whole over TCP (and the reverse never),
and the lazily moved idle deadline still closing idle connections."""

from __future__ import annotations

import socket
import struct
import time

import dns.flags
import dns.message
import dns.rcode

from dnstest import Skydns

MANY = 60  # addresses: 60 A records do not fit in 512 bytes


def load(etcd):
    etcd.put("/skydns/test/example/one/x", {"host": "10.0.0.1", "ttl": 60})
    for i in range(MANY):
        etcd.put(f"/skydns/test/example/big/h{i:02d}", {"host": f"10.1.0.{i}", "ttl": 60})


def frame(name: str, qid: int, rdtype: str = "A") -> bytes:
    wire = dns.message.make_query(name, rdtype, id=qid, use_edns=False).to_wire()
    return struct.pack("!H", len(wire)) + wire


def read_replies(sock: socket.socket, count: int) -> list[bytes]:
    replies, buf = [], b""
    while len(replies) < count:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {len(replies)} of {count} replies"
        buf += chunk
        while len(buf) >= 2 and len(buf) >= 2 + struct.unpack("!H", buf[:2])[0]:
            n = struct.unpack("!H", buf[:2])[0]
            replies.append(buf[2 : 2 + n])
            buf = buf[2 + n :]
    assert buf == b""
    return replies


def addresses(wire: bytes) -> list[str]:
    msg = dns.message.from_wire(wire)
    return sorted(rr.address for rrset in msg.answer for rr in rrset)


def test_pipelined_hits_are_answered_in_order_with_their_ids(etcd):
    load(etcd)
    srv = Skydns(etcd.endpoint).start()
    try:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
            sock.sendall(frame("one.example.test.", 7))
            (first,) = read_replies(sock, 1)  # a miss: cached, then fronted by the next hit
            sock.sendall(frame("one.example.test.", 8))
            (second,) = read_replies(sock, 1)
            # Many in one segment, the same question and others, hits and misses mixed
            names = ["one.example.test.", "nope.example.test.", "One.Example.Test."] * 20
            sock.sendall(b"".join(frame(n, 100 + i) for i, n in enumerate(names)))
            replies = read_replies(sock, len(names))
        assert first[2:] == second[2:] and second[:2] == b"\x00\x08"
        for i, (name, wire) in enumerate(zip(names, replies, strict=True)):
            msg = dns.message.from_wire(wire)
            assert msg.id == 100 + i
            assert msg.question[0].name.to_text() == name  # the client's own casing
            if name.startswith("nope"):
                assert msg.rcode() == dns.rcode.NXDOMAIN
            else:
                assert addresses(wire) == ["10.0.0.1"]
                if name == "one.example.test.":
                    assert wire[2:] == first[2:]  # byte for byte, ID aside
    finally:
        srv.stop()


def test_reply_truncated_over_udp_is_whole_over_tcp_and_stays_truncated_over_udp(etcd):
    load(etcd)
    # SkyDNS2's round_robin false: one variant per entry, so both transports' fronts hold it
    etcd.put("/skydns/config", {"round_robin": False})
    srv = Skydns(etcd.endpoint).start()
    try:
        for _ in range(3):  # miss, hit, front hit over UDP
            udp = srv.query("big.example.test.", use_edns=False)
            assert udp.flags & dns.flags.TC
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
            for qid in (1, 2, 3):  # miss (or cache hit), hit that fronts, front hit
                sock.sendall(frame("big.example.test.", qid))
                (wire,) = read_replies(sock, 1)
                msg = dns.message.from_wire(wire)
                assert msg.id == qid
                assert not msg.flags & dns.flags.TC
                assert len(addresses(wire)) == MANY
            sock.sendall(frame("big.example.test.", 4) * 5)  # pipelined front hits
            replies = read_replies(sock, 5)
        assert {dns.message.from_wire(w).id for w in replies} == {4}
        assert all(len(addresses(w)) == MANY for w in replies)
        for _ in range(2):  # the TCP front never answers UDP
            udp = srv.query("big.example.test.", use_edns=False)
            assert udp.flags & dns.flags.TC
    finally:
        srv.stop()


def test_idle_deadline_moves_with_each_message_and_still_closes(etcd):
    load(etcd)
    srv = Skydns(etcd.endpoint, Dns={"tcp-idle-timeout": 2.0}).start()
    try:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
            start, qid = time.monotonic(), 0
            while time.monotonic() - start < 5.0:  # well past the timeout, never idle
                qid += 1
                sock.sendall(frame("one.example.test.", qid))
                (wire,) = read_replies(sock, 1)
                assert dns.message.from_wire(wire).id == qid
                time.sleep(0.1)
            quiet = time.monotonic()
            assert sock.recv(10) == b""  # closed by the server once idle
            assert time.monotonic() - quiet < 9.0
    finally:
        srv.stop()
