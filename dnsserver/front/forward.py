"""Forwarding to upstream resolvers: UDP first, TCP when the reply comes back truncated.

Each upstream query gets a fresh random ID and the reply must match it and the question, so
a spoofed or stray datagram is ignored rather than relayed.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import struct

from dnslib import QTYPE, RCODE, DNSRecord

from ..wire.dnstap import FWD_TCP_QUERY, FWD_TCP_RESPONSE, FWD_UDP_QUERY, FWD_UDP_RESPONSE

log = logging.getLogger("skydns.forward")


class _OneShot(asyncio.DatagramProtocol):
    def __init__(self, expect_id: bytes, question: bytes):
        self.expect_id = expect_id
        self.question = question
        self.done: asyncio.Future = asyncio.get_running_loop().create_future()

    def datagram_received(self, data, addr):
        if (
            data[:2] == self.expect_id
            and data[12 : 12 + len(self.question)].lower() == self.question
        ):
            if not self.done.done():
                self.done.set_result(data)

    def error_received(self, exc):
        if not self.done.done():
            self.done.set_exception(exc)


def _question_bytes(wire: bytes) -> bytes:
    i = 12
    while wire[i]:
        i += wire[i] + 1
    return wire[12 : i + 5].lower()


async def _udp(server: tuple[str, int], wire: bytes, timeout: float, tap=None) -> bytes:
    loop = asyncio.get_running_loop()
    qid = secrets.token_bytes(2)
    transport, proto = await loop.create_datagram_endpoint(
        lambda: _OneShot(qid, _question_bytes(wire)), remote_addr=server
    )
    try:
        transport.sendto(qid + wire[2:])
        if tap is not None:
            tap(FWD_UDP_QUERY, qid + wire[2:], server)
        reply = await asyncio.wait_for(proto.done, timeout)
        if tap is not None:
            tap(FWD_UDP_RESPONSE, reply, server)
        return reply
    finally:
        transport.close()


async def _tcp(server: tuple[str, int], wire: bytes, timeout: float, tap=None) -> bytes:
    async def exchange() -> bytes:
        reader, writer = await asyncio.open_connection(*server)
        try:
            qid = secrets.token_bytes(2)
            writer.write(struct.pack("!H", len(wire)) + qid + wire[2:])
            if tap is not None:
                tap(FWD_TCP_QUERY, qid + wire[2:], server)
            await writer.drain()
            while True:
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                reply = await reader.readexactly(length)
                if reply[:2] == qid:
                    if tap is not None:
                        tap(FWD_TCP_RESPONSE, reply, server)
                    return reply
        finally:
            writer.close()

    return await asyncio.wait_for(exchange(), timeout)


async def forward(servers, wire: bytes, timeout: float, tcp: bool = False,
                  tap=None) -> bytes | None:
    """Ask each server in turn; the first good reply (with the caller's ID restored) or None.
    `tap(kind, wire, server)` sees each message to and from an upstream (dnstap)."""
    for server in servers:
        try:
            reply = await (_tcp if tcp else _udp)(server, wire, timeout, tap)
            if not tcp and len(reply) > 2 and reply[2] & 0x02:  # TC: the whole answer needs TCP
                try:
                    reply = await _tcp(server, wire, timeout, tap)
                except (TimeoutError, OSError, asyncio.IncompleteReadError):
                    pass  # keep the truncated reply: the client can retry over TCP itself
            return wire[:2] + reply[2:]
        except (TimeoutError, OSError, asyncio.IncompleteReadError, struct.error) as err:
            log.warning(
                "upstream failed",
                extra={"kv": {"server": f"{server[0]}:{server[1]}", "error": repr(err)}},
            )
    return None


def cache_ttl(reply: bytes) -> int:
    """How long an upstream reply may be reused: 0 for errors and truncated replies, the
    smallest TTL for answers, the SOA minimum (capped by the SOA's TTL) for negative ones."""
    try:
        msg = DNSRecord.parse(reply)
    except Exception:
        return 0
    rcode = msg.header.rcode
    if msg.header.tc or rcode not in (RCODE.NOERROR, RCODE.NXDOMAIN):
        return 0
    if msg.rr and rcode == RCODE.NOERROR:
        return min(rr.ttl for rr in msg.rr)
    soas = [rr for rr in msg.auth if rr.rtype == QTYPE.SOA]
    if not soas:
        return 0  # a negative answer without SOA must not be cached (RFC 2308 5)
    return min(soas[0].ttl, soas[0].rdata.times[-1])
