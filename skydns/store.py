"""The etcd side of every skydns daemon: client construction and a self-healing prefix mirror.

`Mirror` talks to etcd's Watch RPC directly instead of going through aetcd's `Watcher`: aetcd
hands out one event at a time and drops responses without events, which loses the two things
a mirror needs, the response boundaries (one etcd transaction = one batch) and the header
revision of progress notifications (how the resume point advances while the prefix is idle).
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import logging
import random
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import aetcd
import aetcd.watcher
import grpc
from aetcd import rpc

from .logsetup import kv

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 5.0
DEFAULT_PORT = 2379
BACKOFF_MIN = 0.1
BACKOFF_MAX = 5.0


def backoff(failures: int, low: float = BACKOFF_MIN, high: float = BACKOFF_MAX) -> float:
    """Seconds to wait after the n-th failure in a row (n >= 1): doubling from `low` up to
    `high`, jittered so that many clients do not retry in step after an outage."""
    delay = min(high, low * 2 ** (min(failures, 32) - 1))
    return random.uniform(delay / 2, delay)

_MIB = 1024 * 1024
# etcd counts the rest of the range for every page, so small pages make a big load O(N^2) in
# etcd's CPU: 1M keys took 15 s of it with 5000-key pages, under 3 s with 50000-key ones.
PAGE_SIZE = 50_000
CHANNEL_OPTIONS = {
    # A full load of a big prefix comes back in pages, but a single page of large values or
    # a big transaction in one watch response can still exceed gRPC's default 4 MiB.
    "grpc.max_receive_message_length": 256 * _MIB,
    # Keepalive pings notice a peer that vanished without closing the TCP connection
    # (network loss, frozen host). etcd refuses pings more often than every 5s by default.
    "grpc.keepalive_time_ms": 10_000,
    "grpc.keepalive_timeout_ms": 5_000,
    "grpc.http2.max_pings_without_data": 0,
    # gRPC's own reconnect backoff grows to 120s; after a long etcd outage a reused channel
    # would keep failing fast for up to two minutes after etcd is back.
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.min_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": int(BACKOFF_MAX * 1000),
}


# --- client construction ---------------------------------------------------------------------


def etcd_servers(etcd_section: dict) -> list[str]:
    """The configured endpoint URLs, in order (configobj may hand us a list or one string)."""
    servers = etcd_section.get("etcd-servers") or ["http://127.0.0.1:2379"]
    if isinstance(servers, str):
        servers = servers.split(",")
    servers = [s.strip() for s in servers if s.strip()]
    if not servers:
        raise ValueError("etcd-servers is empty")
    return servers


def _split_url(url: str) -> tuple[str, int, bool]:
    """(host for a gRPC target, port, wants TLS) from "https://h:p", "http://h" or "h:p"."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"bad etcd server URL {url!r}")
    host = parts.hostname
    if ":" in host:  # IPv6 literal: the target string needs the brackets back
        host = f"[{host}]"
    return host, parts.port or DEFAULT_PORT, parts.scheme == "https"


def _read_file(section: dict, key: str) -> bytes | None:
    path = section.get(key) or ""
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ValueError(f"{key} {path}: {e.strerror}") from e


class Client(aetcd.Client):
    """aetcd.Client on a gRPC target of our making (several etcd members behind one channel)
    and optionally TLS; aetcd itself only knows one host:port and insecure channels."""

    def __init__(self, target: str, *, credentials: grpc.ChannelCredentials | None = None,
                 **kwargs):
        host, _, port = target.rpartition(":")
        super().__init__(host, int(port) if port.isdigit() else DEFAULT_PORT, **kwargs)
        self.target = target
        self._credentials = credentials

    @property
    def tls(self) -> bool:
        return self._credentials is not None

    async def connect(self) -> None:
        # Same as aetcd.Client.connect (minus user/password auth, which skydns does not
        # configure), on our target and credentials.
        if self._connected.is_set():
            return
        if self._is_connecting:
            await asyncio.wait_for(self._connected.wait(), self._connect_wait_timeout)
            return
        self._is_connecting = True
        try:
            options = list(self._options.items())
            if self._credentials is None:
                self.channel = grpc.aio.insecure_channel(self.target, options=options)
            else:
                self.channel = grpc.aio.secure_channel(
                    self.target, self._credentials, options=options
                )
            self.kvstub = rpc.KVStub(self.channel)
            self.clusterstub = rpc.ClusterStub(self.channel)
            self.leasestub = rpc.LeaseStub(self.channel)
            self.maintenancestub = rpc.MaintenanceStub(self.channel)
            self._watcher = aetcd.watcher.Watcher(
                rpc.WatchStub(self.channel), timeout=self._timeout, metadata=self.metadata
            )
            self._connected.set()
        finally:
            self._is_connecting = False


def _addresses(host: str, port: int) -> list[tuple[int, str]]:
    """(IP version, IP) of an endpoint host; a name is resolved now (getaddrinfo)."""
    bare = host.strip("[]")
    try:
        found = [ipaddress.ip_address(bare)]
    except ValueError:
        found = [ipaddress.ip_address(info[4][0].split("%")[0])
                 for info in socket.getaddrinfo(bare, port, type=socket.SOCK_STREAM)]
    return [(ip.version, str(ip)) for ip in found]


def _target_of(members: list[tuple[int, str, int]]) -> str:
    """gRPC target over several addresses: ipv4: when all are IPv4 (works where IPv6 is off),
    else ipv6: with IPv4 as v4-mapped addresses (one family per target)."""
    if all(version == 4 for version, _, _ in members):
        return "ipv4:" + ",".join(f"{ip}:{port}" for _, ip, port in members)
    return "ipv6:" + ",".join(f"[{ip if version == 6 else '::ffff:' + ip}]:{port}"
                              for version, ip, port in members)


def channel_target(urls: list[str]) -> tuple[str, bool, str]:
    """(gRPC target, wants TLS, TLS name) for the configured endpoints.

    One endpoint is `host:port` (gRPC resolves a name itself, so a DNS name with several
    addresses already fails over). Several become one channel over all of them
    (`ipv4:a:p,b:p`, gRPC's pick_first policy): it uses the first member that answers
    and moves to the next when that one goes away, for every client of the process at once,
    long-lived ones included. Their certificates are checked against one name: `[Etcd]
    etcd-server-name`, else the first endpoint's host, so with TLS every member's certificate
    must carry that name (or IP).
    """
    parsed = [_split_url(url) for url in urls]
    https = any(p[2] for p in parsed)
    first_host = parsed[0][0].strip("[]")
    if len(parsed) == 1:
        host, port, _ = parsed[0]
        return f"{host}:{port}", https, first_host
    members: list[tuple[int, str, int]] = []
    for host, port, _ in parsed:
        try:
            found = _addresses(host, port)
        except OSError as err:  # one unresolvable member must not keep us off the others
            log.warning("etcd endpoint does not resolve; skipped",
                        extra=kv(host=host, error=str(err)))
            continue
        members += [(v, ip, port) for v, ip in found if (v, ip, port) not in members]
    if not members:
        raise ValueError(f"no etcd endpoint resolves: {', '.join(urls)}")
    return _target_of(members), https, first_host


def make_client(etcd_section: dict) -> Client:
    """An unconnected etcd client for the [Etcd] section (connect() or any call connects).

    https:// or any of etcd-cafile/etcd-certfile/etcd-keyfile set gives a TLS channel.
    Several etcd-servers give one channel that fails over between them (channel_target).
    """
    target, https, tls_name = channel_target(etcd_servers(etcd_section))
    timeout = float(etcd_section.get("etcd-timeout") or DEFAULT_TIMEOUT)
    ca = _read_file(etcd_section, "etcd-cafile")
    cert = _read_file(etcd_section, "etcd-certfile")
    key = _read_file(etcd_section, "etcd-keyfile")
    if (cert is None) != (key is None):
        raise ValueError("etcd-certfile and etcd-keyfile must be set together")
    options = dict(CHANNEL_OPTIONS)
    if not (https or ca or cert):
        return Client(target, timeout=timeout, options=options)
    tls_name = str(etcd_section.get("etcd-server-name") or "").strip() or tls_name
    if target.startswith(("ipv4:", "ipv6:")) or etcd_section.get("etcd-server-name"):
        # Over several members the channel's authority would be the address list: check
        # every member's certificate against one name instead.
        options["grpc.ssl_target_name_override"] = tls_name
        options["grpc.default_authority"] = tls_name
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )
    return Client(target, timeout=timeout, options=options, credentials=credentials)


# --- reads -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KV:
    key: str
    value: bytes
    mod_revision: int
    lease: int
    # Stays the same across puts until the key is deleted: what "the same request" means to
    # the scanners' confirmation protocol. 0 where a KV is made from a write of our own.
    create_revision: int = 0


def _kv(kv) -> KV:
    return KV(kv.key.decode("utf-8", errors="replace"), kv.value, kv.mod_revision, kv.lease,
              kv.create_revision)


def usable_key(raw: bytes) -> bool:
    """A key we can name: UTF-8 without NUL. Others are logged and skipped, never loaded under
    a mangled name (U+FFFD for the bad bytes would merge distinct keys into one)."""
    try:
        key = raw.decode("utf-8")
    except UnicodeDecodeError:
        key = None
    if key is None or "\0" in key:
        log.warning("etcd key skipped: not UTF-8 or holds NUL: %r", raw[:200])
        return False
    return True


def prefix_range_end(prefix: bytes) -> bytes:
    """The range_end that selects every key starting with prefix."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"  # all-0xff or empty prefix: to the end of the keyspace


async def load_prefix(
    client: aetcd.Client, prefix: str, page_size: int = PAGE_SIZE
) -> tuple[list[KV], int]:
    """Every key under prefix, sorted by key, as of one revision (returned too).

    Reads in pages so no response hits the gRPC message limit; pages after the first are
    pinned at the first page's revision so the result is one consistent snapshot.
    """
    await client.connect()
    key = prefix.encode()
    end = prefix_range_end(key)
    revision = 0
    out: list[KV] = []
    while True:
        resp = await client.kvstub.Range(
            rpc.RangeRequest(key=key, range_end=end, limit=page_size, revision=revision),
            timeout=client._timeout,
            metadata=client.metadata,
        )
        if revision == 0:
            revision = resp.header.revision
        out.extend(_kv(kv) for kv in resp.kvs if usable_key(kv.key))
        if not resp.more or not resp.kvs:
            return out, revision
        key = resp.kvs[-1].key + b"\0"


async def lease_ttls(client: aetcd.Client, lease_ids: Iterable[int]) -> dict[int, int]:
    """Granted TTL (seconds) of each live lease among lease_ids; expired or unknown ones are left
    out (etcd answers those with TTL -1 rather than an error)."""
    limit = asyncio.Semaphore(32)  # thousands of scanners must not mean thousands of RPCs at once

    async def one(lease_id: int) -> tuple[int, int]:
        async with limit:
            resp = await client.get_lease_info(lease_id, keys=False)
        return lease_id, (resp.grantedTTL if resp.TTL > 0 else 0)

    results = await asyncio.gather(*(one(i) for i in {int(i) for i in lease_ids if i}))
    return {lease_id: ttl for lease_id, ttl in results if ttl > 0}


def describe_error(exc: BaseException) -> str:
    """One line for a log: gRPC errors as 'CODE: details' instead of their multi-line repr."""
    seen = exc
    while seen is not None and not isinstance(seen, grpc.aio.AioRpcError):
        seen = seen.__cause__
    if isinstance(seen, grpc.aio.AioRpcError):
        return f"{seen.code().name}: {seen.details()}"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


# --- the mirror ------------------------------------------------------------------------------

ResetCallback = Callable[[list[KV], int], None]
EventsCallback = Callable[[list[tuple[str, KV]], int], None]


class _WatchEnded(Exception):
    """The watch stream stopped delivering; the session must be rebuilt."""


class _Compacted(Exception):
    def __init__(self, resume: int, compact_revision: int):
        super().__init__(
            f"resume revision {resume} is compacted (compacted below {compact_revision})"
        )


class Mirror:
    """Keeps a caller's in-memory copy of one etcd prefix current.

    A paged load pinned at one revision goes to on_reset(kvs, revision); then a watch from
    revision+1 feeds on_events(batch, revision) with ("put"|"delete", KV) pairs, one batch per
    etcd watch response: one transaction while the watch is live, several consecutive ones when
    it catches up after a reconnect, never part of a transaction. A delete carries value b""
    and the delete revision as mod_revision; revision is the batch's last mod_revision.
    Callbacks are plain functions called on the event loop; one that raises is logged and the
    mirror goes on.

    Lost connections (etcd restart, network loss, a silent stream caught by the watchdog) are
    retried forever with jittered exponential backoff and resume the watch at the last applied
    revision, so nothing is reloaded and nothing is missed. If that revision has been
    compacted meanwhile, the mirror reloads and calls on_reset again.

    Hooks for tests and tuning (plain attributes):
      reconnect_gate     asyncio.Event awaited before every reconnect attempt (initially set);
                         clear it to hold the mirror offline after a failure.
      watchdog_interval  seconds between liveness checks of the server behind an open watch.
    A stopped Mirror cannot be run again.
    """

    def __init__(
        self,
        etcd_section: dict,
        prefix: str,
        on_reset: ResetCallback,
        on_events: EventsCallback,
        name: str = "mirror",
        page_size: int = PAGE_SIZE,
    ):
        self.etcd_section = etcd_section
        self.prefix = prefix
        self.on_reset = on_reset
        self.on_events = on_events
        self.name = name
        self.page_size = page_size

        self.ready = asyncio.Event()
        self.revision = 0
        self.connected = False
        self.resets = 0  # completed loads, for metrics

        self.reconnect_gate = asyncio.Event()
        self.reconnect_gate.set()
        self.watchdog_interval = 5.0

        self._need_load = True
        self._healthy = False  # the current session got a watch created
        self._client: aetcd.Client | None = None
        self._stop_requested = asyncio.Event()
        self._finished = asyncio.Event()
        self._running = False

    def __repr__(self) -> str:
        return f"<Mirror {self.name} {self.prefix!r} rev={self.revision}>"

    async def run(self) -> None:
        """Mirror until stop(). Never raises for etcd trouble; it is logged and retried."""
        if self._running or self._finished.is_set():
            raise RuntimeError(f"{self!r} already ran")
        self._running = True
        loop_task = asyncio.create_task(self._loop(), name=f"{self.name}-loop")
        stop_task = asyncio.create_task(self._stop_requested.wait())
        try:
            await asyncio.wait({loop_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (loop_task, stop_task):
                task.cancel()
            await asyncio.gather(loop_task, stop_task, return_exceptions=True)
            await self._close_client()
            self.connected = False
            self._running = False
            self._finished.set()

    async def stop(self) -> None:
        """Stop run() and wait until it has closed its connection."""
        self._stop_requested.set()
        if self._running:
            await self._finished.wait()

    # Session management

    async def _loop(self) -> None:
        failures = 0
        while True:
            if failures:
                await asyncio.sleep(backoff(failures))
                await self.reconnect_gate.wait()
            self._healthy = False
            try:
                await self._session()
            except Exception as exc:
                # A session that got a watch going proves etcd was fine: start backoff over.
                failures = 1 if self._healthy else failures + 1
                known = isinstance(
                    exc,
                    (grpc.aio.AioRpcError, aetcd.ClientError, OSError, TimeoutError, _WatchEnded),
                )
                log.warning(
                    "etcd session failed",
                    extra=kv(mirror=self.name, prefix=self.prefix, attempt=failures,
                             error=describe_error(exc)),
                    exc_info=None if known else exc,
                )
            finally:
                self.connected = False
                await self._close_client()

    async def _session(self) -> None:
        self._client = client = make_client(self.etcd_section)
        await client.connect()
        while True:
            if self._need_load:
                await self._load(client)
            try:
                await self._watch(client)
            except _Compacted as exc:
                log.warning("watch compacted, reloading",
                            extra=kv(mirror=self.name, prefix=self.prefix, error=str(exc)))
                self._need_load = True

    async def _close_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.close()
            except Exception as exc:  # closing a broken channel is best effort
                log.debug("closing etcd client failed",
                          extra=kv(mirror=self.name, error=describe_error(exc)))

    async def _load(self, client: aetcd.Client) -> None:
        # A load makes millions of objects that all live on: cyclic GC passes over them find
        # nothing and cost seconds at 1M keys. Paused for the load, on again after on_reset.
        gc_was_on = gc.isenabled()
        gc.disable()
        try:
            await self._load_and_reset(client)
        finally:
            if gc_was_on:
                gc.enable()

    async def _load_and_reset(self, client: aetcd.Client) -> None:
        kvs, revision = await load_prefix(client, self.prefix, self.page_size)
        self.revision = revision
        self._need_load = False
        self.resets += 1
        log.info("loaded", extra=kv(mirror=self.name, prefix=self.prefix, keys=len(kvs),
                                    revision=revision))
        try:
            self.on_reset(kvs, revision)
        except Exception:
            log.exception("on_reset callback failed", extra=kv(
                mirror=self.name, prefix=self.prefix, keys=len(kvs), revision=revision))
        self.ready.set()

    async def _watch(self, client: aetcd.Client) -> None:
        key = self.prefix.encode()
        create = rpc.WatchCreateRequest(
            key=key,
            range_end=prefix_range_end(key),
            start_revision=self.revision + 1,
            progress_notify=True,
            fragment=True,
        )
        call = rpc.WatchStub(client.channel).Watch(metadata=client.metadata)
        reader = asyncio.create_task(self._read(call))
        watchdog = asyncio.create_task(self._watchdog(client))
        try:
            await call.write(rpc.WatchRequest(create_request=create))
            done, _ = await asyncio.wait({reader, watchdog}, return_when=asyncio.FIRST_COMPLETED)
            error = done.pop().exception()  # both only end by raising
        finally:
            for task in (reader, watchdog):
                task.cancel()
            await asyncio.gather(reader, watchdog, return_exceptions=True)
            call.cancel()
        try:
            raise error
        finally:
            # A finished task keeps its exception, whose traceback keeps this frame: without
            # this the call and its channel live in a reference cycle until a GC pass, which
            # may come after their event loop is closed (grpc then logs errors).
            del error, done, reader, watchdog

    async def _watchdog(self, client: aetcd.Client) -> None:
        # A watch on an idle prefix receives nothing for minutes, so a hung server or a dead
        # network path would go unnoticed; a cheap unary call with a deadline notices it.
        while True:
            await asyncio.sleep(self.watchdog_interval)
            try:
                await client.maintenancestub.Status(
                    rpc.StatusRequest(), timeout=client._timeout, metadata=client.metadata
                )
            except grpc.aio.AioRpcError as exc:
                raise _WatchEnded(f"watchdog: status check failed: {describe_error(exc)}") from exc

    async def _read(self, call) -> None:
        pending: list = []  # events of a fragmented response, until its last fragment
        while True:
            resp = await call.read()
            if resp is grpc.aio.EOF:
                raise _WatchEnded("watch stream closed by the server")
            if resp.compact_revision:
                raise _Compacted(self.revision + 1, resp.compact_revision)
            if resp.canceled:
                raise _WatchEnded(f"watch canceled by the server: {resp.cancel_reason}")
            if resp.created:
                self.connected = True
                self._healthy = True
                log.info("watching", extra=kv(mirror=self.name, prefix=self.prefix,
                                              revision=self.revision + 1))
                continue
            pending.extend(resp.events)
            if resp.fragment:
                continue
            if pending:
                events, pending = pending, []
                self._deliver(events)
            elif resp.header.revision > self.revision:
                # Progress notification: nothing under the prefix changed up to here. (etcd only
                # sends these to watchers that have caught up, so this never skips events.)
                self.revision = resp.header.revision

    def _deliver(self, events: list) -> None:
        # Not the header revision: while catching up, etcd stamps responses with its current
        # revision although more events may follow, and resuming from it would skip them.
        revision = max(ev.kv.mod_revision for ev in events)
        batch = [
            ("delete" if ev.type == rpc.Event.DELETE else "put", _kv(ev.kv))
            for ev in events
            if usable_key(ev.kv.key)
        ]
        if not batch:
            self.revision = max(self.revision, revision)
            return
        try:
            self.on_events(batch, revision)
        except Exception:
            log.exception("on_events callback failed", extra=kv(
                mirror=self.name, prefix=self.prefix, revision=revision, events=len(batch),
                keys=[item.key for _, item in batch[:5]]))
        self.revision = max(self.revision, revision)
