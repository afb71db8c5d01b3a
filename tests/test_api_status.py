"""The status view: the pure snapshot from mirrored keys, the JSON and event-stream routes
against a real etcd, and who may read them (401 unless [SkydnsApi] status-public)."""

import asyncio
import json

from kubeapi.statuspage import CSP, SCRIPT
from kubeapi.statusview import Address, StatusState, build_snapshot
from skydns.store import KV

from apitest import (
    ADMIN_TOKEN,
    HEART,
    LOCK,
    REPORT,
    STATUS,
    KubeApi,
    api_client,
    auth,
    run,
    sse_events,
)
from etcdtest import async_wait_for, wait_for

ZONE_KEY = "/skydns/local/skydns/"
PREFIXES = {"records": ZONE_KEY, "status": STATUS, "report": REPORT, "heart": HEART,
            "lock": LOCK}


def kv(key: str, value, revision: int = 1) -> KV:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return KV(key, raw, revision, 0)


def loaded_state() -> StatusState:
    state = StatusState("skydns.local.", PREFIXES)
    state.reset("records", [
        kv(ZONE_KEY + "cctv2/aaaa0001", {"host": "192.168.10.2", "type": "A", "owner": "admin"}),
        kv(ZONE_KEY + "cctv2/aaaa0002", {"host": "192.168.10.1", "type": "A", "owner": "admin"}),
        kv(ZONE_KEY + "tcp/http/web/bbbb0001",
           {"host": "10.0.0.1", "type": "SRV", "port": 8080, "owner": "alice"}),
        kv(ZONE_KEY + "legacy/x1", {"host": "10.0.0.9"}),  # SkyDNS style, written by hand
        kv(ZONE_KEY + "six/cccc0001", {"host": "2001:db8::1", "type": "AAAA", "owner": "bob"}),
        kv(ZONE_KEY + "web/dddd0001", {"text": "v=spf1", "type": "TXT", "owner": "admin"}),
        kv(ZONE_KEY + "alias/b9c1aaaf", {"host": "cctv2.skydns.local.", "type": "CNAME"}),
        kv(ZONE_KEY + "broken/eeee0001", b"{not json"),
    ], 20)
    state.reset("status", [
        kv(STATUS + "192.168.10.1", {"status": "UP", "ports": []}),
        kv(STATUS + "192.168.10.2", {"status": "down"}),
        kv(STATUS + "10.0.0.1", b"garbage"),
        kv(STATUS + "10.99.0.1", {"status": "UP"}),  # monitored, but no record names it
    ], 21)
    state.reset("report", [
        kv(REPORT + "192.168.10.1", {"hostname": "scan-1", "updatetime": "x"}),
        kv(REPORT + "192.168.10.2", {"hostname": "scan-gone"}),
        kv(REPORT + "10.0.0.9", {"hostname": "scan-2"}),
        kv(REPORT + "10.0.0.1", b"[]"),
    ], 22)
    state.reset("heart", [kv(HEART + "scan-1", {"hostname": "scan-1"}),
                          kv(HEART + "scan-2", {"hostname": "scan-2"})], 23)
    state.reset("lock", [kv(LOCK + "sched-b", b"sched-b", 12),
                         kv(LOCK + "sched-a", b"sched-a", 15)], 24)
    return state


def test_snapshot_from_mirrored_keys():
    assert loaded_state().snapshot() == {
        "zone": "skydns.local.",
        "revision": 24,
        "names": [
            {"name": "cctv2.skydns.local.", "addresses": [
                {"ip": "192.168.10.1", "type": "A", "status": "UP", "scanner": "scan-1",
                 "scanner_live": True, "checks": [], "reason": None,
                 "since": None, "maintenance": None},
                {"ip": "192.168.10.2", "type": "A", "status": "DOWN", "scanner": "scan-gone",
                 "scanner_live": False, "checks": [], "reason": None,
                 "since": None, "maintenance": None}]},
            {"name": "legacy.skydns.local.", "addresses": [
                {"ip": "10.0.0.9", "type": "A", "status": None, "scanner": "scan-2",
                 "scanner_live": True, "checks": [], "reason": None,
                 "since": None, "maintenance": None}]},
            {"name": "six.skydns.local.", "addresses": [
                {"ip": "2001:db8::1", "type": "AAAA", "status": None, "scanner": None,
                 "scanner_live": False, "checks": [], "reason": None,
                 "since": None, "maintenance": None}]},
            {"name": "web.http.tcp.skydns.local.", "addresses": [
                {"ip": "10.0.0.1", "type": "SRV", "port": 8080, "status": None,
                 "scanner": None, "scanner_live": False, "checks": [], "reason": None,
                 "since": None, "maintenance": None}]},
        ],
        "names_total": 4,
        "leader": "sched-b",
        "schedulers": ["sched-b", "sched-a"],
        "scanners": [{"hostname": "scan-1", "addresses": 1},
                     {"hostname": "scan-2", "addresses": 1}],
        "counts": {"addresses": 5, "up": 1, "down": 1, "unknown": 3, "unassigned": 2,
                   "maint": 0},
    }


def test_snapshot_shows_checks_and_the_last_failure():
    state = loaded_state()
    reason = "http:8080/healthz: status 503, expected 200-399"
    state.apply("status", [("put", kv(STATUS + "192.168.10.2", {
        "status": "DOWN", "reason": reason, "checks": [
            {"http": "/healthz", "port": 8080},
            {"http": "/", "port": 8443, "scheme": "https", "expect": "200"}, "junk"]}, 30))], 30)
    rows = {row["ip"]: row for name in state.snapshot()["names"] for row in name["addresses"]}
    assert rows["192.168.10.2"]["checks"][:2] == ["http:8080/healthz", "https:8443/ expect=200"]
    assert rows["192.168.10.2"]["checks"][2].startswith("(unreadable check")
    assert rows["192.168.10.2"]["reason"] == reason
    assert rows["192.168.10.1"]["checks"] == [] and rows["192.168.10.1"]["reason"] is None
    state.apply("status", [("delete", kv(STATUS + "192.168.10.2", b"", 31))], 31)
    assert "192.168.10.2" not in state.details
    # UP again: the last failure stays on the page; since and maintenance are shown
    maint = {"reason": "disk swap", "by": "ops", "since": "2024-05-01T12:05:00.000Z"}
    state.apply("status", [("put", kv(STATUS + "192.168.10.1", {
        "status": "UP", "since": "2024-05-01T12:00:00.000Z", "maintenance": maint,
        "lastfailure": {"time": "t", "reason": reason, "checker": "scan-1"}}, 32))], 32)
    snap = state.snapshot()
    row = snap["names"][0]["addresses"][0]
    assert (row["reason"], row["since"], row["maintenance"]) == (
        reason, "2024-05-01T12:00:00.000Z", maint)
    assert snap["counts"]["maint"] == 1


def test_events_change_the_snapshot():
    changes = []
    state = loaded_state()
    state.on_change = lambda: changes.append(state.version)
    state.apply("status", [("put", kv(STATUS + "192.168.10.1", {"status": "DOWN"}, 30))], 30)
    state.apply("records", [
        ("delete", kv(ZONE_KEY + "legacy/x1", b"", 31)),
        ("put", kv(ZONE_KEY + "cctv2/aaaa0003", {"host": "192.168.10.3", "type": "A"}, 31)),
        # A record changed into something that is no address any more drops out.
        ("put", kv(ZONE_KEY + "six/cccc0001", {"text": "t", "type": "TXT"}, 31)),
    ], 31)
    # The leader's key is re-put (same create revision: it keeps its place), then a new
    # candidate joins behind; then the leader goes and the oldest remaining one leads.
    state.apply("lock", [("put", kv(LOCK + "sched-b", b"sched-b", 32)),
                         ("put", kv(LOCK + "sched-c", b"sched-c", 32))], 32)
    snap = state.snapshot()
    assert snap["schedulers"] == ["sched-b", "sched-a", "sched-c"]
    state.apply("lock", [("delete", kv(LOCK + "sched-b", b"", 33))], 33)
    state.apply("heart", [("delete", kv(HEART + "scan-1", b"", 34))], 34)
    state.apply("report", [("delete", kv(REPORT + "192.168.10.2", b"", 35))], 35)
    snap = state.snapshot()
    assert len(changes) == 6 and snap["revision"] == 35
    assert snap["leader"] == "sched-a" and snap["schedulers"] == ["sched-a", "sched-c"]
    assert [n["name"] for n in snap["names"]] == ["cctv2.skydns.local.",
                                                  "web.http.tcp.skydns.local."]
    assert snap["names"][0]["addresses"] == [
        {"ip": "192.168.10.1", "type": "A", "status": "DOWN", "scanner": "scan-1",
         "scanner_live": False, "checks": [], "reason": None,
                 "since": None, "maintenance": None},
        {"ip": "192.168.10.2", "type": "A", "status": "DOWN", "scanner": None,
         "scanner_live": False, "checks": [], "reason": None,
                 "since": None, "maintenance": None},
        {"ip": "192.168.10.3", "type": "A", "status": None, "scanner": None,
         "scanner_live": False, "checks": [], "reason": None,
                 "since": None, "maintenance": None},
    ]
    assert snap["scanners"] == [{"hostname": "scan-2", "addresses": 0}]
    # A reload replaces what a source held.
    state.reset("records", [], 40)
    assert state.snapshot()["names"] == [] and state.snapshot()["counts"]["addresses"] == 0


def test_status_and_report_keys_are_matched_by_canonical_address():
    # etcdctl users write addresses as they like; the record holds the canonical form.
    state = StatusState("skydns.local.", PREFIXES)
    state.reset("records", [
        kv(ZONE_KEY + "six/cccc0001", {"host": "2001:DB8::1", "type": "AAAA"})], 10)
    state.reset("status", [kv(STATUS + "2001:DB8:0::1", {"status": "DOWN"}),
                           kv(STATUS + "not-an-ip", {"status": "DOWN"})], 11)
    state.reset("report", [kv(REPORT + "2001:db8:0:0::1", {"hostname": "scan-1"}),
                           kv(REPORT + "not-an-ip", {"hostname": "scan-1"})], 12)
    state.reset("heart", [kv(HEART + "scan-1", {"hostname": "scan-1"})], 13)
    snap = state.snapshot()
    assert snap["names"] == [{"name": "six.skydns.local.", "addresses": [
        {"ip": "2001:db8::1", "type": "AAAA", "status": "DOWN", "scanner": "scan-1",
         "scanner_live": True, "checks": [], "reason": None,
                 "since": None, "maintenance": None}]}]
    assert snap["scanners"] == [{"hostname": "scan-1", "addresses": 1}]
    state.apply("status", [("delete", kv(STATUS + "2001:DB8:0::1", b"", 14))], 14)
    state.apply("report", [("delete", kv(REPORT + "2001:db8:0:0::1", b"", 15))], 15)
    state.apply("status", [("delete", kv(STATUS + "not-an-ip", b"", 16))], 16)
    row = state.snapshot()["names"][0]["addresses"][0]
    assert (row["status"], row["scanner"]) == (None, None)


def test_listing_and_status_use_canonical_status_keys(etcd):
    async def main():
        async with api_client(etcd.endpoint, status=True) as client:
            resp = await client.post("/skydns/api/six", json={"type": "AAAA",
                                                              "ips": ["2001:db8::5"]},
                                     headers=auth())
            assert resp.status == 201
            # A scanner (or an operator) that spells the address differently.
            etcd.delete(STATUS + "2001:db8::5")
            etcd.put(STATUS + "2001:DB8::5", {"status": "DOWN"})
            etcd.put(REPORT + "2001:DB8::5", {"hostname": "scan-1"})
            listing = await (await client.get("/skydns/api/six", headers=auth())).json()
            assert listing["records"][0]["status"] == {"2001:db8::5": "DOWN"}

            async def page_row():
                snap = await (await client.get("/skydns/status", headers=auth())).json()
                rows = [a for n in snap["names"] for a in n["addresses"]]
                return rows and rows[0]["status"] == "DOWN" and rows[0]["scanner"] and rows[0]

            row = await async_wait_for(page_row, timeout=15, message="status shows DOWN")
            assert (row["ip"], row["scanner"]) == ("2001:db8::5", "scan-1")

    run(main())


def test_snapshot_caps_names_and_counts_shared_addresses_once():
    addrs = [Address(f"n{i:03d}.z.", "A", "10.0.0.1") for i in range(10)]
    snap = build_snapshot("z.", addrs, {"10.0.0.1": "UP"}, {"10.0.0.1": "s"}, ["s"], {},
                          max_names=3)
    assert [n["name"] for n in snap["names"]] == ["n000.z.", "n001.z.", "n002.z."]
    assert snap["names_total"] == 10 and snap["counts"]["up"] == 10
    assert snap["scanners"] == [{"hostname": "s", "addresses": 1}]
    assert snap["leader"] is None and snap["schedulers"] == []


def test_page_script_never_writes_markup():
    # Record data reaches the page through textContent only (the browser test checks a
    # hostile scanner name stays text).
    assert "innerHTML" not in SCRIPT and "insertAdjacentHTML" not in SCRIPT
    assert "document.write" not in SCRIPT
    assert "script-src 'sha256-" in CSP


# --- over HTTP, real process --------------------------------------------------------------------


def test_status_needs_a_token_but_the_page_and_metrics_do_not(etcd):
    api = KubeApi(etcd.endpoint).start()
    try:
        for path in ("/skydns/status", "/skydns/status/events"):
            assert api.request("GET", path, token=None) == (
                401, "ERR, missing token: pass ?token= or Authorization: Bearer <token>\n")
            assert api.request("GET", path, token="wrong") == (401, "ERR, invalid token\n")
            assert api.request("GET", path + "?token=wrong", token=None)[0] == 401
        status, text = api.request("GET", "/", token=None)
        assert status == 200 and "<title>skydns status</title>" in text
        assert "192.168" not in text  # the shell holds no data
        assert api.request("GET", "/metrics", token=None)[0] == 200
        etcd.put(ZONE_KEY + "cctv2/aaaa0001", {"host": "192.168.10.1", "type": "A"})
        etcd.put(STATUS + "192.168.10.1", {"status": "UP"})

        def shows_address():
            status, text = api.request("GET", f"/skydns/status?token={ADMIN_TOKEN}", token=None)
            assert status == 200, text
            snap = json.loads(text)
            return snap["ready"] and snap["names"] and snap

        snap = wait_for(shows_address, timeout=15, message="status shows the record")
        assert snap["connected"] is True
        assert snap["names"] == [{"name": "cctv2.skydns.local.", "addresses": [
            {"ip": "192.168.10.1", "type": "A", "status": "UP", "scanner": None,
             "scanner_live": False, "checks": [], "reason": None,
                 "since": None, "maintenance": None}]}]
    finally:
        api.stop()


def test_status_public(etcd):
    api = KubeApi(etcd.endpoint, SkydnsApi={"status-public": "true"}).start()
    try:
        status, text = api.request("GET", "/skydns/status", token=None)
        assert status == 200 and json.loads(text)["zone"] == "skydns.local."
        # The records themselves still need a token.
        assert api.request("GET", "/skydns/api", token=None)[0] == 401
    finally:
        assert api.stop() == 0


# --- the event stream, in process ---------------------------------------------------------------


def test_event_stream_pushes_changes_and_keeps_alive(etcd):
    async def main():
        async with api_client(etcd.endpoint, status=True, keepalive=0.2) as client:
            resp = await client.get("/skydns/status/events", headers=auth())
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "text/event-stream"
            events = sse_events(resp)

            async def next_snapshot(check):
                async for event, data in events:
                    if event == "snapshot" and check(json.loads(data)):
                        return json.loads(data)

            async def until(check):
                return await asyncio.wait_for(next_snapshot(check), 15)

            await until(lambda s: s["ready"])
            assert (await client.post("/skydns/api/cctv2", json={"type": "A",
                                                                 "ips": ["192.168.10.1"]},
                                      headers=auth())).status == 201
            etcd.put(REPORT + "192.168.10.1", {"hostname": "scan-1"})
            etcd.put(HEART + "scan-1", {"hostname": "scan-1"})
            etcd.put(LOCK + "sched-1", "sched-1")

            def up_and_owned(snap):
                rows = [a for n in snap["names"] for a in n["addresses"]]
                return (rows and rows[0]["status"] == "UP" and rows[0]["scanner_live"]
                        and snap["leader"] == "sched-1")

            await until(up_and_owned)
            etcd.put(STATUS + "192.168.10.1", {"status": "DOWN"})
            snap = await until(lambda s: s["counts"]["down"] == 1)
            assert snap["names"][0]["addresses"][0]["status"] == "DOWN"

            async def keepalive():
                async for event, _data in events:
                    if event == "comment":
                        return True
            assert await asyncio.wait_for(keepalive(), 15)
            resp.close()

    run(main())


def test_open_streams_do_not_hold_the_shutdown(etcd):
    api = KubeApi(etcd.endpoint).start()

    async def main():
        import aiohttp

        async with aiohttp.ClientSession() as session:
            url = f"http://{api.addr}/skydns/status/events"
            async with session.get(url, headers=auth()) as resp:
                events = sse_events(resp)
                assert (await events.__anext__())[0] == "snapshot"
                # SIGTERM with the stream open: the server ends it and exits cleanly
                # (KubeApi.stop kills, and returns -9, if that takes 10 s).
                assert await asyncio.to_thread(api.stop) == 0
                assert [e async for e in events if e[0] != "comment"] == []

    try:
        run(main())
    finally:
        api.stop()
    assert "Traceback" not in api.logs()
