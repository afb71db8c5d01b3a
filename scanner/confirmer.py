"""The etcd side of confirmations (the rules are in confirm.py): a scanner asks other live
scanners to confirm a failure, and answers when it is asked.

Two watches: heart/ (who is live, who says it is isolated: an isolated scanner is never
asked) and confirm/ (requests naming this scanner, verdicts on this scanner's requests).
Neither writes anything while every address is UP.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import aetcd

from skydns import txn as etcd
from skydns.checks import HttpCheck
from skydns.health import heart_isolation
from skydns.lease import KeptLease
from skydns.logsetup import kv
from skydns.monitor import Warner
from skydns.store import KV, Mirror, describe_error, make_client

from .confirm import (
    ABORTED,
    ALONE,
    CONFIRMED,
    DISAGREED,
    UNANSWERED,
    Confirmation,
    Request,
    Verdict,
    candidates,
    demote,
    parse_key,
    read_request,
    read_verdict,
    render_request,
    render_verdict,
    request_key,
    verdict_key,
)
from .probes import Prober

log = logging.getLogger("skydns.scanner.confirm")

OUTCOMES = (CONFIRMED, DISAGREED, UNANSWERED, ALONE, ABORTED)
SILENT_FOR = 60.0  # seconds a scanner that did not answer is asked only after the others


@dataclass(frozen=True, slots=True)
class Outcome:
    result: str  # one of OUTCOMES
    by: tuple[str, ...] = ()  # CONFIRMED: who confirmed; DISAGREED: who reached it
    reason: str | None = None  # DISAGREED: nothing; CONFIRMED: the first confirmer's reason


@dataclass(eq=False, slots=True)
class _Asking:
    """One request of ours in flight."""

    rid: str
    state: Confirmation
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class Confirmer:
    """Both sides of the protocol for one scanner.

    Counters: asked (confirmers asked, retries included), timeouts (confirmers that did not
    answer in time), outcomes[result] (our requests by how they ended), answered[ok] (our
    verdicts on others' requests, True = reached it), answer_errors.
    """

    def __init__(self, hostname: str, etcd_section: dict, prober: Prober, lease: KeptLease,
                 need: int, timeout: Callable[[Sequence[int], Sequence[HttpCheck]], float]):
        self.hostname = hostname
        self.etcd_section = etcd_section
        self.prefix: str = etcd_section["confirm-path"]
        self.heart_path: str = etcd_section["heart-path"]
        self.prober = prober
        self.lease = lease
        self.need = need
        self.timeout = timeout  # seconds to wait for one confirmer, for these probes
        self.isolated = False  # set by the agent: an isolated scanner answers nobody
        self.enabled = True  # [General] enable-check: false answers nobody either
        # live scanner -> why it says it is isolated (None: it is not)
        self.live: dict[str, str | None] = {}
        self._asking: dict[str, _Asking] = {}  # ip -> our request about it
        # request key -> (create revision, id, task) of the verdict we are working on
        self._answering: dict[str, tuple[int, str, asyncio.Task]] = {}
        self._background: set[asyncio.Task] = set()
        self._silent: dict[str, float] = {}  # scanner -> until when it is asked last
        self._deleting: dict[str, asyncio.Task] = {}  # ip -> delete of our last request
        self._client: aetcd.Client | None = None
        self._warn = Warner(log)
        self.heart_mirror = Mirror(etcd_section, self.heart_path, self._on_heart_reset,
                                   self._on_heart_events, name="scanner-heart")
        self.confirm_mirror = Mirror(etcd_section, self.prefix, self._on_confirm_reset,
                                     self._on_confirm_events, name="scanner-confirm")

        self.asked = 0
        self.timeouts = 0
        self.outcomes = dict.fromkeys(OUTCOMES, 0)
        self.answered = {True: 0, False: 0}
        self.answer_errors = 0

    @property
    def mirrors(self) -> tuple[Mirror, Mirror]:
        return self.heart_mirror, self.confirm_mirror

    def others(self) -> list[str]:
        """Live scanners other than this one that may be asked (not isolated)."""
        return [name for name, why in self.live.items() if why is None and name != self.hostname]

    def abort_all(self) -> None:
        """Wake every request of ours: they end ABORTED (isolated, or stopping)."""
        for asking in self._asking.values():
            asking.wake.set()

    async def close(self) -> None:
        self.isolated = True  # answers nothing more, and requests in flight end
        self.abort_all()
        for _, _, task in self._answering.values():
            task.cancel()
        tasks = [task for _, _, task in self._answering.values()] + list(self._background)
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.close()
            self._client = None

    def _etcd(self) -> aetcd.Client:
        if self._client is None:
            self._client = make_client(self.etcd_section)
        return self._client

    def _spawn(self, coro, name: str) -> asyncio.Task:
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # -- asking --------------------------------------------------------------------------------

    async def confirm(self, ip: str, address: str, ports: Sequence[int],
                      checks: Sequence[HttpCheck]) -> Outcome:
        """Ask others whether ip fails for them too; the outcome when it is settled."""
        if not self.heart_mirror.ready.is_set():
            # Who is live is not known yet: "alone" would be a guess. Asked again next round.
            self.outcomes[UNANSWERED] += 1
            return Outcome(UNANSWERED)
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._silent = {n: until for n, until in self._silent.items() if until > now}
        ranked = demote(candidates(ip, self.others(), self.hostname), self._silent)
        if not ranked:
            self.outcomes[ALONE] += 1
            return Outcome(ALONE)
        lease_id = self.lease.lease_id
        if not lease_id or self.isolated or ip in self._asking:
            self.outcomes[ABORTED] += 1
            return Outcome(ABORTED)
        cleanup = self._deleting.get(ip)
        if cleanup is not None:
            # The last request about ip is still being deleted: that delete must not take
            # the new request with it.
            await asyncio.gather(cleanup, return_exceptions=True)
        wait = self.timeout(ports, checks)
        state = Confirmation(ranked, self.need, wait, loop.time())
        asking = _Asking(secrets.token_hex(8), state)
        self._asking[ip] = asking
        key = request_key(self.prefix, ip, self.hostname)
        started = time.monotonic()
        try:
            self.asked += len(state.ask)
            if not await self._put_request(key, asking, address, ports, checks, lease_id):
                result = Outcome(UNANSWERED)
            else:
                result = await self._await(ip, key, asking, address, ports, checks, lease_id)
        finally:
            del self._asking[ip]
            # In the background: the verdict does not wait for the clean-up, and a cancelled
            # probe loop (address moved away) must still remove its request.
            task = self._spawn(self._delete_request(key), name=f"confirm-delete-{ip}")
            self._deleting[ip] = task
            task.add_done_callback(
                lambda t, ip=ip: self._deleting.get(ip) is t and self._deleting.pop(ip))
        self.outcomes[result.result] += 1
        self.timeouts += state.timeouts
        for name in state.silent:
            if name not in state.down and name not in state.up:  # not merely late
                self._silent[name] = loop.time() + SILENT_FOR
        log_fn = log.warning if result.result in (DISAGREED, UNANSWERED) else log.info
        log_fn("confirmation " + result.result, extra=kv(
            ip=ip, by=",".join(result.by) or "-", took=round(time.monotonic() - started, 3),
            timeouts=state.timeouts, replaced=state.replaced))
        return result

    async def _await(self, ip: str, key: str, asking: _Asking, address: str,
                     ports: Sequence[int], checks: Sequence[HttpCheck],
                     lease_id: int) -> Outcome:
        loop = asyncio.get_running_loop()
        state = asking.state
        while True:
            if self.isolated or self.lease.lease_id != lease_id:
                return Outcome(ABORTED)
            outcome = state.outcome
            if outcome == CONFIRMED:
                first = state.down[0]
                return Outcome(CONFIRMED, tuple(state.down), state.reasons.get(first))
            if outcome == DISAGREED:
                return Outcome(DISAGREED, tuple(state.up))
            if outcome == UNANSWERED:
                return Outcome(UNANSWERED)
            before = state.ask
            deadline = state.next_deadline
            asking.wake.clear()
            try:
                await asyncio.wait_for(asking.wake.wait(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                pass
            state.expire(loop.time())
            if state.ask != before and state.pending:
                newly = set(state.ask) - set(before)
                self.asked += len(newly)
                log.info("confirmer did not answer; asking another", extra=kv(
                    ip=ip, asking=",".join(state.ask), gave_up_on=",".join(
                        sorted(set(before) - set(state.ask))) or "-"))
                if not await self._put_request(key, asking, address, ports, checks,
                                               lease_id):
                    return Outcome(UNANSWERED)

    async def _put_request(self, key: str, asking: _Asking, address: str,
                           ports: Sequence[int], checks: Sequence[HttpCheck],
                           lease_id: int) -> bool:
        value = render_request(Request(asking.rid, asking.state.ask, address, tuple(ports),
                                       tuple(checks)))
        try:
            await asyncio.wait_for(self._etcd().put(key.encode(), value, lease=lease_id),
                                   self.lease.call_timeout * 2)
            return True
        except Exception as exc:
            self._warn.every("request", "could not write a confirmation request",
                             key=key, error=describe_error(exc))
            return False

    async def _delete_request(self, key: str) -> None:
        try:
            await etcd.txn(self._etcd(), [], [etcd.delete_op(key),
                                              etcd.delete_prefix_op(key + "/")])
        except Exception as exc:  # it lives on our lease: gone with it at the latest
            self._warn.every("delete", "could not delete a confirmation request",
                             key=key, error=describe_error(exc))

    # -- the heart/ watch -----------------------------------------------------------------------

    def _heart_name(self, key: str) -> str | None:
        name = key[len(self.heart_path):]
        return name if name and "/" not in name else None

    def _on_heart_reset(self, kvs: list[KV], revision: int) -> None:
        self.live = {}
        self._on_heart_events([("put", item) for item in kvs], revision)
        for name in {n for a in self._asking.values() for n in a.state.ask} - set(self.live):
            self._gone(name)

    def _on_heart_events(self, events: list[tuple[str, KV]], revision: int) -> None:
        for kind, item in events:
            name = self._heart_name(item.key)
            if name is None:
                continue
            known, before = name in self.live, self.live.get(name)
            if kind == "put":
                why = heart_isolation(item.value)
                self.live[name] = why
                if why is not None and (not known or before is None):
                    if name != self.hostname:
                        log.warning("scanner says it is isolated", extra=kv(
                            scanner=name, isolation=why))
                    self._gone(name)
                elif why is None and known and before is not None:
                    log.info("scanner left isolation", extra=kv(scanner=name))
            else:
                self.live.pop(name, None)
                self._gone(name)

    def _gone(self, name: str) -> None:
        """A confirmer left or became isolated: every request waiting on it asks another."""
        if name == self.hostname:
            return
        now = asyncio.get_running_loop().time()
        for asking in self._asking.values():
            if asking.state.gone(name, now):
                asking.wake.set()

    # -- the confirm/ watch ---------------------------------------------------------------------

    def _on_confirm_reset(self, kvs: list[KV], revision: int) -> None:
        present = {item.key for item in kvs}
        for key in list(self._answering):
            if key not in present:
                self._drop_answer(key)
        self._on_confirm_events([("put", item) for item in kvs], revision)

    def _on_confirm_events(self, events: list[tuple[str, KV]], revision: int) -> None:
        for kind, item in events:
            parsed = parse_key(self.prefix, item.key)
            if parsed is None:
                self._warn.every(f"key:{item.key}", "not a confirmation key; ignored",
                                 key=item.key)
                continue
            ip, requester, confirmer = parsed
            if confirmer is None:
                if kind == "delete":
                    self._drop_answer(item.key)
                elif requester != self.hostname:
                    self._requested(ip, requester, item)
            elif kind == "put" and requester == self.hostname:
                self._verdict(ip, confirmer, item)

    def _verdict(self, ip: str, confirmer: str, item: KV) -> None:
        asking = self._asking.get(ip)
        verdict = read_verdict(item.value)
        if verdict is None:
            self._warn.every(f"verdict:{item.key}", "unreadable verdict; ignored", key=item.key)
            return
        if asking is None or verdict.id != asking.rid:
            return  # an answer to an earlier request, already settled
        if asking.state.answer(confirmer, verdict.ok, asyncio.get_running_loop().time(),
                               verdict.reason):
            asking.wake.set()

    def _requested(self, ip: str, requester: str, item: KV) -> None:
        request = read_request(item.value)
        if request is None:
            self._warn.every(f"request:{item.key}", "unreadable confirmation request; ignored",
                             key=item.key)
            return
        if self.hostname not in request.ask or self.isolated or not self.enabled:
            return
        known = self._answering.get(item.key)
        if known is not None and known[:2] == (item.create_revision, request.id):
            return  # the request put again (another confirmer added): ours is under way
        if known is not None:
            known[2].cancel()
        task = self._spawn(self._answer(ip, requester, item, request), name=f"answer-{ip}")
        self._answering[item.key] = (item.create_revision, request.id, task)

    def _drop_answer(self, key: str) -> None:
        known = self._answering.pop(key, None)
        if known is not None:
            known[2].cancel()

    async def _answer(self, ip: str, requester: str, item: KV, request: Request) -> None:
        try:
            verdict = await self.prober.verdict(request.address, request.ports, request.checks)
            if verdict.ok is None:
                # We could not probe (no socket here): no verdict; the requester asks another.
                self._warn.every("noprobe", "cannot probe to confirm; not answering", ip=ip)
                return
            value = render_verdict(Verdict(request.id, verdict.ok, verdict.reason))
            # Only while the request still exists (the requester may have decided and
            # deleted it already): a verdict never outlives it.
            result = await etcd.txn(
                self._etcd(), [etcd.created_at(item.key, item.create_revision)],
                [etcd.put_op(verdict_key(self.prefix, ip, requester, self.hostname), value,
                             item.lease)])
            if result.succeeded:
                self.answered[verdict.ok] += 1
                log.info("confirmation answered", extra=kv(
                    ip=ip, requester=requester, reached=verdict.ok,
                    reason=verdict.reason or "-"))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.answer_errors += 1
            self._warn.every("answer", "could not answer a confirmation request",
                             key=item.key, error=describe_error(exc))
