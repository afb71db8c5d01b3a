"""`skydns up --recursor`: a PowerDNS Recursor in front of the demo's skydns, kept fresh by
skydns-janitor, when `pdns_recursor` is installed (Debian: pdns-recursor).

The recursor runs unprivileged from <data-dir>/recursor/ on 127.0.0.1:--recursor-port,
forwarding the zone and in-addr.arpa. to skydns, its API on --recursor-api-port with a
generated key; it never asks anything but skydns (no root hints, no security poll, no
DNSSEC). The janitor watches the demo's etcd and purges that recursor.
Self-contained, so devup only calls add_arguments, wanted, start and tryout.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import sys
from pathlib import Path

from skydns import cli

from .ports import Wanted
from .ready import dns_answers

RECURSOR, JANITOR = "pdns_recursor", "skydns-janitor"


def binary() -> str | None:
    found = shutil.which("pdns_recursor")
    if found:
        return found
    for path in ("/usr/sbin/pdns_recursor", "/usr/local/sbin/pdns_recursor"):
        if os.access(path, os.X_OK):
            return path
    return None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recursor", action="store_true",
                        help="also start a pdns_recursor in front of skydns and "
                        "skydns-janitor purging it (when pdns_recursor is installed)")
    parser.add_argument("--recursor-port", type=cli.port, default=5300,
                        help="pdns_recursor UDP and TCP port on 127.0.0.1 (default 5300)")
    parser.add_argument("--recursor-api-port", type=cli.port, default=8082,
                        help="pdns_recursor API port on 127.0.0.1 (default 8082)")


def wanted(args: argparse.Namespace) -> list[Wanted]:
    if not args.recursor or binary() is None:
        return []
    return [Wanted("127.0.0.1", args.recursor_port, "--recursor-port", socket.SOCK_DGRAM),
            Wanted("127.0.0.1", args.recursor_port, "--recursor-port"),
            Wanted("127.0.0.1", args.recursor_api_port, "--recursor-api-port")]


def recursor_conf(zone: str, dns_port: int, port: int, api_port: int, key: str,
                  socket_dir: Path) -> str:
    forwards = ", ".join(f"{z.rstrip('.')}=127.0.0.1:{dns_port}" for z in (zone, "in-addr.arpa."))
    return "\n".join([
        "local-address=127.0.0.1", f"local-port={port}", f"forward-zones={forwards}",
        f"socket-dir={socket_dir}", "daemon=no", "disable-syslog=yes", "hint-file=no",
        "security-poll-suffix=", "dnssec=off", "qname-minimization=no", "serve-rfc1918=no",
        "threads=1", "webserver=yes", "webserver-address=127.0.0.1",
        f"webserver-port={api_port}", "webserver-allow-from=127.0.0.0/8",
        "webserver-loglevel=none", f"api-key={key}", "",
    ])


def janitor_conf(url: str, key: str, zone: str, etcd_endpoint: str, etcd: dict,
                 metrics_port: int) -> str:
    paths = "\n".join(f"{k} = {etcd[k]}" for k in ("status-path", "report-path", "heart-path",
                                                    "lock-path", "refs-path") if k in etcd)
    return (f"[Janitor]\nrecursors = {url}\napi-key = {key}\ndomain = {zone}\n"
            f"metrics-addr = 127.0.0.1:{metrics_port}\n"
            f"[Etcd]\netcd-servers = {etcd_endpoint}\n{paths}\n[Log]\nlog-level = info\n")


async def start(procs, wait, data: Path, zone: str, dns_port: int, etcd_endpoint: str,
                etcd: dict, args: argparse.Namespace, metrics_port: int, tier: int = 0):
    """Start the recursor and the janitor; ({name: Child}, text for the summary,
    {name: address for the summary's table})."""
    exe = binary()
    if exe is None:
        return {}, ("--recursor: pdns_recursor is not installed (Debian: apt-get install "
                    "pdns-recursor); running without it.\n"), {}
    home = data / "recursor"
    home.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(12)
    (home / "recursor.conf").write_text(recursor_conf(
        zone, dns_port, args.recursor_port, args.recursor_api_port, key, home))
    rec = procs.spawn(RECURSOR, [exe, f"--config-dir={home}"], data / "pdns_recursor.log", tier)
    await wait.until(rec, "answering DNS", lambda: dns_answers(args.recursor_port, zone))
    conf = data / "skydns-janitor.conf"
    url = f"http://127.0.0.1:{args.recursor_api_port}"
    conf.write_text(janitor_conf(url, key, zone, etcd_endpoint, etcd, metrics_port))
    os.chmod(conf, 0o600)  # it holds the API key
    log = data / "skydns-janitor.log"
    jan = procs.spawn(JANITOR, [sys.executable, "-m", "janitor", "--config-file", str(conf)],
                      log, tier)
    await wait.until(jan, "watching etcd", lambda: "janitor ready" in _read(log))
    where = {
        RECURSOR: f"127.0.0.1:{args.recursor_port} udp+tcp, API {url}/api/v1",
        JANITOR: f"purges {url}, metrics http://127.0.0.1:{metrics_port}/metrics",
    }
    return {RECURSOR: rec, JANITOR: jan}, tryout(args, zone, url), where


def tryout(args: argparse.Namespace, zone: str, url: str) -> str:
    z = zone.rstrip(".")
    dig = f"dig @127.0.0.1 -p {args.recursor_port}"
    return f"""Behind a caching recursor (pdns_recursor, API {url}), kept fresh by skydns-janitor:
  {dig} web.{z} A +short        # cached by the recursor for the record's TTL...
  etcdctl put /skydns/monitor/status/127.0.10.1 '{{"status":"DOWN"}}'
  {dig} web.{z} A +short        # ...yet the DOWN address is gone at once
"""


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""
