"""Supervisor of worker processes that share the DNS port through SO_REUSEPORT.

Each worker is a full `skydns --worker` process with its own etcd watch and cache; the kernel
spreads queries over them. The supervisor restarts a worker that dies, drains all on SIGTERM,
and on SIGHUP re-reads the config and replaces the workers one by one: the new worker binds
beside the old one before the old one stops, so the port never goes unanswered.

One server per address: the supervisor claims dns-addr first (skydns.holder: an abstract
unix socket named after it, gone with the process however it dies), and a second server on
the same address exits 1 naming the first's pid instead of joining the port. Workers die
with their supervisor (PR_SET_PDEATHSIG), so a killed server leaves nothing holding the port.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from skydns import notify
from skydns.config import ConfigError, load_config
from skydns.holder import AddressBusy, AddressLock, check_free

from .stats import STATS_DIR_ENV, StatsBook, serve

log = logging.getLogger("skydns.workers")

EXIT_BIND = 3  # a worker could not bind the port: restarting it would not help
READY_FD_ENV = "SKYDNS_READY_FD"
SUPERVISOR_ENV = "SKYDNS_SUPERVISOR_PID"
FREE_WAIT = 3.0  # how long a new server waits for a killed one's workers to let go of the port
_RESTART_BACKOFF_MAX = 5.0
_STOP_GRACE = 10.0
STARTUP_READY = 60.0  # how long start-up waits for workers before reporting ready anyway


def worker_count(cfg: dict) -> int:
    return cfg["Dns"]["workers"] or os.cpu_count() or 1


class Supervisor:
    def __init__(self, config_path: str | None, cfg: dict):
        self.config_path = config_path
        self.cfg = cfg
        self.workers: dict[int, subprocess.Popen] = {}  # slot -> process
        self.started: dict[int, float] = {}
        self.backoff: dict[int, float] = {}
        self.stopping = False
        self.reload_requested = False
        self.exit_code = 0
        self.stats_dir = Path(tempfile.mkdtemp(prefix="skydns-stats-"))
        self.stats = StatsBook(self.stats_dir)
        self.stats_server = None
        self.lock: AddressLock | None = None

    def _spawn(self, slot: int) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "dnsserver", "--worker"]
        if self.config_path:
            cmd += ["--config-file", self.config_path]
        # The worker writes one byte to this pipe once it has loaded etcd and bound the port.
        ready_r, ready_w = os.pipe()
        env = {
            **os.environ,
            "SKYDNS_WORKER": str(slot),
            READY_FD_ENV: str(ready_w),
            SUPERVISOR_ENV: str(os.getpid()),
            STATS_DIR_ENV: str(self.stats_dir),
        }
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, pass_fds=(ready_w,))
        os.close(ready_w)
        proc.ready_fd = ready_r
        self.started[slot] = time.monotonic()
        log.info("worker started", extra={"kv": {"worker": slot, "pid": proc.pid}})
        return proc

    def wait_ready(self, procs, timeout: float) -> bool:
        """Wait until every process in `procs` reported ready (or died, or time ran out)."""
        waiting = {p.ready_fd: p for p in procs if p.ready_fd is not None}
        all_ready = True
        deadline = time.monotonic() + timeout
        while waiting and time.monotonic() < deadline and not self.stopping:
            readable, _, _ = select.select(list(waiting), [], [], 0.1)
            for fd in readable:
                ok = os.read(fd, 1) == b"R"  # EOF: the worker died before it was ready
                os.close(fd)
                proc = waiting.pop(fd)
                proc.ready_fd = None
                if not ok:
                    all_ready = False
                    # The pipe closes as the worker exits: wait for its status, so the caller's
                    # reap sees why (EXIT_BIND) instead of a process not yet gone.
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(timeout=5)
        return all_ready and not waiting

    def _on_term(self, signum, frame) -> None:
        self.stopping = True

    def _on_hup(self, signum, frame) -> None:
        self.reload_requested = True

    def run(self) -> int:
        try:
            try:
                self.lock = claim(self.cfg)
            except AddressBusy as err:
                print(f"skydns: {err}", file=sys.stderr)  # one line: address and holder
                return 1
            return self._run()
        finally:
            shutil.rmtree(self.stats_dir, ignore_errors=True)
            if self.lock is not None:
                self.lock.close()

    def _start_stats(self) -> None:
        addr = self.cfg["Stats"]["statsServer"]
        if not addr:
            return
        try:
            self.stats_server = serve(self.stats, addr, self.cfg["Stats"]["statsServerAuthToken"])
        except OSError as err:
            log.error(
                "stats server cannot listen",
                extra={"kv": {"addr": f"{addr[0]}:{addr[1]}", "error": str(err)}},
            )
            return
        log.info("stats server", extra={"kv": {"addr": f"{addr[0]}:{addr[1]}"}})

    def _run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        signal.signal(signal.SIGHUP, self._on_hup)
        self._start_stats()
        for slot in range(worker_count(self.cfg)):
            self.workers[slot] = self._spawn(slot)
        ready = self.wait_ready(list(self.workers.values()), timeout=STARTUP_READY)
        if not ready:
            self._reap()  # a worker that could not bind the port stops us: no READY for that
        if self.stopping:
            pass
        elif ready:
            host, port = self.cfg["Dns"]["dns-addr"]
            notify.ready(f"serving {self.cfg['Dns']['dns-domain']} on {host}:{port}")
        else:
            log.warning("workers not ready in time; telling systemd we are up anyway")
            notify.ready("started, workers still loading")
        while not self.stopping:
            self._drain_ready()
            self.lock.drain()
            if self.reload_requested:
                self.reload_requested = False
                self._reload()
            self._reap()
            time.sleep(0.05)
        self._stop_all()
        return self.exit_code

    def _drain_ready(self) -> None:
        for proc in self.workers.values():
            if proc.ready_fd is not None and select.select([proc.ready_fd], [], [], 0)[0]:
                os.read(proc.ready_fd, 1)
                os.close(proc.ready_fd)
                proc.ready_fd = None

    def _reap(self) -> None:
        for slot, proc in list(self.workers.items()):
            code = proc.poll()
            if code is None:
                continue
            if proc.ready_fd is not None:
                os.close(proc.ready_fd)
                proc.ready_fd = None
            if code == EXIT_BIND:
                log.error("worker cannot bind the port; stopping", extra={"kv": {"worker": slot}})
                self.exit_code = 1
                self.stopping = True
                return
            self.stats.retire(proc.pid)
            lived = time.monotonic() - self.started[slot]
            delay = (
                0.0 if lived > 10 else min(self.backoff.get(slot, 0.05) * 2, _RESTART_BACKOFF_MAX)
            )
            self.backoff[slot] = delay
            log.warning(
                "worker died, restarting",
                extra={"kv": {"worker": slot, "code": code, "delay": round(delay, 2)}},
            )
            time.sleep(delay)
            if not self.stopping:
                self.workers[slot] = self._spawn(slot)

    def _reload(self) -> None:
        try:
            cfg = load_config(self.config_path, "dns")
        except ConfigError as err:
            log.error(
                "reload refused, keeping the running config", extra={"kv": {"error": str(err)}}
            )
            return
        old_lock = None
        if cfg["Dns"]["dns-addr"] != self.cfg["Dns"]["dns-addr"]:
            try:
                new_lock = claim(cfg)
            except AddressBusy as err:
                log.error("reload refused, keeping the running config",
                          extra={"kv": {"error": str(err)}})
                return
            old_lock, self.lock = self.lock, new_lock
            log.warning("dns-addr changed: the new address applies to the new workers")
        self.cfg = cfg
        log.info("reloading config", extra={"kv": {"workers": worker_count(cfg)}})
        notify.notify("RELOADING=1")
        old = self.workers
        self.workers = {slot: self._spawn(slot) for slot in range(worker_count(cfg))}
        # Old workers keep answering until the new ones have loaded etcd and bound the port.
        if not self.wait_ready(self.workers.values(), timeout=30.0):
            log.warning("new workers slow to become ready; replacing the old ones anyway")
        _terminate(list(old.values()))
        for proc in old.values():
            self.stats.retire(proc.pid)
        if old_lock is not None:
            old_lock.close()
        notify.ready("serving (reloaded)")

    def _stop_all(self) -> None:
        notify.stopping()
        _terminate(list(self.workers.values()))
        log.info("stopped")


def claim(cfg: dict) -> AddressLock:
    """Claim dns-addr for this server: AddressBusy (its message names the address and the
    holder) if another skydns serves it, or anything else is bound there."""
    host, port = cfg["Dns"]["dns-addr"]
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        lock = AddressLock(f"dns:{where}").claim()
    except AddressBusy as err:
        raise AddressBusy(f"{where} is already served by {err}") from None
    try:
        check_free(host, port, wait=FREE_WAIT)
    except AddressBusy as err:
        lock.close()
        raise AddressBusy(f"{where} is in use by {err}") from None
    except OSError:
        pass  # no permission, no such address: the workers' bind says so, as before
    return lock


def die_with_supervisor() -> None:
    """In a worker: SIGTERM when the supervisor dies, even by SIGKILL, so that no orphan keeps
    the port from a restarted server (Linux prctl; elsewhere nothing happens)."""
    parent = os.environ.get(SUPERVISOR_ENV)
    if parent is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != int(parent):  # it died before the prctl
        os.kill(os.getpid(), signal.SIGTERM)


def _terminate(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if getattr(proc, "ready_fd", None) is not None:
            os.close(proc.ready_fd)
            proc.ready_fd = None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + _STOP_GRACE
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
