"""The scheduler's loop: mirror heartbeats, statuses and assignments; while leading, keep
report/<ip> equal to assign(monitored ips, live scanners, current assignment).

Mirrors run on standbys too, so a new leader starts from a warm copy and acts at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

import aetcd

from skydns import notify
from skydns import txn as etcd
from skydns.health import heart_isolation, report_owner, scanner_warnings
from skydns.logsetup import kv
from skydns.monitor import Warner, iso_time
from skydns.store import KV, Mirror, describe_error, make_client

from .assign import assign, diff
from .leader import Elector, wait_first

log = logging.getLogger("skydns.scheduler")

TXN_OPS = 128  # etcd's default --max-txn-ops
SETTLE = 0.05  # seconds to let a burst of changes (a scanner's death, a bulk load) arrive


class NotLeader(Exception):
    """A guarded write failed: this scheduler no longer holds the lock."""


class Assigner:
    """What the leader knows and writes. Counters: passes, assignments (report writes), moves
    (writes that take an ip from one scanner to another), removals, write_errors (passes
    that failed on an etcd error and were retried), assigned_ips."""

    def __init__(self, etcd_section: dict, interval: float):
        self.etcd_section = etcd_section
        self.interval = interval
        self.status_path: str = etcd_section["status-path"]
        self.report_path: str = etcd_section["report-path"]
        self.heart_path: str = etcd_section["heart-path"]

        self.scanners: set[str] = set()  # live and not isolated: the ones that get work
        self.isolated: dict[str, str] = {}  # live but isolated -> why (they get none)
        self.monitored: set[str] = set()
        # ip -> (owner, mod revision); owner "" when the value is unreadable.
        self.reports: dict[str, tuple[str, int]] = {}
        # ip -> revision of our delete, so an older put still in the watch pipe is not revived.
        self._deleted: dict[str, int] = {}
        # report keys spelling an address other than canonically (2001:DB8::1): the canonical
        # key is the one written, these are deleted so that a scanner sees one owner per address.
        self._stray: set[str] = set()
        self.changed = asyncio.Event()
        self.mirrors = [
            Mirror(etcd_section, self.heart_path, self._heart_reset, self._heart_events,
                   name="scheduler-heart"),
            Mirror(etcd_section, self.status_path, self._status_reset, self._status_events,
                   name="scheduler-status"),
            Mirror(etcd_section, self.report_path, self._report_reset, self._report_events,
                   name="scheduler-report"),
        ]
        self._client: aetcd.Client | None = None
        self._warn = Warner(log)

        self.passes = 0
        self.assignments = 0
        self.moves = 0
        self.removals = 0
        self.write_errors = 0

    @property
    def assigned_ips(self) -> int:
        return sum(1 for ip in self.monitored if self.reports.get(ip, ("", 0))[0])

    # -- mirrors -----------------------------------------------------------------------------

    def _heart_reset(self, kvs: list[KV], revision: int) -> None:
        self.scanners = set()
        self.isolated = {}
        self._heart_events([("put", item) for item in kvs], revision)

    def _heart_events(self, events: list[tuple[str, KV]], revision: int) -> None:
        before, isolated_before = set(self.scanners), set(self.isolated)
        for kind, item in events:
            name = item.key[len(self.heart_path):]
            if not name or "/" in name:
                continue
            why = heart_isolation(item.value) if kind == "put" else None
            if kind == "put" and why is None:
                self.scanners.add(name)
                self.isolated.pop(name, None)
            elif kind == "put":
                # Live, but it cannot see the service network: its addresses go to the
                # others until it says it is back (the same sticky rules give them back).
                self.scanners.discard(name)
                self.isolated[name] = why
            else:
                self.scanners.discard(name)
                self.isolated.pop(name, None)
        for name in sorted(self.isolated.keys() - isolated_before):
            log.warning("scanner isolated; moving its addresses",
                        extra=kv(scanner=name, isolation=self.isolated[name]))
        for name in sorted(isolated_before & self.scanners):
            log.info("scanner back from isolation; giving it work", extra=kv(scanner=name))
        if self.scanners != before:
            log.info("scanners changed", extra=kv(
                joined=",".join(sorted(self.scanners - before)),
                left=",".join(sorted(before - self.scanners)),
                live=len(self.scanners), isolated=len(self.isolated)))
            for warning in scanner_warnings(
                    {**dict.fromkeys(self.scanners), **self.isolated}):
                log.warning(warning)
            self.changed.set()

    def _status_reset(self, kvs: list[KV], revision: int) -> None:
        self.monitored = set()
        self._status_events([("put", item) for item in kvs], revision)
        self.changed.set()

    def _status_events(self, events: list[tuple[str, KV]], revision: int) -> None:
        for kind, item in events:
            ip = self._warn.ip_of(item.key, self.status_path)
            if ip is None:
                continue
            # Status flips are most of this traffic and change nothing here; only keys
            # appearing and disappearing change the set of monitored addresses.
            if kind == "put" and ip not in self.monitored:
                self.monitored.add(ip)
                self.changed.set()
            elif kind == "delete" and ip in self.monitored:
                self.monitored.discard(ip)
                self.changed.set()

    def _report_reset(self, kvs: list[KV], revision: int) -> None:
        self.reports = {}
        self._deleted = {}
        self._stray = set()
        self._report_events([("put", item) for item in kvs], revision)
        self.changed.set()

    def _report_events(self, events: list[tuple[str, KV]], revision: int) -> None:
        for kind, item in events:
            ip = self._warn.ip_of(item.key, self.report_path)
            if ip is None:
                continue
            if item.key != self.report_path + ip:
                if kind == "put":
                    self._stray.add(item.key)
                    self.changed.set()
                else:
                    self._stray.discard(item.key)
                continue
            known = self.reports.get(ip)
            newest = max(known[1] if known else 0, self._deleted.get(ip, 0))
            if item.mod_revision <= newest:
                continue  # our own write, already applied, or older than it
            self._deleted.pop(ip, None)
            if kind == "delete":
                self.reports.pop(ip, None)
            else:
                owner = report_owner(item.value)
                if owner is None:
                    log.warning("unreadable assignment; it will be rewritten",
                                extra=kv(key=item.key))
                self.reports[ip] = (owner or "", item.mod_revision)
            self.changed.set()
        # Deletes the watch has passed can no longer be overtaken by older puts.
        self._deleted = {ip: rev for ip, rev in self._deleted.items() if rev > revision}

    # -- leading -----------------------------------------------------------------------------

    async def lead(self, guard) -> None:
        """Keep assignments right until a guarded write fails (raises NotLeader)."""
        await asyncio.gather(*(m.ready.wait() for m in self.mirrors))
        if self._client is None:
            self._client = make_client(self.etcd_section)
        failures = 0
        while True:
            self.changed.clear()
            try:
                await self.run_pass(guard)
                failures = 0
            except NotLeader:
                raise
            except Exception as exc:
                failures += 1
                self.write_errors += 1
                self._warn.every("pass", "assignment pass failed; retrying",
                                 error=describe_error(exc), attempt=failures)
            delay = self.interval if not failures else min(self.interval, 0.1 * 2 ** failures)
            try:
                await asyncio.wait_for(self.changed.wait(), delay)
                await asyncio.sleep(SETTLE)
            except TimeoutError:
                pass

    async def run_pass(self, guard) -> None:
        self.passes += 1
        current = {ip: owner for ip, (owner, _) in self.reports.items()}
        target = assign(self.monitored, self.scanners, current)
        writes, deletes = diff(current, target)
        if self.monitored and not self.scanners:
            self._warn.every("no-scanner", "no live scanner: addresses are not probed",
                             monitored=len(self.monitored))
        stray = sorted(self._stray)
        if not writes and not deletes and not stray:
            return
        moves = sum(1 for ip in writes if current.get(ip))
        now = iso_time()
        # (ip, op, new owner or None to delete); ip None: a stray key, deleted.
        ops = [(ip, etcd.put_op(self.report_path + ip, json.dumps(
                    {"hostname": owner, "updatetime": now}).encode()), owner)
               for ip, owner in sorted(writes.items())]
        ops += [(ip, etcd.delete_op(self.report_path + ip), None) for ip in deletes]
        ops += [(None, etcd.delete_op(key), key) for key in stray]
        for start in range(0, len(ops), TXN_OPS):
            chunk = ops[start:start + TXN_OPS]
            result = await etcd.txn(self._client, guard, [op for _, op, _ in chunk])
            if not result.succeeded:
                raise NotLeader("lock key changed; a guarded write was refused")
            for ip, _, owner in chunk:
                if ip is None:
                    self._stray.discard(owner)
                elif owner is None:
                    self.reports.pop(ip, None)
                    self._deleted[ip] = result.revision
                    self.removals += 1
                else:
                    # From the snapshot: our own write's watch event may already be applied.
                    if current.get(ip):
                        self.moves += 1
                    self.reports[ip] = (owner, result.revision)
                    self.assignments += 1
        log.info("assignments updated", extra=kv(
            written=len(writes), moved=moves, removed=len(deletes), stray_removed=len(stray),
            ips=len(self.monitored),
            scanners=len(self.scanners)))

    async def close(self) -> None:
        await asyncio.gather(*(m.stop() for m in self.mirrors), return_exceptions=True)
        if self._client is not None:
            await self._client.close()
            self._client = None


class Scheduler:
    """One scheduler process: a candidate in the election, the assigner while it leads."""

    def __init__(self, cfg: dict):
        general, etcd_section = cfg["General"], cfg["Etcd"]
        self.cfg = cfg
        self.hostname: str = general["hostname"]
        self.elector = Elector(etcd_section, self.hostname, general["agent-downtime"])
        self.assigner = Assigner(etcd_section, general["schedule-interval"])

    @property
    def is_leader(self) -> bool:
        return self.elector.is_leader

    def reconfigure(self, cfg: dict) -> list[str]:
        """Apply a reloaded config (SIGHUP): schedule-interval at once. Returns the settings
        that differ from the running ones and need a restart ([Log] is the caller's)."""
        needs_restart = [f"[{section}] {key}" for section in ("General", "Etcd")
                         for key, value in cfg[section].items()
                         if key != "schedule-interval" and self.cfg[section].get(key) != value]
        self.assigner.interval = cfg["General"]["schedule-interval"]
        self.assigner.changed.set()
        log.info("config reloaded", extra=kv(schedule_interval=self.assigner.interval,
                                             needs_restart=", ".join(needs_restart) or "nothing"))
        return needs_restart

    async def run(self, stop: asyncio.Event) -> None:
        log.info("scheduler starting", extra=kv(
            hostname=self.hostname, lock=self.elector.key, ttl=self.elector.lease.ttl,
            schedule_interval=self.assigner.interval))
        mirror_tasks = [asyncio.create_task(m.run(), name=m.name) for m in self.assigner.mirrors]
        self.elector.lease.start()
        mirror_tasks.append(asyncio.create_task(self._announce_ready(), name="ready"))
        pause = 0.0
        try:
            while not stop.is_set():
                first, _ = await wait_first(stop.wait(), self.elector.campaign())
                if first == 0:
                    break
                began = time.monotonic()
                await self._lead(stop)
                # Terms that end at once (a persistent error) back off instead of spinning.
                pause = 0.0 if time.monotonic() - began > 10 else min(max(pause * 2, 0.2), 5.0)
                if not stop.is_set():
                    await wait_first(stop.wait(), asyncio.sleep(pause))
        finally:
            notify.stopping()
            mirror_tasks[-1].cancel()
            # Resign first: the standby waiting on our key takes over at once.
            await self.elector.close(resign=True)
            await self.assigner.close()
            await asyncio.gather(*mirror_tasks, return_exceptions=True)
            log.info("scheduler stopped", extra=kv(hostname=self.hostname))

    async def _announce_ready(self) -> None:
        # systemd (Type=notify): ready once we are a candidate with a warm copy of the state.
        await self.elector.lease.granted.wait()
        await asyncio.gather(*(m.ready.wait() for m in self.assigner.mirrors))
        notify.ready("leader" if self.is_leader else "standby")

    async def _lead(self, stop: asyncio.Event) -> None:
        log.info("became leader", extra=kv(key=self.elector.key,
                                           revision=self.elector.create_revision,
                                           term=self.elector.terms))
        notify.notify("STATUS=leader")
        reason = "stopping"
        try:
            first, result = await wait_first(stop.wait(), self.elector.watch_deposed(),
                                             self.assigner.lead(self.elector.guard()))
            if first == 1:
                reason = result
        except NotLeader as exc:
            reason = str(exc)
        except Exception as exc:  # a bug must cost the leadership, not the process
            log.exception("leading failed")
            reason = describe_error(exc)
        finally:
            self.elector.is_leader = False
        if not stop.is_set():
            log.warning("lost leadership; campaigning again", extra=kv(reason=reason))
            notify.notify("STATUS=standby")
