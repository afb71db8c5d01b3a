"""The event loop of skydns-cloudstack: CloudStack's Kafka topic -> VmSync, at least once.

Every partition of the topic, in a consumer group. A fetched batch is handled (each VM's
messages in order, different VMs side by side) and its offsets are committed only once every
record of it is in etcd; a failure of the CloudStack API or etcd backs off and tries the same
event again, never skipping it. A message that is not JSON, or not an event we handle, is
logged, counted and committed past. Replays (a crash between the write and the commit) are
harmless: keys derive from the VM's id.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from skydns.logsetup import kv
from skydns.store import backoff
from sources.cloudstack import REMOVE_EVENTS, UPSERT_EVENTS, Event, parse_event

from .api import ApiDown
from .sync import RETRYABLE, VmSync

log = logging.getLogger("skydns.cloudstack.consumer")

WORKERS = 32  # VMs of one batch handled at once
MAX_RECORDS = 500
KNOWN_EVENTS = UPSERT_EVENTS + REMOVE_EVENTS
MAX_INTERNAL = 5  # tries of an event that keeps failing with a bug (not an outage)


def consumer_options(kafka: dict) -> dict:
    """aiokafka's keyword arguments from the [Kafka] section."""
    opts = dict(
        bootstrap_servers=kafka["bootstrap"],
        group_id=kafka["group"],
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=int(kafka["session-timeout"] * 1000),
        heartbeat_interval_ms=int(kafka["heartbeat-interval"] * 1000),
        max_poll_records=MAX_RECORDS,
        # The broker holds an empty fetch this long: the most an idle consumer adds to the
        # delay of a new event (aiokafka's 500 ms default is a tenth of the 5 s promise).
        fetch_max_wait_ms=100,
        security_protocol=kafka["security-protocol"].upper(),
    )
    if opts["security_protocol"] in ("SSL", "SASL_SSL"):
        ctx = ssl.create_default_context(cafile=kafka["ssl-cafile"] or None)
        if kafka["ssl-certfile"]:
            ctx.load_cert_chain(kafka["ssl-certfile"], kafka["ssl-keyfile"] or None)
        opts["ssl_context"] = ctx
    if opts["security_protocol"].startswith("SASL"):
        opts.update(sasl_mechanism=kafka["sasl-mechanism"].upper(),
                    sasl_plain_username=kafka["sasl-username"],
                    sasl_plain_password=kafka["sasl-password"])
    return opts


def decode(value: bytes | None):
    """A message's JSON, or None when it is not JSON."""
    if value is None:
        return None
    try:
        return json.loads(value)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


class EventConsumer:
    def __init__(self, kafka: dict, sync: VmSync, metrics=None, backoff_min: float = 0.2,
                 backoff_max: float = 30.0, consumer: AIOKafkaConsumer | None = None):
        self.kafka = kafka
        self.sync = sync
        self.metrics = metrics
        self.backoff_min = backoff_min
        self.backoff_max = max(backoff_min, backoff_max)
        self.consumer = consumer or AIOKafkaConsumer(kafka["topic"], **consumer_options(kafka))
        self.handled = 0  # messages committed past
        self.lag: dict[int, int] = {}
        self.assigned = asyncio.Event()
        self._workers = asyncio.Semaphore(WORKERS)  # VMs handled at once, all partitions

    async def run(self, stop: asyncio.Event, started=lambda: None) -> None:
        if not await self._start(stop):
            return
        started()
        try:
            while not stop.is_set():
                try:
                    batches = await self.consumer.getmany(timeout_ms=200)
                except KafkaError as err:
                    self._error("kafka")
                    log.warning("Kafka fetch failed", extra=kv(error=str(err)))
                    await asyncio.sleep(self.backoff_min)
                    continue
                if self.consumer.assignment():
                    self.assigned.set()
                # The partitions of one fetch side by side; the next fetch waits for all of
                # them (a partition stuck on an outage keeps its place, uncommitted).
                await asyncio.gather(*(self._batch(tp, records, stop)
                                       for tp, records in batches.items() if records))
                await self._update_lag()
        finally:
            await self.consumer.stop()

    async def _start(self, stop: asyncio.Event) -> bool:
        """Connect to Kafka, retrying; False when stopped first."""
        failures = 0
        while not stop.is_set():
            try:
                await self.consumer.start()
                log.info("consuming", extra=kv(topic=self.kafka["topic"],
                                               group=self.kafka["group"]))
                return True
            except KafkaError as err:
                failures += 1
                self._error("kafka")
                if failures == 1 or failures % 10 == 0:
                    log.warning("Kafka unreachable", extra=kv(error=str(err),
                                                              failures=failures))
                try:
                    await asyncio.wait_for(stop.wait(), backoff(failures, self.backoff_min,
                                                                self.backoff_max))
                except TimeoutError:
                    pass
        return False

    async def _batch(self, tp: TopicPartition, records, stop: asyncio.Event) -> None:
        chains: dict[str, list] = {}  # vm id -> its events in order
        for record in records:
            msg = decode(record.value)
            event = parse_event(msg) if msg is not None else None
            if event is None:
                kind = "invalid" if msg is None else _event_name(msg)
                self._count(kind, "ignored")
                if msg is None:
                    log.warning("message is not JSON, skipped", extra=kv(
                        partition=tp.partition, offset=record.offset))
                else:
                    log.debug("not an event we handle", extra=kv(
                        partition=tp.partition, offset=record.offset, kind=kind))
                continue
            chains.setdefault(event.vm_id, []).append(event)

        async def chain(events: list[Event]) -> None:
            async with self._workers:
                for event in events:
                    await self._handle(event, stop)

        await asyncio.gather(*(chain(c) for c in chains.values()))
        if stop.is_set() and chains:
            return  # handled maybe partly: left uncommitted, replayed by whoever comes next
        try:
            await self.consumer.commit({tp: records[-1].offset + 1})
            self.handled += len(records)
        except (CommitFailedError, IllegalStateError, KafkaError) as err:
            # The partition moved to another member (a rebalance): it gets these again.
            self._error("commit")
            log.warning("offset commit failed; the records will be delivered again",
                        extra=kv(partition=tp.partition, error=str(err)))

    async def _handle(self, event: Event, stop: asyncio.Event) -> None:
        failures = internal = 0
        started = time.monotonic()
        while not stop.is_set():
            try:
                if event.kind == "remove":
                    outcome = await self.sync.remove(event.vm_id)
                else:
                    outcome = await self.sync.upsert(event.vm_id, event.vm)
                self._count(event.event_type, outcome)
                log.info("event handled", extra=kv(
                    event=event.event_type, vm=event.vm_id, outcome=outcome,
                    seconds=round(time.monotonic() - started, 3)))
                return
            except RETRYABLE as err:
                failures += 1
                self._error("api" if isinstance(err, ApiDown) else "etcd")
                if self.metrics:
                    self.metrics.retries.inc()
                if failures == 1 or failures % 10 == 0:
                    log.warning("event not handled yet, retrying", extra=kv(
                        event=event.event_type, vm=event.vm_id, failures=failures,
                        error=str(err)))
            except Exception:  # a bug, not an outage: tried a few times, then given up
                failures += 1
                internal += 1
                self._error("internal")
                log.exception("event failed", extra=kv(event=event.event_type,
                                                       vm=event.vm_id, failures=internal))
                if internal >= MAX_INTERNAL:
                    # One bad VM must not stop its partition for good; the resync tries
                    # this VM again (and logs it) every resync-interval.
                    self._count(event.event_type, "failed")
                    log.error("event given up after repeated internal errors", extra=kv(
                        event=event.event_type, vm=event.vm_id))
                    return
            try:
                await asyncio.wait_for(stop.wait(), backoff(failures, self.backoff_min,
                                                            self.backoff_max))
            except TimeoutError:
                pass

    async def _update_lag(self) -> None:
        """Published but not yet handled, per partition: the high water mark the last fetch
        saw minus our position."""
        for tp in self.consumer.assignment():
            end = self.consumer.highwater(tp)
            if end is None:
                continue
            try:
                position = await self.consumer.position(tp)
            except (IllegalStateError, KafkaError):
                continue
            self.lag[tp.partition] = max(0, end - position)
        if self.metrics:
            self.metrics.update_lag()

    def _count(self, kind: str, outcome: str) -> None:
        if self.metrics:
            self.metrics.events.labels(kind, outcome).inc()

    def _error(self, kind: str) -> None:
        if self.metrics:
            self.metrics.errors.labels(kind).inc()


def _event_name(msg) -> str:
    """The metrics label of a message we do not handle: one of our event types (a failed
    job, an error action), else "other" (labels stay few whatever the bus carries)."""
    if isinstance(msg, dict):
        for field in ("commandEventType", "event"):
            value = msg.get(field)
            if isinstance(value, str) and value.strip().upper() in KNOWN_EVENTS:
                return value.strip().upper()
    return "other"
