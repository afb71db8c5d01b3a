"""`skydns-pdns-backend`: skydns's records and health as a PowerDNS remote backend.

    skydns-pdns-backend --config-file /etc/skydns/skydns.conf [--socket /run/skydns/pdns.sock]

Mirrors etcd into an Engine with StoreSync (the same code, answers and health filtering as
`skydns`) and serves PowerDNS's remote backend protocol (pdns_protocol.py) on a unix socket:
one JSON request per line, one JSON reply per line, any number of long-lived connections
(pdns opens one per backend thread). The socket appears once the first etcd load is in (or
after STARTUP_WAIT; until the load, data requests fail and pdns answers REFUSED).
See dnsserver/PDNS.md for the pdns side.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import stat
import sys

from skydns import notify
from skydns.config import load_or_exit
from skydns.daemon import run_loop
from skydns.logsetup import setup_logging
from skydns.metrics import serve_metrics, stop_metrics

from .engine import Engine
from .pdns_protocol import LineTooLong, PdnsBackend, Session
from .sync import StoreSync

log = logging.getLogger("skydns.pdns")

DEFAULT_SOCKET = "/run/skydns/pdns.sock"
DEFAULT_SOCKET_MODE = "0660"
STARTUP_WAIT = 5.0  # seconds to wait for the first etcd load before listening anyway
READ_SIZE = 65536


class SocketError(Exception):
    """The socket path cannot be used (in use by a live backend, not a socket, no access)."""


def pdns_settings(cfg: dict, socket_arg: str | None) -> tuple[str, int]:
    """(socket path, permission bits) from --socket and the [Pdns] section, with defaults."""
    section = cfg.get("Pdns") or {}
    path = socket_arg or section.get("socket") or DEFAULT_SOCKET
    mode_text = str(section.get("socket-mode") or DEFAULT_SOCKET_MODE).strip()
    try:
        mode = int(mode_text, 8)
    except ValueError:
        raise ValueError(f"[Pdns] socket-mode: {mode_text!r} is not an octal mode") from None
    if not 0 <= mode <= 0o777:
        raise ValueError(f"[Pdns] socket-mode: {mode_text!r} out of range 0000-0777")
    return os.path.abspath(path), mode


def prepare_socket_path(path: str) -> None:
    """Create the parent directory; remove a stale socket, refuse to take over a live one."""
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
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        os.unlink(path)  # stale: left behind by a backend that died
        log.info("removed stale socket", extra={"kv": {"socket": path}})
        return
    except OSError as err:
        raise SocketError(f"{path}: {err.strerror or err}") from None
    finally:
        probe.close()
    raise SocketError(f"{path} is in use by another running backend")


class PdnsServer:
    def __init__(self, cfg: dict, socket_path: str, socket_mode: int):
        self.cfg = cfg
        self.socket_path = socket_path
        self.socket_mode = socket_mode
        self.engine = Engine(cfg)
        self.sync = StoreSync(self.engine, cfg["Etcd"])
        self.backend = PdnsBackend(
            self.engine.ctx, mode=self.engine.mode, is_ready=lambda: self.engine.ready
        )
        self.server: asyncio.AbstractServer | None = None
        self.connections: set[asyncio.Task] = set()
        self._sync_task: asyncio.Task | None = None
        self._inode: int | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._sync_task = loop.create_task(self.sync.run())
        try:
            await asyncio.wait_for(self.sync.loaded.wait(), STARTUP_WAIT)
        except TimeoutError:
            log.warning("etcd not loaded yet; listening, data requests fail until it is")
        prepare_socket_path(self.socket_path)
        self.server = await asyncio.start_unix_server(
            self._serve, path=self.socket_path, limit=READ_SIZE
        )
        os.chmod(self.socket_path, self.socket_mode)  # so the pdns user can connect
        self._inode = os.stat(self.socket_path).st_ino
        log.info(
            "serving",
            extra={
                "kv": {
                    "socket": self.socket_path,
                    "mode": f"{self.socket_mode:04o}",
                    "zone": self.engine.zone.domain,
                    "records": len(self.engine.index),
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
                    out = session.feed(data)
                except LineTooLong as err:
                    if err.replies:
                        writer.write(err.replies)
                    log.warning("closing connection", extra={"kv": {"reason": str(err)}})
                    break
                if out:
                    writer.write(out)
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
        for task in list(self.connections):
            task.cancel()
        await asyncio.gather(*self.connections, return_exceptions=True)
        await self.sync.stop()
        if self._sync_task is not None:
            self._sync_task.cancel()
            await asyncio.gather(self._sync_task, return_exceptions=True)

    def _remove_socket(self) -> None:
        # Only our own socket: a newer backend may already have replaced the file.
        with contextlib.suppress(OSError):
            if os.stat(self.socket_path).st_ino == self._inode:
                os.unlink(self.socket_path)


async def serve(cfg: dict, socket_path: str, socket_mode: int) -> None:
    from .pdns_metrics import registry_for

    server = PdnsServer(cfg, socket_path, socket_mode)
    metrics = serve_metrics((cfg.get("Pdns") or {}).get("metrics-addr"), registry_for(server))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # A stray `kill -HUP` (a habit with DNS daemons) must not end the backend pdns relies on.
    loop.add_signal_handler(signal.SIGHUP, _ignore_hup)
    try:
        await server.start()
        notify.ready(f"serving {socket_path}")
        await stop.wait()
        log.info("stopping")
        notify.stopping()
    finally:
        await server.stop()
        stop_metrics(metrics)


def _ignore_hup() -> None:
    log.warning("SIGHUP ignored: the backend has no live reload; restart it to apply changes")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skydns-pdns-backend",
        description="PowerDNS remote backend (unix socket, JSON lines) serving the records in "
        "etcd with skydns's answer rules: DOWN addresses left out, SOA serial = etcd revision. "
        "Uses the same config file as skydns plus a [Pdns] section. SIGTERM stops; SIGHUP is "
        "ignored (restart to apply config changes).",
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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    cfg = load_or_exit(args.config_file, "dns", "skydns-pdns-backend")
    try:
        socket_path, socket_mode = pdns_settings(cfg, args.socket)
    except ValueError as err:
        print(f"skydns-pdns-backend: config error: {err}", file=sys.stderr)
        return 2
    setup_logging(cfg["Log"], "skydns-pdns-backend")
    try:
        run_loop(serve(cfg, socket_path, socket_mode))
    except (SocketError, OSError) as err:
        print(f"skydns-pdns-backend: cannot listen on {socket_path}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
