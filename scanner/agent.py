"""The scanner agent: heartbeat, assignment watch, one probe loop per address, status writes.

Everything etcd-facing is here; what a probe result means lives in probes.py (one check) and
damping.py (when a status flips), the value formats in status.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
from collections.abc import Iterable
from dataclasses import dataclass

import aetcd

from skydns import notify
from skydns import txn as etcd
from skydns.checks import HttpCheck
from skydns.flips import DOWN, Flip, dump, push_history, render_flip
from skydns.health import report_owner
from skydns.keys import parse_ip
from skydns.lease import KeptLease
from skydns.logsetup import kv
from skydns.monitor import Warner, iso_time
from skydns.store import KV, Mirror, describe_error, make_client

from .confirm import ABORTED, ALONE, CONFIRMED, DISAGREED, probe_budget
from .confirmer import Confirmer
from .damping import Damper
from .isolation import ENTER, LEAVE, Isolation
from .probes import Prober, detect_icmp_mode, icmp_unavailable_reason
from .status import StatusValue, read_status, scanner_flip

log = logging.getLogger("skydns.scanner")

WRITE_ATTEMPTS = 3  # a write that keeps losing races to other writers waits for the next round


@dataclass(eq=False, slots=True)
class Target:
    """One address this scanner probes."""

    ip: str  # canonical: the key of Agent.targets and Agent.statuses
    address: str  # what the probes connect to: as the status key writes it (with a zone)
    damper: Damper
    task: asyncio.Task | None = None
    reason: str | None = None  # why the latest failed check failed (written with a DOWN)
    last_ok: bool | None = None  # the latest check's result (None: none yet, or could not run)


class Agent:
    """A scanner. run(stop) until stop is set; SIGTERM handling is the caller's.

    Counters (plain attributes, exported as metrics later): checks and probes (in .prober),
    failures (checks that found an address unreachable), assigned_ips, status_writes,
    write_conflicts, write_errors, overruns (probe rounds that started late), unconfirmed_downs
    (DOWNs written with nobody to confirm them), isolations (times it declared itself
    isolated); the confirmations' own in .confirmer.
    """

    def __init__(self, cfg: dict):
        general, etcd_section = cfg["General"], cfg["Etcd"]
        self.cfg = cfg
        self.hostname: str = general["hostname"]
        self.etcd_section = etcd_section
        self.status_path: str = etcd_section["status-path"]
        self.report_path: str = etcd_section["report-path"]
        self.history_path: str = etcd_section["history-path"]
        self.heart_key: str = etcd_section["heart-path"] + self.hostname
        self.prober = Prober(tcp_timeout=1.0, icmp_mode=None,
                             max_concurrency=cfg["Check"]["max-concurrency"])
        self.lease = KeptLease(etcd_section, ttl=general["agent-downtime"],
                               interval=general["heartbeat-interval"], name="heartbeat",
                               on_granted=self._register)
        self.confirmer = Confirmer(self.hostname, etcd_section, self.prober, self.lease,
                                   need=1, timeout=self._confirm_timeout)
        # threshold and window set by _apply_check. Left after two looks in a row (a second
        # apart at most) that most held addresses answer: the latest results are one check
        # each, but of many addresses at once. So isolation ends within check-interval + 2 s
        # of the network coming back.
        self.isolation = Isolation(0.5, window=1.0, leave_after=2)
        # While isolated: the addresses it held when it became so, still probed (not
        # written) to see when its network is back although the scheduler moved them.
        self.held: set[str] = set()
        self._heart_lock = asyncio.Lock()
        self._since = iso_time()
        self._published: bool | None = None  # the isolation state etcd has, as far as we know
        self._apply_check(cfg)

        self.statuses: dict[str, KV] = {}  # every monitored ip -> its status key
        # statuses[ip] read once when it arrived, with the KV it was read from (a value is
        # looked at every round of every address: parsing it each time would cost the loop).
        self._read: dict[str, tuple[KV, StatusValue]] = {}
        # ips the scheduler gave to this scanner -> the report keys that say so (two spellings
        # of one address are one address; deleting one of them must not drop the other).
        self.assigned: dict[str, set[str]] = {}
        self.targets: dict[str, Target] = {}  # assigned and monitored: being probed
        self.status_mirror = Mirror(etcd_section, self.status_path, self._on_status_reset,
                                    self._on_status_events, name="scanner-status")
        self.report_mirror = Mirror(etcd_section, self.report_path, self._on_report_reset,
                                    self._on_report_events, name="scanner-report")
        self._client: aetcd.Client | None = None
        self._tasks: list[asyncio.Task] = []
        self._ready_task: asyncio.Task | None = None
        self._stopping = False
        self._warn = Warner(log)

        self.status_writes = 0
        self.write_conflicts = 0
        self.write_errors = 0
        self.overruns = 0
        self.unconfirmed_downs = 0
        self.isolations = 0

    def _apply_check(self, cfg: dict) -> None:
        """Take [Check] and enable-check: at start, and again on a reload."""
        check = cfg["Check"]
        self.enabled: bool = cfg["General"]["enable-check"]
        self.interval: float = check["check-interval"]
        self.default_ports: tuple[int, ...] = tuple(check["scann-ports"])
        self.rise: int = check["rise"]
        self.fall: int = check["fall"]
        icmp_mode = None
        if check["enable-icmp"]:
            icmp_mode = detect_icmp_mode()
            if icmp_mode is None:
                log.warning("ICMP probes disabled, probing with TCP only: "
                            + icmp_unavailable_reason())
        p = self.prober
        p.tcp_timeout, p.icmp_mode = check["check-timeout"], icmp_mode
        p.ping_count, p.ping_timeout = check["ping-count"], check["ping-timeout"]
        if p.max_concurrency != check["max-concurrency"]:
            # Probes in flight finish on the old semaphore; new ones wait on this one.
            p.max_concurrency = check["max-concurrency"]
            p.slots = asyncio.Semaphore(p.max_concurrency)
        # After the prober's settings: the confirmation timeout is worked out from them.
        self.confirm: int = check["confirm"]
        self.confirm_wait: float = check["confirm-timeout"]  # 0: from the probes (below)
        self.confirmer.need = max(1, self.confirm)
        # enable-check = false probes nothing, for others neither: they time out and ask
        # the next scanner.
        self.confirmer.enabled = self.enabled
        self.isolation.threshold = check["isolation-threshold"]
        # Disagreements count while they are this recent: a few fall sequences and the
        # confirmation they led to.
        self.isolation.window = 2 * self.fall * self.interval + self._confirm_timeout(
            self.default_ports, ())

    def reconfigure(self, cfg: dict) -> list[str]:
        """Apply a reloaded config (SIGHUP): [Check] and enable-check take effect at once.
        Returns the settings that differ from the running ones and need a restart
        ([Log] is the caller's)."""
        needs_restart = [f"[{section}] {key}" for section in ("General", "Etcd")
                         for key, value in cfg[section].items()
                         if key != "enable-check" and self.cfg[section].get(key) != value]
        self._apply_check(cfg)
        for target in self.targets.values():
            target.damper.rise, target.damper.fall = self.rise, self.fall
        self._reconcile()
        log.info("config reloaded", extra=kv(
            check_interval=self.interval, rise=self.rise, fall=self.fall,
            icmp=self.prober.icmp_mode or "off", enable_check=self.enabled,
            needs_restart=", ".join(needs_restart) or "nothing"))
        return needs_restart

    # -- counters ----------------------------------------------------------------------------

    @property
    def assigned_ips(self) -> int:
        return len(self.targets)

    @property
    def isolated(self) -> bool:
        return self.isolation.isolated

    def _confirm_timeout(self, ports, checks) -> float:
        """Seconds to wait for one confirmer: confirm-timeout, else its slowest probe and a
        second for etcd and its probe queue."""
        if self.confirm_wait:
            return self.confirm_wait
        p = self.prober
        icmp = p.ping_count * p.ping_timeout if p.icmp_mode else 0.0
        return probe_budget(ports, checks, p.tcp_timeout, icmp) + 1.0

    @property
    def failures(self) -> int:
        return self.prober.unreachable

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        ports = ",".join(str(p) for p in self.default_ports) or "none"
        log.info("scanner starting", extra=kv(
            hostname=self.hostname, check_interval=self.interval, rise=self.rise,
            fall=self.fall, icmp=self.prober.icmp_mode or "off", ports=ports,
            max_concurrency=self.prober.max_concurrency, enable_check=self.enabled,
            confirm=self.confirm, isolation_threshold=self.isolation.threshold))
        if not self.enabled:
            log.info("enable-check = false: registered, but no address is probed")
        elif not self.default_ports and not self.prober.icmp_mode:
            log.warning("no scann-ports and no ICMP: only addresses whose status lists "
                        "ports can be probed")
        self._client = make_client(self.etcd_section)
        self.lease.start()
        self._ready_task = asyncio.create_task(self._announce_ready(), name="ready")
        self._tasks = [asyncio.create_task(self.status_mirror.run(), name="status-mirror"),
                       asyncio.create_task(self.report_mirror.run(), name="report-mirror"),
                       *(asyncio.create_task(m.run(), name=m.name)
                         for m in self.confirmer.mirrors),
                       asyncio.create_task(self._watch_isolation(), name="isolation"),
                       self._ready_task]
        try:
            await stop.wait()
        finally:
            await self.shutdown()

    async def _announce_ready(self) -> None:
        # systemd (Type=notify) starts what depends on us once we are registered and know
        # our assignments, not merely once the process runs.
        await self.lease.granted.wait()
        await self.status_mirror.ready.wait()
        await self.report_mirror.ready.wait()
        for mirror in self.confirmer.mirrors:
            await mirror.ready.wait()
        notify.ready(f"registered as {self.hostname}")

    async def shutdown(self) -> None:
        notify.stopping()
        self._stopping = True  # mirror events still arriving must not start new probe loops
        if self._ready_task is not None:
            self._ready_task.cancel()
        targets = list(self.targets.values())
        self.targets.clear()
        for target in targets:
            target.task.cancel()
        await asyncio.gather(*(t.task for t in targets), return_exceptions=True)
        # The lease first: revoking it deletes the heartbeat, and the scheduler moves this
        # scanner's addresses at once instead of after agent-downtime.
        await self.lease.close(revoke=True)
        await asyncio.gather(self.status_mirror.stop(), self.report_mirror.stop(),
                             *(m.stop() for m in self.confirmer.mirrors),
                             return_exceptions=True)
        for task in self._tasks:
            if task.get_name() == "isolation":
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.confirmer.close()
        if self._client is not None:
            await self._client.close()
        log.info("scanner stopped", extra=kv(hostname=self.hostname))

    def _heart_value(self) -> bytes:
        value = {"hostname": self.hostname, "pid": os.getpid(), "since": self._since,
                 "isolated": self.isolated}
        if self.isolated:
            value["isolation"] = self.isolation.reason
        return json.dumps(value).encode()

    async def _register(self, client: aetcd.Client, lease_id: int) -> None:
        self._since = iso_time()
        async with self._heart_lock:
            put = await asyncio.wait_for(
                client.put(self.heart_key.encode(), self._heart_value(), lease=lease_id,
                           prev_kv=True),
                self.lease.call_timeout * 2)
            self._published = self.isolated
        prev = put.prev_kv
        if prev is not None and prev.lease and prev.lease != lease_id:
            log.warning("heartbeat key was held by another lease: a previous run that has "
                        "not expired yet, or another scanner with the same hostname",
                        extra=kv(key=self.heart_key, other_lease=f"{prev.lease:x}"))
        log.info("heartbeat registered", extra=kv(key=self.heart_key, lease=f"{lease_id:x}",
                                                  ttl=self.lease.ttl))

    async def _publish_heart(self) -> None:
        """Put the heartbeat value again (isolation changed). Serialized, and each put writes
        the state of its own moment, so the last one standing is the current state. Without a
        lease there is nothing to do: the next grant registers the current state."""
        async with self._heart_lock:
            lease_id = self.lease.lease_id
            if not lease_id or self._client is None:
                return
            isolated = self.isolated
            try:
                await asyncio.wait_for(self._client.put(
                    self.heart_key.encode(), self._heart_value(), lease=lease_id),
                    self.lease.call_timeout * 2)
                self._published = isolated
            except Exception as exc:
                self._warn.every("heart", "could not update the heartbeat value",
                                 key=self.heart_key, error=describe_error(exc))

    # -- isolation ---------------------------------------------------------------------------

    async def _watch_isolation(self) -> None:
        while True:
            # O(addresses) per look: once a second is nothing even for 20,000 of them.
            await asyncio.sleep(min(self.interval, 1.0))
            try:
                self._evaluate_isolation()
                if self._published is not None and self._published != self.isolated:
                    self._spawn_heart()  # the last put failed: the scheduler must know
            except Exception:
                log.exception("isolation check failed")

    def _evaluate_isolation(self) -> None:
        results = [target.last_ok for target in self.targets.values()]
        change = self.isolation.evaluate(results, asyncio.get_running_loop().time())
        if change == ENTER:
            self.isolations += 1
            self.held = set(self.targets)
            self.confirmer.isolated = True
            self.confirmer.abort_all()
            log.warning("isolated: not writing DOWN, handing the addresses to other scanners "
                        "until most of them answer again", extra=kv(
                            reason=self.isolation.reason, held=len(self.held)))
            self._spawn_heart()
        elif change == LEAVE:
            held, self.held = self.held, set()
            self.confirmer.isolated = False
            log.warning("isolation over: most held addresses answer again; taking work",
                        extra=kv(held=len(held)))
            for target in self.targets.values():
                item = self.statuses.get(target.ip)
                target.damper.reset(self._read_status(target.ip, item).status
                                    if item is not None else None)
            self._spawn_heart()
            self._reconcile()

    def _spawn_heart(self) -> None:
        task = asyncio.create_task(self._publish_heart(), name="heart-update")
        self._tasks.append(task)
        task.add_done_callback(lambda t: t in self._tasks and self._tasks.remove(t))

    # -- etcd state --------------------------------------------------------------------------

    def _read_status(self, ip: str, item: KV) -> StatusValue:
        """item's value, read once: the reading of the last KV seen for ip is kept."""
        known = self._read.get(ip)
        if known is not None and known[0] is item:
            return known[1]
        value = read_status(item.value)
        self._read[ip] = (item, value)
        return value

    def _forget_status(self, ip: str) -> None:
        self.statuses.pop(ip, None)
        self._read.pop(ip, None)

    def _on_status_reset(self, kvs: list[KV], revision: int) -> None:
        fresh: dict[str, KV] = {}
        for item in kvs:
            ip = self._warn.ip_of(item.key, self.status_path)
            if ip is not None:
                fresh[ip] = item
        # A write of ours that landed after the snapshot's revision is still the truth.
        for ip, mine in self.statuses.items():
            if mine.mod_revision > revision and ip in fresh:
                fresh[ip] = mine
        for ip, item in fresh.items():
            self._note_status(ip, self.statuses.get(ip), item)
        self.statuses = fresh
        self._read = {ip: read for ip, read in self._read.items() if ip in fresh}
        self._reconcile()

    def _on_status_events(self, events: list[tuple[str, KV]], revision: int) -> None:
        appeared_or_gone: set[str] = set()
        for kind, item in events:
            ip = self._warn.ip_of(item.key, self.status_path)
            if ip is None:
                continue
            known = self.statuses.get(ip)
            if known is not None and item.mod_revision <= known.mod_revision:
                continue  # our own write, already applied, or older than it
            if kind == "delete":
                # Another spelling of the address going away leaves the one we follow.
                if known is not None and known.key == item.key:
                    self._forget_status(ip)
                    appeared_or_gone.add(ip)
            else:
                self._note_status(ip, known, item)
                self.statuses[ip] = item
                if known is None:
                    appeared_or_gone.add(ip)
        # Every scanner sees every other scanner's status writes, and those change nothing
        # about what is probed here: only keys appearing or going away do.
        if appeared_or_gone:
            self._reconcile(appeared_or_gone)

    def _note_status(self, ip: str, old: KV | None, new: KV) -> None:
        """A status value changed under us: log bad input, follow other writers' verdicts."""
        before = self._read_status(ip, old).status if old is not None else None
        value = self._read_status(ip, new)
        if value.problems and (old is None or old.value != new.value):
            log.warning("status value has problems", extra=kv(
                key=new.key, problems="; ".join(value.problems)))
        target = self.targets.get(ip)
        if target is None or old is None:
            return
        if value.status != before and value.status is not None:
            # Someone else (an operator, the previous owner during a handover) decided after
            # our last look; start counting from their verdict instead of overwriting it.
            if target.damper.status != value.status:
                log.info("status changed by another writer; following it",
                         extra=kv(ip=ip, status=value.status, ours=target.damper.status))
                target.damper.reset(value.status)

    def _on_report_reset(self, kvs: list[KV], revision: int) -> None:
        self.assigned = {}
        self._apply_reports([("put", item) for item in kvs])
        self._reconcile()

    def _on_report_events(self, events: list[tuple[str, KV]], revision: int) -> None:
        changed = self._apply_reports(events)
        if changed:
            self._reconcile(changed)

    def _apply_reports(self, events: list[tuple[str, KV]]) -> set[str]:
        """Follow report events; the ips that became or stopped being ours."""
        changed: set[str] = set()
        for kind, item in events:
            ip = self._warn.ip_of(item.key, self.report_path)
            if ip is None:
                continue
            owner = report_owner(item.value) if kind == "put" else None
            if kind == "put" and owner is None:
                log.warning("unreadable assignment; ignored", extra=kv(key=item.key))
            keys = self.assigned.get(ip)
            if owner == self.hostname:
                if keys is None:
                    self.assigned[ip] = {item.key}
                    changed.add(ip)
                else:
                    keys.add(item.key)
            elif keys is not None and item.key in keys:
                keys.discard(item.key)
                if not keys:
                    del self.assigned[ip]
                    changed.add(ip)
        return changed

    def _reconcile(self, ips: Iterable[str] | None = None) -> None:
        """Probe exactly the addresses that are both assigned to us and monitored; look at
        `ips` only when nothing else can have changed, at all of them otherwise."""
        if self._stopping:
            return
        if ips is None:
            ips = self.targets.keys() | self.assigned.keys()
        added = 0
        for ip in ips:
            # Isolated, it keeps probing what it held (without writing) to see its network
            # come back, although the scheduler has moved those addresses away.
            wanted = self.enabled and ip in self.statuses and (
                ip in self.assigned or (self.isolated and ip in self.held))
            target = self.targets.get(ip)
            if target is not None and not wanted:
                del self.targets[ip]
                if target.task is not None:
                    target.task.cancel()
            elif target is None and wanted:
                item = self.statuses[ip]
                stored = self._read_status(ip, item).status
                # The key's own spelling keeps an IPv6 zone, which the canonical ip drops.
                address = str(parse_ip(item.key[len(self.status_path):]) or ip)
                target = Target(ip, address, Damper(self.rise, self.fall, stored))
                target.task = asyncio.create_task(self._probe_loop(target), name=f"probe-{ip}")
                self.targets[ip] = target
                added += 1
        if added:
            log.debug("probing new addresses", extra=kv(added=added, total=len(self.targets)))

    # -- probing -----------------------------------------------------------------------------

    def _probes(self, ip: str) -> tuple[tuple[int, ...], tuple[HttpCheck, ...]]:
        """(TCP ports, HTTP checks) of an address. Without ports of its own it gets
        scann-ports, unless it has checks: those say where the service answers."""
        item = self.statuses.get(ip)
        if item is None:
            return self.default_ports, ()
        value = self._read_status(ip, item)
        if value.ports or value.checks:
            return value.ports, value.checks
        return self.default_ports, ()

    async def _probe_loop(self, target: Target) -> None:
        loop = asyncio.get_running_loop()
        # Spread first probes over one interval so thousands of addresses assigned at once
        # do not all hit the concurrency limit (and the network) in the same instant.
        await asyncio.sleep(random.uniform(0, self.interval))
        next_round = loop.time()
        while True:
            try:
                ports, checks = self._probes(target.ip)
                ok, reason = await self.prober.verdict(target.address, ports, checks)
                target.last_ok = ok
                if ok is not None:
                    target.damper.feed(ok)
                if ok is False:
                    target.reason = reason
                took = loop.time()
                await self._sync_status(target)
                if loop.time() - took > self.interval:
                    # A confirmation took its time: the next round comes an interval after
                    # it, not at once (and that is no overrun).
                    next_round = loop.time()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not silently end the probing of this address
                log.exception("probe round failed", extra=kv(ip=target.ip))
            next_round += self.interval
            delay = next_round - loop.time()
            if delay < 0:
                self.overruns += 1
                self._warn.every("overrun", "probe rounds take longer than check-interval; "
                                 "raise max-concurrency or check-interval",
                                 late=round(-delay, 3), targets=len(self.targets))
                next_round = loop.time()
                delay = 0
            await asyncio.sleep(delay)

    def _may_write(self, target: Target) -> bool:
        # Held while isolated but no longer assigned: probed, never written.
        return (self.targets.get(target.ip) is target and not self._stopping
                and (target.ip in self.assigned or not self.isolated))

    async def _sync_status(self, target: Target) -> None:
        """Write the damped status if etcd says otherwise; nothing when they agree. A DOWN
        is first confirmed by other scanners ([Check] confirm), and never written while
        this scanner is isolated."""
        confirmedby: tuple[str, ...] = ()
        confirmed = False
        for _ in range(WRITE_ATTEMPTS):
            desired = target.damper.status
            item = self.statuses.get(target.ip)
            if desired is None or item is None or not self._may_write(target):
                return
            stored = self._read_status(target.ip, item)
            if stored.status == desired:
                return
            if desired == DOWN and self.isolated:
                return
            if desired == DOWN and self.confirm and not confirmed:
                by = await self._confirm_down(target, stored.status)
                if by is None:
                    return
                confirmed, confirmedby = True, by
                continue  # conditions looked at again: time passed
            if not await self._write(target, item, stored.fields, stored.status, desired,
                                     confirmedby):
                return

    async def _confirm_down(self, target: Target, stored: str | None) -> tuple[str, ...] | None:
        """Ask other scanners; the ones that confirmed when the DOWN may be written (none
        when this scanner is alone), None when it may not."""
        ports, checks = self._probes(target.ip)
        outcome = await self.confirmer.confirm(target.ip, target.address, ports, checks)
        now = asyncio.get_running_loop().time()
        if outcome.result == CONFIRMED:
            self.isolation.note_confirmation(True, now)
            return outcome.by
        if outcome.result == ALONE:
            self.unconfirmed_downs += 1
            self._warn.every("alone", "only live scanner: writing DOWN without confirmation "
                             "(run more scanners on other hosts)", ip=target.ip)
            return ()
        if outcome.result == DISAGREED:
            self.isolation.note_confirmation(False, now)
            # The status stays as it is; count failures afresh, so the next request comes
            # after another `fall` of them, not every round.
            if self.targets.get(target.ip) is target:
                target.damper.reset(stored)
            # Isolation is looked at by _watch_isolation within a second, not here: a look
            # reads every address, and disagreements can come by the thousand.
        elif outcome.result != ABORTED:
            self._warn.every("unanswered", "no other scanner answered a confirmation in "
                             "time; DOWN not written, asking again next round", ip=target.ip)
        return None

    async def _write(self, target: Target, item: KV, fields: dict | None, old: str | None,
                     new: str, confirmedby: tuple[str, ...] = ()) -> bool:
        """Write the flip the damper decided; True when it lost a race and should be tried
        again. A DOWN other scanners confirmed says who in `confirmedby`."""
        flip = scanner_flip(new, self.hostname, reason=target.reason, confirmedby=confirmedby)
        return await self.write_flip(target, item, fields, old, flip)

    async def write_flip(self, target: Target, item: KV, fields: dict | None,
                         old: str | None, flip: Flip) -> bool:
        """The one place a flip is written: the status value and its history entry in one
        guarded transaction (skydns/flips.py builds both). True when it lost a race to
        another writer of either key and should be tried again."""
        value, entry = render_flip(fields, old, flip)
        data = dump(value)
        hkey = self.history_path + target.ip
        if fields is None:
            log.warning("replacing unreadable status value", extra=kv(key=item.key))
        try:
            seen = await etcd.txn(self._client, [], [etcd.get_op(hkey)])
            history = seen.found[0] if seen.found else None
            result = await etcd.txn(
                self._client,
                [etcd.mod_is(item.key, item.mod_revision),
                 etcd.mod_is(hkey, history.mod_revision if history else 0)],
                [etcd.put_op(item.key, data, item.lease),
                 etcd.put_op(hkey, push_history(history.value if history else None, entry))],
                [etcd.get_op(item.key)])
        except Exception as exc:
            self.write_errors += 1
            self._warn.every("write", "status write failed; retrying next round",
                             key=item.key, error=describe_error(exc))
            return False
        if result.succeeded:
            self._remember(target.ip, KV(item.key, data, result.revision, item.lease))
            self.status_writes += 1
            log.info("status changed", extra=kv(
                ip=target.ip, status=flip.status, was=old or "unknown", reason=entry["reason"],
                confirmedby=",".join(flip.extra.get("confirmedby") or ()) or "-"))
            return False
        # Someone wrote after our last look (or deleted the key): never overwrite that blindly.
        self.write_conflicts += 1
        fresh = result.found[0] if result.found else None
        if fresh is None:
            known = self.statuses.get(target.ip)
            if known is not None and known.mod_revision < result.revision:
                # Deleted: no longer monitored. (A newer put from the watch would win.)
                self._forget_status(target.ip)
                self._reconcile([target.ip])
            return False
        if fresh.mod_revision == item.mod_revision:
            return True  # only the history moved (another writer's entry): read it again
        fresh_kv = KV(fresh.key, fresh.value, fresh.mod_revision, fresh.lease)
        self._note_status(target.ip, item, fresh_kv)
        self._remember(target.ip, fresh_kv)
        # Only other fields changed (ports, say): our verdict stands, written on top of theirs.
        return True

    def _remember(self, ip: str, item: KV) -> None:
        # The watch may have delivered this write, or a newer one, while we awaited etcd;
        # a key it deleted meanwhile stays deleted (and this probe loop is being cancelled).
        known = self.statuses.get(ip)
        if known is not None and known.mod_revision < item.mod_revision:
            self.statuses[ip] = item
