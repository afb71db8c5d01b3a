"""Confirmation of a failure by other scanners before a DOWN is written. Pure: the keys, the
values, whom to ask, and the bookkeeping of one request; the etcd side is confirmer.py.

One scanner's view must not take an address out of DNS: a scanner that lost its route to the
service network (while it still reaches etcd) would otherwise drop its whole share. So the
assigned scanner, once `fall` failures in a row say DOWN, asks `[Check] confirm` other live
scanners to probe the address once with the same checks, and writes DOWN only when they all
agree (SWIM's indirect probe, Route 53's checkers in several regions).

    confirm/<ip>/<requester>               the request, on the requester's heartbeat lease
        {"id": "5f1c...", "ask": ["scan-b"], "address": "10.0.0.5", "ports": [80],
         "checks": [{"http": "/healthz", "port": 8080}]}
    confirm/<ip>/<requester>/<confirmer>   a verdict, on the same lease, written only while
        {"id": "5f1c...", "ok": false, "reason": "no answer: tcp 80"}     the request exists

Every scanner watches the prefix; the ones named in "ask" probe and answer. The requester
waits; a confirmer that does not answer within the timeout (dead, stuck, partitioned) is
replaced by the next one in the ranking (the request is put again with the new "ask"), and the
requester deletes the request with its verdicts once it has decided. Since both live on the
requester's lease, a requester that dies leaves nothing behind. Nothing is written while every
address is UP: a request exists only after a failure passed the fall threshold.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from skydns.checks import HttpCheck, parse_checks
from skydns.keys import canonical_ip, parse_ip
from skydns.monitor import json_object
from skydns.rendezvous import weight

from .status import MAX_PORTS, parse_ports

CONFIRMED = "confirmed"  # every confirmer asked found it failing too: write DOWN
DISAGREED = "disagreed"  # a confirmer reached it: keep UP, count and log the disagreement
UNANSWERED = "unanswered"  # nobody left to ask answered in time: keep UP, try again later
ALONE = "alone"  # no other live scanner: write DOWN unconfirmed (today's behaviour), warn
ABORTED = "aborted"  # this scanner stopped asking (isolated, stopping, no lease)

# A verdict's reason is one check's complaint, an id a short nonce; longer is not ours.
MAX_REASON = 300
MAX_ID = 64
MAX_ASK = 16


def request_key(prefix: str, ip: str, requester: str) -> str:
    return f"{prefix}{ip}/{requester}"


def verdict_key(prefix: str, ip: str, requester: str, confirmer: str) -> str:
    return f"{prefix}{ip}/{requester}/{confirmer}"


def parse_key(prefix: str, key: str) -> tuple[str, str, str | None] | None:
    """(ip, requester, confirmer or None for the request itself) of a key under prefix;
    None for anything else (hostnames never contain '/', IPs neither)."""
    if not key.startswith(prefix):
        return None
    parts = key[len(prefix):].split("/")
    if len(parts) not in (2, 3) or not all(parts):
        return None
    if canonical_ip(parts[0])[0] != parts[0]:
        return None
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None


@dataclass(frozen=True, slots=True)
class Request:
    id: str
    ask: tuple[str, ...]
    address: str  # as the requester probes it (an IPv6 zone kept)
    ports: tuple[int, ...]
    checks: tuple[HttpCheck, ...] = field(default=())


def render_request(req: Request) -> bytes:
    return json.dumps({"id": req.id, "ask": list(req.ask), "address": req.address,
                       "ports": list(req.ports), "checks": [c.to_dict() for c in req.checks]},
                      separators=(",", ":"), sort_keys=True).encode()


def _short_text(obj: dict, name: str, limit: int) -> str | None:
    value = obj.get(name)
    return value if isinstance(value, str) and 0 < len(value) <= limit else None


def read_request(value: bytes) -> Request | None:
    """The request, or None when the value is not one (logged by the caller). Whoever can
    write etcd can already make scanners probe any address (a status key), so the checks are
    held to the same limits as a status value's, no more."""
    obj = json_object(value)
    if obj is None:
        return None
    rid = _short_text(obj, "id", MAX_ID)
    address = _short_text(obj, "address", 100)
    ask = obj.get("ask")
    if rid is None or address is None or parse_ip(address) is None or not isinstance(ask, list):
        return None
    names = tuple(n for n in ask[:MAX_ASK] if isinstance(n, str) and n and "/" not in n)
    ports, _ = parse_ports(obj.get("ports"))
    checks, _ = parse_checks(obj.get("checks"), strict=False)
    return Request(rid, names, address, ports[:MAX_PORTS], tuple(checks))


@dataclass(frozen=True, slots=True)
class Verdict:
    id: str
    ok: bool  # True: the confirmer reached the address (it disagrees)
    reason: str | None = None


def render_verdict(verdict: Verdict) -> bytes:
    out: dict = {"id": verdict.id, "ok": verdict.ok}
    if verdict.reason:
        out["reason"] = verdict.reason[:MAX_REASON]
    return json.dumps(out, separators=(",", ":"), sort_keys=True).encode()


def read_verdict(value: bytes) -> Verdict | None:
    obj = json_object(value)
    if obj is None:
        return None
    rid = _short_text(obj, "id", MAX_ID)
    ok = obj.get("ok")
    if rid is None or not isinstance(ok, bool):
        return None
    return Verdict(rid, ok, _short_text(obj, "reason", MAX_REASON))


def candidates(ip: str, live: Iterable[str], me: str) -> list[str]:
    """The scanners to ask about ip, best first: every live one but me, ranked by their
    rendezvous weight for ip, so that the scanners asked about one address are the same from
    one request to the next (and spread evenly over addresses). The caller leaves isolated
    scanners out of `live`: an isolated scanner is never asked."""
    others = {name for name in live if name != me}
    return sorted(others, key=lambda name: (-weight(ip, name), name))


def demote(ranked: Sequence[str], silent: Iterable[str]) -> list[str]:
    """The ranking with scanners that recently did not answer moved to the end (in their
    order): a scanner whose heartbeat lives but that never answers (a broken watch) must not
    hold up every DOWN of the addresses it ranks first for, yet stays a last resort."""
    quiet = set(silent)
    return [n for n in ranked if n not in quiet] + [n for n in ranked if n in quiet]


def probe_budget(ports: Sequence[int], checks: Sequence[HttpCheck], tcp_timeout: float,
                 icmp_seconds: float) -> float:
    """How long one check of the address can take at most (its slowest probe): what a
    confirmer needs before it can answer. icmp_seconds is 0 without ICMP."""
    longest = icmp_seconds
    if ports:
        longest = max(longest, tcp_timeout)
    for check in checks:
        longest = max(longest, check.timeout if check.timeout is not None else tcp_timeout)
    return longest


class Confirmation:
    """The bookkeeping of one request: who is asked, who answered what, when to give up on a
    confirmer and ask the next one. Times are plain numbers (the caller's monotonic clock).

    `need` confirmers must find the address failing (fewer when fewer are live); one that
    reaches it settles the matter the other way at once. A confirmer that is gone (its
    heartbeat left, or it became isolated) or silent past the timeout is replaced by the next
    candidate; when none is left and too few answered, the outcome is UNANSWERED.
    """

    def __init__(self, ranked: Sequence[str], need: int, timeout: float, now: float):
        if need < 1:
            raise ValueError(f"need must be at least 1, got {need}")
        self.need = min(need, len(ranked))
        self.timeout = timeout
        self.pending: dict[str, float] = {name: now + timeout for name in ranked[:self.need]}
        self.spare = list(ranked[self.need:])
        self.asked_ever: set[str] = set(self.pending)
        self.down: list[str] = []  # confirmers that found it failing, in answer order
        self.up: list[str] = []  # confirmers that reached it
        self.reasons: dict[str, str] = {}
        self.timeouts = 0
        self.replaced = 0
        self.silent: list[str] = []  # asked and gave up on: no answer within the timeout

    @property
    def ask(self) -> tuple[str, ...]:
        """The names the request must carry now: the ones still awaited."""
        return tuple(self.pending)

    @property
    def outcome(self) -> str | None:
        if self.up:
            return DISAGREED
        if self.need == 0:
            return UNANSWERED
        if len(self.down) >= self.need:
            return CONFIRMED
        if not self.pending:
            return UNANSWERED
        return None

    @property
    def next_deadline(self) -> float | None:
        return min(self.pending.values(), default=None)

    def answer(self, name: str, ok: bool, now: float, reason: str | None = None) -> bool:
        """A verdict arrived; False when it is not one we wait for (never asked, or a repeat).
        A confirmer replaced after a timeout still counts if its answer comes in later."""
        if name not in self.asked_ever or name in self.down or name in self.up:
            return False
        was_pending = self.pending.pop(name, None) is not None
        (self.up if ok else self.down).append(name)
        if reason:
            self.reasons[name] = reason
        if not was_pending:
            # It had been replaced: its late answer stands in for the one asked instead.
            self._drop_extra()
        return True

    def gone(self, name: str, now: float) -> bool:
        """A confirmer we wait for left or became isolated: ask the next one now."""
        if name not in self.pending:
            return False
        del self.pending[name]
        self.replaced += 1
        self._refill(now)
        return True

    def expire(self, now: float) -> bool:
        """Give up on confirmers silent past their deadline; True when `ask` changed."""
        late = [name for name, deadline in self.pending.items() if deadline <= now]
        for name in late:
            del self.pending[name]
            self.timeouts += 1
            self.silent.append(name)
        if late:
            self._refill(now)
        return bool(late)

    def _refill(self, now: float) -> None:
        while self.spare and len(self.down) + len(self.pending) < self.need:
            name = self.spare.pop(0)
            self.pending[name] = now + self.timeout
            self.asked_ever.add(name)

    def _drop_extra(self) -> None:
        # More awaited than still needed: keep the earliest asked.
        while self.pending and len(self.down) + len(self.pending) > self.need:
            self.pending.pop(next(reversed(self.pending)))
