"""The reference: the least a Python UDP responder can do per query, on uvloop.

It answers from a dict of ready replies keyed by the question bytes: look up, patch the ID,
send. No parsing, no checks, no cache bookkeeping. Its CPU cost per query is the ceiling that
skydns's hot path (the same idea plus everything a real server needs) is measured against.

    python bench/minimal_responder.py --port 5300 --replies replies.marshal [--batch]

With --batch it reads up to 64 datagrams per recvmmsg and answers them with one sendmmsg
(dnsserver/front/mmsg.py's buffers and libc calls), lone datagrams one by one as udpbatch.py
does: the floor of skydns's `udp-batch` transport.

The replies come from `precompute`: ask a real server once for each distinct question of a
dnsperf query file, exactly as dnsperf asks it (RD set, no EDNS), and keep each reply minus ID.
"""

from __future__ import annotations

import argparse
import asyncio
import marshal
import signal
import socket
import struct
import sys
from pathlib import Path

from dnslib import QTYPE


def question(name: str, qtype: str) -> bytes:
    """The question section as dnsperf sends it: the name as written, type, class IN."""
    labels = [label.encode() for label in name.rstrip(".").split(".")]
    wire = b"".join(bytes((len(label),)) + label for label in labels) + b"\0"
    return wire + struct.pack("!HH", getattr(QTYPE, qtype.upper()), 1)


def precompute(port: int, qfile: Path, out: Path, timeout: float = 1.0) -> int:
    """Ask the server on `port` every distinct question of `qfile`; save {question: reply[2:]}."""
    text = qfile.read_text().splitlines()
    lines = dict.fromkeys(tuple(line.split()) for line in text if line.strip())
    replies: dict[bytes, bytes] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.connect(("127.0.0.1", port))
        for qid, (name, qtype) in enumerate(lines):
            q = question(name, qtype)
            header = struct.pack("!HHHHHH", qid & 0xFFFF, 0x0100, 1, 0, 0, 0)
            for _attempt in range(3):
                sock.send(header + q)
                try:
                    reply = sock.recv(65535)
                except TimeoutError:
                    continue
                if reply[:2] == header[:2]:
                    replies[q] = reply[2:]
                    break
            else:
                raise RuntimeError(f"no reply for {name} {qtype} from port {port}")
    out.write_bytes(marshal.dumps(replies))
    return len(replies)


class Responder(asyncio.DatagramProtocol):
    def __init__(self, replies: dict[bytes, bytes]):
        self.replies = replies
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        reply = self.replies.get(data[12:])
        if reply is not None:
            self.transport.sendto(data[:2] + reply, addr)


class BatchResponder:
    """The same in batches: recvmmsg, look up, copy into the send slots, one sendmmsg; and
    as udpbatch.py does, after a read that found one datagram alone the next ones one by one
    with libc's recvfrom and sendto, every LONE_CHECK-th read a full one again."""

    def __init__(self, sock: socket.socket, replies: dict[bytes, bytes]):
        from dnsserver.front import mmsg, udpbatch

        self.sock, self.fd, self.replies = sock, sock.fileno(), replies
        self.slots = mmsg.Slots(64, sock.family)
        self.recv, self.send = mmsg.libc_calls()
        self.recv_one, self.send_one = mmsg.libc_single(errno=False)
        self.flags, self.max, self.lone_check = mmsg.MSG_DONTWAIT, mmsg.DATAGRAM_MAX, \
            udpbatch.LONE_CHECK
        self.quiet = 0
        sock.setblocking(False)

    def readable(self) -> None:
        slots, fd, flags = self.slots, self.fd, self.flags
        get = self.replies.get
        if self.quiet:
            n = self.recv_one(fd, slots.recv0, self.max, flags, slots.name0, slots.namelen_ref)
            if n < 0:
                return
            self.quiet = (self.quiet + 1) % self.lone_check
            reply = get(slots.recv[12:n])
            if reply is not None:
                reply = slots.recv[:2] + reply
                self.send_one(fd, reply, len(reply), flags, slots.name0, slots.namelen)
            return
        recv, lengths, recv_at = slots.recv, slots.recv_words, slots.recv_at
        send, send_lengths, send_at = slots.send, slots.send_iov_quads, slots.send_at
        for _ in range(4):
            n = self.recv(fd, slots.recv_hdrs, slots.count, flags, None)
            if n <= 0:
                return
            if n == 1:
                self.quiet = 1
            k = 0
            for j in range(n):
                at, length = recv_at[j]
                data = recv[at : at + lengths[length]]
                reply = get(data[12:])
                if reply is None:
                    continue
                if k != j:  # only the questions it knows are asked: never reached in a run
                    slots.send_quads[k * 8] = slots.name_addrs[j]
                reply = data[:2] + reply
                at, length = send_at[k]
                send[at : at + len(reply)] = reply
                send_lengths[length] = len(reply)
                k += 1
            if k:
                self.send(fd, slots.send_hdrs, k, flags)  # a reference: no retries
            if n < slots.count:
                return

    def close(self) -> None:
        self.sock.close()


async def serve(port: int, replies: dict[bytes, bytes], batch: bool = False) -> None:
    loop = asyncio.get_running_loop()
    if batch:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", port))
        transport = BatchResponder(sock, replies)
        loop.add_reader(sock.fileno(), transport.readable)
    else:
        transport, _ = await loop.create_datagram_endpoint(
            lambda: Responder(replies), local_addr=("127.0.0.1", port)
        )
    stopped = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    try:
        await stopped.wait()
    finally:
        transport.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--replies", type=Path, required=True, help="file from precompute()")
    parser.add_argument("--batch", action="store_true", help="recvmmsg/sendmmsg (Linux)")
    args = parser.parse_args()
    import uvloop

    if args.batch:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # dnsserver.front.mmsg
    uvloop.run(serve(args.port, marshal.loads(args.replies.read_bytes()), args.batch))


if __name__ == "__main__":
    main()
