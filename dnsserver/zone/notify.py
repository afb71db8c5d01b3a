"""NOTIFY (RFC 1996) to `[Dns] also-notify` secondaries after the served zone changed.

Every change of the zone state (records or health: both move the serial) marks the zones
dirty; a round then tells each secondary the zones' new serials, at most one round per
second (a burst of etcd events is one NOTIFY), and each NOTIFY is resent with growing waits
until the secondary answers, a few times (RFC 1996 3.6). The secondary then asks for the SOA
and transfers the zone. Only one worker process sends (see server.py): the workers share the
port and hold the same zone, so one NOTIFY per change is enough.

`notify_message` and `is_ack` are the protocol; `Notifier` is the asyncio part.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import struct
import time

from skydns.keys import path_to_name

from ..wire.render import plain
from .context import Context
from .records import reverse_zones
from .rules import path_labels, plain_name, soa_rr

log = logging.getLogger("skydns.notify")

INTERVAL = 1.0  # seconds between rounds at most one per zone
TRIES = 5  # sends per secondary and zone before giving up until the next change
FIRST_WAIT = 1.0  # seconds for the first answer; doubled after each silent try
OPCODE_NOTIFY = 4
_HEADER = struct.Struct(">HHHHHH")


def notify_message(ctx: Context, zone_path, msg_id: int) -> bytes:
    """A NOTIFY for the zone: opcode NOTIFY, AA, the SOA question and our current SOA (a hint
    the secondary may use, RFC 1996 3.7): the rules' SOA record, written whole."""
    flags = OPCODE_NOTIFY << 11 | 0x0400  # a query (QR 0), opcode NOTIFY, AA
    question = plain_name(path_labels(zone_path) or ()) + b"\x00\x06\x00\x01"  # SOA, IN
    return (_HEADER.pack(msg_id, flags, 1, 1, 0, 0) + question
            + plain(soa_rr(ctx, zone_path)))


def is_ack(data: bytes, msg_id: int) -> bool:
    """Whether `data` answers our NOTIFY `msg_id` (any rcode: a refusal also ends the retries)."""
    return (
        len(data) >= 12
        and int.from_bytes(data[:2], "big") == msg_id
        and bool(data[2] & 0x80)
        and (data[2] >> 3) & 0xF == OPCODE_NOTIFY
    )


class _Receiver(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.waiting: dict[int, asyncio.Future] = {}

    def datagram_received(self, data: bytes, addr) -> None:
        if len(data) < 12:
            return
        fut = self.waiting.get(int.from_bytes(data[:2], "big"))
        if fut is not None and not fut.done() and is_ack(data, int.from_bytes(data[:2], "big")):
            fut.set_result(data[3] & 0xF)

    def error_received(self, exc) -> None:  # ICMP unreachable: the retries go on
        pass


class Notifier:
    """Sends NOTIFYs for `state`'s zones to `targets` ((host, port) pairs) after changes."""

    def __init__(self, state, targets: list[tuple[str, int]], source: str = ""):
        self.state = state
        self.targets = list(targets)
        self.source = source
        self._dirty = asyncio.Event()
        self._sends: dict[tuple, asyncio.Task] = {}
        self._task: asyncio.Task | None = None
        self.sent = 0
        self.acked = 0
        state.subscribe(lambda change: self.changed())

    def changed(self) -> None:
        """The served zone changed (or we started): a round of NOTIFYs soon."""
        self._dirty.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._sends.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            started = time.monotonic()
            if self.state.ready:
                zones = [self.state.zone.domain_path, *reverse_zones(self.state)]
                for target in self.targets:
                    for zone in zones:
                        old = self._sends.get((target, zone))
                        if old is not None:
                            old.cancel()  # the new serial supersedes it
                        self._sends[(target, zone)] = asyncio.create_task(
                            self._send(target, zone))
            await asyncio.sleep(max(0.0, INTERVAL - (time.monotonic() - started)))

    async def _send(self, target: tuple[str, int], zone) -> None:
        host, port = target
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        local = None
        if self.source and (":" in self.source) == (family == socket.AF_INET6):
            local = (self.source, 0)
        loop = asyncio.get_running_loop()
        try:
            transport, proto = await loop.create_datagram_endpoint(
                _Receiver, local_addr=local, remote_addr=(host, port), family=family)
        except OSError as err:
            log.warning("cannot send NOTIFY", extra={"kv": {"to": f"{host}:{port}",
                                                              "error": str(err)}})
            return
        try:
            wait = FIRST_WAIT
            for attempt in range(1, TRIES + 1):
                msg_id = random.randrange(65536)
                fut = loop.create_future()
                proto.waiting = {msg_id: fut}
                transport.sendto(notify_message(self.state, zone, msg_id))
                self.sent += 1
                try:
                    rcode = await asyncio.wait_for(fut, wait)
                except TimeoutError:
                    wait *= 2
                    continue
                self.acked += 1
                log.info("NOTIFY answered", extra={"kv": {
                    "to": f"{host}:{port}", "zone": path_to_name(zone),
                    "serial": self.state.serial & 0xFFFFFFFF, "rcode": rcode, "tries": attempt}})
                return
            log.warning("NOTIFY not answered", extra={"kv": {
                "to": f"{host}:{port}", "zone": path_to_name(zone), "tries": TRIES}})
        finally:
            transport.close()
