"""Readiness of the demo's components: probes, and a wait that names who failed.

Every wait shares one deadline; a component that exits meanwhile fails the start at once, with
the end of its log.
"""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from .etcd import Entry, get_prefix, tails
from .procs import Child

T = TypeVar("T")


class StartError(Exception):
    """A component did not come up; the message names it and its log."""


class Interrupted(Exception):
    """Ctrl-C (or SIGTERM) arrived while starting."""


def tail(log: Path, lines: int = 6) -> str:
    try:
        text = log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "".join(f"\n    | {line}" for line in text)


class Waiter:
    def __init__(self, stop: asyncio.Event, timeout: float):
        self.stop = stop
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout

    async def until(self, child: Child, what: str, probe: Callable[[], T]) -> T:
        """`probe()` once it returns something truthy; StartError when `child` exits first or
        the deadline passes."""
        while True:
            if self.stop.is_set():
                raise Interrupted
            if child.proc.poll() is not None:
                raise StartError(f"{child.describe_exit()} before {what}{tail(child.log)}")
            result = probe()
            if result:
                return result
            if time.monotonic() >= self.deadline:
                raise StartError(
                    f"{child.name} (pid {child.pid}): {what} did not happen within "
                    f"{self.timeout:g}s; see {child.log}{tail(child.log)}"
                )
            # Waiting on the stop event (not sleeping) keeps Ctrl-C prompt.
            try:
                await asyncio.wait_for(self.stop.wait(), 0.2)
            except TimeoutError:
                pass


def dns_answers(port: int, zone: str) -> bool:
    from dnslib import DNSRecord

    query = DNSRecord.question(zone, "SOA").pack()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.3)
        try:
            sock.sendto(query, ("127.0.0.1", port))
            return sock.recv(4096)[3] & 0x0F == 0  # NOERROR
        except OSError:
            return False


def api_healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


class Monitor:
    """The health subsystem's keys in etcd, read as the readiness checks need them."""

    def __init__(self, endpoint: str, etcd_cfg: dict):
        self.endpoint = endpoint
        self.status_path = etcd_cfg["status-path"]
        self.report_path = etcd_cfg["report-path"]
        self.heart_path = etcd_cfg["heart-path"]
        self.lock_path = etcd_cfg["lock-path"]

    def _read(self, prefix: str) -> dict[str, Entry]:
        return tails(get_prefix(self.endpoint, prefix), prefix)

    def hearts(self) -> set[str]:
        return set(self._read(self.heart_path))

    def candidates(self) -> list[str]:
        """Scheduler candidates, the leader first (the oldest lock key leads)."""
        locks = self._read(self.lock_path)
        return sorted(locks, key=lambda name: locks[name].create_revision)

    def owners(self) -> dict[str, str | None]:
        """{monitored address: the live scanner probing it, or None}."""
        live = self.hearts()
        reports = self._read(self.report_path)
        out = {}
        for ip in self._read(self.status_path):
            owner = reports[ip].json().get("hostname") if ip in reports else None
            out[ip] = owner if owner in live else None
        return out

    def status(self, ip: str) -> dict:
        entry = self._read(self.status_path + ip).get("")
        return entry.json() if entry else {}
