"""Helpers for the PowerDNS backend tests: the backend as a real process, a JSON-lines client
for its socket, and a real `pdns_server` (Debian's pdns-server + pdns-backend-remote) run by
hand on 127.0.0.1 with every cache off.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from dnstest import free_port, write_config
from etcdtest import wait_for
from proctest import Process

MODULE_DIRS = ("/usr/lib/*/pdns", "/usr/lib/pdns", "/usr/lib64/pdns", "/usr/local/lib/pdns")


def pdns_binary() -> str | None:
    found = shutil.which("pdns_server")
    if found:
        return found
    for path in ("/usr/sbin/pdns_server", "/usr/local/sbin/pdns_server"):
        if os.access(path, os.X_OK):
            return path
    return None


def remote_module() -> str | None:
    for pattern in MODULE_DIRS:
        found = sorted(glob.glob(os.path.join(pattern, "libremotebackend.so")))
        if found:
            return found[0]
    return None


def pdns_missing() -> str | None:
    """Why a real pdns cannot run here, or None."""
    if pdns_binary() is None:
        return "pdns_server not installed (Debian: apt-get install pdns-server pdns-backend-remote)"
    if remote_module() is None:
        return "PowerDNS remote backend not installed (Debian: apt-get install pdns-backend-remote)"
    return None


class Client:
    """A JSON-lines connection to the backend's socket, as pdns's unix connector uses it."""

    def __init__(self, path: str | Path, timeout: float = 5.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.buffer = b""

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_line(self) -> bytes:
        """One reply line; b"" when the backend closed the connection."""
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                return b""
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line

    def reply(self) -> dict:
        line = self.read_line()
        assert line, "backend closed the connection"
        return json.loads(line)

    def call(self, method: str, **parameters) -> dict:
        self.send_raw(json.dumps({"method": method, "parameters": parameters}).encode() + b"\n")
        return self.reply()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Backend(Process):
    """`skydns-pdns-backend` as a process (python -m pdnsbackend), socket in a temp dir."""

    module, what = "pdnsbackend", "backend"

    def __init__(self, etcd_endpoint: str, socket_path: Path | None = None, extra_args=(),
                 **sections):
        super().__init__("skydns-pdns-", "backend.log")
        self.socket = socket_path or self.dir / "run" / "pdns.sock"
        sections.setdefault("Log", {"log-level": "debug"})
        self.config = write_config(self.dir / "skydns.conf", etcd_endpoint, free_port(),
                                   **sections)
        self.extra_args = list(extra_args)

    def args(self) -> list[str]:
        return ["--socket", str(self.socket), *self.extra_args]

    def ready(self) -> bool:
        self.assert_running()
        try:
            with Client(self.socket, timeout=2) as client:
                return client.call("initialize", path=str(self.socket))["result"] is True
        except OSError:
            return False

    def client(self) -> Client:
        return Client(self.socket)

    def kill(self) -> None:
        """SIGKILL: no clean-up, the socket file stays behind (stale)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def pdns_conf(socket_path: Path, port: int, socket_dir: Path) -> str:
    """pdns.conf for a test instance: the remote backend, 127.0.0.1:port, no caches at all."""
    return "\n".join(
        [
            "launch=remote",
            f"remote-connection-string=unix:path={socket_path}",
            "local-address=127.0.0.1",
            f"local-port={port}",
            f"socket-dir={socket_dir}",
            "daemon=no",
            "guardian=no",
            "disable-syslog=yes",
            "write-pid=no",
            "setuid=",
            "setgid=",
            # Every cache off, so an etcd write shows in the next answer.
            "cache-ttl=0",
            "query-cache-ttl=0",
            "negquery-cache-ttl=0",
            "zone-cache-refresh-interval=0",
            # AXFR from localhost through the backend's `list`.
            "disable-axfr=no",
            "allow-axfr-ips=127.0.0.0/8",
            # No traffic off this machine, nothing pdns does not need here.
            "security-poll-suffix=",
            "webserver=no",
            "api=no",
            "loglevel=6",
            "",
        ]
    )


class PdnsServer:
    """A real pdns_server on 127.0.0.1:<free port> with the remote backend on `socket_path`."""

    def __init__(self, socket_path: Path):
        self.dir = Path(tempfile.mkdtemp(prefix="skydns-pdns-server-"))
        self.port = free_port()
        (self.dir / "pdns.conf").write_text(pdns_conf(socket_path, self.port, self.dir))
        self.log = self.dir / "pdns.log"
        self.proc: subprocess.Popen | None = None

    def start(self, probe: str) -> PdnsServer:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [pdns_binary(), f"--config-dir={self.dir}"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        wait_for(lambda: self._answers(probe), timeout=20,
                 message=f"pdns_server did not come up: {self.logs()}")
        return self

    def _answers(self, name: str) -> bool:
        assert self.proc.poll() is None, f"pdns_server exited: {self.logs()}"
        try:
            return self.query(name, "SOA", timeout=0.5).rcode() == dns.rcode.NOERROR
        except (OSError, dns.exception.Timeout):
            return False

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def query(self, name: str, rdtype: str = "A", timeout: float = 2.0, tcp: bool = False):
        q = dns.message.make_query(name, rdtype)
        q.flags &= ~dns.flags.RD
        if tcp:
            return dns.query.tcp(q, "127.0.0.1", port=self.port, timeout=timeout)
        return dns.query.udp(q, "127.0.0.1", port=self.port, timeout=timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def answer_texts(reply, rdtype: int | None = None) -> list[str]:
    """The answer section as sorted 'name ttl TYPE data' lines (optionally of one type)."""
    out = []
    for rrset in reply.answer:
        if rdtype is not None and rrset.rdtype != rdtype:
            continue
        for rr in rrset:
            out.append(f"{rrset.name} {rrset.ttl} {dns.rdatatype.to_text(rrset.rdtype)} "
                       f"{rr.to_text()}")
    return sorted(out)


def wait_until(predicate, timeout: float = 10.0, message: str = ""):
    """wait_for that treats a DNS timeout or socket error as 'not yet'."""

    def attempt():
        try:
            return predicate()
        except (OSError, dns.exception.Timeout):
            return False

    return wait_for(attempt, timeout=timeout, interval=0.05, message=message)
