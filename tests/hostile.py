"""Hostile DNS packets, built from bytes: the CPU bomb, over-long names, malformed sections,
and a seeded mutator for fuzzing. Pure: no sockets (the fuzz loop is in fuzz())."""

from __future__ import annotations

import os
import random
import socket
import struct
import time
from pathlib import Path

import dns.message
import dns.rcode


def header(qd=1, an=0, ns=0, ar=0, flags=0x0100, qid=0x1234) -> bytes:
    return struct.pack("!HHHHHH", qid, flags, qd, an, ns, ar)


def wire_name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes((len(label),)) + label.encode()
    return out + b"\x00"


def query(name: str, qtype: int = 1, qid: int = 0x1234, opt: bool = False) -> bytes:
    body = header(ar=1 if opt else 0, qid=qid) + wire_name(name) + struct.pack("!HH", qtype, 1)
    if opt:
        body += b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0)
    return body


def pointer_bomb(chain: int = 900, size: int = 65000) -> bytes:
    """One question, then `chain` answer records whose owner names are each a one-octet label
    and a pointer to the previous owner: a full parse follows ~chain^2/2 pointers."""
    msg = bytearray(header(qd=1, an=chain) + wire_name("bomb.example.test.") + b"\x00\x01\x00\x01")
    prev = 12
    for _ in range(chain):
        here = len(msg)
        msg += b"\x01a" + struct.pack("!H", 0xC000 | prev) + struct.pack("!HHIH", 1, 1, 0, 0)
        prev = here
        if len(msg) > size - 16:
            break
    return bytes(msg)


def question_pointer_bomb(chain: int = 900) -> bytes:
    """A question whose name is a pointer chain through the rest of the datagram."""
    msg = bytearray(header())
    msg += struct.pack("!H", 0xC000 | 18) + b"\x00\x01\x00\x01"  # 18: just past the question
    for _ in range(chain):
        here = len(msg)
        msg += b"\x01a" + struct.pack("!H", 0xC000 | (here + 4))
    msg += b"\x00"
    return bytes(msg)


def long_label(n: int = 100) -> bytes:
    return header() + bytes((n,)) + b"x" * n + b"\x00\x00\x01\x00\x01"


def long_name(octets: int = 300) -> bytes:
    labels = b""
    while len(labels) < octets:
        labels += b"\x3f" + b"y" * 63
    return header() + labels + b"\x00\x00\x01\x00\x01"


def mutate(packet: bytes, rng: random.Random) -> bytes:
    data = bytearray(packet)
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        if op < 0.5 and data:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif op < 0.7:
            data.insert(rng.randrange(len(data) + 1), rng.randrange(256))
        elif op < 0.85 and data:
            del data[rng.randrange(len(data))]
        elif op < 0.95:
            cut = rng.randrange(len(data) + 1)
            data = data[:cut]
        else:
            data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
    return bytes(data)


def fuzz_packets(rng: random.Random, seeds: list[bytes]):
    """Endless: mostly mutated valid queries, some random bytes, some crafted bombs."""
    bombs = [pointer_bomb(), question_pointer_bomb(), long_label(64), long_label(191),
             long_name(300)]
    while True:
        r = rng.random()
        if r < 0.8:
            yield mutate(rng.choice(seeds), rng)
        elif r < 0.98:
            yield bytes(rng.randrange(256) for _ in range(rng.randint(0, 120)))
        else:
            yield mutate(rng.choice(bombs), rng) if rng.random() < 0.5 else rng.choice(bombs)


def fuzz(port: int, count: int, seconds: float, every: int = 100, seed: int = 1,
         name: str = "h.example.test.", expect: str = "") -> dict:
    """Send up to `count` fuzzed datagrams (stopping after `seconds`) from one socket, and a
    valid query for `name` every `every` packets from another, checking its answer holds
    `expect`. Replies to the junk are read and thrown away so the socket never fills."""
    rng = random.Random(seed)
    seeds = [query(name), query(name, 28, opt=True), query("nx.example.test.", 16),
             query("example.test.", 6, opt=True), query("x.y.example.test.", 33)]
    # several source ports, so SO_REUSEPORT spreads the junk over every worker
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(8)]
    for sock in sockets:
        sock.setblocking(False)
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.settimeout(3.0)  # generous: a loaded machine must not count as a wrong answer
    addr = ("127.0.0.1", port)
    sent = probes = good = replies = 0
    slowest = 0.0
    deadline = time.monotonic() + seconds
    packets = fuzz_packets(rng, seeds)
    try:
        while sent < count and time.monotonic() < deadline:
            junk = sockets[sent % len(sockets)]
            try:
                junk.sendto(next(packets), addr)
            except BlockingIOError:
                pass
            sent += 1
            while True:
                try:
                    junk.recv(65535)
                    replies += 1
                except (BlockingIOError, ConnectionRefusedError):
                    break
            if sent % every == 0:
                probes += 1
                q = dns.message.make_query(name, "A")
                start = time.monotonic()
                probe.sendto(q.to_wire(), addr)
                try:
                    while True:  # a late reply to an earlier probe may come first
                        reply = dns.message.from_wire(probe.recv(65535))
                        if reply.id == q.id:
                            break
                except (TimeoutError, OSError):
                    continue
                slowest = max(slowest, time.monotonic() - start)
                if reply.rcode() == dns.rcode.NOERROR and expect in reply.to_text():
                    good += 1
    finally:
        for sock in sockets:
            sock.close()
        probe.close()
    return {"sent": sent, "probes": probes, "good": good, "junk_replies": replies,
            "slowest_probe_ms": round(slowest * 1000, 1)}


def bomb_cost(port: int, pids, count: int = 5000) -> dict:
    """Send `count` 900-pointer bombs (from several source ports) and return the workers' CPU
    time per bomb, syscalls included: an upper bound of the parse cost."""
    bomb = pointer_bomb()
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(8)]
    for sock in sockets:
        sock.settimeout(2.0)
    before = sum(cpu_seconds(pid) for pid in pids)
    answered = 0
    try:
        for i in range(count):
            sock = sockets[i % len(sockets)]
            sock.sendto(bomb, ("127.0.0.1", port))
            try:
                answered += sock.recv(65535)[3] & 0xF == 1  # FORMERR
            except TimeoutError:
                pass
    finally:
        for sock in sockets:
            sock.close()
    spent = sum(cpu_seconds(pid) for pid in pids) - before
    return {"bombs": count, "bomb_bytes": len(bomb), "formerr": answered,
            "cpu_us_per_bomb": round(spent / count * 1e6, 1)}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
