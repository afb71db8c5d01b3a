"""What `skydns up` prints once everything is ready: who runs where, and what to try."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .config import API, SCANNERS, SCHEDULERS, Ports
from .localetcd import find_binary
from .procs import Child
from .samples import API_IP, LISTENING, STOPPED, TOGGLED

READY_LINE = "Ctrl-C stops everything."


def short(path: Path) -> str:
    rel = os.path.relpath(path)
    return path.as_posix() if rel.startswith("..") else rel


@dataclass
class Summary:
    ports: Ports
    zone: str
    etcd: str
    data: Path
    fresh: bool
    token: str
    children: dict[str, Child]
    leader: str
    down_checker: str
    seconds: float
    status_path: str
    etcd_moved: str = ""  # why etcd is not on the port asked for
    etcd_binary: str = ""
    restart: bool = True  # components that exit are started again
    where: dict[str, str] = field(default_factory=dict)  # more components' addresses


def addresses(s: Summary) -> dict[str, str]:
    """Each component's address(es), for the table and the JSON."""
    p, metrics = s.ports, s.ports.metrics()
    return {
        "etcd": s.etcd,
        "skydns": f"127.0.0.1:{p.dns} udp+tcp, stats http://127.0.0.1:{metrics['skydns']}/skydns/stats",
        **{n: f"metrics http://127.0.0.1:{metrics[n]}/metrics" for n in (*SCANNERS, *SCHEDULERS)},
        API: f"http://127.0.0.1:{p.api}/",
        **s.where,
    }


def as_json(s: Summary) -> dict:
    """The summary for scripts (`skydns up --json`): one object, printed once ready."""
    where = addresses(s)
    return {
        "zone": s.zone,
        "dns": f"127.0.0.1:{s.ports.dns}",
        "etcd": {"endpoint": s.etcd, "moved": s.etcd_moved, "binary": s.etcd_binary},
        "api": {"address": f"127.0.0.1:{s.ports.api}", "token": s.token,
                "token_file": str(s.data / "api-token")},
        "data_dir": str(s.data),
        "samples_written": s.fresh,
        "leader": s.leader,
        "down": {"address": STOPPED, "found_by": s.down_checker},
        "backends": [f"{ip}:{s.ports.backend}" for ip in (*LISTENING, API_IP)],
        "restart": s.restart,
        "pid": os.getpid(),
        "seconds": round(s.seconds, 2),
        "components": [
            {"name": name, "pid": c.pid, "address": where.get(name, ""), "log": str(c.log)}
            for name, c in s.children.items()
        ],
    }


def render(s: Summary) -> str:
    p, z = s.ports, s.zone.rstrip(".")
    where = addresses(s)
    rows = [("component", "pid", "address", "log")] + [
        (name, str(c.pid), where.get(name, ""), short(c.log)) for name, c in s.children.items()
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    table = "\n".join(
        f"  {name:<{widths[0]}}  {pid_:<{widths[1]}}  {addr:<{widths[2]}}  {log}"
        for name, pid_, addr, log in rows
    )
    listening = ", ".join(f"{ip}:{p.backend}" for ip in (*LISTENING, API_IP))
    dig = f"dig @127.0.0.1 -p {p.dns}"
    ctl = "etcdctl" if shutil.which("etcdctl") else find_binary("etcdctl")
    bin_dir = Path(sys.executable).parent
    path_hint = "" if shutil.which("skydns-apicmd") else f"\n  export PATH={bin_dir}:$PATH"
    standby = next((n for n in SCHEDULERS if n != s.leader), "the other")

    moved = (f"\nNOTE: etcd is on {s.etcd}, not the port asked for: {s.etcd_moved}; the "
             "etcdctl lines below use it." if s.etcd_moved else "")

    def pid(name: str) -> str:
        return str(s.children[name].pid) if name in s.children else f"<pid of {name}>"

    text = f"""
skydns up: the whole suite is ready ({s.seconds:.1f}s). Zone {s.zone}, data in {short(s.data)}.
{"Sample records written." if s.fresh else
 "Records of an earlier run kept: what is below may differ (skydns up --reset starts over)."}\
{moved}

{table}

Backends in this process (pid {os.getpid()}): {listening}.
{STOPPED}:{p.backend} does not listen: {s.down_checker} found it DOWN. \
Scheduler {s.leader} leads, {standby} stands by.

DNS ({STOPPED} is DOWN, so left out):
  {dig} web.{z} A +short        # {LISTENING[0]}, {LISTENING[1]}
  {dig} www.{z} A               # CNAME to web, followed
  {dig} db.{z} SRV              # weights as percentages, glue in additional
  {dig} motd.{z} TXT +short
  {dig} app.{z} A +short        # created through the API at start
  {dig} -x {LISTENING[0]} +short
  {dig} {z} AXFR +tcp           # the whole zone
  curl http://{LISTENING[0]}:{p.backend}/        # a backend

Record API (the admin token is also in {short(s.data / "api-token")}):{path_hint}
  export SKYDNS_API_ADDR=127.0.0.1:{p.api} SKYDNS_API_TOKEN={s.token}
  skydns-apicmd -list
  skydns-apicmd -method create -domain hello -ips {LISTENING[0]}
  status page http://127.0.0.1:{p.api}/?token={s.token}
  metrics http://127.0.0.1:{p.api}/metrics

Health state in etcd (status: UP/DOWN, report: who probes what, heart: scanners, lock: leader):
  alias etcdctl='{ctl} --endpoints {s.etcd}'
  etcdctl get --prefix /skydns/monitor/
  skydns check --config-file {short(s.data / "skydns.conf")} --etcd   # lint the records

Watch the answers change:
  kill -USR1 {os.getpid()}     # stop the {TOGGLED} backend: DOWN in ~4s (again: start it)
  etcdctl put {s.status_path}{LISTENING[0]} '{{"status":"DOWN","ports":[{p.backend}]}}'
                      # an operator's flip: out until the scanners see it listen again
  kill {pid(s.down_checker)}          # stop {s.down_checker}: the other scanner takes its addresses
  kill {pid(s.leader)}          # stop the leader {s.leader}: {standby} leads at once
{"A component that exits is reported here and started again after a few seconds." if s.restart
 else "A component that exits is reported here and left down (--no-restart)."} \
The others keep running.

{READY_LINE}"""
    if not shutil.which("dig"):
        text += "\n(dig is in Debian's bind9-dnsutils: apt-get install bind9-dnsutils)"
    return text
