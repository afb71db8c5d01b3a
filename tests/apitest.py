"""Helpers for the record API tests: the API as a real process, or in-process for the many
refusal cases, plus plain HTTP and etcd inspection helpers.

Import as `from apitest import ...` (tests/ is on sys.path, like etcdtest).
"""

from __future__ import annotations

import asyncio
import http.client
import json
from contextlib import asynccontextmanager
from pathlib import Path

from etcdtest import free_port
from proctest import ROOT as ROOT  # re-exported: tests take the checkout root from here
from proctest import Process

ADMIN_TOKEN = "123456789"
TOKENS = {"alice": "alice-token-0001", "bob": "bob-token-0002"}
STATUS = "/skydns/monitor/status/"
REFS = "/skydns/monitor/refs/"
REPORT = "/skydns/monitor/report/"
HEART = "/skydns/monitor/heart/"
LOCK = "/skydns/monitor/lock/"
HISTORY = "/skydns/monitor/history/"


def write_config(path: Path, etcd_endpoint: str, port: int, zone: str = "skydns.local.",
                 admin: str = ADMIN_TOKEN, tokens: dict | None = None, **sections) -> Path:
    conf: dict[str, dict] = {
        "General": {"domain": zone},
        "SkydnsApi": {"api-address": f"127.0.0.1:{port}", "skydns-auth": admin},
        "Tokens": dict(TOKENS if tokens is None else tokens),
        "Etcd": {"etcd-servers": etcd_endpoint, "etcd-timeout": 1.0},
        "Log": {"log-level": "info"},
    }
    for section, values in sections.items():
        conf.setdefault(section, {}).update(values)
    lines = []
    for section, values in conf.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {value}" for key, value in values.items())
    path.write_text("\n".join(lines) + "\n")
    return path


class KubeApi(Process):
    """`python -m kubeapi` on a free 127.0.0.1 port, stopped with SIGTERM."""

    module, what = "kubeapi", "kubeapi"

    def __init__(self, etcd_endpoint: str, **config):
        super().__init__("skydns-api-test-", "api.log")
        self.port = free_port()
        self.config = write_config(self.dir / "api.conf", etcd_endpoint, self.port, **config)

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def ready(self) -> bool:
        self.assert_running()
        try:
            return self.request("GET", "/healthz", token=None)[0] == 200
        except OSError:
            return False

    def request(self, method: str, path: str, body=None, token: str | None = ADMIN_TOKEN,
                headers: dict | None = None, timeout: float = 15.0) -> tuple[int, str]:
        return http_request(self.port, method, path, body, token, headers, timeout)

    def post(self, name: str, body, token: str | None = ADMIN_TOKEN) -> tuple[int, str]:
        return self.request("POST", f"/skydns/api/{name}", body, token)

    def get_json(self, path: str, token: str | None = ADMIN_TOKEN):
        status, text = self.request("GET", path, token=token)
        assert status == 200, (status, text)
        return json.loads(text)


def http_request(port: int, method: str, path: str, body=None, token: str | None = None,
                 headers: dict | None = None, timeout: float = 15.0) -> tuple[int, str]:
    """One request on a fresh connection; body dict -> JSON, str/bytes as is."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = body
        hdrs = dict(headers or {})
        if token is not None:
            hdrs.setdefault("Authorization", f"Bearer {token}")
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", errors="replace")
    finally:
        conn.close()


# --- in-process -----------------------------------------------------------------------------


@asynccontextmanager
async def api_client(etcd_endpoint: str, zone: str = "skydns.local.", admin: str = ADMIN_TOKEN,
                     tokens: dict | None = None, max_body: int = 65536,
                     etcd_timeout: float = 1.0, status: bool = False,
                     status_public: bool = False, keepalive: float = 15.0):
    """An aiohttp TestClient on the real app, backed by the real etcd at etcd_endpoint.

    status=True adds the status page, its etcd mirrors and /metrics (as the process has them);
    the feed is then `client.app[FEED]`."""
    from aiohttp.test_utils import TestClient, TestServer

    from kubeapi.auth import Authenticator
    from kubeapi.etcd import EtcdStore
    from kubeapi.metrics import ApiMetrics
    from kubeapi.plan import Layout
    from kubeapi.routes import make_app
    from kubeapi.service import RecordService
    from kubeapi.statusfeed import StatusFeed

    section = {"etcd-servers": [etcd_endpoint], "etcd-timeout": etcd_timeout,
               "status-path": STATUS, "report-path": REPORT, "heart-path": HEART,
               "lock-path": LOCK, "history-path": HISTORY}
    store = EtcdStore(section)
    service = RecordService(store, Layout(zone, STATUS, REFS),
                            deadline=2 * etcd_timeout)
    feed = StatusFeed(section, zone, debounce=0.05) if status else None
    if feed is not None:
        service.holders = feed.holders  # as the process wires it
    metrics = ApiMetrics(store, service, feed) if status else None
    app = make_app(service, Authenticator(admin, TOKENS if tokens is None else tokens), zone,
                   max_body, feed=feed, metrics=metrics, status_public=status_public,
                   keepalive=keepalive, etcd_paths=section)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    if feed is not None:
        await feed.start()
    try:
        yield client
    finally:
        await client.close()
        if feed is not None:
            await feed.stop()
        await store.close()


def run(coro, timeout: float = 60.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def scenario(etcd, coro_fn, **kwargs):
    """Run `coro_fn(client)` against an api_client on `etcd` (kwargs go to api_client)."""
    async def main():
        async with api_client(etcd.endpoint, **kwargs) as client:
            await coro_fn(client)
    run(main())


def auth(token: str = ADMIN_TOKEN) -> dict:
    return {"Authorization": f"Bearer {token}"}


def records_under(etcd, prefix: str = "/skydns/") -> dict[str, dict]:
    """Every key under prefix with its JSON value decoded."""
    out = {}
    for key, value in etcd.get_prefix(prefix).items():
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


# --- status page ----------------------------------------------------------------------------


async def sse_events(response):
    """(event, data) pairs from a text/event-stream response, and ("comment", text) for the
    lines that start with ':'; as the browser's EventSource splits them."""
    event, data = "message", []
    while True:
        raw = await response.content.readline()
        if not raw:
            return
        line = raw.decode().rstrip("\r\n")
        if line == "":
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif line.startswith(":"):
            yield "comment", line[1:].strip()
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)
