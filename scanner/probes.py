"""Probes of one address: ICMP echo (icmplib), TCP connect and HTTP(S) checks, and their
combination.

Every probe answers True (the address answered), False (it did not) or None (we could not
probe: no socket permission, out of file descriptors, no local port). None must never count
as a failure, or a local resource problem on the scanner would mark every backend DOWN.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import ssl
import struct
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

from icmplib import ICMPLibError, ICMPv4Socket, async_ping

from skydns.checks import HttpCheck
from skydns.logsetup import kv

from . import httpwire

log = logging.getLogger("skydns.scanner.probes")

RAW = "raw"
DATAGRAM = "datagram"

# Errors that describe the scanner's own host, not the probed address.
_LOCAL_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM,
                           errno.EADDRNOTAVAIL})
# Close with RST instead of FIN: a health check that closes normally leaves a TIME_WAIT
# socket behind for a minute, and thousands of probes a second would exhaust local ports.
_LINGER_ABORT = struct.pack("ii", 1, 0)
_LOG_EVERY = 10.0  # seconds between two log lines about local probe errors
KINDS = ("icmp", "tcp", "http", "https")


class Verdict(NamedTuple):
    """One check of an address: ok as for a probe (True, False, None: could not probe), and
    when it failed, why (for the status value's `reason` and the status page)."""

    ok: bool | None
    reason: str | None = None


def detect_icmp_mode() -> str | None:
    """RAW when this process may open raw ICMP sockets (root or CAP_NET_RAW), else DATAGRAM
    when the kernel allows unprivileged ICMP sockets for our group, else None."""
    for mode, privileged in ((RAW, True), (DATAGRAM, False)):
        try:
            ICMPv4Socket(privileged=privileged).close()
            return mode
        except (ICMPLibError, OSError):
            continue
    return None


def icmp_unavailable_reason() -> str:
    """Why neither kind of ICMP socket can be opened, for the one log line an operator sees."""
    try:
        with open("/proc/sys/net/ipv4/ping_group_range") as f:
            low, high = (int(x) for x in f.read().split())
        groups = f"net.ipv4.ping_group_range is '{low} {high}'"
    except (OSError, ValueError):
        groups = "unprivileged ICMP sockets are not supported here"
    return (f"raw ICMP sockets need root or CAP_NET_RAW, and {groups} "
            f"(our group is {os.getgid()}); set enable-icmp = false to silence this")


class Prober:
    """Runs probes with at most `max_concurrency` sockets open at once.

    Counters (read by scanner/metrics.py at scrape time): probes (single ICMP/TCP attempts),
    outcomes[(kind, answered)] (probes that ran to a verdict, by "icmp"/"tcp"), checks
    (addresses checked), unreachable (checks that found the address down), local_errors
    (probes that could not run). `observe(kind, seconds)`, when set, gets the duration of
    every probe that ran to a verdict (the latency histogram).
    """

    def __init__(self, *, tcp_timeout: float, icmp_mode: str | None, ping_count: int = 1,
                 ping_timeout: float = 1.0, max_concurrency: int = 256):
        self.tcp_timeout = tcp_timeout
        self.icmp_mode = icmp_mode
        self.ping_count = ping_count
        self.ping_timeout = ping_timeout
        self.max_concurrency = max_concurrency
        self.slots = asyncio.Semaphore(max_concurrency)
        self.in_flight = 0
        self.probes = 0
        self.checks = 0
        self.unreachable = 0
        self.local_errors = 0
        self.outcomes: dict[tuple[str, bool], int] = {
            (kind, ok): 0 for kind in KINDS for ok in (True, False)}
        self.observe: Callable[[str, float], None] | None = None
        self._last_error_log: float | None = None  # never (0.0 is a real time on a fresh boot)
        self._errors_since_log = 0
        self._tls: dict[bool, ssl.SSLContext] = {}  # by tls-skip-verify, made on first use

    async def check(self, address: str, ports: Sequence[int],
                    checks: Sequence[HttpCheck] = ()) -> bool | None:
        return (await self.verdict(address, ports, checks)).ok

    async def verdict(self, address: str, ports: Sequence[int],
                      checks: Sequence[HttpCheck] = ()) -> Verdict:
        """The ICMP and TCP probes answer together: True as soon as any of them gets an
        answer, False if every one that could run got none. Every HTTP check must pass as
        well; all of it runs at once. None if nothing could run at all."""
        self.checks += 1
        if not checks:
            ok = await self._any_answer(address, ports)
            reason = self._no_answer(ports) if ok is False else None
        else:
            base = self._any_answer(address, ports) if ports or self.icmp_mode else None
            runs = [self.http(address, check) for check in checks]
            if base is not None:
                runs.insert(0, self._base_verdict(base, ports))
            results = await asyncio.gather(*runs)
            failed = [r for r in results if r.ok is False]
            ran = [r for r in results if r.ok is not None]
            ok = False if failed else (True if ran else None)
            reason = "; ".join(r.reason for r in failed if r.reason) or None
        if ok is False:
            self.unreachable += 1
        return Verdict(ok, reason)

    async def _base_verdict(self, base, ports: Sequence[int]) -> Verdict:
        ok = await base
        return Verdict(ok, self._no_answer(ports) if ok is False else None)

    def _no_answer(self, ports: Sequence[int]) -> str:
        probes = ["icmp"] if self.icmp_mode else []
        if ports:
            probes.append("tcp " + ",".join(str(p) for p in ports))
        return "no answer: " + " or ".join(probes)

    async def _any_answer(self, address: str, ports: Sequence[int]) -> bool | None:
        probes = [self.tcp(address, port) for port in ports]
        if self.icmp_mode:
            probes.insert(0, self.icmp(address))
        if not probes:
            return None
        tasks = [asyncio.ensure_future(p) for p in probes]
        result: bool | None = None
        try:
            for next_done in asyncio.as_completed(tasks):
                ok = await next_done
                if ok:
                    result = True
                    break
                if ok is False:
                    result = False
        finally:
            for task in tasks:
                task.cancel()
            # Let cancelled probes close their sockets before the caller moves on.
            await asyncio.gather(*tasks, return_exceptions=True)
        return result

    async def tcp(self, address: str, port: int) -> bool | None:
        """Connect to address:port within tcp_timeout; a refused connection is False."""
        async with self.slots:
            self.probes += 1
            self.in_flight += 1
            started = time.monotonic()
            try:
                ok = await self._tcp(address, port)
            finally:
                self.in_flight -= 1
            self._verdict("tcp", ok, started)
            return ok

    async def _tcp(self, address: str, port: int) -> bool | None:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as exc:
            self._local_error("tcp", address, exc)
            return None
        try:
            sock.setblocking(False)
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(self.tcp_timeout):
                await loop.sock_connect(sock, (address, port))
            return True
        except TimeoutError:
            return False
        except OSError as exc:
            if exc.errno in _LOCAL_ERRNOS:
                self._local_error("tcp", address, exc)
                return None
            return False
        finally:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ABORT)
            except OSError:
                pass
            sock.close()

    async def icmp(self, address: str) -> bool | None:
        """Up to ping_count echo requests, each waiting ping_timeout; True at the first reply."""
        for _ in range(self.ping_count):
            async with self.slots:
                self.probes += 1
                self.in_flight += 1
                started = time.monotonic()
                try:
                    host = await async_ping(address, count=1, timeout=self.ping_timeout,
                                            privileged=self.icmp_mode == RAW)
                except ICMPLibError as exc:
                    # Raised only when the socket cannot be made (permission, no fds); a
                    # failed send or a timeout just gives a host that is not alive.
                    self._local_error("icmp", address, exc)
                    return None
                finally:
                    self.in_flight -= 1
            self._verdict("icmp", host.is_alive, started)
            if host.is_alive:
                return True
        return False

    async def http(self, address: str, check: HttpCheck) -> Verdict:
        """One HTTP(S) check: connect, (TLS,) GET, read the response head, judge its status
        by `expect`, all within the check's timeout (else the prober's, check-timeout)."""
        async with self.slots:
            self.probes += 1
            self.in_flight += 1
            started = time.monotonic()
            try:
                result = await self._http(address, check)
            finally:
                self.in_flight -= 1
            self._verdict(check.scheme, result.ok, started)
            if result.ok is False:
                return Verdict(False, f"{check.scheme}:{check.port}{check.path}: "
                               f"{result.reason}")
            return result

    async def _http(self, address: str, check: HttpCheck) -> Verdict:
        timeout = check.timeout or self.tcp_timeout
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as exc:
            self._local_error(check.scheme, address, exc)
            return Verdict(None)
        transport = None
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ABORT)
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(timeout):
                await loop.sock_connect(sock, (address, check.port))
                reader = _HeadReader(httpwire.request(check, address), loop)
                tls = None
                if check.scheme == "https":
                    tls = self._tls_context(check.tls_skip_verify)
                transport, _ = await loop.create_connection(
                    lambda: reader, sock=sock, ssl=tls,
                    server_hostname=(check.host or address.split("%", 1)[0]) if tls else None,
                    ssl_handshake_timeout=timeout if tls else None)
                head = await reader.done
            code = httpwire.status_code(head)
        except TimeoutError:
            return Verdict(False, f"no answer within {timeout:g} s")
        except ssl.SSLCertVerificationError as exc:
            return Verdict(False, f"TLS: {exc.verify_message or exc.reason}")
        except ssl.SSLError as exc:
            return Verdict(False, f"TLS: {exc.reason or exc}")
        except httpwire.BadResponse as exc:
            return Verdict(False, f"not an HTTP response ({exc})")
        except ConnectionRefusedError:
            return Verdict(False, "connection refused")
        except OSError as exc:
            if exc.errno in _LOCAL_ERRNOS:
                self._local_error(check.scheme, address, exc)
                return Verdict(None)
            return Verdict(False, exc.strerror or type(exc).__name__)
        finally:
            # abort(): no TLS close_notify, no FIN; with SO_LINGER 0 an RST, no TIME_WAIT.
            if transport is not None:
                transport.abort()
            else:
                sock.close()
        if not check.accepts(code):
            return Verdict(False, f"status {code}, expected {check.expect}")
        return Verdict(True)

    def _tls_context(self, skip_verify: bool) -> ssl.SSLContext:
        # Made once: loading the system's CA store costs milliseconds, a check microseconds.
        ctx = self._tls.get(skip_verify)
        if ctx is None:
            ctx = ssl.create_default_context()
            if skip_verify:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            self._tls[skip_verify] = ctx
        return ctx

    def _verdict(self, kind: str, ok: bool | None, started: float) -> None:
        # Probes cancelled because another probe of the check answered first never get
        # here, and None (could not run) says nothing about the address: neither is counted.
        if ok is None:
            return
        self.outcomes[(kind, ok)] += 1
        if self.observe is not None:
            self.observe(kind, time.monotonic() - started)

    def _local_error(self, kind: str, address: str, exc: BaseException) -> None:
        self.local_errors += 1
        self._errors_since_log += 1
        now = time.monotonic()
        if self._last_error_log is None or now - self._last_error_log >= _LOG_EVERY:
            log.warning(
                "probe could not run; not counted as a failure",
                extra=kv(probe=kind, address=address, error=str(exc) or type(exc).__name__,
                         errors_since_last_log=self._errors_since_log,
                         max_concurrency=self.max_concurrency),
            )
            self._last_error_log = now
            self._errors_since_log = 0


class _HeadReader(asyncio.Protocol):
    """Sends the request once connected and collects bytes until the response head is
    complete; the body is never waited for."""

    def __init__(self, request: bytes, loop: asyncio.AbstractEventLoop):
        self.request = request
        self.data = b""
        self.done: asyncio.Future[bytes] = loop.create_future()

    def connection_made(self, transport) -> None:
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return
        self.data += data
        if httpwire.head_complete(self.data):
            self.done.set_result(self.data)
        elif len(self.data) > httpwire.MAX_HEAD:
            self.done.set_exception(httpwire.BadResponse(
                f"head longer than {httpwire.MAX_HEAD} bytes"))

    def eof_received(self) -> bool:
        self._closed()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed(exc)

    def _closed(self, exc: Exception | None = None) -> None:
        if self.done.done():
            return
        if b"\n" in self.data:
            # A head cut short (closed, or reset as a server does that closes without
            # reading the request) still has its status line, which is all that is judged.
            self.done.set_result(self.data)
        elif exc is not None:
            self.done.set_exception(exc)
        else:
            self.done.set_exception(httpwire.BadResponse("connection closed before the "
                                                         "status line"))
