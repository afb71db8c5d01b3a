"""One serving process: mirror etcd, bind UDP and TCP on dns-addr, answer until told to stop."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
import socket
import time

from skydns.connlimit import ConnectionLimits

from ..engine import Engine
from ..zone.notify import Notifier
from ..zone.sync import StoreSync
from . import udpbatch
from .stats import write_snapshots
from .tap import forwarder_hook, make_writer
from .tcp import TcpConnection
from .udp import udp_server_class
from .workers import READY_FD_ENV

log = logging.getLogger("skydns.server")

# How long to wait for the first etcd load before binding anyway. Bound but unloaded, the
# zone answers SERVFAIL (clients try another server); not bound, nothing would be answered,
# forwarding included, for as long as etcd is away.
STARTUP_WAIT = 5.0
SWEEP_INTERVAL = 5.0  # seconds between drops of signed replies due for renewal


class BindError(Exception):
    """dns-addr cannot be bound (in use, or no permission)."""


def _ip_or_empty(host: str) -> str:
    """`host` if it is one IP address (the source of our NOTIFYs), else ""."""
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return ""
    return "" if addr.is_unspecified else host


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class DnsServer:
    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.engine = Engine(cfg)
        # dnstap: the hooks go in as the transports are made (_bind), only when it is on
        self.tap = self.engine.tap = make_writer(cfg, self.engine)
        self.engine.tap_forwarder = forwarder_hook(self.tap)
        self.sync = StoreSync(self.engine.state, cfg["Etcd"])
        self.udp_transport = None
        self.tcp_server = None
        self._sync_task = None
        self._stats_task = None
        self._sweep_task = None
        self.notifier = None
        self.stopped = asyncio.Event()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._sync_task = loop.create_task(self.sync.run())
        # Load before binding, so a new worker beside running ones (SO_REUSEPORT, reload)
        # never takes queries it can only answer with SERVFAIL.
        try:
            await asyncio.wait_for(self.sync.loaded.wait(), STARTUP_WAIT)
        except TimeoutError:
            log.warning("etcd not loaded yet; serving, zone answers SERVFAIL until it is")
        if self.tap is not None:
            self.tap.start()  # connects in the background: answering never waits for it
        await self._bind()
        mirrors = self.sync.mirrors
        self._stats_task = loop.create_task(
            write_snapshots(self.engine, lambda: bool(mirrors) and all(m.connected
                                                                       for m in mirrors)))
        targets = self.cfg["Dns"].get("also-notify") or []
        # Only worker 0 (or a lone server) sends NOTIFYs: every worker holds the same zone, and
        # one NOTIFY per change is what secondaries expect.
        if targets and os.environ.get("SKYDNS_WORKER", "0") == "0":
            host = self.cfg["Dns"]["dns-addr"][0]
            self.notifier = Notifier(self.engine.state, targets, source=_ip_or_empty(host))
            self.notifier.start()
            self.notifier.changed()  # tell the secondaries we (re)started
        if self.engine.signing is not None:
            self._sweep_task = loop.create_task(self._sweep())
        _notify_ready()

    async def _bind(self) -> None:
        loop = asyncio.get_running_loop()
        host, port = self.cfg["Dns"]["dns-addr"]
        try:
            idle = self.cfg["Dns"]["tcp-idle-timeout"]
            limits = ConnectionLimits(
                self.cfg["Dns"]["tcp-max-connections"], self.cfg["Dns"]["tcp-max-per-client"]
            )
            self.tcp_server = await loop.create_server(
                lambda: TcpConnection(self.engine, idle, limits),
                host,
                port,
                family=_family(host),
                reuse_port=True,
                backlog=1024,
            )
            # UDP last: once a UDP query is answered TCP listens too, so a client retrying a
            # truncated reply over TCP (or a test that waits for UDP) is never refused.
            # SO_REUSEPORT lets workers share the port; the kernel spreads queries over them.
            if self.cfg["Dns"]["udp-batch"] and udpbatch.available():
                self.udp_transport = udpbatch.bind(self.engine, host, port, _family(host))
            else:
                protocol = udp_server_class(self.engine)  # with dnstap hooks, or none
                self.udp_transport, _ = await loop.create_datagram_endpoint(
                    lambda: protocol(self.engine),
                    local_addr=(host, port),
                    family=_family(host),
                    reuse_port=True,
                )
        except OSError as err:
            raise BindError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
        log.info(
            "serving",
            extra={
                "kv": {
                    "addr": f"{host}:{port}",
                    "domain": self.engine.zone.domain,
                    "worker": os.environ.get("SKYDNS_WORKER", "0"),
                    "udp": "batch" if isinstance(self.udp_transport, udpbatch.BatchUdp) else "loop",
                }
            },
        )

    async def stop(self) -> None:
        if self.udp_transport is not None:
            self.udp_transport.close()
        if self.tcp_server is not None:
            self.tcp_server.close()
        if self.tap is not None:
            await self.tap.stop()
        await self.sync.stop()
        if self.notifier is not None:
            await self.notifier.stop()
        for task in (self._sync_task, self._stats_task, self._sweep_task):
            if task is not None:
                task.cancel()
        self.stopped.set()

    async def _sweep(self) -> None:
        """Signed replies the UDP front serves are dropped once their signatures are due for
        renewal (cache.sweep); the next query signs afresh."""
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            self.engine.cache.sweep(time.monotonic())

    async def serve_forever(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: loop.create_task(self.stop()))
        # A reload is the supervisor's job; a lone worker ignores SIGHUP instead of dying.
        loop.add_signal_handler(signal.SIGHUP, lambda: None)
        await self.start()
        await self.stopped.wait()
        log.info("stopped")


def _notify_ready() -> None:
    """Tell the supervisor (one byte on an inherited pipe) that this worker is serving."""
    fd = os.environ.pop(READY_FD_ENV, None)
    if fd is None:
        return
    try:
        os.write(int(fd), b"R")
        os.close(int(fd))
    except (OSError, ValueError):
        pass
