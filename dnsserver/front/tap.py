"""dnstap output of one worker ([Log] dnstap): a Frame Streams writer to a collector that
listens (fstrm_capture, dnstap-receiver, ...), fed by hooks the transports install at start-up.

Answering never waits for it. The hooks append one tuple per message (or per query and the
answer sent while it was handled) to a bounded list (QUEUE_LIMIT; past it, messages are
dropped and counted); a flush a few milliseconds later
encodes the batch (dnstap.py) and writes it, unless the collector is not connected or has
not taken the last WRITE_HIGH bytes, in which case the batch is dropped and counted
(`dnstap_dropped`, skydns_dnstap_dropped_total). The connection is made again with backoff
whenever it fails or the collector goes away. With dnstap off none of this exists: the
transports keep their plain handlers (udp.udp_server_class, hook_tcp).
"""

from __future__ import annotations

import asyncio
import logging
import time

from ..wire import fstrm
from ..wire.dnstap import (
    AUTH_QUERY,
    AUTH_RESPONSE,
    CLIENT_QUERY,
    CLIENT_RESPONSE,
    FORWARDER_QUERY,
    FORWARDER_RESPONSE,
    TCP_PAIR,
    TCP_QUERY,
    TCP_RESPONSE,
    Encoder,
    dnstap_identity,
    dnstap_version,
)

log = logging.getLogger("skydns.dnstap")
_now = time.time  # a float: to a quarter of a microsecond, cheaper than time_ns

QUEUE_LIMIT = 20_000  # records waiting for the next flush (a few MB at most)
FLUSH_DELAY = 0.005  # seconds from the first waiting message to its flush: batches writes
WRITE_HIGH = 1 << 20  # bytes the collector has not taken before batches are dropped
CONNECT_TIMEOUT = 5.0
BACKOFF_MIN, BACKOFF_MAX = 0.1, 5.0
FINISH_WAIT = 1.0  # seconds to wait for FINISH after our STOP, stopping
# the messages the transports' hooks see; forward.py sees the others
_CLIENT_SIDE = (AUTH_QUERY, AUTH_RESPONSE, CLIENT_QUERY, CLIENT_RESPONSE)


class TapWriter:
    """One worker's connection to the collector and what waits for it."""

    def __init__(self, target, encoder: Encoder, stats, queue_limit: int = QUEUE_LIMIT):
        self.target = target  # ("unix", path) or ("tcp", (host, port))
        self.encoder = encoder
        self.stats = stats  # the engine's Counter: dnstap_sent, dnstap_dropped
        self.limit = queue_limit
        self.pending: list[tuple] = []
        self.types = encoder.types
        self.client_side = not self.types.isdisjoint(_CLIENT_SIDE)  # the transports' hooks
        self.writer: asyncio.StreamWriter | None = None  # set once START is sent
        self._reader: asyncio.StreamReader | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._flush_handle = None
        self._stopping = False

    # -- what the hooks call -------------------------------------------------------------------

    def record(self, kind: int, wire: bytes, addr) -> None:
        pending = self.pending
        n = len(pending)
        if n < self.limit:
            pending.append((kind, wire, addr, _now()))
            if not n:
                self._flush_handle = self._loop.call_later(FLUSH_DELAY, self.flush)
        else:
            self.stats["dnstap_dropped"] += 2 if kind & 8 else 1  # a pair is two messages

    def extend(self, records: list) -> None:
        """record() for a batch of finished records (kind, wire, addr, time)."""
        pending = self.pending
        room = self.limit - len(pending)
        if room < len(records):
            self._drop(records[max(room, 0):])
            records = records[: max(room, 0)]
        if records:
            if not pending:
                self._flush_handle = self._loop.call_later(FLUSH_DELAY, self.flush)
            pending += records

    def flush(self) -> None:
        self._flush_handle = None
        records, self.pending = self.pending, []
        if not records:
            return
        writer = self.writer
        transport = writer.transport if writer is not None else None
        if (transport is None or transport.is_closing()
                or transport.get_write_buffer_size() > WRITE_HIGH):
            self._drop(records)
            return
        try:
            data, count = self.encoder.encode(records)
        except Exception:  # a bug must cost the log, never the answers
            log.exception("dnstap encoding failed")
            self._drop(records)
            return
        if data:
            transport.write(data)
        self.stats["dnstap_sent"] += count

    def _drop(self, records) -> None:
        self.stats["dnstap_dropped"] += len(records) + sum(1 for r in records if r[0] & 8)

    # -- the connection ------------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run())

    async def stop(self) -> None:
        """Send what waits, then STOP; wait a moment for FINISH."""
        self._stopping = True
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        self.flush()
        writer, self.writer = self.writer, None
        if self._task is not None:
            self._task.cancel()
        if writer is None:
            return
        try:
            writer.write(fstrm.control(fstrm.STOP))
            await asyncio.wait_for(writer.drain(), FINISH_WAIT)
            kind, _ = await asyncio.wait_for(_read_control(self._reader), FINISH_WAIT)
            if kind != fstrm.FINISH:
                log.debug("no FINISH from the collector", extra={"kv": {"got": kind}})
        except (OSError, TimeoutError, asyncio.IncompleteReadError, fstrm.FstrmError):
            pass
        finally:
            writer.close()

    async def _run(self) -> None:
        backoff = BACKOFF_MIN
        failing = False
        where = _describe(self.target)
        while not self._stopping:
            try:
                reader, writer = await asyncio.wait_for(self._handshake(), CONNECT_TIMEOUT)
            except (OSError, TimeoutError, asyncio.IncompleteReadError,
                    fstrm.FstrmError) as err:
                if not failing:  # once per outage, not once per retry
                    log.warning("dnstap collector unreachable; dropping messages until it is",
                                extra={"kv": {"collector": where, "error": _why(err)}})
                failing = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            log.info("dnstap collector connected", extra={"kv": {"collector": where}})
            failing = False
            backoff = BACKOFF_MIN
            self.writer, self._reader = writer, reader
            try:
                # The collector says nothing after ACCEPT until FINISH: any read returning
                # means it closed (or broke the protocol); either way, start over.
                await reader.read(4096)
            except OSError:
                pass
            finally:
                if self.writer is writer:
                    self.writer = None
                    writer.close()
            if not self._stopping:
                log.warning("dnstap collector went away; reconnecting",
                            extra={"kv": {"collector": where}})
                failing = True
                await asyncio.sleep(backoff)

    async def _handshake(self):
        kind, addr = self.target
        if kind == "unix":
            reader, writer = await asyncio.open_unix_connection(addr)
        else:
            reader, writer = await asyncio.open_connection(addr[0], addr[1])
        try:
            writer.write(fstrm.control(fstrm.READY, fstrm.DNSTAP))
            fstrm.check_accept(*await _read_control(reader))
            writer.write(fstrm.control(fstrm.START, fstrm.DNSTAP))
            writer.transport.set_write_buffer_limits(high=WRITE_HIGH)
        except BaseException:
            writer.close()
            raise
        return reader, writer


async def _read_control(reader: asyncio.StreamReader) -> tuple[int, list[bytes]]:
    length = fstrm.control_length(await reader.readexactly(8))
    return fstrm.parse_control(await reader.readexactly(length))


def _describe(target) -> str:
    kind, addr = target
    return f"unix:{addr}" if kind == "unix" else f"tcp:{addr[0]}:{addr[1]}"


def _why(err: BaseException) -> str:
    if isinstance(err, TimeoutError):
        return "timed out"
    if isinstance(err, asyncio.IncompleteReadError):
        return "closed during the handshake"
    return str(err) or type(err).__name__


def make_writer(cfg: dict, engine) -> TapWriter | None:
    """The worker's writer for [Log] dnstap, None when it is off. `engine.forwards` tells
    client-side messages of forwarded names (CLIENT_*) from ours (AUTH_*)."""
    section = cfg["Log"]
    target = section.get("dnstap")
    if not target:
        return None
    forwarding = bool(engine.nameservers or engine.subdomains)
    encoder = Encoder(dnstap_identity(section["dnstap-identity"]),
                      dnstap_version(section["dnstap-version"]), section["dnstap-messages"],
                      server=cfg["Dns"]["dns-addr"],
                      forwarded=engine.forwards if forwarding else None)
    return TapWriter(target, encoder, engine.stats)


# -- the hooks -------------------------------------------------------------------------------
# Installed once, when a transport is made, and only with dnstap on: with it off nothing is
# checked per query. A query is kept while its handler runs; an answer sent meanwhile (every
# cached or built one) is recorded with it as one pair; a query still unanswered when its
# handler returns (forwarded, or dropped) is recorded alone, its answer later alone too.

def _wants(tap: TapWriter | None, types) -> bool:
    return tap is not None and not tap.types.isdisjoint(types)


def hook_tcp(tap: TapWriter | None, conn) -> None:
    """Wrap a TcpConnection's _handle (one query) and _send (one response)."""
    if tap is None or not tap.client_side:
        return
    record = tap.record
    handle, send = conn._handle, conn._send
    waiting = [None]  # the query whose handler is running

    def handled(data: bytes) -> None:
        waiting[0] = data
        handle(data)
        if waiting[0] is not None:
            waiting[0] = None
            record(TCP_QUERY, data, conn.peer)

    def sent(reply: bytes) -> None:
        send(reply)
        query = waiting[0]
        if query is not None:
            waiting[0] = None
            record(TCP_PAIR, (query, reply), conn.peer)
        else:
            record(TCP_RESPONSE, reply, conn.peer)

    conn._handle, conn._send = handled, sent


def forwarder_hook(tap: TapWriter | None):
    """What forward.py calls with (kind, wire, server) for our upstream exchanges, or None."""
    return tap.record if _wants(tap, (FORWARDER_QUERY, FORWARDER_RESPONSE)) else None
