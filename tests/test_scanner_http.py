"""HTTP(S) health checks: the check model and its one-line spelling (pure), the wire reader
(pure), the prober against real HTTP servers on 127.0.0.x, and a scanner process writing what
the DNS server (a real skydns) then leaves out of its answers."""

import asyncio
import json
import time

import pytest

from scanner.httpwire import BadResponse, request, status_code
from scanner.probes import Prober
from scanner.status import read_status, render_status
from skydns.checks import CheckError, describe, parse_check, parse_checks, parse_spec

from dnstest import Skydns
from etcdtest import run_async, wait_for
from healthtest import (
    REPORT,
    STATUS,
    HttpBackend,
    closed_port,
    scrape,
    self_signed_cert,
    statuses,
    wait_status,
)

# --- the model -------------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "obj"), [
    ("http:8080/healthz", {"http": "/healthz", "port": 8080, "scheme": "http"}),
    ("8080/healthz", {"http": "/healthz", "port": 8080}),
    ("https:8443/healthz", {"http": "/healthz", "port": 8443, "scheme": "https"}),
    ("https:/ready tls-skip-verify", {"http": "/ready", "scheme": "https",
                                      "tls-skip-verify": True}),
    ("http:80", {"http": "/", "port": 80, "scheme": "http"}),
    ("HTTPS:8443/a?b=1&c=%20 host=api.example.com expect=200,204 timeout=1.5",
     {"http": "/a?b=1&c=%20", "port": 8443, "scheme": "https", "host": "api.example.com",
      "expect": "200,204", "timeout": "1.5"}),
])
def test_spec_syntax(spec, obj):
    assert parse_spec(spec) == obj
    check = parse_check(obj)
    assert parse_check(parse_spec(check.spec())) == check


@pytest.mark.parametrize("spec", [
    "", "http", "ftp:21/", "http:8080/health z", "http:99999/", "http:8080/ expect=600",
    "http:8080/ expect=399-200", "http:8080/ timeout=0", "http:8080/ timeout=nan",
    "http:8080/ colour=blue", "http:8080/ host=bad_host!", "http:0/",
])
def test_bad_specs_are_refused_with_a_reason(spec):
    with pytest.raises(CheckError) as err:
        parse_spec(spec)
    assert str(err.value)


def test_check_fields_defaults_and_expect():
    check = parse_check({"http": "/healthz", "port": 8080})
    assert (check.scheme, check.expect, check.timeout, check.tls_skip_verify) == (
        "http", "200-399", None, False)
    assert check.accepts(200) and check.accepts(302) and not check.accepts(503)
    assert parse_check({"http": "/", "scheme": "https"}).port == 443
    two = parse_check({"http": "/", "port": 80, "expect": "200, 204"})
    assert two.expect == "200,204" and two.accepts(204) and not two.accepts(201)
    assert parse_check({"http": "/", "port": 80, "expect": 200}).expect == "200"
    assert check.to_dict() == {"http": "/healthz", "port": 8080}
    full = {"http": "/x", "port": 8443, "scheme": "https", "host": "a.example",
            "expect": "200", "timeout": 2.0, "tls-skip-verify": True}
    assert parse_check(full).to_dict() == full


@pytest.mark.parametrize("bad", [
    None, [], "x", {"port": 80}, {"http": "healthz", "port": 80},
    {"http": "/\r\nX-Injected: 1", "port": 80}, {"http": "/", "port": True},
    {"http": "/", "port": 80, "scheme": "gopher"}, {"http": "/", "port": 80, "expect": ""},
    {"http": "/", "port": 80, "tls-skip-verify": "yes"}, {"http": "/", "port": 80, "nope": 1},
    {"http": "/", "port": 80, "host": "a b"}, {"http": "/", "port": 80, "timeout": -1},
])
def test_bad_checks_raise_check_error(bad):
    with pytest.raises(CheckError):
        parse_check(bad)


def test_checks_from_etcd_skip_bad_entries():
    checks, problems = parse_checks([{"http": "/a", "port": 80}, {"http": 5},
                                     {"http": "/b", "port": 81, "future-field": 1}],
                                    strict=False)
    assert [c.path for c in checks] == ["/a", "/b"]
    assert len(problems) == 1 and "check 2" in problems[0]
    with pytest.raises(CheckError, match="check 2"):
        parse_checks([{"http": "/a", "port": 80}, {"http": 5}])
    _, problems = parse_checks([{"http": f"/{i}", "port": 80} for i in range(20)], strict=False)
    assert problems
    assert describe([{"http": "/a", "port": 81}, "junk"])[0] == "http:81/a"


def test_status_value_reads_checks_and_render_keeps_them():
    raw = {"status": "UP", "ports": [8080], "checks": [{"http": "/healthz", "port": 8080},
                                                      {"http": "no-slash"}]}
    value = read_status(json.dumps(raw).encode())
    assert [c.path for c in value.checks] == ["/healthz"]
    assert any("check 2" in p for p in value.problems)
    down = json.loads(render_status(value.fields, "DOWN", "scan-a", reason="http: 503"))
    assert down["checks"] == raw["checks"] and down["ports"] == [8080]
    assert down["status"] == "DOWN" and down["reason"] == "http: 503"
    up = json.loads(render_status(down, "UP", "scan-a", reason="ignored"))
    assert up["checks"] == raw["checks"] and "reason" not in up  # only while DOWN
    assert up["lastfailure"]["reason"] == "http: 503"  # the last failure stays
    assert read_status(b'{"checks": "nonsense"}').checks == ()


# --- the wire --------------------------------------------------------------------------------


def test_request_and_status_line():
    check = parse_check({"http": "/h?x=1", "port": 8080, "host": "api.example"})
    req = request(check, "127.0.0.1")
    assert req.startswith(b"GET /h?x=1 HTTP/1.1\r\nHost: api.example:8080\r\n")
    assert b"Connection: close\r\n" in req and req.endswith(b"\r\n\r\n")
    v6 = request(parse_check({"http": "/", "port": 443, "scheme": "https"}), "fe80::1%eth0")
    assert b"Host: [fe80::1]\r\n" in v6
    assert status_code(b"HTTP/1.1 503 Service Unavailable\r\n\r\n") == 503
    assert status_code(b"HTTP/1.0 200\r\n") == 200
    for bad in (b"", b"SSH-2.0-OpenSSH\r\n", b"HTTP/1.1 2000 OK\r\n", b"HTTP/1.1 099 x\r\n",
                b"HTTP/2 200\r\n"):
        with pytest.raises(BadResponse):
            status_code(bad)


# --- the prober against real servers ----------------------------------------------------------


def prober(**kw) -> Prober:
    return Prober(tcp_timeout=kw.pop("timeout", 0.5), icmp_mode=None, max_concurrency=16)


def verdict(p: Prober, ip: str, *checks: dict, ports=()):
    return run_async(p.verdict(ip, list(ports), [parse_check(c) for c in checks]))


def test_status_codes_and_expect():
    p = prober()
    with HttpBackend("127.0.0.41") as web:
        check = {"http": "/healthz", "port": web.port}
        assert verdict(p, "127.0.0.41", check) == (True, None)
        web.status = 503
        ok, reason = verdict(p, "127.0.0.41", check)
        assert ok is False and "status 503" in reason and f":{web.port}/healthz" in reason
        web.status = 302  # redirects are not followed: judged by expect
        assert verdict(p, "127.0.0.41", check).ok is True
        ok, reason = verdict(p, "127.0.0.41", {**check, "expect": "200"})
        assert ok is False and "status 302, expected 200" in reason
        web.status = 204
        assert verdict(p, "127.0.0.41", {**check, "expect": "200,204"}).ok is True
        assert web.requests[0].startswith(b"GET /healthz HTTP/1.1\r\n")
        assert f"Host: 127.0.0.41:{web.port}\r\n".encode() in web.requests[0]
    assert p.outcomes[("http", True)] == 3 and p.outcomes[("http", False)] == 2
    ok, reason = verdict(p, "127.0.0.41", {"http": "/", "port": closed_port("127.0.0.41")})
    assert ok is False and "refused" in reason


def test_all_checks_and_the_tcp_ports_must_pass():
    p = prober()
    with HttpBackend("127.0.0.42") as good, HttpBackend("127.0.0.42") as bad:
        bad.status = 500
        one, two = {"http": "/", "port": good.port}, {"http": "/", "port": bad.port}
        assert verdict(p, "127.0.0.42", one, ports=[good.port]).ok is True
        ok, reason = verdict(p, "127.0.0.42", one, two)
        assert ok is False and "status 500" in reason and str(bad.port) in reason
        ok, reason = verdict(p, "127.0.0.42", one, ports=[closed_port("127.0.0.42")])
        assert ok is False and "no answer: tcp" in reason


def test_a_hanging_server_fails_after_the_timeout():
    p = prober(timeout=0.3)
    with HttpBackend("127.0.0.43") as web:
        web.hang = True
        start = time.monotonic()
        ok, reason = verdict(p, "127.0.0.43", {"http": "/", "port": web.port})
        took = time.monotonic() - start
        assert ok is False and "no answer within 0.3 s" in reason
        assert 0.25 <= took < 5
        # The check's own timeout wins over the prober's default.
        ok, reason = verdict(p, "127.0.0.43", {"http": "/", "port": web.port, "timeout": 0.1})
        assert ok is False and "within 0.1 s" in reason
    assert p.in_flight == 0


def test_the_body_is_never_read():
    p = prober(timeout=2.0)
    with HttpBackend("127.0.0.44") as web:
        web.body_forever = True
        start = time.monotonic()
        assert verdict(p, "127.0.0.44", {"http": "/", "port": web.port}).ok is True
        assert time.monotonic() - start < 1.5


def test_not_http_is_a_failure():
    async def scenario():
        async def ssh(reader, writer):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"SSH-2.0-OpenSSH_9.2\r\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(ssh, "127.0.0.45", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            return await prober().verdict("127.0.0.45", [],
                                          [parse_check({"http": "/", "port": port})])

    ok, reason = run_async(scenario())
    assert ok is False and "not an HTTP response" in reason


def test_https_with_a_self_signed_certificate(tmp_path):
    tls = self_signed_cert(tmp_path, ("127.0.0.46", "api.example"))
    p = prober()
    with HttpBackend("127.0.0.46", tls=tls) as web:
        check = {"http": "/healthz", "port": web.port, "scheme": "https"}
        ok, reason = verdict(p, "127.0.0.46", check)
        assert ok is False and "TLS" in reason and "certificate" in reason
        assert verdict(p, "127.0.0.46", {**check, "tls-skip-verify": True}) == (True, None)
        web.status = 503
        ok, reason = verdict(p, "127.0.0.46", {**check, "tls-skip-verify": True})
        assert ok is False and "status 503" in reason
        web.status = 200
        # host= is the Host header (and the TLS server name).
        assert verdict(p, "127.0.0.46", {**check, "host": "api.example",
                                         "tls-skip-verify": True}).ok is True
        assert b"Host: api.example:" in web.requests[-1]
        # Plain HTTP to a TLS port fails; so does TLS to a plain port.
        assert verdict(p, "127.0.0.46", {**check, "scheme": "http"}).ok is False
    with HttpBackend("127.0.0.46") as plain:
        assert verdict(p, "127.0.0.46", {"http": "/", "port": plain.port, "scheme": "https",
                                         "tls-skip-verify": True}).ok is False
    assert p.outcomes[("https", True)] == 2


# --- a scanner process, etcd and the DNS server ----------------------------------------------


def _status(etcd, ip) -> dict:
    return statuses(etcd).get(ip) or {}


def test_scanner_takes_an_address_out_of_dns_while_its_check_fails(etcd, daemons, tmp_path):
    ip, other, name = "127.0.0.47", "127.0.0.48", "web.example.test."
    with HttpBackend(ip) as web:
        checks = [{"http": "/healthz", "port": web.port}]
        etcd.put(STATUS + ip, {"ports": [web.port], "checks": checks})
        etcd.put(REPORT + ip, {"hostname": "scan-http"})
        etcd.put("/skydns/test/example/web/1", {"host": ip})
        etcd.put("/skydns/test/example/web/2", {"host": other})  # not all DOWN: no fail-open
        metrics = f"127.0.0.1:{closed_port()}"
        scanner = daemons("scanner", etcd, "scan-http",
                          General={"metrics-addr": metrics})
        dns = Skydns(etcd.endpoint).start()
        try:
            wait_for(lambda: ip in dns.addresses(name), timeout=20, message="served")
            # 503 with the port open: DOWN, checks and ports kept, the reason recorded.
            web.status = 503
            wait_status(etcd, ip, "DOWN", timeout=20)
            value = _status(etcd, ip)
            assert value["checks"] == checks and value["ports"] == [web.port]
            assert "status 503" in value["reason"] and value["checker"] == "scan-http"
            wait_for(lambda: dns.addresses(name) == [other], timeout=10,
                     message="DOWN address left out of answers")
            web.status = 200
            wait_status(etcd, ip, "UP", timeout=20)
            assert _status(etcd, ip)["checks"] == checks
            wait_for(lambda: ip in dns.addresses(name), timeout=10, message="back in answers")
            # A hanging server is DOWN once its checks time out.
            web.hang = True
            wait_status(etcd, ip, "DOWN", timeout=20)
            assert "no answer within" in _status(etcd, ip)["reason"]
            samples = scrape(metrics)
            ok = samples[("skydns_scanner_probes_total",
                          frozenset({"kind": "http", "result": "ok"}.items()))]
            fail = samples[("skydns_scanner_probes_total",
                            frozenset({"kind": "http", "result": "fail"}.items()))]
            assert ok >= 2 and fail >= 6
            assert samples[("skydns_scanner_probe_duration_seconds_count",
                            frozenset({"kind": "http"}.items()))] >= ok + fail
            assert scanner.running
        finally:
            dns.stop()


def test_scanner_with_only_checks_and_bad_checks(etcd, daemons):
    """No ports: the checks alone decide (scann-ports 9 would refuse); a status value with
    bad checks has them logged and skipped, and the scanner goes on."""
    with HttpBackend("127.0.0.49") as web:
        etcd.put(STATUS + "127.0.0.49", {"status": "DOWN", "checks": [
            {"http": "/", "port": web.port}, {"http": "no-slash", "port": 1},
            "junk", {"http": "/", "port": 70000}]})
        etcd.put(REPORT + "127.0.0.49", {"hostname": "scan-only"})
        etcd.put(STATUS + "127.0.0.50", {"status": "UP", "checks": {"http": "/",
                                                                    "port": "x"}})
        etcd.put(REPORT + "127.0.0.50", {"hostname": "scan-only"})
        etcd.put(STATUS + "127.0.0.51", b'{"checks": [[[[[[[')
        etcd.put(REPORT + "127.0.0.51", {"hostname": "scan-only"})
        scanner = daemons("scanner", etcd, "scan-only")
        wait_status(etcd, "127.0.0.49", "UP", timeout=20)
        wait_for(lambda: "check 2 skipped" in scanner.logs(), timeout=10)
        # One bad check, nothing left to run: judged by scann-ports (9, refused): DOWN.
        wait_status(etcd, "127.0.0.50", "DOWN", timeout=20)
        assert scanner.running


def test_huge_check_lists_cost_little():
    start = time.monotonic()
    checks, problems = parse_checks([{"http": f"/{i}", "port": 80} for i in range(100000)],
                                    strict=False)
    assert len(checks) == 8 and "99992 more entries ignored" in problems[-1]
    checks, problems = parse_checks(["junk"] * 100000, strict=False)
    assert checks == [] and len(problems) == 6 and "99995 more" in problems[-1]
    assert time.monotonic() - start < 5


def test_scanner_https_with_and_without_tls_skip_verify(etcd, daemons, tmp_path):
    tls = self_signed_cert(tmp_path, ("127.0.0.53",))
    with HttpBackend("127.0.0.53", tls=tls) as web:
        strict = {"http": "/healthz", "port": web.port, "scheme": "https"}
        etcd.put(STATUS + "127.0.0.53", {"status": "UP", "checks": [strict]})
        etcd.put(REPORT + "127.0.0.53", {"hostname": "scan-tls"})
        scanner = daemons("scanner", etcd, "scan-tls")
        # A self-signed certificate fails verification...
        wait_status(etcd, "127.0.0.53", "DOWN", timeout=20)
        assert "TLS" in _status(etcd, "127.0.0.53")["reason"]
        # ...and passes with tls-skip-verify.
        etcd.put(STATUS + "127.0.0.53", {"status": "DOWN", "checks": [
            {**strict, "tls-skip-verify": True}]})
        wait_status(etcd, "127.0.0.53", "UP", timeout=20)
        assert scanner.running
