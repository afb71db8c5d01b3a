"""GET /skydns/health[/ip] and PUT/DELETE maintenance against a real etcd: who may call them,
what bad input gets, and what they write (the status value and a history entry)."""

import json

from kubeapi.statushttp import FEED

from apitest import ADMIN_TOKEN, HISTORY, REPORT, STATUS, TOKENS, auth, scenario
from etcdtest import async_wait_for

ZONE_KEY = "/skydns/local/skydns/"
ALICE, BOB = auth(TOKENS["alice"]), auth(TOKENS["bob"])
JSON = {**auth(), "Accept": "application/json"}


async def call(client, method, path, body=None, headers=None, raw=None):
    data = raw if raw is not None else (None if body is None else json.dumps(body))
    resp = await client.request(method, path, data=data,
                                headers=JSON if headers is None else headers)
    text = await resp.text()
    try:
        return resp.status, json.loads(text)
    except ValueError:
        return resp.status, text


def test_health_lists_every_address_whoever_wrote_it(etcd):
    etcd.put(ZONE_KEY + "legacy/x1", {"host": "10.0.0.9"})  # by hand, no status key
    etcd.put(ZONE_KEY + "six/a1", {"host": "2001:db8::1", "type": "AAAA", "owner": "bob"})
    etcd.put(STATUS + "2001:DB8::1", {"status": "DOWN", "since": "2024-05-01T12:00:00.000Z",
                                      "reason": "tcp 80: refused", "checker": "scan-1"})
    etcd.put(REPORT + "2001:db8::1", {"hostname": "scan-1"})
    etcd.put("/skydns/monitor/heart/scan-1", {"hostname": "scan-1", "pid": 1,
                                             "isolated": True})

    async def go(c):
        status, doc = await call(c, "POST", "/skydns/api/web",
                                 {"type": "A", "ips": ["10.0.0.1"]})
        assert status == 201
        status, doc = await call(c, "GET", "/skydns/health")
        assert status == 200
        rows = {row["ip"]: row for row in doc["addresses"]}
        assert rows["10.0.0.1"]["status"] == "UP"
        assert rows["10.0.0.1"]["names"] == ["web.skydns.local."]
        assert rows["10.0.0.9"]["status"] is None  # held, not monitored
        assert rows["2001:db8::1"] | {"names": 0} == {
            "ip": "2001:db8::1", "status": "DOWN", "since": "2024-05-01T12:00:00.000Z",
            "reason": "tcp 80: refused", "checker": "scan-1", "maintenance": None,
            "scanner": "scan-1", "names": 0}
        # the heartbeat's own fields ride along, whatever a newer scanner adds
        assert doc["scanners"] == [{"hostname": "scan-1", "pid": 1, "isolated": True,
                                    "name": "scan-1", "alive": True, "assigned": 1}]
        assert doc["counts"]["down"] == 1
        assert (await call(c, "GET", "/skydns/health", headers={}))[0] == 401

    scenario(etcd, go)


def test_maintenance_set_and_cleared_with_history(etcd):
    async def go(c):
        await call(c, "POST", "/skydns/api/web", {"type": "AAAA", "ips": ["2001:db8::5"]})
        etcd.put(STATUS + "2001:db8::5", {"status": "UP", "ports": [80], "checks": [],
                                          "since": "2024-05-01T12:00:00.000Z"})
        path = "/skydns/health/2001:DB8:0::05/maintenance"  # any spelling of the address
        status, doc = await call(c, "PUT", path, {"reason": "disk swap"})
        assert status == 200 and doc["maintenance"]["reason"] == "disk swap"
        assert doc["maintenance"]["by"] == "admin" and doc["status"] == "UP"
        value = json.loads(etcd.get(STATUS + "2001:db8::5"))
        assert value["ports"] == [80] and value["maintenance"]["since"]
        status, one = await call(c, "GET", "/skydns/health/2001:db8::5")
        assert status == 200 and one["history"][0]["to"] == "MAINT"
        assert one["history"][0]["reason"] == "disk swap"
        assert "lastfailure" in one
        assert (await call(c, "DELETE", path))[0] == 200
        assert "maintenance" not in json.loads(etcd.get(STATUS + "2001:db8::5"))
        status, doc = await call(c, "DELETE", path)
        assert status == 404 and "not in maintenance" in doc["error"]
        history = json.loads(etcd.get(HISTORY + "2001:db8::5"))
        assert [(e["from"], e["to"]) for e in history] == [("MAINT", "UP"), ("UP", "MAINT")]

    scenario(etcd, go)


def test_bad_requests_are_refused(etcd):
    async def go(c):
        await call(c, "POST", "/skydns/api/web", {"type": "A", "ips": ["10.0.0.7"]},
                   headers=ALICE)
        maint = "/skydns/health/10.0.0.7/maintenance"
        assert (await call(c, "PUT", maint, {"reason": "x"}, headers={}))[0] == 401
        assert (await call(c, "PUT", maint, {"reason": "x"}, headers=auth("nope")))[0] == 401
        for body, raw in ((None, None), ({}, None), ({"reason": ""}, None),
                          ({"reason": "x" * 201}, None), ({"reason": 5}, None),
                          ({"reason": "x", "by": "me"}, None), (None, b"{nope"),
                          ([], None)):
            status, doc = await call(c, "PUT", maint, body, raw=raw)
            assert status == 400 and doc["status"] == 400, (body, raw, doc)
        status, doc = await call(c, "PUT", maint, raw=b'{"reason": "' + b"x" * 5000 + b'"}')
        assert status == 413 and doc["status"] == 413
        status, doc = await call(c, "PUT", "/skydns/health/10.0.0.300/maintenance",
                                 {"reason": "x"})
        assert status == 400 and "not an IP address" in doc["error"]
        assert (await call(c, "GET", "/skydns/health/not-an-ip"))[0] == 400
        assert (await call(c, "GET", "/skydns/health/10.9.9.9"))[0] == 404
        assert (await call(c, "PUT", "/skydns/health/10.9.9.9/maintenance",
                           {"reason": "x"}))[0] == 404
        # an owner may take out only what its own records hold
        assert (await call(c, "PUT", maint, {"reason": "x"}, headers=BOB))[0] == 403
        status, doc = await call(c, "PUT", maint, {"reason": "x"}, headers=ALICE)
        assert status == 200 and doc["maintenance"]["by"] == "alice"
        assert (await call(c, "DELETE", maint, headers=auth(ADMIN_TOKEN)))[0] == 200

    scenario(etcd, go)


def test_delete_keeps_monitor_keys_of_addresses_another_record_serves(etcd):
    """An API delete of an address' last API record removes status/<ip> only when no record
    (hand-written ones included) holds the address any more: with the zone mirror loaded,
    and without it (the planner then reads the zone)."""
    async def go(c, mirrored):
        ip = "10.0.0.20" if mirrored else "10.0.0.21"
        etcd.put(ZONE_KEY + f"legacy{int(mirrored)}/x1", {"host": ip})  # etcdctl, no refs
        if mirrored:
            feed = c.app[FEED]
            await async_wait_for(lambda: feed.holders(ip), timeout=10,
                                 message="the feed's mirror sees the hand-written record")
        assert (await call(c, "POST", "/skydns/api/web", {"type": "A", "ips": [ip]}))[0] == 201
        assert etcd.get(STATUS + ip) is not None
        assert (await call(c, "DELETE", "/skydns/api/web"))[0] == 200
        assert etcd.get(STATUS + ip) is not None  # still served by legacy/x1: still probed
        etcd.delete(ZONE_KEY + f"legacy{int(mirrored)}/x1")
        if mirrored:
            await async_wait_for(lambda: not feed.holders(ip), timeout=10,
                                 message="the mirror sees the delete")
        assert (await call(c, "POST", "/skydns/api/web", {"type": "A", "ips": [ip]}))[0] == 201
        assert (await call(c, "DELETE", "/skydns/api/web"))[0] == 200
        assert etcd.get(STATUS + ip) is None  # nobody holds it now

    scenario(etcd, lambda c: go(c, False))
    scenario(etcd, lambda c: go(c, True), status=True)


def test_reads_follow_the_status_page_rule_writes_always_need_a_token(etcd):
    async def go(c):
        await call(c, "POST", "/skydns/api/web", {"type": "A", "ips": ["10.0.0.8"]})
        status, doc = await call(c, "GET", "/skydns/health/10.0.0.8", headers={})
        assert status == 200 and doc["history"] == [] and doc["lastfailure"] is None
        assert (await call(c, "GET", "/skydns/health", headers={}))[0] == 200
        assert (await call(c, "PUT", "/skydns/health/10.0.0.8/maintenance",
                           {"reason": "x"}, headers={}))[0] == 401
        assert (await call(c, "DELETE", "/skydns/health/10.0.0.8/maintenance",
                           headers={}))[0] == 401

    scenario(etcd, go, status_public=True)
