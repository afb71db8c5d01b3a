"""NOTIFY to also-notify secondaries: the message, coalescing of bursts, retries until answered."""

from __future__ import annotations

import asyncio
import socket

import dns.message
import dns.opcode
import dns.rdatatype
from test_engine import make_engine
from test_served import RECORDS

from dnsserver.zone import notify as zonenotify
from dnsserver.zone.notify import Notifier, is_ack, notify_message


def test_notify_message_and_ack():
    state = make_engine(RECORDS).state
    msg = dns.message.from_wire(notify_message(state, state.zone.domain_path, 4242))
    assert msg.opcode() == dns.opcode.NOTIFY and msg.id == 4242
    assert msg.question[0].rdtype == dns.rdatatype.SOA
    assert str(msg.question[0].name) == "example.test."
    assert msg.answer[0][0].serial == state.serial
    reply = dns.message.make_response(msg).to_wire()
    assert is_ack(reply, 4242) and not is_ack(reply, 4243)
    assert not is_ack(notify_message(state, state.zone.domain_path, 4242), 4242)  # a query


class Secondary(asyncio.DatagramProtocol):
    """Counts NOTIFYs; answers them unless told to stay silent."""

    def __init__(self, silent: bool):
        self.silent = silent
        self.serials: list[int] = []

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        msg = dns.message.from_wire(data)
        self.serials.append(msg.answer[0][0].serial)
        if not self.silent:
            self.transport.sendto(dns.message.make_response(msg).to_wire(), addr)


async def _run(silent: bool, monkeypatch):
    monkeypatch.setattr(zonenotify, "FIRST_WAIT", 0.05)
    monkeypatch.setattr(zonenotify, "INTERVAL", 0.3)
    loop = asyncio.get_running_loop()
    transport, secondary = await loop.create_datagram_endpoint(
        lambda: Secondary(silent), local_addr=("127.0.0.1", 0), family=socket.AF_INET)
    port = transport.get_extra_info("sockname")[1]
    engine = make_engine(RECORDS)
    notifier = Notifier(engine.state, [("127.0.0.1", port)], source="127.0.0.1")
    notifier.start()
    try:
        for revision in range(2, 12):  # a burst of ten changes
            engine.state.set_health("10.1.0.2", "DOWN" if revision % 2 else "UP", revision)
            await asyncio.sleep(0.01)
        for _ in range(300):
            if notifier.acked >= 2 or (silent and notifier.sent >= zonenotify.TRIES + 1):
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)
        return secondary.serials, notifier
    finally:
        await notifier.stop()
        transport.close()


def test_a_burst_is_coalesced_and_ends_at_the_last_serial(monkeypatch):
    serials, notifier = asyncio.run(_run(False, monkeypatch))
    assert 1 <= len(serials) <= 3, serials  # ten changes, one round a (patched) 0.3 s
    assert serials[-1] == 11 and notifier.acked == len(serials)


def test_a_silent_secondary_gets_a_few_tries(monkeypatch):
    serials, notifier = asyncio.run(_run(True, monkeypatch))
    assert notifier.acked == 0
    assert zonenotify.TRIES <= len(serials) <= 2 * zonenotify.TRIES
