"""The status page in a real browser: headless Chromium (Debian `chromium`) on the page of the
real API process, driven over the Chrome DevTools Protocol. A DOWN flip written to etcd shows
without a reload, over the event stream and over the polling fallback; record data stays text;
a refused token says so."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import aiohttp
import pytest

from apitest import ADMIN_TOKEN, HEART, LOCK, REPORT, STATUS, KubeApi
from etcdtest import async_wait_for, free_port, run_async

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")

HOSTILE = '<img src=x onerror="window.__xss=1">'
DEADLINE = 30.0


class Browser:
    """One headless Chromium in its own process group, so that every helper process it
    starts goes down with it."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="skydns-chromium-"))
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self, url: str) -> Browser:
        with open(self.dir / "chromium.log", "ab") as log:
            self.proc = subprocess.Popen(
                [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
                 "--disable-dev-shm-usage", "--disable-background-networking", "--no-first-run",
                 "--no-default-browser-check", "--disable-extensions",
                 f"--user-data-dir={self.dir / 'profile'}",
                 f"--remote-debugging-port={self.port}", url],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        return self

    def logs(self) -> str:
        path = self.dir / "chromium.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


class Page:
    """A DevTools session on one page target."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse):
        self.ws = ws
        self.last_id = 0

    async def call(self, method: str, **params) -> dict:
        self.last_id += 1
        await self.ws.send_json({"id": self.last_id, "method": method, "params": params})
        while True:
            msg = await self.ws.receive_json()
            if msg.get("id") == self.last_id:  # anything else is an event nobody asked for
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    async def eval(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait(self, expression: str, message: str):
        """Poll a JS expression until it is truthy (its value is returned). While a navigation
        is under way the document may have no body yet, or the context may be gone: not yet."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE
        error = None
        while True:
            try:
                value = await self.eval(expression)
                if value:
                    return value
            except RuntimeError as err:
                error = err
            if loop.time() >= deadline:
                raise AssertionError(f"timed out after {DEADLINE}s: {message}"
                                     + (f" (last error: {error})" if error else ""))
            await asyncio.sleep(0.1)


async def open_page(session: aiohttp.ClientSession, browser: Browser, url: str) -> Page:
    async def target():
        if browser.proc.poll() is not None:
            raise AssertionError(f"chromium exited: {browser.logs()}")
        try:
            async with session.get(f"http://127.0.0.1:{browser.port}/json") as resp:
                targets = await resp.json(content_type=None)
        except aiohttp.ClientError:
            return None
        pages = [t for t in targets if t.get("type") == "page" and t["url"].startswith(url)]
        return pages[0] if pages else None

    found = await async_wait_for(target, timeout=DEADLINE, interval=0.1,
                                 message="chromium's DevTools endpoint lists the page")
    ws = await session.ws_connect(found["webSocketDebuggerUrl"], max_msg_size=0)
    return Page(ws)


def row_status(ip: str) -> str:
    return f"document.querySelector('tr[data-ip=\"{ip}\"]')?.dataset.status"


@pytest.fixture
def api(etcd):
    api = KubeApi(etcd.endpoint).start()
    yield api
    api.stop()


@pytest.fixture
def browser():
    browser = Browser()
    yield browser
    browser.stop()


def seed(api: KubeApi, etcd) -> None:
    assert api.post("cctv2", {"type": "A", "ips": ["192.168.10.1", "192.168.10.2"]})[0] == 201
    etcd.put(REPORT + "192.168.10.1", {"hostname": "scan-1", "updatetime": "now"})
    etcd.put(REPORT + "192.168.10.2", {"hostname": HOSTILE})
    etcd.put(HEART + "scan-1", {"hostname": "scan-1"})
    etcd.put(LOCK + "sched-1", "sched-1")  # first: lowest create revision, the leader
    etcd.put(LOCK + "sched-2", "sched-2")


def test_down_flip_shows_without_reload(api, etcd, browser):
    seed(api, etcd)
    base = f"http://127.0.0.1:{api.port}/"
    url = f"{base}?token={ADMIN_TOKEN}"
    browser.start(url)

    async def main():
        async with aiohttp.ClientSession() as session:
            page = await open_page(session, browser, base)
            await page.wait(f"{row_status('192.168.10.1')} === 'UP'", "page shows .1 UP")
            text = await page.wait(
                "document.body.innerText.includes('sched-1') && document.body.innerText",
                "page shows the leader")
            assert "scan-1" in text and "sched-2" in text
            loaded_at = await page.eval("window.skydnsStatusLoadedAt")
            await page.eval("window.testMarker = 'still the same page'")

            etcd.put(STATUS + "192.168.10.1", json.dumps({
                "status": "DOWN", "ports": [], "checks": [{"http": "/healthz", "port": 8080}],
                "reason": "http:8080/healthz: status 503, expected 200-399"}))
            await page.wait(f"{row_status('192.168.10.1')} === 'DOWN'", "page shows .1 DOWN")
            row = await page.eval("document.querySelector('tr[data-ip=\"192.168.10.1\"]')"
                                  ".innerText")
            assert "http:8080/healthz" in row and "status 503, expected 200-399" in row
            assert await page.eval("window.testMarker") == "still the same page"
            assert await page.eval("window.skydnsStatusLoadedAt") == loaded_at
            assert await page.eval("document.body.dataset.mode") == "live"

            # A hostile scanner name is shown as text, never run or parsed as markup.
            text = await page.eval("document.body.innerText")
            assert HOSTILE in text
            assert await page.eval("document.querySelectorAll('img').length") == 0
            assert await page.eval("window.__xss") is None

            # A wrong token: the page says 401 and how to fix it.
            await page.call("Page.navigate", url=f"{base}?token=wrong")
            await page.wait("document.body.dataset.state === 'unauthorized'", "401 shown")
            banner = await page.eval("document.getElementById('banner').innerText")
            assert "401" in banner and "?token=" in banner
            await page.ws.close()

    run_async(main(), timeout=3 * DEADLINE)


def test_polling_fallback_without_event_stream(api, etcd, browser):
    seed(api, etcd)
    base = f"http://127.0.0.1:{api.port}/"
    browser.start("about:blank")

    async def main():
        async with aiohttp.ClientSession() as session:
            page = await open_page(session, browser, "about:blank")
            # As in a browser (or behind a proxy) without Server-Sent Events.
            await page.call("Page.enable")
            await page.call("Page.addScriptToEvaluateOnNewDocument",
                            source="window.EventSource = undefined;")
            await page.call("Page.navigate", url=f"{base}?token={ADMIN_TOKEN}")
            await page.wait(f"{row_status('192.168.10.2')} === 'UP'", "page shows .2 UP")
            assert await page.eval("document.body.dataset.mode") == "polling"
            await page.eval("window.testMarker = 1")
            etcd.put(STATUS + "192.168.10.2", json.dumps({"status": "DOWN"}))
            await page.wait(f"{row_status('192.168.10.2')} === 'DOWN'", "page shows .2 DOWN")
            assert await page.eval("window.testMarker") == 1
            await page.ws.close()

    run_async(main(), timeout=3 * DEADLINE)


# An EventSource that connects and never delivers (a proxy holding the stream back).
STALLED_STREAM = """
window.EventSource = function () { this.readyState = 0; };
window.EventSource.CLOSED = 2;
window.EventSource.prototype.addEventListener = function () {};
window.EventSource.prototype.close = function () {};
"""


def test_first_load_shows_the_current_state_and_history(api, etcd, browser):
    seed(api, etcd)
    maint = {"reason": "disk swap", "by": "ops", "since": "2024-05-01T12:05:00.000Z"}
    etcd.put(STATUS + "192.168.10.2", json.dumps({
        "status": "UP", "since": "2024-05-01T12:00:00.000Z", "maintenance": maint,
        "lastfailure": {"time": "2024-05-01T11:00:00.000Z", "reason": "tcp 80: refused",
                        "checker": "scan-1"}}))
    etcd.put("/skydns/monitor/history/192.168.10.2", json.dumps([
        {"time": "2024-05-01T12:05:00.000Z", "from": "UP", "to": "MAINT",
         "reason": "disk swap", "checker": "ops"},
        {"time": "2024-05-01T12:00:00.000Z", "from": "DOWN", "to": "UP", "reason": None,
         "checker": "scan-1"}]))
    base = f"http://127.0.0.1:{api.port}/"
    browser.start("about:blank")

    async def main():
        async with aiohttp.ClientSession() as session:
            page = await open_page(session, browser, "about:blank")
            await page.call("Page.enable")
            await page.call("Page.addScriptToEvaluateOnNewDocument", source=STALLED_STREAM)
            # The API's status view may still be loading from etcd: wait until it answers
            # with everything, so the page's first load can only be the current state.
            await async_wait_for(lambda: api_ready(api), timeout=DEADLINE,
                                 message="the status view has loaded")
            await page.call("Page.navigate", url=f"{base}?token={ADMIN_TOKEN}")
            await page.wait(f"{row_status('192.168.10.2')} === 'UP'",
                            "the first load shows the rows without the stream")
            assert await page.eval("document.getElementById('updated').innerText") != "never"
            row = await page.eval(
                "document.querySelector('tr[data-ip=\"192.168.10.2\"]').innerText")
            assert "MAINT" in row and "disk swap" in row and "tcp 80: refused" in row
            assert await page.eval(
                "document.querySelector('tr[data-ip=\"192.168.10.2\"]').dataset.maint") == "1"
            await page.eval("document.querySelector('button.addr[data-ip=\"192.168.10.2\"]')"
                            ".click()")
            await page.wait("document.body.dataset.history === '192.168.10.2'",
                            "the address' history opens")
            text = await page.eval("document.getElementById('history').innerText")
            assert "UP \u2192 MAINT" in text and "DOWN \u2192 UP" in text
            assert "2 changes recorded" in text and "tcp 80: refused" in text
            await page.ws.close()

    run_async(main(), timeout=3 * DEADLINE)


async def api_ready(api: KubeApi) -> bool:
    status, text = await asyncio.to_thread(api.request, "GET", "/skydns/status")
    return status == 200 and json.loads(text)["ready"]
