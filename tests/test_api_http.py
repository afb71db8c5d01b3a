"""The record API over real HTTP (aiohttp's test server, in this process) against a real etcd:
auth, refusals and their statuses, write semantics, what lands in etcd, and a fuzz run."""

import asyncio
import json
import random
import socket

import pytest

from apitest import (
    ADMIN_TOKEN,
    REFS,
    STATUS,
    TOKENS,
    auth,
    records_under,
    scenario,
)

BASE = "/skydns/local/skydns"
ALICE, BOB = auth(TOKENS["alice"]), auth(TOKENS["bob"])


async def call(client, method, path, body=None, headers=None, raw: bytes | None = None):
    data = raw if raw is not None else (None if body is None else json.dumps(body))
    headers = auth() if headers is None else headers
    resp = await client.request(method, path, data=data, headers=headers)
    return resp.status, await resp.text()


# --- auth ----------------------------------------------------------------------------------------


def test_auth(etcd):
    async def go(c):
        body = {"type": "A", "ips": ["10.0.0.1"]}
        status, text = await call(c, "POST", "/skydns/api/x", body, headers={})
        assert (status, text) == (401, "ERR, missing token: pass ?token= or Authorization: "
                                       "Bearer <token>\n")
        assert (await call(c, "GET", "/skydns/api", headers=auth("nope")))[:2] == (
            401, "ERR, invalid token\n")
        assert (await call(c, "GET", "/skydns/api", headers={"Authorization": "Basic eDp5"}))[:2] \
            == (401, "ERR, unsupported Authorization scheme; use Bearer <token>\n")
        resp = await c.get(f"/skydns/api?token={ADMIN_TOKEN}", headers={"Authorization": "Basic x"})
        assert resp.status == 200  # the stats server's rule too: ?token= beside another scheme
        resp = await c.get("/skydns/api", headers=auth(""))
        assert resp.status == 401 and resp.headers["WWW-Authenticate"] == "Bearer"
        assert (await c.get(f"/skydns/api?token={ADMIN_TOKEN}")).status == 200
        assert (await c.get(f"/skydns/api?token={TOKENS['bob']}")).status == 200  # reads: any
        assert (await c.get("/skydns/api?token=%ff%fe")).status == 401
        assert (await call(c, "POST", "/skydns/api/x", body))[0] == 201
        resp = await c.get("/healthz")
        assert resp.status == 200 and await resp.text() == "OK\n"

    scenario(etcd, go)


def _raw_exchange(port: int, head: str) -> str:
    """Send only a request head (no body) and read what comes back."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.decode(errors="replace")


def test_auth_and_size_are_checked_before_the_body_is_read(etcd):
    async def go(c):
        port = c.server.port
        head = "POST /skydns/api/x HTTP/1.1\r\nHost: t\r\nContent-Length: 100000000\r\n"
        # The body never comes: an answer proves the server did not wait for it.
        no_token = await asyncio.to_thread(_raw_exchange, port, head + "\r\n")
        assert no_token.startswith("HTTP/1.1 401")
        too_big = await asyncio.to_thread(
            _raw_exchange, port, head + f"Authorization: Bearer {ADMIN_TOKEN}\r\n\r\n")
        assert too_big.startswith("HTTP/1.1 413")
        async def stream():  # no Content-Length: chunked, so the size shows only while reading
            for _ in range(5):
                yield b"x" * 1000

        chunked = await c.post("/skydns/api/x", data=stream(), headers=auth())
        assert chunked.status == 413
        assert await chunked.text() == "ERR, body larger than 1000 bytes\n"

    scenario(etcd, go, max_body=1000)


# --- refusals ------------------------------------------------------------------------------------


REFUSALS = [
    # method, path, body, status, reason (start of it)
    ("POST", "/skydns/api/x", "{", 400, "body is not valid JSON"),
    ("POST", "/skydns/api/x", "", 400, "POST needs a JSON body"),
    ("PUT", "/skydns/api/x", None, 400, "PUT needs a JSON body"),
    ("POST", "/skydns/api/x", [], 400, "body must be a JSON object"),
    ("POST", "/skydns/api/x", {"type": "A", "ips": ["1.2.3"]}, 400, "'1.2.3' is not an IP"),
    ("POST", "/skydns/api/x", {"type": "SRV", "ips": ["1.2.3.4"], "ports": [70000]}, 400,
     "ports 70000 out of range"),
    ("POST", "/skydns/api/x", {"type": "PTR", "ips": []}, 400, "unknown type"),
    ("POST", "/skydns/api/bad%20name", {"type": "A", "ips": ["1.2.3.4"]}, 400,
     "domain 'bad name.skydns.local.'"),
    ("POST", "/skydns/api/a%2Fb", {"type": "A", "ips": ["1.2.3.4"]}, 400, "domain"),
    ("POST", "/skydns/api/skydns.local", {"type": "A", "ips": ["1.2.3.4"]}, 400, "domain is the"),
    ("POST", "/skydns/api/x.example.com.", {"type": "A", "ips": ["1.2.3.4"]}, 400, "domain"),
    ("GET", "/skydns/api?type=B", None, 400, "unknown type"),
    ("GET", "/skydns/api/nothing", None, 404, "nothing.skydns.local. has no records"),
    ("DELETE", "/skydns/api/nothing", None, 404, "nothing.skydns.local. does not exist"),
    ("DELETE", "/skydns/api/x", "{}", 400, "missing field 'type'"),
    ("GET", "/nope", None, 404, "no such route"),
    ("PATCH", "/skydns/api/x", None, 405, "method PATCH not allowed"),
    ("POST", "/skydns/api", {"type": "A"}, 405, "method POST not allowed"),
    ("POST", "/skydns/api/x", {"type": "cname", "alias": "y"}, 404, "x.skydns.local. does not"),
]


@pytest.mark.parametrize("method, path, body, status, reason", REFUSALS)
def test_refusals(etcd, method, path, body, status, reason):
    async def go(c):
        raw = body.encode() if isinstance(body, str) else None
        got, text = await call(c, method, path, None if raw is not None else body, raw=raw)
        assert got == status, text
        assert text.startswith(f"ERR, {reason}"), text
        assert text.endswith("\n") and text.count("\n") == 1

    scenario(etcd, go)


def test_json_errors_on_request(etcd):
    async def go(c):
        status, text = await call(c, "GET", "/skydns/api/none",
                                  headers={**auth(), "Accept": "application/json"})
        assert status == 404
        assert json.loads(text) == {"error": "none.skydns.local. has no records", "status": 404}
        status, text = await call(c, "POST", "/skydns/api/x", {"type": "A", "ips": ["1.1.1.1"]},
                                  headers={**auth(), "Accept": "application/json"})
        assert (status, json.loads(text)) == (201, {"result": "OK"})

    scenario(etcd, go)


def test_conflicts_and_owners(etcd):
    async def go(c):
        assert (await call(c, "POST", "/skydns/api/cctv2", {"type": "A", "ips": ["10.0.0.1"]},
                           headers=ALICE))[0] == 201
        assert (await call(c, "POST", "/skydns/api/cctv2", {"type": "cname", "alias": "tv1"},
                           headers=ALICE))[0] == 201
        cases = [
            ("POST", "tv1", {"type": "A", "ips": ["10.0.0.2"]}, ALICE, 409,
             "tv1.skydns.local. is an alias (CNAME) of cctv2.skydns.local."),
            ("POST", "other", {"type": "A", "ips": ["10.0.0.2"]}, auth(), 201, None),
            ("POST", "other", {"type": "cname", "alias": "tv1"}, auth(), 409,
             "tv1.skydns.local. is already an alias of cctv2.skydns.local."),
            ("POST", "cctv2", {"type": "cname", "alias": "other"}, ALICE, 409,
             "other.skydns.local. already has records"),
            ("POST", "cctv2", {"type": "A", "ips": ["10.0.0.3"]}, BOB, 403,
             "cctv2.skydns.local. belongs to another owner"),
            ("DELETE", "cctv2", None, BOB, 403, "cctv2.skydns.local. belongs to another owner"),
            ("DELETE", "cctv2", {"type": "cname", "alias": "tv1"}, BOB, 403, None),
            ("PUT", "cctv2", {"type": "A", "update": {"10.0.0.1": "10.0.0.9"}}, BOB, 403, None),
            ("PUT", "cctv2", {"type": "A", "update": {"10.0.0.7": "10.0.0.9"}}, ALICE, 404,
             "10.0.0.7 is not a A value of cctv2.skydns.local."),
            ("DELETE", "cctv2", {"type": "cname", "alias": "other"}, ALICE, 404,
             "other.skydns.local. is not an alias of cctv2.skydns.local."),
            ("POST", "cctv2", {"type": "SRV", "ips": ["10.0.0.1"], "ports": [80]}, ALICE, 409,
             "10.0.0.1 is already a A address of cctv2.skydns.local."),
        ]
        for method, name, body, headers, status, reason in cases:
            got, text = await call(c, method, f"/skydns/api/{name}", body, headers=headers)
            assert got == status, (method, name, body, text)
            if reason:
                assert text.startswith(f"ERR, {reason}"), text
        assert (await call(c, "DELETE", "/skydns/api/cctv2", headers=ALICE))[0] == 200

    scenario(etcd, go)


# --- semantics -----------------------------------------------------------------------------------


def test_writes_and_what_lands_in_etcd(etcd):
    async def go(c):
        body = {"type": "A", "ips": ["192.168.10.1", "192.168.10.2"], "ptr": True}
        assert await call(c, "POST", "/skydns/api/cctv2", body) == (201, "OK\n")
        assert await call(c, "POST", "/skydns/api/cctv2.skydns.local.", body) == (200, "OK\n")
        data = await asyncio.to_thread(records_under, etcd)
        k1 = f"{BASE}/cctv2/249ee114"  # sha1("192.168.10.1")[:8]
        assert data[k1] == {"host": "192.168.10.1", "type": "A", "ptr": True, "owner": "admin"}
        assert data[STATUS + "192.168.10.1"] == {"status": "UP", "ports": []}
        assert data[REFS + "192.168.10.1"] == {"keys": [k1]}
        assert data["/skydns/arpa/in-addr/192/168/10/1"] == {
            "host": "cctv2.skydns.local.", "type": "PTR", "owner": "admin"}

        put = {"type": "A", "update": {"192.168.10.1": "192.168.10.9"}}
        assert await call(c, "PUT", "/skydns/api/cctv2", put) == (200, "OK\n")
        srv = {"type": "SRV", "ips": ["10.1.0.1", "10.1.0.2"], "ports": [80, 8080],
               "priority": 10}
        assert (await call(c, "POST", "/skydns/api/_http._tcp.cctv2", srv))[0] == 201
        for body in ({"type": "MX", "mailHost": "mail", "mailPriority": 5},
                     {"type": "TXT", "text": "v=spf1 -all"},
                     {"type": "NS", "nsHost": "ns1.example.com"}):
            assert (await call(c, "POST", "/skydns/api/cctv2", body))[0] == 201
        data = await asyncio.to_thread(records_under, etcd)
        assert STATUS + "192.168.10.1" not in data and REFS + "192.168.10.1" not in data
        assert "/skydns/arpa/in-addr/192/168/10/1" not in data
        assert data["/skydns/arpa/in-addr/192/168/10/9"]["host"] == "cctv2.skydns.local."
        assert data[STATUS + "10.1.0.2"] == {"status": "UP", "ports": [8080]}

        status, text = await call(c, "GET", "/skydns/api/cctv2")
        got = json.loads(text)
        assert got["domain"] == "cctv2.skydns.local."
        assert [(e["type"], e.get("ips") or e.get("mailHost") or e.get("text")
                 or e.get("nsHost")) for e in got["records"]] == [
            ("A", ["192.168.10.2", "192.168.10.9"]), ("NS", ["ns1.example.com."]),
            ("MX", ["mail.skydns.local."]), ("TXT", ["v=spf1 -all"])]
        status, text = await call(c, "GET", "/skydns/api?type=SRV")
        assert json.loads(text)["records"] == [{
            "domain": "_http._tcp.cctv2.skydns.local.", "type": "SRV", "owner": "admin",
            "ips": ["10.1.0.1", "10.1.0.2"], "ports": [80, 8080], "priority": 10,
            # each SRV record whole (issue 25: listed as SRV with priority, weight, port, target)
            "srv": [{"target": "10.1.0.1", "port": 80, "priority": 10, "weight": 0},
                    {"target": "10.1.0.2", "port": 8080, "priority": 10, "weight": 0}],
            "status": {"10.1.0.1": "UP", "10.1.0.2": "UP"}}]

        delete = {"type": "A", "ips": ["192.168.10.2"]}
        assert await call(c, "DELETE", "/skydns/api/cctv2", delete) == (200, "OK\n")
        assert (await call(c, "DELETE", "/skydns/api/cctv2", delete))[0] == 404
        assert await call(c, "DELETE", "/skydns/api/cctv2", {"type": "MX"}) == (200, "OK\n")
        assert await call(c, "DELETE", "/skydns/api/cctv2") == (200, "OK\n")
        assert await call(c, "DELETE", "/skydns/api/_http._tcp.cctv2") == (200, "OK\n")
        assert await asyncio.to_thread(records_under, etcd) == {}

    scenario(etcd, go)


def test_parallel_posts_to_one_name_lose_nothing(etcd):
    ips = [f"10.50.0.{i}" for i in range(1, 51)]

    async def go(c):
        results = await asyncio.gather(*(
            call(c, "POST", "/skydns/api/many", {"type": "A", "ips": [ip]}) for ip in ips))
        assert [r[0] for r in results] == [201] * 50
        status, text = await call(c, "GET", "/skydns/api/many")
        assert json.loads(text)["records"][0]["ips"] == ips

    scenario(etcd, go)
    data = records_under(etcd, "/skydns/monitor/")
    assert sorted(k for k in data if k.startswith(STATUS)) == sorted(STATUS + ip for ip in ips)


# --- fuzz ----------------------------------------------------------------------------------------

_IPS = ["10.0.0.1", "10.0.0.2", "::1", "2001:db8::5", "300.1.1.1", "", "x", 7, None, "1.2.3.4/8",
        "fe80::1%lo", "0.0.0.0"]
_GOOD_NAMES = ["a", "b", "a.b", "tv1", "x.tv1", "*.w", "_s._tcp.a", "A.skydns.local."]
_NAMES = _GOOD_NAMES + ["skydns.local", "%20", "a..b", "..", "x" * 70, "ü", "a%2Fb", "-",
                        "q.example.com."]
_TYPES = ["A", "AAAA", "SRV", "CNAME", "cname", "NS", "MX", "TXT", "PTR", "", 3, None, ["A"]]
_FIELDS = ["ips", "ports", "alias", "nsHost", "mailHost", "mailPriority", "text", "ttl", "ptr",
           "priority", "weight", "update", "junk"]


def _value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return rng.choice(_IPS)
    if kind == 1:
        return rng.choice(_NAMES)
    if kind == 2:
        return rng.choice([0, 1, 80, 65535, 65536, -1, 2**40, 1.5, True, float("inf")])
    if kind == 3:
        return "".join(rng.choice("ab.\\\"\x00\u00e9\ud800 ") for _ in range(rng.randrange(6)))
    if kind == 4:
        return None
    if kind == 5:
        return rng.choice(["", "v=spf1", "x" * 3000])
    if kind == 6:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind == 7:
        return {str(_value(rng, depth + 1)): _value(rng, depth + 1)}
    return [rng.choice(_IPS) for _ in range(rng.randrange(1, 5))]


def _body(rng: random.Random):
    roll = rng.random()
    if roll < 0.1:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
    if roll < 0.15:
        return _value(rng)
    if roll < 0.6:  # well-formed, so the deep paths (conflicts, owners, refs) run too
        rtype = rng.choice(["A", "A", "AAAA", "SRV"])
        pool = ["::1", "2001:db8::5"] if rtype == "AAAA" else ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
        body = {"type": rtype, "ips": rng.sample(pool, rng.randrange(1, 3))}
        if rtype == "SRV":
            body["ports"] = [80]
        if rng.random() < 0.2:
            body[rng.choice(_FIELDS)] = _value(rng)
        return body
    if roll < 0.75:
        return {"type": "cname", "alias": rng.choice(_GOOD_NAMES + ["q.example.com.", 5])}
    body = {"type": rng.choice(_TYPES)} if rng.random() < 0.9 else {}
    for field in rng.sample(_FIELDS, rng.randrange(4)):
        body[field] = _value(rng)
    return body


def test_fuzz_never_a_500(etcd):
    rng = random.Random(20240606)
    tokens = [auth()] * 10 + [ALICE] * 4 + [BOB] * 3 + [auth("wrong"), {}]

    async def one(c):
        method = rng.choice(["POST", "POST", "PUT", "DELETE", "GET"])
        body = _body(rng)
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        if method in ("GET", "DELETE") and rng.random() < 0.5:
            raw = b""
        if method == "PUT" and isinstance(body, dict) and rng.random() < 0.5:
            raw = json.dumps({"type": body.get("type"), "update": {
                rng.choice(_IPS + _NAMES): rng.choice(_IPS + _NAMES)}}, default=str).encode()
        path = "/skydns/api/" + rng.choice(_GOOD_NAMES if rng.random() < 0.8 else _NAMES)
        resp = await c.request(method, path, data=raw, headers=rng.choice(tokens))
        text = await resp.text()
        assert resp.status < 500, (method, path, raw[:200], resp.status, text)
        assert "Traceback" not in text
        return resp.status

    async def go(c):
        seen = set()
        for _ in range(60):  # 480 requests, 8 at a time so some of them collide
            seen.update(await asyncio.gather(*(one(c) for _ in range(8))))
        assert {200, 201, 400, 401, 403, 404, 409} <= seen

    scenario(etcd, go)
    check_invariants(etcd)


def check_invariants(etcd):
    """Every API address has a status key and is listed in its refs; no refs without records."""
    data = records_under(etcd)
    addresses: dict[str, set] = {}
    for key, value in data.items():
        if key.startswith(BASE) and isinstance(value, dict) and value.get("type") in (
                "A", "AAAA", "SRV"):
            addresses.setdefault(value["host"], set()).add(key)
    for ip, keys in addresses.items():
        assert STATUS + ip in data, ip
        assert set(data[REFS + ip]["keys"]) == keys, ip
    refs = {k[len(REFS):] for k in data if k.startswith(REFS)}
    assert refs == set(addresses)


def test_odd_data_in_etcd_and_odd_input_never_break_answers(etcd):
    etcd.put(f"{BASE}/odd/1", '{"text": "\\ud800 lone", "type": "TXT", "owner": "x"}')
    etcd.put(f"{BASE}/odd/2", b"\xff\xfe not json")
    etcd.put(f"{BASE}/odd/3", '{"host": "10.0.0.1", "type": "A", "owner": 5}')

    async def go(c):
        status, text = await call(c, "GET", "/skydns/api")
        assert status == 200
        records = json.loads(text)["records"]
        assert [e["type"] for e in records] == ["A", "TXT"]
        raw = b'{"type": "A", "ips": ["10.0.0.1"], "\\ud800": 1}'
        status, text = await call(c, "POST", "/skydns/api/x", raw=raw)
        assert status == 400 and "\\ud800" in text
        status, text = await call(c, "DELETE", "/skydns/api/odd")  # the administrator may
        assert status == 200, text

    scenario(etcd, go)
    assert etcd.get_prefix(f"{BASE}/") == {}
