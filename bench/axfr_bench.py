"""Zone transfer of a big zone: transfer time, and UDP answer latency on the same worker meanwhile.

    .venv/bin/python bench/axfr_bench.py [--records 1000000] [--changes 100]

Starts a real etcd and one `skydns` worker (`--worker`, cache off, so every answer is computed)
on free 127.0.0.1 ports, writes N address records into etcd (100 per service name, in
transactions of 128 puts as bench/run.py's load part does) and waits until the worker answers
the last one. First `--baseline` seconds of answers without a transfer: `svc0.example.test A`
asked over UDP back to back by a process of its own. Then three transfers, with the same
asking meanwhile:

1. cold: the first transfer, which also makes the worker's per-name copy
   (dnsserver/zone/transfer.py);
2. warm: the same zone again, every name from the copy;
3. after `--changes` writes (new records under existing service names, and one address DOWN):
   only the names those touched are computed again.

For each: transfer time (query sent to last message read), RRs and messages, RRs/s, the worker's
CPU seconds, the answers meanwhile and their latency p50/p99/max, the worker's VmRSS after it
(and before the first). The transfer client reads raw TCP (the message counts from the headers,
the end from the closing SOA), so the figures are the server's, not a DNS library's parsing.
Figures go in bench/README.md, not in tests.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import socket
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from dataset import write_records  # noqa: E402
from procs import cpu_seconds, free_port, memory_kib, spawn, stop, write_config  # noqa: E402

from devup.localetcd import LocalEtcd  # noqa: E402


def _key(i: int) -> bytes:
    return f"/skydns/test/example/svc{i // 100}/i{i}".encode()


def _value(i: int) -> bytes:
    return json.dumps({"host": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"}).encode()


def _query(name: str, qtype: int, qid: int = 0x1234) -> bytes:
    wire = b"".join(bytes((len(p),)) + p.encode() for p in name.rstrip(".").split("."))
    return struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 0) + wire + b"\x00" + struct.pack("!HH",
                                                                                   qtype, 1)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("transfer connection closed early")
        buf += chunk
    return bytes(buf)


def transfer(port: int, zone: str) -> tuple[int, int]:
    """One AXFR over raw TCP: (RRs, messages). The end is the message that ends with the SOA
    the first one began with (the server writes names uncompressed, so the bytes repeat)."""
    query = _query(zone, 252)
    with socket.create_connection(("127.0.0.1", port), timeout=600) as sock:
        sock.sendall(struct.pack("!H", len(query)) + query)
        rrs = messages = 0
        soa = None
        qlen = len(query) - 12
        while True:
            (size,) = struct.unpack("!H", _recv_exact(sock, 2))
            msg = _recv_exact(sock, size)
            messages += 1
            if msg[3] & 0x0F:
                raise RuntimeError(f"transfer refused: rcode {msg[3] & 0x0F}")
            rrs += struct.unpack("!H", msg[6:8])[0]
            if soa is None:
                i = 12 + qlen
                j = i
                while msg[j]:
                    j += msg[j] + 1
                j += 11
                soa = msg[i : j + (msg[j - 2] << 8 | msg[j - 1])]
                if rrs > 1 and msg.endswith(soa):
                    return rrs, messages
            elif msg.endswith(soa):
                return rrs, messages


class Asker:
    """Asks one name over UDP back to back and keeps each answer's latency: in a process of
    its own, so the transfer client's reading never holds it up (one interpreter lock)."""

    def __init__(self, port: int, name: str):
        ctx = multiprocessing.get_context("fork")
        self.done = ctx.Event()
        self.counted = ctx.Event()
        self._recv, send = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=self._run, args=(port, _query(name, 1), send),
                                daemon=True)
        self.latencies: list[float] = []
        self.lost = 0

    def start(self) -> None:
        self.proc.start()

    def _run(self, port: int, query: bytes, send) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(5)
        sock.connect(("127.0.0.1", port))
        clock = time.perf_counter
        latencies, lost, counting = [], 0, False
        while not self.done.is_set():
            if not counting and self.counted.is_set():
                latencies, lost, counting = [], 0, True  # the transfer starts now
            t = clock()
            sock.send(query)
            try:
                sock.recv(4096)
            except TimeoutError:
                lost += 1
                continue
            latencies.append(clock() - t)
        sock.close()
        send.send((latencies, lost))

    def join(self) -> None:
        self.latencies, self.lost = self._recv.recv()
        self.proc.join()


def measured(port: int, pid: int, label: str, idle: float = 0.0) -> dict:
    """One transfer, or with `idle` that many seconds without one (the baseline)."""
    asker = Asker(port, "svc0.example.test.")
    asker.start()
    time.sleep(0.5)  # answering before the transfer starts
    asker.counted.set()
    cpu0 = cpu_seconds([pid])
    t0 = time.perf_counter()
    if idle:
        time.sleep(idle)
        rrs = messages = 0
    else:
        rrs, messages = transfer(port, "example.test.")
    took = time.perf_counter() - t0
    cpu = cpu_seconds([pid]) - cpu0
    asker.done.set()
    asker.join()
    lat = sorted(asker.latencies) or [0.0]
    row = {
        "transfer": label, "seconds": round(took, 2), "rrs": rrs, "messages": messages,
        "rrs_per_s": round(rrs / took), "worker_cpu_s": round(cpu, 1),
        "answers": len(lat), "lost": asker.lost,
        "p50_ms": round(statistics.median(lat) * 1000, 1),
        "p99_ms": round(lat[max(0, int(len(lat) * 0.99) - 1)] * 1000, 1),
        "max_ms": round(lat[-1] * 1000, 1),
        "rss_mib": round(memory_kib(pid)["VmRSS"] / 1024),
    }
    print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    return row


def wait_answer(port: int, name: str, deadline: float) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(0.5)
    query = _query(name, 1)
    try:
        while time.monotonic() < deadline:
            sock.sendto(query, ("127.0.0.1", port))
            try:
                reply = sock.recv(4096)
            except TimeoutError:
                continue
            if reply[3] & 0x0F == 0 and reply[6:8] != b"\x00\x00":
                return
            time.sleep(0.2)
    finally:
        sock.close()
    raise TimeoutError(f"{name} not answered")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--baseline", type=float, default=15.0,
                        help="seconds of answers without a transfer, measured first")
    args = parser.parse_args()
    n = args.records
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        etcd = LocalEtcd(work / "etcd", port=free_port())
        etcd.start()
        proc = None
        try:
            t0 = time.monotonic()
            write_records(etcd.endpoint, ((_key(i), _value(i)) for i in range(n)))
            print(f"{n} records written to etcd in {time.monotonic() - t0:.1f} s", flush=True)
            port = free_port()
            conf = write_config(work / "skydns.conf", etcd.endpoint, port,
                                Dns={"axfr-allow": "127.0.0.0/8", "cacheSize": 0},
                                Log={"log-level": "warning"})
            t0 = time.monotonic()
            proc = spawn([sys.executable, "-m", "dnsserver", "--worker", "--config-file",
                          str(conf)], work / "worker.log")
            last = f"i{n - 1}.svc{(n - 1) // 100}.example.test."
            wait_answer(port, last, t0 + 900)
            time.sleep(2)  # let the load's garbage settle
            print(f"worker answers after {time.monotonic() - t0:.1f} s, VmRSS "
                  f"{memory_kib(proc.pid)['VmRSS'] // 1024} MiB", flush=True)
            rows = [measured(port, proc.pid, "none (baseline)", args.baseline),
                    measured(port, proc.pid, "cold"), measured(port, proc.pid, "warm")]
            # new records spread over existing service names, and one address DOWN
            services = max(1, n // 100)
            items = [(f"/skydns/test/example/svc{i * 97 % services}/x{i}".encode(),
                      _value(n + i)) for i in range(args.changes)]
            items.append((b"/skydns/monitor/status/10.0.0.5",
                          json.dumps({"status": "DOWN"}).encode()))
            write_records(etcd.endpoint, items)
            last = args.changes - 1
            wait_answer(port, f"x{last}.svc{last * 97 % services}.example.test.",
                        time.monotonic() + 60)
            rows.append(measured(port, proc.pid, f"after {args.changes} changes"))
            print(f"VmHWM {memory_kib(proc.pid)['VmHWM'] // 1024} MiB", flush=True)
        finally:
            if proc is not None:
                stop(proc)
            etcd.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
