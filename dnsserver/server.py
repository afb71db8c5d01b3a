"""One serving process: bind UDP and TCP on dns-addr, mirror etcd, answer until told to stop."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket

from .engine import Engine
from .sync import StoreSync
from .tcp import TcpConnection
from .udp import UdpServer

log = logging.getLogger("skydns.server")


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class DnsServer:
    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.engine = Engine(cfg)
        self.sync = StoreSync(self.engine, cfg["Etcd"])
        self.udp_transport = None
        self.tcp_server = None
        self._sync_task = None
        self.stopped = asyncio.Event()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        host, port = self.cfg["Dns"]["dns-addr"]
        # SO_REUSEPORT lets several workers share the port; the kernel spreads queries over them.
        self.udp_transport, _ = await loop.create_datagram_endpoint(
            lambda: UdpServer(self.engine),
            local_addr=(host, port),
            family=_family(host),
            reuse_port=True,
        )
        idle = self.cfg["Dns"]["tcp-idle-timeout"]
        self.tcp_server = await loop.create_server(
            lambda: TcpConnection(self.engine, idle),
            host,
            port,
            family=_family(host),
            reuse_port=True,
            backlog=1024,
        )
        self._sync_task = loop.create_task(self.sync.run())
        log.info(
            "serving", extra={"kv": {"addr": f"{host}:{port}", "domain": self.engine.zone.domain}}
        )

    async def stop(self) -> None:
        if self.udp_transport is not None:
            self.udp_transport.close()
        if self.tcp_server is not None:
            self.tcp_server.close()
        await self.sync.stop()
        if self._sync_task is not None:
            self._sync_task.cancel()
        self.stopped.set()

    async def serve_forever(self) -> None:
        await self.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: loop.create_task(self.stop()))
        await self.stopped.wait()
        log.info("stopped")
