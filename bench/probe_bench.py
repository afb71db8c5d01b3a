"""How many probes one scanner sustains, and how fast it detects a dead backend.

    .venv/bin/python bench/probe_bench.py                 # everything, defaults
    .venv/bin/python bench/probe_bench.py --only prober --targets 5000 --concurrency 512
    .venv/bin/python bench/probe_bench.py --only detect --rounds 20 --json

Sections (see bench/README-probes.md for what each one measures and why):
  prober   the probe engine alone: TCP connect to open ports, to refused ports, ICMP echo
  agent    a whole scanner (real etcd, assignments, damping, status writes) saturated
  detect   backend stops listening -> status/<ip> says DOWN in etcd -> the DNS server's
           answer leaves the address out; and the way back
  failover kill -9 a scanner / the leading scheduler (3 scanners, 2 schedulers, 300 addresses)

Every probed address is on 127.0.0.0/8; etcd is a private one on a free loopback port.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from scanner.agent import Agent  # noqa: E402
from scanner.probes import Prober, detect_icmp_mode  # noqa: E402

from dnstest import Skydns  # noqa: E402
from etcdtest import EtcdServer  # noqa: E402
from healthtest import Listener, closed_port, load, self_signed_cert  # noqa: E402

# A separate process accepts connections, so accepting costs the scanner nothing.
_ACCEPTOR = r"""
import selectors, socket, sys
port, ips = int(sys.argv[1]), sys.argv[2:]
sel = selectors.DefaultSelector()
for ip in ips:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, port))
    s.listen(4096)
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        try:
            while True:
                conn, _ = key.fileobj.accept()
                conn.close()
        except BlockingIOError:
            pass
"""


# HTTP backends in a child process: a bare asyncio protocol on uvloop answers every request
# with a fixed 200 and closes (the cheapest server there is, so the scanner is what is
# measured). With a cert and key file given, the listeners speak TLS.
_HTTP_SERVER = r"""
import asyncio, ssl, sys
port, cert, key, ips = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"

class Answer(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
    def data_received(self, data):
        self.transport.write(ANSWER)
        self.transport.close()
    def connection_lost(self, exc):
        pass

async def main():
    tls = None
    if cert != "-":
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(cert, key)
    loop = asyncio.get_running_loop()
    for ip in ips:
        await loop.create_server(Answer, ip, port, backlog=4096, ssl=tls)
    print("ready", flush=True)
    await asyncio.Event().wait()

try:
    import uvloop
    uvloop.run(main())
except ImportError:
    asyncio.run(main())
"""


class Acceptor:
    """Listeners on ip:port for every ip, in a child process; stop() makes them refuse.
    With http=True they answer HTTP (TLS with tls=(cert file, key file))."""

    def __init__(self, ips: list[str], port: int, http: bool = False,
                 tls: tuple[str, str] | None = None):
        argv = ["-c", _ACCEPTOR, str(port), *ips]
        if http:
            cert, key = tls or ("-", "-")
            argv = ["-c", _HTTP_SERVER, str(port), cert, key, *ips]
        self.proc = subprocess.Popen([sys.executable, *argv],
                                     stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("acceptor did not start")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def run_loop(coro):
    """Run on uvloop, as the daemons do."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def loopback_ips(n: int, second_octet: int) -> list[str]:
    return [f"127.{second_octet}.{i // 250}.{i % 250 + 1}" for i in range(n)]


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- prober ----------------------------------------------------------------------------------


async def saturate(prober: Prober, ips: list[str], ports: list[int], seconds: float,
                   checks=()) -> dict:
    """Check every ip over and over for `seconds`; checks and probes per second."""
    checks0, probes0, cpu0 = prober.checks, prober.probes, cpu_seconds()
    start = time.monotonic()
    results: dict = {}
    while time.monotonic() - start < seconds:
        for ok in await asyncio.gather(*(prober.check(ip, ports, checks) for ip in ips)):
            results[ok] = results.get(ok, 0) + 1
    elapsed = time.monotonic() - start
    return {
        "checks_per_s": round((prober.checks - checks0) / elapsed),
        "probes_per_s": round((prober.probes - probes0) / elapsed),
        "cpu_per_s": round((cpu_seconds() - cpu0) / elapsed, 2),
        "results": {str(k): v for k, v in results.items()},
    }


def bench_prober(args) -> dict:
    ips = loopback_ips(args.targets, 2)
    port = closed_port("127.2.0.1")
    acceptor = Acceptor(ips, port)
    out = {}
    try:
        def run(**kw):
            prober = Prober(tcp_timeout=2.0, icmp_mode=kw.pop("icmp", None), ping_count=1,
                            ping_timeout=1.0, max_concurrency=args.concurrency)
            return run_loop(saturate(prober, kw["ips"], kw["ports"], args.seconds))

        out["tcp_open"] = run(ips=ips, ports=[port])
        refused = closed_port("127.3.0.1")
        out["tcp_refused"] = run(ips=loopback_ips(args.targets, 3), ports=[refused])
        out.update(bench_http(args))
        mode = detect_icmp_mode()
        if mode:
            out[f"icmp_{mode}"] = run(ips=ips, ports=[], icmp=mode)
            out[f"icmp_{mode}_and_tcp_open"] = run(ips=ips, ports=[port], icmp=mode)
        else:
            out["icmp"] = "skipped: no ICMP socket allowed"
    finally:
        acceptor.stop()
    return out


def bench_http(args) -> dict:
    """HTTP and HTTPS checks (GET, status line and headers read, connection reset) against a
    child process answering 200 on every address, by the prober alone."""
    from skydns.checks import parse_check

    out = {}
    for scheme, octet in (("http", 7), ("https", 8)):
        ips = loopback_ips(args.targets, octet)
        port = closed_port(f"127.{octet}.0.1")
        with tempfile.TemporaryDirectory() as tmp:
            tls = self_signed_cert(Path(tmp)) if scheme == "https" else None
            server = Acceptor(ips, port, http=True, tls=tls)
        check = parse_check({"http": "/healthz", "port": port, "scheme": scheme,
                             "tls-skip-verify": True})
        try:
            prober = Prober(tcp_timeout=2.0, icmp_mode=None, max_concurrency=args.concurrency)
            out[f"{scheme}_200"] = run_loop(saturate(prober, ips, [], args.seconds, [check]))
        finally:
            server.stop()
    if args.aiohttp:
        out["http_200_aiohttp_client"] = bench_aiohttp(args)
    return out


def bench_aiohttp(args) -> dict:
    """The same HTTP checks made with aiohttp's client (no keep-alive, body not read, no
    redirects), for comparison with the prober's own status-line reader."""
    import aiohttp

    ips = loopback_ips(args.targets, 7)
    port = closed_port("127.7.0.1")
    server = Acceptor(ips, port, http=True)

    async def main():
        # Concurrency bounded as the prober bounds it (a semaphore), so a check's timeout
        # runs from its start, not from when it was queued for a connection.
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        timeout = aiohttp.ClientTimeout(total=2.0)
        slots = asyncio.Semaphore(args.concurrency)
        done = 0
        results: dict = {}
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            async def one(ip):
                async with slots:
                    try:
                        async with session.get(f"http://{ip}:{port}/healthz",
                                               allow_redirects=False) as resp:
                            return 200 <= resp.status < 400
                    except (aiohttp.ClientError, TimeoutError):
                        return False
            cpu0, start = cpu_seconds(), time.monotonic()
            while time.monotonic() - start < args.seconds:
                for ok in await asyncio.gather(*(one(ip) for ip in ips)):
                    results[str(ok)] = results.get(str(ok), 0) + 1
                    done += 1
            elapsed = time.monotonic() - start
        return {"checks_per_s": round(done / elapsed),
                "cpu_per_s": round((cpu_seconds() - cpu0) / elapsed, 2), "results": results}

    try:
        return run_loop(main())
    finally:
        server.stop()


# --- a whole agent ---------------------------------------------------------------------------


def scanner_config(etcd: EtcdServer, tmp: Path, **check) -> dict:
    check = {"check-interval": 0.2, "rise": 2, "fall": 3, "enable-icmp": False,
             "check-timeout": 1.0, **check}
    return load("scanner", etcd.endpoint, "bench-scan", tmp, Check=check,
                General={"agent-downtime": 10, "heartbeat-interval": 2},
                Log={"log-level": "error"})


def bench_agent(args, etcd: EtcdServer, tmp: Path) -> dict:
    ips = loopback_ips(args.targets, 4)
    port = closed_port("127.4.0.1")
    acceptor = Acceptor(ips, port, http=args.http)
    etcd.delete_prefix("/skydns")
    value = {"checks": [{"http": "/healthz", "port": port}]} if args.http else {"ports": [port]}
    etcd.put_many({f"/skydns/monitor/status/{ip}": value for ip in ips})
    etcd.put_many({f"/skydns/monitor/report/{ip}": {"hostname": "bench-scan"} for ip in ips})
    # An interval no scanner can keep: every address is due all the time, so the agent
    # runs flat out and what it does per second is what it can sustain.
    config = scanner_config(etcd, tmp, **{"check-interval": 0.01,
                                          "max-concurrency": args.concurrency,
                                          "enable-icmp": args.icmp})

    async def main():
        agent = Agent(config)
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        while agent.status_writes < len(ips):  # warm-up: every address probed and UP
            await asyncio.sleep(0.1)
        checks0, cpu0, start = agent.prober.checks, cpu_seconds(), time.monotonic()
        await asyncio.sleep(args.seconds)
        elapsed = time.monotonic() - start
        result = {"addresses": len(ips), "icmp": bool(agent.prober.icmp_mode),
                  "http": args.http,
                  "checks_per_s": round((agent.prober.checks - checks0) / elapsed),
                  "cpu_per_s": round((cpu_seconds() - cpu0) / elapsed, 2),
                  "status_writes": agent.status_writes}
        stop.set()
        await task
        return result

    try:
        return run_loop(main())
    finally:
        acceptor.stop()


# --- detection time --------------------------------------------------------------------------


def bench_detect(args, etcd: EtcdServer, tmp: Path) -> dict:
    """Stop a backend at a random moment of its probe cycle; time until (a) the scanner's
    status write lands in etcd, (b) the DNS server stops returning the address. Then start it
    again and time the way back."""
    ip, companion, name = "127.5.0.1", "127.5.0.2", "bench.example.test."
    etcd.delete_prefix("/skydns")
    interval, rise, fall = args.interval, 2, 3
    config = scanner_config(etcd, tmp, **{"check-interval": interval, "rise": rise,
                                          "fall": fall})
    backend = Listener(ip).start()
    port = backend.port
    etcd.put(f"/skydns/monitor/status/{ip}", {"ports": [port]})
    etcd.put(f"/skydns/monitor/report/{ip}", {"hostname": "bench-scan"})
    # Two addresses: with every address DOWN the server fails open and returns them all.
    etcd.put("/skydns/test/example/bench/1", {"host": ip})
    etcd.put("/skydns/test/example/bench/2", {"host": companion})
    dns = Skydns(etcd.endpoint).start()
    times: dict[str, list[float]] = {"status_down": [], "dns_down": [], "status_up": [],
                                     "dns_up": []}

    async def main():
        nonlocal backend
        agent = Agent(config)
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))

        async def status_is(status, start):
            while (agent.statuses.get(ip) is None or
                   json.loads(agent.statuses[ip].value).get("status") != status):
                await asyncio.sleep(0.002)
            # The agent's copy changes when its write succeeded: etcd has it at that moment.
            return time.monotonic() - start

        async def dns_has(present, start):
            while (ip in await asyncio.to_thread(dns.addresses, name)) != present:
                await asyncio.sleep(0.005)
            return time.monotonic() - start

        async def measure(kind, status, present):
            start = time.monotonic()
            took_status, took_dns = await asyncio.gather(status_is(status, start),
                                                         dns_has(present, start))
            times[f"status_{kind}"].append(took_status)
            times[f"dns_{kind}"].append(took_dns)

        await status_is("UP", time.monotonic())
        await dns_has(True, time.monotonic())
        for _ in range(args.rounds):
            # A random phase: a backend dies at any moment of its probe cycle.
            await asyncio.sleep(random.uniform(0, interval))
            backend.stop()
            await measure("down", "DOWN", False)
            await asyncio.sleep(random.uniform(0, interval))
            backend = Listener(ip, port).start()
            await measure("up", "UP", True)
        stop.set()
        await task

    try:
        run_loop(main())
    finally:
        backend.stop()
        dns.stop()
        shutil.rmtree(dns.dir, ignore_errors=True)

    def summary(values, bound):
        return {"bound_s": round(bound, 3), "min_s": round(min(values), 3),
                "median_s": round(statistics.median(values), 3),
                "max_s": round(max(values), 3),
                "within_bound": f"{sum(v <= bound for v in values)}/{len(values)}"}

    return {
        "check_interval": interval, "rise": rise, "fall": fall,
        # The scanner's own share: fall (rise) probes, the first within one interval.
        "status_down": summary(times["status_down"], fall * interval),
        "status_up": summary(times["status_up"], rise * interval),
        # The target for DNS clients: fall x check-interval + 1 s.
        "dns_down": summary(times["dns_down"], fall * interval + 1),
        "dns_up": summary(times["dns_up"], rise * interval + 1),
    }


# --- failover ---------------------------------------------------------------------------------


def bench_failover(args, etcd: EtcdServer) -> dict:
    """kill -9 a scanner: seconds until all its addresses are reassigned; kill -9 the leading
    scheduler: seconds until the standby assigns a new address. Real processes."""
    from healthtest import LOCK, STATUS, Daemon, leader, reports

    etcd.delete_prefix("/skydns")
    downtime = args.downtime
    ips = loopback_ips(300, 6)
    port = closed_port("127.6.0.1")
    etcd.put_many({STATUS + ip: {"ports": [port]} for ip in ips})
    general = {"agent-downtime": downtime}
    daemons: list[Daemon] = []

    def start(kind, name, **extra):
        daemon = Daemon(kind, etcd.endpoint, name, General=general, Log={"log-level": "warning"},
                        **extra).start()
        daemons.append(daemon)
        return daemon

    def wait(predicate, timeout=30.0):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise RuntimeError("failover bench: timed out")
            time.sleep(0.02)
        return time.monotonic()

    scanner_moves, handovers = [], []
    try:
        scanners = {n: start("scanner", n, Check={"check-interval": 1.0})
                    for n in ("scan-a", "scan-b", "scan-c")}
        schedulers = {}
        for n in ("sch-1", "sch-2"):
            schedulers[n] = start("schedule", n)
            wait(lambda n=n: etcd.get(LOCK + n))
        for round_ in range(args.failover_rounds):
            live = set(scanners)
            wait(lambda live=live: set(reports(etcd).values()) == live
                 and len(reports(etcd)) >= 300)
            victim = sorted(scanners)[round_ % len(scanners)]
            scanners.pop(victim).kill()
            start_at = time.monotonic()
            done = wait(lambda: set(reports(etcd).values()) == set(scanners))
            scanner_moves.append(done - start_at)
            scanners[victim] = start("scanner", victim, Check={"check-interval": 1.0})

            boss = leader(etcd)
            schedulers.pop(boss).kill()
            start_at = time.monotonic()
            probe_ip = f"127.6.9.{round_ + 1}"
            etcd.put(STATUS + probe_ip, {"ports": [port]})
            done = wait(lambda ip=probe_ip: reports(etcd).get(ip) is not None)
            handovers.append(done - start_at)
            schedulers[boss] = start("schedule", boss)
            wait(lambda b=boss: etcd.get(LOCK + b))
    finally:
        for daemon in daemons:
            daemon.kill()
            daemon.close()

    def summary(values, bound):
        return {"bound_s": bound, "min_s": round(min(values), 2),
                "median_s": round(statistics.median(values), 2), "max_s": round(max(values), 2),
                "within_bound": f"{sum(v <= bound for v in values)}/{len(values)}"}

    return {"agent_downtime": downtime,
            "killed_scanner_moved": summary(scanner_moves, downtime + 2),
            "killed_leader_replaced": summary(handovers, downtime + 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["prober", "agent", "detect", "failover"],
                        action="append",
                        help="run only these sections (repeatable); default: all")
    parser.add_argument("--targets", type=int, default=2000, help="addresses (default 2000)")
    parser.add_argument("--concurrency", type=int, default=256,
                        help="max-concurrency (default 256, the config default)")
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring window")
    parser.add_argument("--icmp", action="store_true", help="agent section: ICMP on too")
    parser.add_argument("--http", action="store_true",
                        help="agent section: every address has an HTTP check (GET /healthz "
                        "on the same port) instead of a TCP port")
    parser.add_argument("--aiohttp", action="store_true",
                        help="prober section: also time aiohttp's client making the same "
                        "HTTP checks")
    parser.add_argument("--rounds", type=int, default=10, help="detect section: repetitions")
    parser.add_argument("--interval", type=float, default=0.2,
                        help="detect section: check-interval (default 0.2)")
    parser.add_argument("--downtime", type=float, default=2.0,
                        help="failover section: agent-downtime (lease TTL) of every daemon")
    parser.add_argument("--failover-rounds", type=int, default=3,
                        help="failover section: repetitions")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    sections = args.only or ["prober", "agent", "detect", "failover"]
    logging.basicConfig(level=logging.ERROR)
    raise_fd_limit()

    results: dict = {"cpus": os.cpu_count(), "targets": args.targets,
                     "concurrency": args.concurrency}
    if "prober" in sections:
        results["prober"] = bench_prober(args)
    if {"agent", "detect", "failover"} & set(sections):
        with tempfile.TemporaryDirectory() as tmp, EtcdServer() as etcd:
            if "agent" in sections:
                results["agent"] = bench_agent(args, etcd, Path(tmp))
            if "detect" in sections:
                results["detect"] = bench_detect(args, etcd, Path(tmp))
            if "failover" in sections:
                results["failover"] = bench_failover(args, etcd)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for section, value in results.items():
            print(f"{section}: {json.dumps(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
