"""The C servers skydns is measured beside: PowerDNS (bind backend), Knot DNS and NSD, each
serving the bench data set as a zone file, pinned like skydns. Each is optional: a server
that is not installed is left out of the tables (Debian: pdns-server pdns-backend-bind, knot,
nsd).

The zone holds what skydns answers for the bench's questions: `h<i>.bench` A, the addresses of
`multi.bench`, and for `s<j>.srv` the SRV records with the targets skydns synthesizes from the
keys (`<t>.s<j>.srv`), whose addresses are the glue; and the per-type names (AAAA, CNAME,
MX, TXT) as the records skydns answers them from (`DataSet.kind_records`).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from dataset import _SRV, ZONE, DataSet, ip
from procs import children, free_port, spawn, stop, wait_answer

TTL = 30
MIN_TTL = 10


def zone_text(ds: DataSet) -> str:
    lines = [
        f"$ORIGIN {ZONE}",
        f"$TTL {TTL}",
        f"@ {MIN_TTL} IN SOA ns.dns.{ZONE} hostmaster.{ZONE} 1 28800 7200 604800 {MIN_TTL}",
        f"@ IN NS ns.dns.{ZONE}",
        "ns.dns IN A 127.0.0.1",
    ]
    lines += [f"h{i}.bench IN A {ds.single_ip(i)}" for i in range(ds.names)]
    lines += [f"multi.bench IN A {addr}" for addr in ds.multi_ips()]
    for j in range(ds.srv):
        for t in range(2):
            lines.append(f"s{j}.srv IN SRV 10 50 8080 {t}.s{j}.srv.{ZONE}")
            lines.append(f"{t}.s{j}.srv IN A {ip(_SRV, 2 * j + t)}")
    lines += [_kind_rr(label, rec) for label, _key, rec in ds.kind_records()]
    return "\n".join(lines) + "\n"


def _kind_rr(label: str, rec: dict) -> str:
    """One per-type record as zone text: what skydns answers for the same etcd record."""
    if "text" in rec:
        return f'{label} IN TXT "{rec["text"]}"'
    if rec.get("mail"):
        return f"{label} IN MX {rec['priority']} {rec['host']}"
    if ":" in rec["host"]:
        return f"{label} IN AAAA {rec['host']}"
    return f"{label} IN CNAME {rec['host']}"


class Peer:
    """One server process on 127.0.0.1:port; `pids` are the processes whose CPU counts."""

    name = ""
    binary = ""

    def __init__(self, workdir: Path, zonefile: Path, label: str = "", **options):
        self.dir = workdir / (label or self.name).replace(" ", "-").replace(",", "")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.zonefile = zonefile
        self.port = free_port()
        self.label = label or self.name
        self.options = options
        self.proc = None

    @classmethod
    def installed(cls) -> bool:
        return shutil.which(cls.binary) is not None or Path("/usr/sbin", cls.binary).exists()

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, cpus: list[int] | None, probe: str, timeout: float = 60.0) -> None:
        self.proc = spawn(self.command(), self.dir / "server.log", cpus)
        wait_answer(self.port, probe, time.monotonic() + timeout, self.proc)

    @property
    def pids(self) -> list[int]:
        """The server and all its descendants (nsd serves from a grandchild)."""
        found, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children(pid))
        return sorted(found)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)


class Pdns(Peer):
    """pdns_server with the bind backend; `packet_cache` False turns every cache off."""

    name, binary = "PowerDNS", "pdns_server"

    def command(self) -> list[str]:
        (self.dir / "named.conf").write_text(
            f'zone "{ZONE.rstrip(".")}" {{ type master; file "{self.zonefile}"; }};\n')
        cache = self.options.get("packet_cache", False)
        conf = [
            "launch=bind", f"bind-config={self.dir / 'named.conf'}",
            "local-address=127.0.0.1", f"local-port={self.port}", f"socket-dir={self.dir}",
            "daemon=no", "guardian=no", "disable-syslog=yes", "write-pid=no",
            "setuid=", "setgid=", "security-poll-suffix=", "webserver=no", "api=no",
            "loglevel=3", "receiver-threads=1", "distributor-threads=1",
            f"cache-ttl={60 if cache else 0}", f"query-cache-ttl={60 if cache else 0}",
            f"negquery-cache-ttl={60 if cache else 0}",
        ]
        (self.dir / "pdns.conf").write_text("\n".join(conf) + "\n")
        binary = shutil.which(self.binary) or f"/usr/sbin/{self.binary}"
        return [binary, f"--config-dir={self.dir}"]


class Knot(Peer):
    name, binary = "knotd", "knotd"

    def command(self) -> list[str]:
        conf = f"""server:
    listen: 127.0.0.1@{self.port}
    rundir: {self.dir}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: {self.dir}
log:
  - target: stderr
    any: warning
template:
  - id: default
    storage: {self.dir}
zone:
  - domain: {ZONE}
    file: {self.zonefile}
"""
        (self.dir / "knot.conf").write_text(conf)
        return [shutil.which(self.binary) or f"/usr/sbin/{self.binary}", "-c",
                str(self.dir / "knot.conf")]


class Nsd(Peer):
    name, binary = "nsd", "nsd"

    def command(self) -> list[str]:
        d = self.dir
        conf = f"""server:
    ip-address: 127.0.0.1@{self.port}
    server-count: 1
    username: ""
    chroot: ""
    zonesdir: "{d}"
    pidfile: "{d}/nsd.pid"
    database: ""
    zonelistfile: "{d}/zone.list"
    xfrdfile: "{d}/xfrd.state"
    xfrdir: "{d}"
    logfile: "{d}/nsd.log"
    verbosity: 0
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
remote-control:
    control-enable: no
zone:
    name: {ZONE}
    zonefile: "{self.zonefile}"
"""
        (d / "nsd.conf").write_text(conf)
        return [shutil.which(self.binary) or f"/usr/sbin/{self.binary}", "-d", "-c",
                str(d / "nsd.conf")]
