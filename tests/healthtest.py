"""Helpers for the health subsystem's tests: scanner/scheduler processes, TCP backends on
127.0.0.0/8, a host in a network namespace, and readers of the monitor keys.

Every address these helpers make traffic to is on loopback or inside a namespace the test
created; the namespace's subnet also gets an `unreachable` route so that no probe can leak
to the default route if the namespace's link or route goes away.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import secrets
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from skydns.config import load_config

from etcdtest import wait_for
from proctest import ROOT as ROOT  # re-exported: tests take the checkout root from here
from proctest import Process

MONITOR = "/skydns/monitor/"
STATUS = MONITOR + "status/"
REPORT = MONITOR + "report/"
HEART = MONITOR + "heart/"
LOCK = MONITOR + "lock/"

# Fast but not frantic: a 2-core CI box runs several of these processes at once.
SCANNER_DEFAULTS = {
    "General": {"heartbeat-interval": 0.5, "agent-downtime": 2.0},
    "Check": {"check-interval": 0.2, "check-timeout": 0.5, "enable-icmp": False, "rise": 2,
              "fall": 3, "ping-timeout": 0.5, "scann-ports": 9},
    "Log": {"log-level": "info"},
}
SCHEDULER_DEFAULTS = {
    "General": {"schedule-interval": 1.0, "agent-downtime": 2.0},
    "Log": {"log-level": "info"},
}


# --- configuration ---------------------------------------------------------------------------


def _merge(*layers: dict) -> dict:
    out: dict[str, dict] = {}
    for layer in layers:
        for section, values in layer.items():
            out.setdefault(section, {}).update(values)
    return out


def _ini_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def write_ini(path: Path, sections: dict) -> Path:
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {_ini_value(value)}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def sections_for(kind: str, etcd_endpoint: str, hostname: str, **overrides) -> dict:
    defaults = SCANNER_DEFAULTS if kind == "scanner" else SCHEDULER_DEFAULTS
    base = {"General": {"hostname": hostname}, "Etcd": {"etcd-servers": etcd_endpoint}}
    return _merge(defaults, base, overrides)


def load(kind: str, etcd_endpoint: str, hostname: str, tmp_path: Path, **overrides) -> dict:
    """A validated config dict, as the daemon's main() would get it."""
    path = write_ini(tmp_path / f"{kind}-{hostname}.conf",
                     sections_for(kind, etcd_endpoint, hostname, **overrides))
    return load_config(str(path), kind)


# --- processes -------------------------------------------------------------------------------


class Daemon(Process):
    """A skydns-scanner or skydns-schedule process with its own config and log file."""

    def __init__(self, kind: str, etcd_endpoint: str, hostname: str, netns: str | None = None,
                 **overrides):
        super().__init__(f"skydns-{kind}-", f"{hostname}.log")
        self.netns = netns  # run inside this network namespace (ip netns exec)
        self.kind = kind
        self.hostname = hostname
        self.etcd_endpoint = etcd_endpoint
        self.module = "scanner" if kind == "scanner" else "scheduler"
        self.what = f"{kind} {hostname}"
        self.config = write_ini(self.dir / f"{kind}.conf",
                                sections_for(kind, etcd_endpoint, hostname, **overrides))

    def __repr__(self) -> str:
        return f"<Daemon {self.kind} {self.hostname} pid={self.proc and self.proc.pid}>"

    def command(self) -> list[str]:
        # `ip netns exec` execs the command: the pid is the daemon's, signals reach it.
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        return prefix + super().command()

    def start(self, **env: str) -> Daemon:
        """Start without waiting (tests wait for what they need)."""
        return super().start(wait_ready=False, **env)

    def rewrite_config(self, **overrides) -> None:
        """Replace the config file (the process reads it again on SIGHUP)."""
        write_ini(self.config, sections_for(self.kind, self.etcd_endpoint, self.hostname,
                                            **overrides))

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no chance to revoke anything."""
        if self.running:
            self.proc.kill()
            self.proc.wait()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# --- TCP backends ----------------------------------------------------------------------------


class Listener:
    """A TCP listener on ip:port that accepts and closes; stop() makes the port refuse."""

    def __init__(self, ip: str = "127.0.0.1", port: int = 0):
        self.ip = ip
        self.port = port
        self.sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> Listener:
        sock = socket.socket(socket.AF_INET6 if ":" in self.ip else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.ip, self.port))
        sock.listen(128)
        sock.settimeout(0.05)
        self.port = sock.getsockname()[1]
        self.sock = sock
        self._stop.clear()
        # Accept so the queue never fills: a full accept queue drops SYNs, and probes
        # would time out although the port is open.
        self._thread = threading.Thread(target=self._accept, args=(sock,), daemon=True)
        self._thread.start()
        return self

    def _accept(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = sock.accept()
            except (TimeoutError, OSError):
                continue
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self) -> Listener:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def closed_port(ip: str = "127.0.0.1") -> int:
    """A port that nothing listens on at ip (bound, then released): connects get RST, and a
    daemon can bind it (a metrics-addr)."""
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


# --- metrics -------------------------------------------------------------------------------


Samples = dict[tuple[str, frozenset], float]


def scrape(addr: str, timeout: float = 5.0) -> Samples | None:
    """GET http://addr/metrics as {(sample name, frozenset of label items): value}; None
    while nothing answers there (the daemon is still starting)."""
    try:
        with urllib.request.urlopen(f"http://{addr}/metrics", timeout=timeout) as resp:
            text = resp.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def sample(samples: Samples | None, name: str, **labels: str) -> float | None:
    """The value of one sample, by its full name (with _total etc.) and all its labels; None
    when the scrape itself got nothing (a daemon slow to answer under load is "not yet")."""
    if samples is None:
        return None
    return samples.get((name, frozenset(labels.items())))


def sample_sum(samples: Samples | None, name: str) -> float:
    """The sum over every label combination of one sample name."""
    if samples is None:
        return 0.0
    return sum(value for (key, _), value in samples.items() if key == name)


def listening_tcp_ports(pid: int) -> set[int]:
    """Ports of the TCP sockets in LISTEN state that process pid holds open."""
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed since the listing
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:  # no IPv6 in this kernel
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: TCP_LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


# --- etcd readers ----------------------------------------------------------------------------


def _json_or_none(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return None


def reports(etcd) -> dict[str, str | None]:
    """ip -> scanner hostname under report/ (None for unreadable values)."""
    out = {}
    for key, value in etcd.get_prefix(REPORT).items():
        obj = _json_or_none(value)
        out[key[len(REPORT):]] = obj.get("hostname") if isinstance(obj, dict) else None
    return out


def statuses(etcd) -> dict[str, dict | None]:
    return {key[len(STATUS):]: _json_or_none(value)
            for key, value in etcd.get_prefix(STATUS).items()}


def status_of(etcd, ip: str) -> str | None:
    value = _json_or_none(etcd.get(STATUS + ip) or "null")
    return value.get("status") if isinstance(value, dict) else None


def lock_revisions(etcd) -> dict[str, int]:
    """hostname -> create revision of its lock key."""
    out = json.loads(etcd.etcdctl("get", "--prefix", "-w", "json", "--", LOCK))
    return {base64.b64decode(kv["key"]).decode()[len(LOCK):]: int(kv["create_revision"])
            for kv in out.get("kvs") or []}


def leader(etcd) -> str | None:
    locks = lock_revisions(etcd)
    return min(locks, key=locks.get) if locks else None


def wait_status(etcd, ip: str, status: str, timeout: float) -> float:
    """Wait until status/<ip> says status; the seconds it took."""
    start = time.monotonic()
    wait_for(lambda: status_of(etcd, ip) == status, timeout=timeout, interval=0.02,
             message=f"status of {ip} to become {status}")
    return time.monotonic() - start


# --- a host in a network namespace -----------------------------------------------------------


class NetnsUnavailable(Exception):
    """Network namespaces cannot be made here (not root, no iproute2, no permission)."""


def _ip(*args: str, netns: str | None = None) -> None:
    cmd = ["ip", *args] if netns is None else ["ip", "netns", "exec", netns, "ip", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise NetnsUnavailable(f"{' '.join(cmd)}: {done.stderr.strip() or done.returncode}")


def _subnet_in_use(third_octet: int) -> bool:
    out = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True,
                         text=True, timeout=10).stdout
    return f"198.18.{third_octet}." in out


class NetnsHost:
    """A namespace `skyt-<tag>` holding one end of a veth pair: a host at .2 of a /30 in
    198.18.0.0/15 (the benchmarking range, never routed on a real network), with the host
    side at .1. An `unreachable` route for the /30 (higher metric) catches every packet if the
    connected route disappears, so nothing can leave through the default route.
    """

    def __init__(self):
        tag = secrets.token_hex(3)
        self.netns = f"skyt-{tag}"
        self.host_if = f"skh{tag}"
        self.ns_if = f"skn{tag}"
        self.octet = 0
        self.address = ""
        self._made: list[str] = []

    def __enter__(self) -> NetnsHost:
        if os.geteuid() != 0:
            raise NetnsUnavailable("network namespaces need root")
        if shutil.which("ip") is None:
            raise NetnsUnavailable("the ip command (iproute2) is not installed")
        try:
            self._create()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _create(self) -> None:
        for _ in range(20):
            octet = random.randrange(0, 256)
            if not _subnet_in_use(octet):
                break
        else:
            raise NetnsUnavailable("no free /30 in 198.18.0.0/16")
        self.octet = octet
        subnet = f"198.18.{octet}.0/30"
        self.address = f"198.18.{octet}.2"
        # The safety route first, before any address exists.
        _ip("route", "add", "unreachable", subnet, "metric", "4000")
        self._made.append("route")
        _ip("netns", "add", self.netns)
        self._made.append("netns")
        _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        self._made.append("link")
        _ip("link", "set", self.ns_if, "netns", self.netns)
        _ip("addr", "add", f"198.18.{octet}.1/30", "dev", self.host_if)
        _ip("link", "set", self.host_if, "up")
        _ip("addr", "add", f"{self.address}/30", "dev", self.ns_if, netns=self.netns)
        _ip("link", "set", "lo", "up", netns=self.netns)
        _ip("link", "set", self.ns_if, "up", netns=self.netns)

    def route_service_net(self, count: int) -> list[str]:
        """A service network the namespace reaches only through a route: `count` addresses
        198.19.<octet>.10+ on the host side of the veth (local addresses for every process
        of the root namespace), routed from the namespace via .1. cut_service_net() takes
        that route away (packets to it fail at once: unreachable), restore puts it back;
        etcd on the veth's .1 stays reachable all along."""
        if f"198.19.{self.octet}." in subprocess.run(
                ["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True,
                timeout=10).stdout:
            raise NetnsUnavailable(f"198.19.{self.octet}.0/24 is in use here")
        self.service = [f"198.19.{self.octet}.{10 + i}" for i in range(count)]
        for ip in self.service:
            _ip("addr", "add", f"{ip}/32", "dev", self.host_if)
        self.restore_service_net()
        return self.service

    def cut_service_net(self, silent: bool = False) -> None:
        """unreachable: connects fail at once. silent: the route goes through a gateway
        that nobody answers ARP for (198.19.<octet>.254, on the veth only), so packets go
        nowhere and connects time out (or, once the kernel gives up on the neighbour,
        fail with "no route to host")."""
        net = f"198.19.{self.octet}.0/24"
        if silent:
            _ip("route", "replace", net, "via", f"198.19.{self.octet}.254", "dev", self.ns_if,
                "onlink", netns=self.netns)
        else:
            _ip("route", "replace", "unreachable", net, netns=self.netns)

    def restore_service_net(self) -> None:
        _ip("route", "replace", f"198.19.{self.octet}.0/24", "via", f"198.18.{self.octet}.1",
            netns=self.netns)

    @property
    def host_address(self) -> str:
        """The root namespace's end of the veth: what the namespace reaches a server on."""
        return f"198.18.{self.octet}.1"

    def set_link(self, up: bool) -> None:
        """Take the namespace side of the link down or up (the host side keeps its route)."""
        _ip("link", "set", self.ns_if, "up" if up else "down", netns=self.netns)

    def __exit__(self, *exc) -> None:
        def quiet(*args):
            subprocess.run(["ip", *args], capture_output=True, timeout=10)

        if "link" in self._made:
            quiet("link", "del", self.host_if)
        if "netns" in self._made:
            quiet("netns", "del", self.netns)
        if "route" in self._made:
            quiet("route", "del", "unreachable", f"198.18.{self.octet}.0/30", "metric", "4000")
        self._made.clear()


# --- an asyncio daemon object in a thread ----------------------------------------------------


class InThread:
    """Runs `factory()`'s async run(stop) on an event loop in a thread, so sync tests can
    drive etcd and sockets while it works. `obj` is the running object (for its counters);
    `call(coro_fn)` runs a coroutine function on its loop and returns the result.
    """

    def __init__(self, factory):
        self.factory = factory
        self.obj = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self.error: BaseException | None = None

    def __enter__(self) -> InThread:
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._thread.start()
        if not self._started.wait(10):
            raise AssertionError("daemon thread did not start")
        if self.error is not None:
            raise self.error
        return self

    def _main(self) -> None:
        async def run():
            self.loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            try:
                self.obj = self.factory()
            finally:
                self._started.set()
            await self.obj.run(self._stop)

        try:
            asyncio.run(run())
        except BaseException as exc:  # surfaced by __exit__
            self.error = exc
            self._started.set()

    def call(self, coro_fn, timeout: float = 10.0):
        return asyncio.run_coroutine_threadsafe(coro_fn(), self.loop).result(timeout)

    def stop(self, timeout: float = 15.0) -> None:
        if self._thread is None:
            return
        if self.loop is not None and self._stop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        alive = self._thread.is_alive()
        self._thread = None
        if alive:
            raise AssertionError("daemon did not stop within its deadline")
        if self.error is not None:
            raise self.error

    def __exit__(self, *exc) -> None:
        self.stop()


class BareNetns:
    """An empty network namespace `skyt-<tag>` (only its own loopback), for running a
    command under different per-namespace sysctls; run() executes argv inside it."""

    def __init__(self):
        self.netns = f"skyt-{secrets.token_hex(3)}"

    def __enter__(self) -> BareNetns:
        if os.geteuid() != 0:
            raise NetnsUnavailable("network namespaces need root")
        if shutil.which("ip") is None:
            raise NetnsUnavailable("the ip command (iproute2) is not installed")
        _ip("netns", "add", self.netns)
        try:
            _ip("link", "set", "lo", "up", netns=self.netns)
        except BaseException:
            self.__exit__()
            raise
        return self

    def run(self, *argv: str, timeout: float = 30,
            check: bool = False) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.netns, *argv], capture_output=True,
                              text=True, timeout=timeout, check=check)

    def __exit__(self, *exc) -> None:
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True, timeout=10)


# --- HTTP(S) backends ------------------------------------------------------------------------


def self_signed_cert(directory: Path, names: tuple[str, ...] = ("127.0.0.1",)) -> tuple[str, str]:
    """A self-signed certificate (cryptography) valid for `names` (IPs or host names), as
    (cert file, key file)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def alt(name):
        try:
            return x509.IPAddress(ipaddress.ip_address(name))
        except ValueError:
            return x509.DNSName(name)

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([alt(n) for n in names]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


class HttpBackend:
    """An HTTP (or, with tls=(cert, key), HTTPS) server on ip:port in a thread of its own,
    answering every request with `status` (and `location` for a 3xx). `hang = True` makes it
    accept and read requests but never answer; `body_forever = True` sends the head and then
    a body that never ends (a check must not wait for it). `requests` holds the request heads
    it got; stop() makes the port refuse."""

    def __init__(self, ip: str = "127.0.0.1", port: int = 0, tls: tuple[str, str] | None = None):
        self.ip = ip
        self.port = port
        self.tls = tls
        self.status = 200
        self.hang = False
        self.body_forever = False
        self.requests: list[bytes] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.requests.append(head)
            if self.hang:
                await asyncio.sleep(3600)
            reason = {200: "OK", 204: "No Content", 302: "Found", 503: "Service Unavailable"}
            extra = "Location: /elsewhere\r\n" if 300 <= self.status < 400 else ""
            if self.body_forever:
                writer.write(f"HTTP/1.1 {self.status} {reason.get(self.status, 'X')}\r\n"
                             f"Content-Length: 1000000000\r\n{extra}\r\n".encode())
                while True:
                    writer.write(b"x" * 4096)
                    await writer.drain()
                    await asyncio.sleep(0.01)
            writer.write(f"HTTP/1.1 {self.status} {reason.get(self.status, 'X')}\r\n"
                         f"Content-Length: 2\r\nConnection: close\r\n{extra}\r\nok".encode())
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    def _main(self) -> None:
        import ssl

        async def run():
            self._loop = asyncio.get_running_loop()
            ctx = None
            if self.tls is not None:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.load_cert_chain(*self.tls)
            self._server = await asyncio.start_server(self._serve, self.ip, self.port, ssl=ctx,
                                                      reuse_address=True)
            self.port = self._server.sockets[0].getsockname()[1]
            self._ready.set()
            async with self._server:
                try:
                    await self._server.serve_forever()
                except asyncio.CancelledError:
                    pass

        try:
            asyncio.run(run())
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    def start(self) -> HttpBackend:
        self._ready.clear()
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._error is not None:
            raise AssertionError(f"HTTP backend did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        loop, server = self._loop, self._server

        def close():
            server.close()
            for task in asyncio.all_tasks(loop):
                task.cancel()

        loop.call_soon_threadsafe(close)
        self._thread.join(10)
        self._thread = None

    def __enter__(self) -> HttpBackend:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
