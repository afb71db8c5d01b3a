"""The reference: the least a Python UDP responder can do per query, on uvloop.

It answers from a dict of ready replies keyed by the question bytes: look up, patch the ID,
send. No parsing, no checks, no cache bookkeeping. Its CPU cost per query is the ceiling that
skydns's hot path (the same idea plus everything a real server needs) is measured against.

    python bench/minimal_responder.py --port 5300 --replies replies.marshal

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


async def serve(port: int, replies: dict[bytes, bytes]) -> None:
    loop = asyncio.get_running_loop()
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
    args = parser.parse_args()
    import uvloop

    uvloop.run(serve(args.port, marshal.loads(args.replies.read_bytes())))


if __name__ == "__main__":
    main()
