"""A small Kubernetes API server (aiohttp) that speaks the real protocol for Services and
discovery.k8s.io/v1 EndpointSlices, good enough for the sync and for the real `kubectl`.

What it does as kube-apiserver does: one resourceVersion counter for everything, paged lists
(`limit`/`continue`) that say the version they are consistent at, watches from a version as
chunked newline-delimited JSON events (ADDED/MODIFIED/DELETED, BOOKMARK when asked for, ERROR
with a 410 Status for a compacted version; or HTTP 410 with `gone_as_http`), `timeoutSeconds`,
field/label selectors of the `a=b` kind, bearer tokens (401 Status otherwise), create / get /
merge-patch / update / delete, ClusterIP allocation, and the discovery documents kubectl reads
(/version, /api, /apis, /api/v1, /apis/discovery.k8s.io/v1, namespaces).

Tests drive it directly too: `put`, `delete`, `compact` (forget history: older versions get
410), `cut_watches` (end every open watch at once), `start`/`stop` (an API server that
appears or goes away). `FakeKubeThread` runs it on its own event loop for synchronous tests
and subprocess clients.
"""

from __future__ import annotations

import asyncio
import calendar
import copy
import ipaddress
import json
import ssl
import subprocess
import threading
import time
import uuid

from aiohttp import web

CORE = ("", "v1")
DISCOVERY = ("discovery.k8s.io", "v1")
RESOURCES = {
    # resource -> (group, version, kind, short names)
    "services": (CORE, "Service", ["svc"]),
    "endpointslices": (DISCOVERY, "EndpointSlice", []),
    "namespaces": (CORE, "Namespace", ["ns"]),
}
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]


def _status(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


def _error(code: int, reason: str, message: str) -> web.Response:
    return web.json_response(_status(code, reason, message), status=code)


# Strategic merge patch: the lists merged by a key rather than replaced (what `kubectl apply`
# sends for Services); other lists are replaced, as in a JSON merge patch.
_MERGE_KEYS = {"ports": "port"}


def _merge(target, patch, strategic: bool = False):
    """RFC 7386 JSON merge patch, or with `strategic` the part of Kubernetes' strategic merge
    patch kubectl apply uses on Services ($patch: delete, $setElementOrder, keyed lists)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            out.pop(key, None)
        elif strategic and key in _MERGE_KEYS and isinstance(value, list):
            out[key] = _merge_list(out.get(key) or [], value, _MERGE_KEYS[key])
        else:
            out[key] = _merge(out.get(key), value, strategic)
    return out


def _merge_list(target: list, patch: list, merge_key: str) -> list:
    items = {i.get(merge_key): dict(i) for i in target if isinstance(i, dict)}
    for item in patch:
        if not isinstance(item, dict):
            continue
        key = item.get(merge_key)
        if item.get("$patch") == "delete":
            items.pop(key, None)
        else:
            items[key] = _merge(items.get(key), item, True)
    return list(items.values())


def _selector_ok(obj: dict, fields: str, labels: str) -> bool:
    meta = obj.get("metadata", {})
    for term in filter(None, fields.split(",")):
        key, _, want = term.partition("=")
        value = {"metadata.name": meta.get("name"),
                 "metadata.namespace": meta.get("namespace")}.get(key.rstrip("="))
        if value != want.lstrip("="):
            return False
    for term in filter(None, labels.split(",")):
        key, _, want = term.partition("=")
        if (meta.get("labels") or {}).get(key.rstrip("=")) != want.lstrip("="):
            return False
    return True


class FakeKube:
    def __init__(self, token: str = "kube-token", port: int = 0,
                 bookmark_interval: float = 1.0, tls: tuple[str, str] | None = None):
        self.token = token
        self.tls = tls  # (certificate, key) files: serve HTTPS (kubectl sends tokens only so)
        self.port = port
        self.bookmark_interval = bookmark_interval
        self.gone_as_http = False  # 410 for a compacted watch as HTTP status, not an event
        self.version = 1
        self.objects: dict[str, dict[tuple[str, str], dict]] = {r: {} for r in RESOURCES}
        self.history: list[tuple[int, str, str, dict]] = []  # (version, resource, type, obj)
        self.compacted = 0  # watches from a version below this get 410
        self.requests: list[tuple[str, str]] = []  # (method, path?query), for the tests
        self._changed = asyncio.Condition()
        self._cut = 0  # bumped by cut_watches
        self._next_ip = int(ipaddress.ip_address("10.96.0.10"))
        self._runner: web.AppRunner | None = None
        for ns in ("default", "kube-system"):
            self._store("namespaces", {"metadata": {"name": ns}, "spec": {},
                                       "status": {"phase": "Active"}}, "ADDED")

    # --- state ----------------------------------------------------------------------------

    def _store(self, resource: str, obj: dict, kind: str) -> dict:
        self.version += 1
        meta = obj.setdefault("metadata", {})
        meta["resourceVersion"] = str(self.version)
        # kubectl sends "creationTimestamp": null; the server fills in what the client cannot.
        meta["uid"] = meta.get("uid") or str(uuid.uuid4())
        meta["creationTimestamp"] = (meta.get("creationTimestamp")
                                     or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        if resource != "namespaces":
            meta.setdefault("namespace", "default")
        group, kind_name, _ = RESOURCES[resource]
        obj["kind"] = kind_name
        obj["apiVersion"] = f"{group[0]}/{group[1]}" if group[0] else group[1]
        key = (meta.get("namespace", ""), meta["name"])
        if kind == "DELETED":
            self.objects[resource].pop(key, None)
        else:
            self.objects[resource][key] = obj
        self.history.append((self.version, resource, kind, copy.deepcopy(obj)))
        return obj

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _prepare_service(self, obj: dict) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        if spec["type"] != "ExternalName" and not spec.get("clusterIP"):
            spec["clusterIP"] = str(ipaddress.ip_address(self._next_ip))
            self._next_ip += 1
        if spec.get("clusterIP") and spec["clusterIP"] != "None":
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
        spec.setdefault("sessionAffinity", "None")
        obj.setdefault("status", {"loadBalancer": {}})

    async def put(self, resource: str, obj: dict) -> dict:
        """Create or replace an object (ADDED or MODIFIED event)."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta.setdefault("namespace", "default")
        key = (meta["namespace"], meta["name"])
        old = self.objects[resource].get(key)
        if resource == "services":
            if old is not None and not obj.get("spec", {}).get("clusterIP"):
                obj.setdefault("spec", {})["clusterIP"] = old["spec"].get("clusterIP")
            self._prepare_service(obj)
        if old is not None:
            meta["uid"] = old["metadata"]["uid"]
        stored = self._store(resource, obj, "MODIFIED" if old is not None else "ADDED")
        await self._notify()
        return copy.deepcopy(stored)

    async def delete(self, resource: str, namespace: str, name: str) -> dict | None:
        old = self.objects[resource].get((namespace, name))
        if old is None:
            return None
        gone = self._store(resource, copy.deepcopy(old), "DELETED")
        await self._notify()
        return copy.deepcopy(gone)

    async def compact(self) -> None:
        """Forget every event so far: a watch from an older version gets 410 Gone."""
        self.compacted = self.version + 1
        self.history.clear()

    async def cut_watches(self) -> None:
        self._cut += 1
        await self._notify()

    # --- serving --------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        r = app.router
        r.add_get("/version", self._version)
        r.add_get("/api", self._api_versions)
        r.add_get("/apis", self._api_groups)
        r.add_get("/api/v1", self._resources(CORE))
        r.add_get("/apis/discovery.k8s.io/v1", self._resources(DISCOVERY))
        for group in (CORE, DISCOVERY):
            base = "/api/v1" if group == CORE else f"/apis/{group[0]}/{group[1]}"
            r.add_route("*", base + "/{resource}", self._collection)
            r.add_route("*", base + "/namespaces/{namespace}/{resource}", self._collection)
            r.add_route("*", base + "/{resource}/{name}", self._item)
            r.add_route("*", base + "/namespaces/{namespace}/{resource}/{name}", self._item)
        return app

    @web.middleware
    async def _auth(self, request: web.Request, handler):
        self.requests.append((request.method, request.path_qs))
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _error(401, "Unauthorized", "Unauthorized")
        return await handler(request)

    async def start(self) -> int:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        context = None
        if self.tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*self.tls)
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True,
                           ssl_context=context)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self.cut_watches()
            await self._runner.cleanup()
            self._runner = None

    # --- discovery ------------------------------------------------------------------------

    async def _version(self, request):
        return web.json_response({"major": "1", "minor": "30", "gitVersion": "v1.30.0-fake",
                                  "platform": "linux/amd64"})

    async def _api_versions(self, request):
        return web.json_response({"kind": "APIVersions", "versions": ["v1"],
                                  "serverAddressByClientCIDRs": [
                                      {"clientCIDR": "0.0.0.0/0",
                                       "serverAddress": f"127.0.0.1:{self.port}"}]})

    async def _api_groups(self, request):
        version = {"groupVersion": "discovery.k8s.io/v1", "version": "v1"}
        return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            {"name": "discovery.k8s.io", "versions": [version], "preferredVersion": version}]})

    def _resources(self, group):
        async def handler(request):
            items = []
            for name, (g, kind, short) in RESOURCES.items():
                if g != group:
                    continue
                entry = {"name": name, "singularName": kind.lower(),
                         "namespaced": name != "namespaces", "kind": kind, "verbs": VERBS}
                if short:
                    entry["shortNames"] = short
                items.append(entry)
            gv = f"{group[0]}/{group[1]}" if group[0] else group[1]
            return web.json_response({"kind": "APIResourceList", "apiVersion": "v1",
                                      "groupVersion": gv, "resources": items})
        return handler

    # --- collections ----------------------------------------------------------------------

    def _resource(self, request) -> str | None:
        name = request.match_info["resource"]
        if name not in RESOURCES:
            return None
        group = RESOURCES[name][0]
        prefix = "/api/v1/" if group == CORE else f"/apis/{group[0]}/{group[1]}/"
        return name if request.path.startswith(prefix) else None

    async def _collection(self, request: web.Request):
        resource = self._resource(request)
        if resource is None:
            return _error(404, "NotFound", "the server could not find the requested resource")
        namespace = request.match_info.get("namespace")
        if request.method == "POST":
            return await self._create(request, resource, namespace)
        if request.method != "GET":
            return _error(405, "MethodNotAllowed", "method not allowed")
        if request.query.get("watch") in ("1", "true"):
            return await self._watch(request, resource, namespace)
        return self._list(request, resource, namespace)

    def _select(self, request, resource, namespace) -> list[dict]:
        fields = request.query.get("fieldSelector", "")
        labels = request.query.get("labelSelector", "")
        return [obj for (ns, _), obj in sorted(self.objects[resource].items())
                if (namespace is None or ns == namespace) and _selector_ok(obj, fields, labels)]

    def _list(self, request, resource, namespace):
        items = self._select(request, resource, namespace)
        start = 0
        token = request.query.get("continue", "")
        version = str(self.version)
        if token:
            try:
                version, start_text = token.split(":")
                start = int(start_text)
            except ValueError:
                return _error(400, "BadRequest", "invalid continue token")
            if int(version) < self.compacted:
                return _error(410, "Expired", "the continue token is too old; list again")
        limit = int(request.query.get("limit") or 0)
        page = items[start:start + limit] if limit else items[start:]
        meta = {"resourceVersion": version}
        if limit and start + limit < len(items):
            meta["continue"] = f"{version}:{start + limit}"
        if "as=Table" in request.headers.get("Accept", ""):
            return web.json_response(_table(resource, page, meta))
        kind = RESOURCES[resource][1]
        group = RESOURCES[resource][0]
        return web.json_response({
            "kind": kind + "List", "apiVersion": f"{group[0]}/{group[1]}" if group[0] else "v1",
            "metadata": meta, "items": page})

    async def _watch(self, request, resource, namespace):
        text = request.query.get("resourceVersion", "")
        since = int(text) if text.isdigit() and text != "0" else None
        bookmarks = request.query.get("allowWatchBookmarks") in ("true", "1")
        timeout = float(request.query.get("timeoutSeconds") or 1800)
        if since is not None and since + 1 < self.compacted and self.gone_as_http:
            return _error(410, "Expired", f"too old resource version: {since}")
        resp = web.StreamResponse(headers={"Content-Type": "application/json",
                                           "Transfer-Encoding": "chunked"})
        await resp.prepare(request)
        fields = request.query.get("fieldSelector", "")
        labels = request.query.get("labelSelector", "")

        def wanted(obj):
            ns = obj["metadata"].get("namespace", "")
            return (namespace is None or ns == namespace) and _selector_ok(obj, fields, labels)

        async def send(kind, obj):
            await resp.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")

        if since is not None and since + 1 < self.compacted:
            await send("ERROR", _status(410, "Expired", f"too old resource version: {since}"))
            return resp
        if since is None:  # "" or "0": the current state as ADDED, then changes
            for obj in self._select(request, resource, namespace):
                await send("ADDED", obj)
            since = self.version
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        cut = self._cut
        last_bookmark = loop.time()
        try:
            while loop.time() < end and cut == self._cut:
                for version, res, kind, obj in list(self.history):
                    if version > since and res == resource:
                        since = version
                        if wanted(obj):
                            await send(kind, obj)
                since = max(since, self.version)
                if bookmarks and loop.time() - last_bookmark >= self.bookmark_interval:
                    last_bookmark = loop.time()
                    kind_name = RESOURCES[resource][1]
                    await send("BOOKMARK", {"kind": kind_name, "apiVersion": "v1", "metadata": {
                        "resourceVersion": str(self.version)}})
                async with self._changed:
                    wait = min(end - loop.time(), self.bookmark_interval)
                    if wait > 0:
                        try:
                            await asyncio.wait_for(self._changed.wait(), wait)
                        except TimeoutError:
                            pass
        except (ConnectionResetError, asyncio.CancelledError):
            return resp
        return resp

    async def _create(self, request, resource, namespace):
        try:
            obj = await request.json()
        except ValueError:
            return _error(400, "BadRequest", "body is not JSON")
        if not isinstance(obj, dict) or not (obj.get("metadata") or {}).get("name"):
            return _error(422, "Invalid", "metadata.name: Required value")
        meta = obj["metadata"]
        meta["namespace"] = namespace or meta.get("namespace") or "default"
        if (meta["namespace"], meta["name"]) in self.objects[resource]:
            return _error(409, "AlreadyExists",
                          f'{resource} "{meta["name"]}" already exists')
        if request.query.get("dryRun"):
            return web.json_response(obj, status=201)
        return web.json_response(await self.put(resource, obj), status=201)

    async def _item(self, request: web.Request):
        resp = await self._item_json(request)
        if (request.method == "GET" and resp.status == 200
                and "as=Table" in request.headers.get("Accept", "")):
            obj = json.loads(resp.body)
            return web.json_response(_table(self._resource(request), [obj], {
                "resourceVersion": obj["metadata"]["resourceVersion"]}))
        return resp

    async def _item_json(self, request: web.Request):
        resource = self._resource(request)
        if resource is None:
            return _error(404, "NotFound", "the server could not find the requested resource")
        namespace = request.match_info.get("namespace", "")
        name = request.match_info["name"]
        obj = self.objects[resource].get((namespace, name))
        missing = _error(404, "NotFound", f'{resource} "{name}" not found')
        if request.method == "GET":
            return web.json_response(obj) if obj is not None else missing
        if request.method == "DELETE":
            gone = await self.delete(resource, namespace, name)
            return web.json_response(gone) if gone is not None else missing
        if request.method in ("PUT", "PATCH"):
            try:
                body = await request.json()
            except ValueError:
                return _error(400, "BadRequest", "body is not JSON")
            if request.method == "PATCH":
                if obj is None:
                    return missing
                strategic = "strategic" in request.headers.get("Content-Type", "")
                body = _merge(obj, body, strategic)
            body.setdefault("metadata", {}).update(namespace=namespace, name=name)
            return web.json_response(await self.put(resource, body))
        return _error(405, "MethodNotAllowed", "method not allowed")


def _age(obj: dict) -> str:
    created = obj["metadata"].get("creationTimestamp", "")
    try:
        seconds = int(time.time() - calendar.timegm(time.strptime(created, "%Y-%m-%dT%H:%M:%SZ")))
    except (ValueError, OverflowError):
        return "<unknown>"
    return f"{seconds}s" if seconds < 120 else f"{seconds // 60}m"


def _table(resource: str, objects: list[dict], meta: dict) -> dict:
    """The meta.k8s.io/v1 Table `kubectl get` asks for (server-side printing)."""
    columns = ["Name"]
    if resource == "services":
        columns += ["Type", "Cluster-IP", "External-IP", "Port(s)"]
    columns.append("Age")
    rows = []
    for obj in objects:
        cells = [obj["metadata"]["name"]]
        if resource == "services":
            spec = obj.get("spec", {})
            external = spec.get("externalIPs") or [
                i.get("ip") for i in obj.get("status", {}).get("loadBalancer", {}).get(
                    "ingress") or []]
            ports = ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}"
                             for p in spec.get("ports") or [])
            cells += [spec.get("type", "ClusterIP"), spec.get("clusterIP") or "<none>",
                      ",".join(external) or spec.get("externalName") or "<none>",
                      ports or "<none>"]
        cells.append(_age(obj))
        rows.append({"cells": cells, "object": {
            "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": obj["metadata"]}})
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
            "columnDefinitions": [{"name": c, "type": "string", "format": "",
                                   "description": c, "priority": 0} for c in columns],
            "rows": rows}


class FakeKubeThread:
    """FakeKube on its own event loop in a thread: synchronous calls for tests and benches."""

    def __init__(self, **kwargs):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.kube = self.call(self._make(kwargs))

    @staticmethod
    async def _make(kwargs):
        return FakeKube(**kwargs)

    def call(self, coro, timeout: float = 30.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def port(self) -> int:
        return self.kube.port

    @property
    def url(self) -> str:
        scheme = "https" if self.kube.tls else "http"
        return f"{scheme}://127.0.0.1:{self.kube.port}"

    def start(self) -> int:
        return self.call(self.kube.start())

    def stop(self) -> None:
        self.call(self.kube.stop())

    def put(self, resource: str, obj: dict) -> dict:
        return self.call(self.kube.put(resource, obj))

    def delete(self, resource: str, namespace: str, name: str):
        return self.call(self.kube.delete(resource, namespace, name))

    def compact(self) -> None:
        self.call(self.kube.compact())

    def cut_watches(self) -> None:
        self.call(self.kube.cut_watches())

    def close(self) -> None:
        try:
            self.stop()
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


def make_cert(directory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (openssl CLI): (cert.pem, key.pem); the
    certificate is its own CA, for kubectl --certificate-authority and kube-cafile."""
    cert, key = f"{directory}/kube-cert.pem", f"{directory}/kube-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=fakekube",
                    "-addext", "subjectAltName=IP:127.0.0.1",
                    "-addext", "basicConstraints=critical,CA:TRUE"],
                   check=True, capture_output=True)
    return cert, key


# --- object builders for tests ----------------------------------------------------------------


def service(name: str, namespace: str = "default", *, cluster_ip: str | None = None,
            ports=(("http", 80),), external_ips=(), lb_ips=(), headless: bool = False,
            external_name: str | None = None) -> dict:
    spec: dict = {"ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports]}
    if external_name:
        spec.update(type="ExternalName", externalName=external_name)
    elif headless:
        spec["clusterIP"] = "None"
    elif cluster_ip:
        spec["clusterIP"] = cluster_ip
    if external_ips:
        spec["externalIPs"] = list(external_ips)
    obj = {"metadata": {"name": name, "namespace": namespace}, "spec": spec}
    if lb_ips:
        obj["status"] = {"loadBalancer": {"ingress": [{"ip": ip} for ip in lb_ips]}}
    return obj


def endpoint_slice(service_name: str, endpoints, namespace: str = "default",
                   ports=(("http", 8080),), name: str | None = None,
                   address_type: str = "IPv4") -> dict:
    """endpoints: (ip, ready, hostname or None) tuples."""
    return {
        "metadata": {"name": name or f"{service_name}-abc", "namespace": namespace,
                     "labels": {"kubernetes.io/service-name": service_name}},
        "addressType": address_type,
        "endpoints": [{"addresses": [ip], "conditions": {"ready": ready},
                       **({"hostname": host} if host else {})} for ip, ready, host in endpoints],
        "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports],
    }
