"""Health checks through the API: validation and plans (pure), then a real API process, a
real scanner and a real HTTP backend (a check set with a PUT takes the address DOWN)."""

import json

import pytest

from kubeapi.errors import ApiError
from kubeapi.plan import Caller, Layout, Planner, Snapshot
from kubeapi.records import entries, status_with_checks
from kubeapi.validate import parse_create, parse_update
from skydns.store import KV

from apitest import KubeApi
from etcdtest import wait_for
from healthtest import REPORT, HttpBackend, status_of, wait_status

ZONE = "skydns.local."
LAYOUT = Layout(ZONE, "/skydns/monitor/status/", "/skydns/monitor/refs/")
ADMIN = Caller("admin", admin=True)
STATUS = "/skydns/monitor/status/"
CHECK = {"http": "/healthz", "port": 8080}


def snapshot(data: dict) -> Snapshot:
    kvs = {k: KV(k, v if isinstance(v, bytes) else json.dumps(v).encode(), 10, 0)
           for k, v in data.items()}
    return Snapshot(100, kvs, prefixes={"/"})


def run(data: dict, op: str, name: str, change, caller=ADMIN) -> dict:
    """The plan applied to data: the new etcd contents."""
    p = getattr(Planner(LAYOUT, caller, snapshot(data)), op)(name, change)
    out = dict(data)
    for key in p.deletes:
        out.pop(key, None)
    out.update({k: json.loads(v) for k, v in p.puts.items()})
    return out


# --- validation -------------------------------------------------------------------------------


def test_create_bodies_take_check_or_checks():
    one = parse_create({"type": "A", "ips": ["10.0.0.1"], "check": CHECK}, ZONE)
    assert one.checks == (CHECK,)
    many = parse_create({"type": "SRV", "ips": "10.0.0.1", "ports": 443, "checks": [
        {"http": "/a", "port": 443, "scheme": "HTTPS", "expect": "200, 204"}, CHECK]}, ZONE)
    assert many.checks == ({"http": "/a", "port": 443, "scheme": "https", "expect": "200,204"},
                           CHECK)
    assert parse_create({"type": "A", "ips": "10.0.0.1"}, ZONE).checks is None


@pytest.mark.parametrize(("body", "words"), [
    ({"check": CHECK, "checks": [CHECK]}, "not both"),
    ({"check": [CHECK]}, "one JSON object"),
    ({"checks": CHECK}, "list"),
    ({"checks": [{"http": "healthz", "port": 80}]}, "checks: check 1: http"),
    ({"check": {"http": "/", "port": 80, "expect": "600"}}, "expect"),
    ({"check": {"http": "/", "port": 80, "colour": "red"}}, "unknown field"),
    ({"check": {"http": "/ x", "port": 80}}, "percent-encoded"),
    ({"checks": [{"http": f"/{i}", "port": 80} for i in range(9)]}, "at most 8"),
])
def test_bad_checks_are_400(body, words):
    with pytest.raises(ApiError) as err:
        parse_create({"type": "A", "ips": "10.0.0.1", **body}, ZONE)
    assert err.value.status == 400 and words in err.value.reason


def test_checks_only_on_address_types():
    with pytest.raises(ApiError, match="unknown field 'check'"):
        parse_create({"type": "TXT", "text": "x", "check": CHECK}, ZONE)


def test_put_sets_checks():
    change = parse_update({"type": "A", "checks": [CHECK]}, ZONE)
    assert change.update is None and change.checks == (CHECK,) and change.values == ()
    change = parse_update({"type": "a", "ips": ["10.0.0.2"], "checks": []}, ZONE)
    assert change.checks == () and change.values == ("10.0.0.2",)
    with pytest.raises(ApiError, match="unknown field"):
        parse_update({"type": "A", "update": {"10.0.0.1": "10.0.0.2"}, "checks": []}, ZONE)


# --- plans ------------------------------------------------------------------------------------


def test_created_addresses_get_the_checks_in_their_status_key():
    data = run({}, "create", "web.skydns.local.",
               parse_create({"type": "A", "ips": ["10.0.0.1"], "check": CHECK}, ZONE))
    assert data[STATUS + "10.0.0.1"] == {"status": "UP", "ports": [], "checks": [CHECK]}
    # An address already at the name is left as it is; a new one gets the new checks.
    other = {"http": "/other", "port": 81}
    data[STATUS + "10.0.0.1"]["status"] = "DOWN"
    data = run(data, "create", "web.skydns.local.", parse_create(
        {"type": "A", "ips": ["10.0.0.1", "10.0.0.2"], "check": other}, ZONE))
    assert data[STATUS + "10.0.0.1"] == {"status": "DOWN", "ports": [], "checks": [CHECK]}
    assert data[STATUS + "10.0.0.2"]["checks"] == [other]
    # A second name taking a monitored address with checks: they land beside the verdict.
    data = run(data, "create", "api.skydns.local.", parse_create(
        {"type": "A", "ips": ["10.0.0.1"], "checks": [other]}, ZONE))
    assert data[STATUS + "10.0.0.1"] == {"status": "DOWN", "ports": [], "checks": [other]}


def test_put_replaces_checks_and_never_the_verdict():
    data = run({}, "create", "web.skydns.local.",
               parse_create({"type": "A", "ips": ["10.0.0.1", "10.0.0.2"]}, ZONE))
    data[STATUS + "10.0.0.1"] = {"status": "DOWN", "ports": [], "checker": "s1",
                                 "reason": "x"}
    data = run(data, "update", "web.skydns.local.",
               parse_update({"type": "A", "checks": [CHECK]}, ZONE))
    assert data[STATUS + "10.0.0.1"] == {"status": "DOWN", "ports": [], "checker": "s1",
                                         "reason": "x", "checks": [CHECK]}
    assert data[STATUS + "10.0.0.2"] == {"status": "UP", "ports": [], "checks": [CHECK]}
    data = run(data, "update", "web.skydns.local.",
               parse_update({"type": "A", "ips": "10.0.0.2", "checks": []}, ZONE))
    assert "checks" not in data[STATUS + "10.0.0.2"]
    assert data[STATUS + "10.0.0.1"]["checks"] == [CHECK]
    for body, status in (({"type": "A", "ips": "10.0.0.9", "checks": []}, 404),
                         ({"type": "AAAA", "checks": []}, 404)):
        with pytest.raises(ApiError) as err:
            run(data, "update", "web.skydns.local.", parse_update(body, ZONE))
        assert err.value.status == status
    with pytest.raises(ApiError) as err:
        run(data, "update", "nothing.skydns.local.", parse_update({"type": "A", "checks": []},
                                                                  ZONE))
    assert err.value.status == 404
    with pytest.raises(ApiError) as err:
        run(data, "update", "web.skydns.local.", parse_update({"type": "A", "checks": []}, ZONE),
            caller=Caller("bob"))
    assert err.value.status == 403


def test_status_with_checks_and_listing():
    assert json.loads(status_with_checks(b"[1]", (CHECK,))) == {"checks": [CHECK]}
    data = run({}, "create", "web.skydns.local.",
               parse_create({"type": "A", "ips": ["10.0.0.1", "10.0.0.2"]}, ZONE))
    from kubeapi.records import decode
    recs = [r for k, v in data.items() if (r := decode(k, json.dumps(v).encode(), 1))
            and r.rtype]
    [entry] = entries(recs, {}, checks={"10.0.0.1": [CHECK]})
    assert entry["checks"] == {"10.0.0.1": [CHECK]}
    [entry] = entries(recs, {})
    assert "checks" not in entry


# --- end to end -------------------------------------------------------------------------------


def test_a_check_set_through_the_api_takes_the_address_down(etcd, daemons, tmp_path):
    ip = "127.0.0.52"
    api = KubeApi(etcd.endpoint).start()
    try:
        with HttpBackend(ip) as web:
            web.status = 503
            # Created with a check of a healthy path...
            status, text = api.post("web", {"type": "A", "ips": [ip],
                                            "check": {"http": "/healthz", "port": web.port,
                                                      "expect": "200-399,503"}})
            assert status == 201, text
            etcd.put(REPORT + ip, {"hostname": "scan-api"})
            daemons("scanner", etcd, "scan-api")
            # Probed (a status that holds is never rewritten: the backend is what tells).
            wait_for(lambda: len(web.requests) >= 3, timeout=20, message="probed")
            assert status_of(etcd, ip) == "UP"
            # ...then the check changed by a PUT: the 503 now fails it.
            status, text = api.request("PUT", "/skydns/api/web", {
                "type": "A", "checks": [{"http": "/healthz", "port": web.port}]})
            assert status == 200, text
            wait_status(etcd, ip, "DOWN", timeout=20)
            listing = api.get_json("/skydns/api/web")
            [entry] = listing["records"]
            assert entry["status"] == {ip: "DOWN"}
            assert entry["checks"] == {ip: [{"http": "/healthz", "port": web.port}]}
            status, text = api.request("PUT", "/skydns/api/web", {
                "type": "A", "checks": [{"http": "/healthz", "port": 0}]})
            assert status == 400 and "port" in text
    finally:
        api.stop()
