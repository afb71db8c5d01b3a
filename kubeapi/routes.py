"""HTTP: routes, auth before the body, and the one-line `OK` / `ERR, <reason>` answers.

    GET    /healthz                 no token; 200 OK when etcd answers, else 503
    GET    /skydns/api[?type=A]     every record of the zone, JSON
    GET    /skydns/api/{domain}     one name's records, JSON (404 when it has none)
    POST   /skydns/api/{domain}     add values        -> 201 OK (200 OK when all were there)
    PUT    /skydns/api/{domain}     swap one value    -> 200 OK
    DELETE /skydns/api/{domain}     remove values, or without a body the whole name -> 200 OK
    GET    /, /skydns/status[/events], /metrics    the status page and metrics (statushttp.py)
    GET    /skydns/health[/{ip}], PUT/DELETE /skydns/health/{ip}/maintenance    (healthhttp.py)

Errors are one line, `ERR, <reason>`, with the status saying what kind; a client that asks
for `Accept: application/json` gets `{"error": reason, "status": n}` (and `{"result": "OK"}`
for writes) instead. Nothing a client sends can produce a stack trace: refusals are ApiError,
and anything else is logged here and answered 500 without details.
"""

from __future__ import annotations

import json
import logging
import time

from aiohttp import web

from .auth import Authenticator, token_of
from .body import read_body
from .errors import ApiError
from .etcd import EtcdRefused, EtcdUnavailable
from .healthhttp import HealthApi, add_health_routes
from .metrics import METRICS, UNMATCHED, ApiMetrics
from .service import RecordService
from .slowclients import guard_of
from .statusfeed import StatusFeed, status_prefixes
from .statushttp import add_routes
from .validate import parse_body, parse_create, parse_delete, parse_type, parse_update, zone_name

log = logging.getLogger("skydns.kubeapi.http")

SERVICE = web.AppKey("service", RecordService)
AUTH = web.AppKey("auth", Authenticator)
SETTINGS = web.AppKey("settings", dict)

_WRITES = {"POST": "create", "PUT": "update", "DELETE": "delete"}


def _wants_json(request: web.Request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _dumps(data) -> str:
    # ASCII with \u escapes: values written to etcd by hand may hold lone surrogates.
    return json.dumps(data, separators=(",", ":"))


def answer_error(request: web.Request, status: int, reason: str) -> web.Response:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if status == 503:
        headers["Retry-After"] = "1"
    if _wants_json(request):
        return web.json_response({"error": reason, "status": status}, status=status,
                                 headers=headers, dumps=_dumps)
    return web.Response(status=status, text=f"ERR, {reason}\n", headers=headers)


def answer_ok(request: web.Request, status: int) -> web.Response:
    if _wants_json(request):
        return web.json_response({"result": "OK"}, status=status, dumps=_dumps)
    return web.Response(status=status, text="OK\n")


@web.middleware
async def errors_and_access_log(request: web.Request, handler):
    start = time.monotonic()
    guard = guard_of(request)
    if guard is not None:
        guard.request_started()
    try:
        response = await handler(request)
    except ApiError as err:
        response = answer_error(request, err.status, err.reason)
    except web.HTTPException as exc:  # the router's 404 and 405
        reason = "no such route" if exc.status == 404 else exc.reason.lower()
        if exc.status == 405:
            reason = f"method {request.method} not allowed here"
        response = answer_error(request, exc.status, reason)
    except EtcdUnavailable as err:
        response = answer_error(request, 503, str(err))
    except EtcdRefused as err:
        log.error("etcd refused a request", extra={"kv": {"path": request.path,
                                                          "error": str(err)}})
        response = answer_error(request, 500, "etcd refused the request")
    except Exception:
        log.exception("request failed", extra={"kv": {"method": request.method,
                                                      "path": request.path}})
        response = answer_error(request, 500, "internal error")
    if guard is not None:
        guard.request_done()
    elapsed = time.monotonic() - start
    # The query string is left out on purpose: it may hold the token.
    log.info("request", extra={"kv": {
        "method": request.method, "path": request.path, "status": response.status,
        "ms": round(elapsed * 1000, 1), "owner": request.get("owner", "")}})
    metrics = request.app.get(METRICS)
    if metrics is not None:
        metrics.observe(request.method, _route_of(request), response.status, elapsed)
    return response


def _route_of(request: web.Request) -> str:
    """The route template (`/skydns/api/{domain}`), never the raw path: a metrics label must
    take few values whatever clients request."""
    resource = request.match_info.route.resource
    return UNMATCHED if resource is None else resource.canonical


def _caller(request: web.Request):
    caller = request.app[AUTH].caller(token_of(request.headers, request.query))
    request["owner"] = caller.owner
    return caller


def _type_filter(request: web.Request) -> str | None:
    raw = request.query.get("type")
    return None if raw is None or raw == "" else parse_type(raw)


async def healthz(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    problem = await service.store.ping(timeout=min(2.0, service.store.timeout))
    if problem:
        return answer_error(request, 503, f"etcd unavailable: {problem}")
    return web.Response(text="OK\n")


async def list_all(request: web.Request) -> web.Response:
    _caller(request)
    rtype = _type_filter(request)
    settings = request.app[SETTINGS]
    records = await request.app[SERVICE].listing(rtype)
    return web.json_response({"zone": settings["zone"], "records": records}, dumps=_dumps)


async def one_name(request: web.Request) -> web.Response:
    if request.method not in ("GET", "HEAD", *_WRITES):
        raise web.HTTPMethodNotAllowed(request.method, ["GET", "POST", "PUT", "DELETE"])
    caller = _caller(request)  # before anything else, the body above all
    settings = request.app[SETTINGS]
    zone = settings["zone"]
    name = zone_name(request.match_info["domain"], zone)
    service = request.app[SERVICE]
    if request.method in ("GET", "HEAD"):
        records = await service.listing(_type_filter(request), name)
        if not records:
            raise ApiError(404, f"{name} has no records")
        return web.json_response({"zone": zone, "domain": name, "records": records},
                                 dumps=_dumps)
    body = parse_body(await read_body(request, settings["max_body"],
                                        settings["read_timeout"]))
    if request.method == "DELETE":
        change = parse_delete(body, zone)
    elif body is None:
        raise ApiError(400, f"{request.method} needs a JSON body")
    elif request.method == "POST":
        change = parse_create(body, zone)
    else:
        change = parse_update(body, zone)
    status = await service.write(_WRITES[request.method], caller, name, change)
    return answer_ok(request, status)


def make_app(service: RecordService, auth: Authenticator, zone: str, max_body: int, *,
             feed: StatusFeed | None = None, metrics: ApiMetrics | None = None,
             status_public: bool = False, keepalive: float = 15.0,
             read_timeout: float = 10.0, etcd_paths: dict | None = None) -> web.Application:
    """The API; with `feed` also the status page, with `metrics` also GET /metrics, with
    `etcd_paths` (the [Etcd] section's *-path keys) also /skydns/health."""
    app = web.Application(middlewares=[errors_and_access_log], client_max_size=max_body)
    app[SERVICE] = service
    app[AUTH] = auth
    app[SETTINGS] = {"zone": zone, "max_body": max_body, "read_timeout": read_timeout}
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/skydns/api", list_all)
    app.router.add_get("/skydns/api/", list_all)
    app.router.add_route("*", "/skydns/api/{domain:.+}", one_name)
    add_routes(app, feed, metrics, None if status_public else _caller, keepalive)
    if etcd_paths is not None:
        add_health_routes(app, HealthApi(service, status_prefixes(zone, etcd_paths),
                                         etcd_paths["history-path"],
                                         None if status_public else _caller, _caller,
                                         read_timeout=read_timeout))
    return app
