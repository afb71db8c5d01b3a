"""HTTP of the operator's health view and maintenance (documents: healthview.py).

    GET    /skydns/health                       every address, the scanners, the leader
    GET    /skydns/health/{ip}                  one address with history and lastfailure;
                                                404 when no record holds it and no status
                                                key monitors it
    PUT    /skydns/health/{ip}/maintenance      {"reason": "..."} (1-200 characters) -> 200
    DELETE /skydns/health/{ip}/maintenance      -> 200; 404 when not in maintenance

Reads follow the status page's rule (a token unless [SkydnsApi] status-public); maintenance
takes a token like a record write: the admin token for any address, an owner's token for
addresses its own records hold (403 otherwise). An address may be spelled any way
(`2001:DB8::01` is `2001:db8::1`); one that is no address is a 400.

Reads go to etcd (one consistent snapshot) rather than the status page's mirrors, so an
answer reflects every write acknowledged before it, a maintenance set a moment ago above all.
Maintenance is written in one guarded transaction with its history entry, into every status
key of the address (two spellings of one address would otherwise disagree).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from aiohttp import web

from skydns.flips import (
    MAX_MAINT_REASON,
    clear_maintenance,
    dump,
    maintenance_of,
    push_history,
    set_maintenance,
)
from skydns.monitor import json_object

from .body import read_body
from .errors import ApiError, bad_request, forbidden, not_found
from .etcd import CommitUnknown
from .healthview import HealthFacts, canonical
from .plan import Plan
from .service import RecordService

log = logging.getLogger("skydns.kubeapi.health")

HEALTH = web.AppKey("health", object)
WRITE_ATTEMPTS = 5  # scanners write the same keys; a flip between read and commit retries
MAX_BODY = 4096


class HealthApi:
    """The handlers, bound to the record service's store and the monitor prefixes."""

    def __init__(self, service: RecordService, prefixes: dict[str, str], history_path: str,
                 read_access: Callable | None, write_access: Callable,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 read_timeout: float = 10.0):
        self.service = service
        self.prefixes = prefixes
        self.history_path = history_path
        self.read_access = read_access
        self.write_access = write_access
        self.clock = clock
        self.read_timeout = read_timeout  # seconds for a maintenance body

    async def _facts(self, history_ip: str | None = None):
        store = self.service.store
        p = self.prefixes
        keys = {self.history_path + history_ip} if history_ip else set()
        loop = asyncio.get_running_loop()
        snap = await store.snapshot(keys, {p[s] for s in ("records", "status", "report",
                                                          "heart", "lock")},
                                    loop.time() + self.service.deadline)
        facts = HealthFacts(p, snap.under(p["records"]), snap.under(p["status"]),
                            snap.under(p["report"]), snap.under(p["heart"]),
                            snap.under(p["lock"]))
        return snap, facts

    @staticmethod
    def _ip(request: web.Request) -> str:
        raw = request.match_info["ip"]
        ip = canonical(raw)
        if ip is None:
            raise bad_request(f"{raw!r} is not an IP address")
        return ip

    async def health(self, request: web.Request) -> web.Response:
        if self.read_access is not None:
            self.read_access(request)
        _, facts = await self._facts()
        return _json(facts.document())

    async def one(self, request: web.Request) -> web.Response:
        if self.read_access is not None:
            self.read_access(request)
        ip = self._ip(request)
        snap, facts = await self._facts(ip)
        if not facts.known(ip):
            raise not_found(f"no record holds {ip} and no status key monitors it")
        history = snap.kvs.get(self.history_path + ip)
        return _json(facts.detail(ip, history.value if history else None))

    async def maintenance(self, request: web.Request) -> web.Response:
        caller = self.write_access(request)  # before the body
        ip = self._ip(request)
        reason = None
        if request.method == "PUT":
            reason = _reason(await read_body(request, MAX_BODY, self.read_timeout))
        for _ in range(WRITE_ATTEMPTS):
            snap, facts = await self._facts(ip)
            if not facts.known(ip):
                raise not_found(f"no record holds {ip} and no status key monitors it")
            if not caller.admin and caller.owner not in facts.owners.get(ip, set()):
                raise forbidden(f"{ip} is not held by a record of {caller.owner}")
            plan = self._plan(snap, facts, ip, caller.owner, reason)
            try:
                if await self.service.store.commit(plan, loop_deadline(self.service)):
                    break
            except CommitUnknown:
                continue  # read again: setting (or clearing) twice comes to the same
        else:
            raise ApiError(503, f"status of {ip} keeps changing; try again")
        log.info("maintenance " + ("set" if reason is not None else "cleared"),
                 extra={"kv": {"ip": ip, "by": caller.owner, "reason": reason or ""}})
        _, facts = await self._facts(ip)
        return _json({"result": "OK", **facts.address(ip)})

    def _plan(self, snap, facts: HealthFacts, ip: str, by: str, reason: str | None) -> Plan:
        now = self.clock()
        plan = Plan(snap.revision)
        kvs = facts.status_keys.get(ip) or []
        entry = None
        if reason is None:
            held = [kv for kv in kvs if maintenance_of(json_object(kv.value)) is not None]
            if not held:
                raise not_found(f"{ip} is not in maintenance")
            for kv in held:
                value, entry = clear_maintenance(json_object(kv.value) or {}, by, now)
                plan.key_guards[kv.key] = kv.mod_revision
                plan.puts[kv.key] = dump(value)
        else:
            # An address held only by a record written without a status key gets one: the
            # scanners then probe it, so its status is current when maintenance ends.
            targets = kvs or [None]
            for kv in targets:
                key = kv.key if kv is not None else self.prefixes["status"] + ip
                value, entry = set_maintenance(json_object(kv.value) if kv else None, reason,
                                               by, now)
                plan.key_guards[key] = kv.mod_revision if kv else 0
                plan.puts[key] = dump(value)
        hkey = self.history_path + ip
        history = snap.kvs.get(hkey)
        plan.key_guards[hkey] = history.mod_revision if history else 0
        plan.puts[hkey] = push_history(history.value if history else None, entry)
        return plan


def loop_deadline(service: RecordService) -> float:
    return asyncio.get_running_loop().time() + service.deadline


def _json(doc: dict) -> web.Response:
    return web.Response(text=json.dumps(doc, separators=(",", ":")),
                        content_type="application/json", headers={"Cache-Control": "no-store"})


def _reason(body: bytes) -> str:
    if not body.strip():
        raise bad_request('PUT maintenance needs a JSON body {"reason": "..."}')
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise bad_request("body is not valid JSON") from None
    if not isinstance(obj, dict):
        raise bad_request('body must be a JSON object {"reason": "..."}')
    unknown = sorted(set(obj) - {"reason"})
    if unknown:
        raise bad_request(f"unknown field {unknown[0]!r}: only \"reason\" is accepted")
    reason = obj.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise bad_request('"reason" is required: say why the address is taken out')
    reason = " ".join(reason.split())
    if len(reason) > MAX_MAINT_REASON:
        raise bad_request(f'"reason" is longer than {MAX_MAINT_REASON} characters')
    return reason


def add_health_routes(app: web.Application, api: HealthApi) -> None:
    app[HEALTH] = api
    app.router.add_get("/skydns/health", api.health)
    app.router.add_get("/skydns/health/{ip}", api.one)
    app.router.add_route("PUT", "/skydns/health/{ip}/maintenance", api.maintenance)
    app.router.add_route("DELETE", "/skydns/health/{ip}/maintenance", api.maintenance)
