"""The demo's backends: TCP listeners inside the `skydns up` process, which the scanners probe.

Each answers any request with one line of HTTP saying who it is, so `curl 127.0.10.1:8080`
shows a live backend too. Stopping one closes its listening socket: connects are refused and
the scanners mark the address DOWN, exactly as for a crashed service.
"""

from __future__ import annotations

import asyncio
import contextlib


class Backends:
    def __init__(self, port: int):
        self.port = port
        self.servers: dict[str, asyncio.Server] = {}

    def listening(self, ip: str) -> bool:
        return ip in self.servers

    async def start(self, ip: str) -> None:
        if ip not in self.servers:
            self.servers[ip] = await asyncio.start_server(self._serve, ip, self.port)

    async def stop(self, ip: str) -> None:
        server = self.servers.pop(ip, None)
        if server is not None:
            server.close()
            await server.wait_closed()

    async def toggle(self, ip: str) -> bool:
        """Stop a listening backend or start a stopped one; True when it listens now."""
        if ip in self.servers:
            await self.stop(ip)
            return False
        await self.start(ip)
        return True

    async def close(self) -> None:
        for ip in list(self.servers):
            await self.stop(ip)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host = writer.get_extra_info("sockname")[0]
        body = f"skydns demo backend {host}:{self.port}\n".encode()
        # Scanner probes connect and reset at once; a reset or a silent client is not an error.
        with contextlib.suppress(
            OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError
        ):
            # Read the request first: closing with it unread would reset curl's connection.
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
            writer.write(
                b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
