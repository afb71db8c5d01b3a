"""Helpers for the DNSSEC tests: keys from the real `dnssec-keygen`, and the two real
validators from Debian, `delv` (bind9-dnsutils) and an `unbound` resolver stub-zoned to skydns."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import dns.flags
import dns.message
import dns.query

from dnstest import free_port
from proctest import Process

KEYGEN = shutil.which("dnssec-keygen")
DELV = shutil.which("delv")
UNBOUND = shutil.which("unbound") or ("/usr/sbin/unbound" if Path("/usr/sbin/unbound").exists()
                                      else None)


def keygen(directory: Path, zone: str, algorithm: int = 13, ksk: bool = False,
           *extra: str) -> str:
    """Run dnssec-keygen in `directory`; returns the basename (K<zone>.+<alg>+<tag>)."""
    cmd = [KEYGEN, "-q", "-K", str(directory), "-a", str(algorithm), "-n", "ZONE"]
    if ksk:
        cmd += ["-f", "KSK"]
    out = subprocess.run([*cmd, *extra, zone], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def dnskey_line(directory: Path, basename: str) -> str:
    """The DNSKEY record of a .key file (zone. IN DNSKEY flags 3 alg key)."""
    for line in (directory / f"{basename}.key").read_text().splitlines():
        if line and not line.startswith(";"):
            return line
    raise AssertionError(f"no DNSKEY in {basename}.key")


def anchors_file(path: Path, ds_lines: list[str]) -> Path:
    """A BIND trust-anchors file (for delv -a) holding the DS records as static-ds."""
    body = []
    for line in ds_lines:
        zone, _in, _ds, tag, alg, digest_type, digest = line.split()
        body.append(f'  {zone} static-ds {tag} {alg} {digest_type} "{digest}";')
    path.write_text("trust-anchors {\n" + "\n".join(body) + "\n};\n")
    return path


def delv(anchors: Path, port: int, zone: str, name: str, rdtype: str = "A",
         *opts: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [DELV, "-a", str(anchors), "@127.0.0.1", "-p", str(port), f"+root={zone}", *opts,
         name, rdtype],
        capture_output=True, text=True, timeout=30,
    )


class Unbound(Process):
    """A validating unbound on 127.0.0.x, unprivileged, with a stub-zone to skydns and the
    DS records as its only trust anchor; `tcp` makes it ask skydns over TCP only."""

    what = "unbound"

    def __init__(self, zone: str, skydns_port: int, ds_lines: list[str], tcp: bool = False):
        super().__init__("unbound-test-", "unbound.log")
        self.port = free_port()
        anchors = "\n".join(f'    trust-anchor: "{line}"' for line in ds_lines)
        self.config = self.dir / "unbound.conf"
        self.config.write_text(f"""server:
    username: ""
    chroot: ""
    directory: "{self.dir}"
    pidfile: "{self.dir}/unbound.pid"
    logfile: "{self.log}"
    use-syslog: no
    verbosity: 1
    val-log-level: 2
    interface: 127.0.0.1@{self.port}
    port: {self.port}
    do-ip6: no
    num-threads: 1
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    module-config: "validator iterator"
    val-permissive-mode: no
    tcp-upstream: {"yes" if tcp else "no"}
    local-zone: "test." nodefault
{anchors}
stub-zone:
    name: "{zone}"
    stub-addr: 127.0.0.1@{skydns_port}
""")

    def start(self, wait_ready: bool = True, **env: str):
        with open(self.dir / "stdout.log", "ab") as out:
            self.proc = subprocess.Popen(
                [UNBOUND, "-d", "-c", str(self.config)], stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        import atexit

        from etcdtest import wait_for

        atexit.register(self.stop)
        if wait_ready:
            wait_for(self.ready, timeout=20, message=f"unbound did not come up: {self.logs()}")
        return self

    def logs(self) -> str:
        out = self.dir / "stdout.log"
        extra = out.read_text(errors="replace") if out.exists() else ""
        return super().logs() + extra

    def ready(self) -> bool:
        self.assert_running()
        try:
            self.query("localhost.", "A", timeout=0.5)
        except (OSError, dns.exception.Timeout):
            return False
        return True

    def query(self, name: str, rdtype: str = "A", timeout: float = 5.0):
        q = dns.message.make_query(name, rdtype, want_dnssec=True)
        return dns.query.udp(q, "127.0.0.1", port=self.port, timeout=timeout)


def ask(engine, name, rdtype="A", client="127.0.0.1", tcp=False, **kw):
    """Answer as the transports do (the cache's hit path, else the engine's miss); returns
    (reply, whether it was a hit)."""
    from dnsserver.wire.message import question_key

    wire = dns.message.make_query(name, rdtype, **kw).to_wire()
    keyed = question_key(wire, tcp, engine.max_udp)
    hit = engine.cache.hit(wire, keyed, client, engine.allowed) if keyed else None
    reply = wire[:2] + hit[0] if hit is not None else engine.miss(wire, client, tcp)
    return dns.message.from_wire(reply), hit is not None


def authenticated(reply) -> bool:
    return bool(reply.flags & dns.flags.AD)
