"""`skydns-pdns-backend`: skydns's records and health as a PowerDNS remote backend.

    skydns-pdns-backend --config-file /etc/skydns/skydns.conf [--socket /run/skydns/pdns.sock]

Mirrors etcd into a ZoneState with StoreSync (the same code, answers and health filtering as
`skydns`) and serves PowerDNS's remote backend protocol (protocol.py) on a unix socket:
one JSON request per line, one JSON reply per line, any number of long-lived connections
(pdns opens one per backend thread). The socket appears once the first etcd load is in (or
after STARTUP_WAIT; until the load, data requests fail and pdns answers REFUSED).
See pdnsbackend/README.md for the pdns side.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
import sys
import time

from dnsserver.zone.context import answer_mode, zone_settings
from dnsserver.zone.state import ZoneState
from dnsserver.zone.sync import StoreSync
from skydns import cli, daemon, notify
from skydns.config import load_or_exit
from skydns.holder import AddressBusy, AddressLock, describe, peer_pid
from skydns.logsetup import setup_logging

from .protocol import LineTooLong, PdnsBackend, Session

log = logging.getLogger("skydns.pdns")

DEFAULT_SOCKET = "/run/skydns/pdns.sock"
STARTUP_WAIT = 5.0  # seconds to wait for the first etcd load before listening anyway
READ_SIZE = 65536
BACKLOG = 4096  # the kernel caps it at net.core.somaxconn
SLICE = 0.005  # seconds of a long request's work between letting other requests run


class SocketError(Exception):
    """The socket path cannot be used (in use by a live backend, not a socket, no access)."""


def pdns_settings(cfg: dict, socket_arg: str | None) -> tuple[str, int]:
    """(socket path, permission bits) from --socket and the [Pdns] section (which
    skydns.config has checked and resolved: the mode is an int in 0-0o777)."""
    section = cfg["Pdns"]
    return os.path.abspath(socket_arg or section["socket"]), section["socket-mode"]


def prepare_socket_path(path: str) -> None:
    """Create the parent directory; remove a stale socket, refuse to take over a live one
    (naming the pid that listens on it)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise SocketError(f"{path} exists and is not a socket; not removing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            os.unlink(path)  # stale: left behind by a backend that died
            log.info("removed stale socket", extra={"kv": {"socket": path}})
            return
        except OSError as err:
            raise SocketError(f"{path}: {err.strerror or err}") from None
        pid = peer_pid(probe)
    finally:
        probe.close()
    raise SocketError(f"{path} is in use by another running backend, {describe(pid)}")


class PdnsServer:
    def __init__(self, cfg: dict, socket_path: str, socket_mode: int):
        self.cfg = cfg
        self.socket_path = socket_path
        self.socket_mode = socket_mode
        self.state = ZoneState(zone_settings(cfg))
        self.sync = StoreSync(self.state, cfg["Etcd"])
        self.backend = PdnsBackend(self.state, mode=answer_mode(cfg))
        self.server: asyncio.AbstractServer | None = None
        self.connections: set[asyncio.Task] = set()
        self._sync_task: asyncio.Task | None = None
        self._inode: int | None = None
        self.lock: AddressLock | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # Claimed before anything else (a second backend fails at once) and held for life:
        # two backends starting together must not both find the file stale, and the
        # second unlink the first's live socket.
        try:
            self.lock = AddressLock(f"pdns:{self.socket_path}").claim()
        except AddressBusy as err:
            raise SocketError(f"{self.socket_path} is in use by another running backend, "
                              f"{err}") from None
        loop.add_reader(self.lock.fileno(), self.lock.drain)
        prepare_socket_path(self.socket_path)
        self._sync_task = loop.create_task(self.sync.run())
        try:
            await asyncio.wait_for(self.sync.loaded.wait(), STARTUP_WAIT)
        except TimeoutError:
            log.warning("etcd not loaded yet; listening, data requests fail until it is")
        # pdns opens a connection per thread and reconnects all at once after a restart: a
        # backlog of 100 refused half of 1,000 concurrent connects
        self.server = await asyncio.start_unix_server(
            self._serve, path=self.socket_path, limit=READ_SIZE, backlog=BACKLOG
        )
        os.chmod(self.socket_path, self.socket_mode)  # so the pdns user can connect
        self._inode = os.stat(self.socket_path).st_ino
        log.info(
            "serving",
            extra={
                "kv": {
                    "socket": self.socket_path,
                    "mode": f"{self.socket_mode:04o}",
                    "zone": self.state.zone.domain,
                    "records": len(self.state.index),
                }
            },
        )

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self.connections.add(task)
        session = Session(self.backend)
        log.debug("pdns connected", extra={"kv": {"connections": len(self.connections)}})
        try:
            while True:
                data = await reader.read(READ_SIZE)
                if not data:
                    break
                try:
                    out = await _run_steps(session.feed_steps(data))
                except LineTooLong as err:
                    if err.replies:
                        writer.write(err.replies)
                    log.warning("closing connection", extra={"kv": {"reason": str(err)}})
                    break
                # a big list's reply comes in parts, never joined; waiting for pdns to
                # read each keeps the write buffer small
                for part in out:
                    writer.write(part)
                    await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.connections.discard(task)
            with contextlib.suppress(Exception):
                writer.close()
                await writer.wait_closed()
            log.debug("pdns disconnected", extra={"kv": {"requests": session.requests}})

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            self._remove_socket()
        if self.lock is not None:
            asyncio.get_running_loop().remove_reader(self.lock.fileno())
            self.lock.close()
        for task in list(self.connections):
            task.cancel()
        await asyncio.gather(*self.connections, return_exceptions=True)
        await self.sync.stop()
        if self._sync_task is not None:
            self._sync_task.cancel()
            await asyncio.gather(self._sync_task, return_exceptions=True)

    async def run(self, stop: asyncio.Event) -> None:
        """The process's life, under skydns.daemon.serve: listen, serve until `stop`."""
        try:
            await self.start()
            notify.ready(f"serving {self.socket_path}")
            await stop.wait()
            log.info("stopping")
            notify.stopping()
        finally:
            await self.stop()

    def reconfigure(self, cfg: dict) -> None:
        """SIGHUP (systemd's reload, a habit with DNS daemons) must not end what pdns relies
        on: skydns.daemon has applied [Log]; the rest needs a restart."""
        log.warning("config reloaded: [Log] applied; restart to apply other changes")

    def _remove_socket(self) -> None:
        # Only our own socket: a newer backend may already have replaced the file.
        with contextlib.suppress(OSError):
            if os.stat(self.socket_path).st_ino == self._inode:
                os.unlink(self.socket_path)




async def _run_steps(steps):
    """Drive a protocol generator (Session.feed_steps) to its value, letting the loop run
    other connections' requests every SLICE seconds of work: a `list` of a big zone takes
    seconds, and pdns keeps asking lookups on its other connections meanwhile."""
    clock = time.perf_counter
    until = clock() + SLICE
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value
        if clock() > until:
            await asyncio.sleep(0)
            until = clock() + SLICE


def _parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(
        prog="skydns-pdns-backend",
        description="PowerDNS remote backend (unix socket, JSON lines) serving the records in "
        "etcd with skydns's answer rules: DOWN addresses left out, SOA serial = etcd revision. "
        "Uses the same config file as skydns plus a [Pdns] section. SIGTERM stops; SIGHUP "
        "re-reads [Log] (restart to apply other changes).",
    )
    parser.add_argument(
        "--config-file",
        "-config-file",
        metavar="PATH",
        default=None,
        help="INI config file, the same as skydns's (see etc/skydns.conf)",
    )
    parser.add_argument(
        "--socket",
        metavar="PATH",
        default=None,
        help=f"unix socket to listen on (overrides [Pdns] socket; default {DEFAULT_SOCKET})",
    )
    return parser


@cli.entry
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    cfg = load_or_exit(args.config_file, "dns", "skydns-pdns-backend")
    socket_path, socket_mode = pdns_settings(cfg, args.socket)
    setup_logging(cfg["Log"], "skydns-pdns-backend")
    from .metrics import registry_for

    try:
        daemon.serve(lambda: PdnsServer(cfg, socket_path, socket_mode),
                     config_path=args.config_file, kind="dns", program="skydns-pdns-backend",
                     metrics_addr=cfg["Pdns"].get("metrics-addr"), registry_for=registry_for,
                     logger=log)
    except (SocketError, OSError) as err:
        print(f"skydns-pdns-backend: cannot listen on {socket_path}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
