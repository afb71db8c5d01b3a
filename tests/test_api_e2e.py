"""End to end: the API as a real process, the DNS server as a real process, one real etcd.
Records made through the API must be what `dig` gets back, and go away with the API's deletes."""

import shutil
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

import dns.rcode
import dns.rdatatype
import pytest

from apitest import ADMIN_TOKEN, REFS, STATUS, TOKENS, KubeApi, http_request
from dnstest import Skydns
from etcdtest import wait_for

ZONE = "example.test."
DIG = shutil.which("dig")


@pytest.fixture(scope="module")
def api(etcd_server):
    proc = KubeApi(etcd_server.endpoint, zone=ZONE).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def dns_server(etcd_server):
    server = Skydns(etcd_server.endpoint).start()
    yield server
    server.stop()


def answers(server: Skydns, name: str, rdtype: str = "A", tcp: bool = False):
    reply = server.query(name, rdtype, tcp=tcp)
    return reply.rcode(), sorted(
        rr.to_text() for rrset in reply.answer if rrset.rdtype == dns.rdatatype.from_text(rdtype)
        for rr in rrset)


def eventually(server: Skydns, name: str, rdtype: str, want, tcp: bool = False):
    """Wait (deadline, no sleeps) until the DNS server answers `want` (rcode, sorted rdata)."""
    got = []

    def check():
        got[:] = [answers(server, name, rdtype, tcp)]
        return got[0] == want

    try:
        wait_for(check, timeout=5)
    except AssertionError:
        raise AssertionError(f"{name} {rdtype}: want {want}, got {got}") from None


NOERROR, NXDOMAIN = dns.rcode.NOERROR, dns.rcode.NXDOMAIN


def test_create_update_alias_delete(api, dns_server, etcd):
    body = {"type": "A", "ips": ["192.168.10.1", "192.168.10.2"]}
    assert api.post("cctv2", body) == (201, "OK\n")
    eventually(dns_server, "cctv2.example.test.", "A",
               (NOERROR, ["192.168.10.1", "192.168.10.2"]))
    assert set(etcd.get_prefix(STATUS)) == {STATUS + "192.168.10.1", STATUS + "192.168.10.2"}

    put = {"type": "A", "update": {"192.168.10.1": "192.168.10.9"}}
    assert api.request("PUT", "/skydns/api/cctv2.example.test", put) == (200, "OK\n")
    eventually(dns_server, "cctv2.example.test.", "A",
               (NOERROR, ["192.168.10.2", "192.168.10.9"]))
    assert set(etcd.get_prefix(STATUS)) == {STATUS + "192.168.10.2", STATUS + "192.168.10.9"}

    # The original suite's CNAME body: POST to cctv2 makes tv1 an alias of it.
    assert api.post("cctv2.example.test", {"type": "cname", "alias": "tv1"}) == (201, "OK\n")
    eventually(dns_server, "tv1.example.test.", "CNAME", (NOERROR, ["cctv2.example.test."]))
    reply = dns_server.query("tv1.example.test.", "A")
    assert [rrset.rdtype for rrset in reply.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
    assert dns_server.addresses("tv1.example.test.") == ["192.168.10.2", "192.168.10.9"]

    assert api.request("DELETE", "/skydns/api/cctv2") == (200, "OK\n")
    eventually(dns_server, "cctv2.example.test.", "A", (NXDOMAIN, []))
    eventually(dns_server, "tv1.example.test.", "A", (NXDOMAIN, []))
    assert etcd.get_prefix(STATUS) == {} and etcd.get_prefix(REFS) == {}
    assert etcd.get_prefix("/skydns/test/example/") == {}


def test_other_types_resolve(api, dns_server, etcd):
    writes = [
        ("_http._tcp.web", {"type": "SRV", "ips": ["10.0.1.1", "10.0.1.2"], "ports": [80, 8080],
                            "priority": 10}),
        ("host1", {"type": "A", "ips": ["10.0.2.1"], "ptr": True, "ttl": 60}),
        ("web", {"type": "MX", "mailHost": "mail.example.com", "mailPriority": 5}),
        ("web", {"type": "TXT", "text": "v=spf1 -all"}),
        ("sub", {"type": "NS", "nsHost": "ns1.example.com"}),
        ("six", {"type": "AAAA", "ips": ["2001:db8::1"]}),
    ]
    for name, body in writes:
        assert api.post(name, body) == (201, "OK\n"), (name, body)
    eventually(dns_server, "_http._tcp.web.example.test.", "SRV", (NOERROR, [
        f"10 50 80 {_target('10.0.1.1')}._http._tcp.web.example.test.",
        f"10 50 8080 {_target('10.0.1.2')}._http._tcp.web.example.test."]))
    eventually(dns_server, "web.example.test.", "MX", (NOERROR, ["5 mail.example.com."]))
    eventually(dns_server, "web.example.test.", "TXT", (NOERROR, ['"v=spf1 -all"']))
    eventually(dns_server, "sub.example.test.", "NS", (NOERROR, ["ns1.example.com."]))
    eventually(dns_server, "six.example.test.", "AAAA", (NOERROR, ["2001:db8::1"]))
    eventually(dns_server, "1.2.0.10.in-addr.arpa.", "PTR", (NOERROR, ["host1.example.test."]))
    reply = dns_server.query("host1.example.test.", "A")
    assert reply.answer[0].ttl == 60
    assert etcd.get(STATUS + "10.0.1.2") == '{"status":"UP","ports":[8080]}'

    assert api.request("DELETE", "/skydns/api/host1", {"type": "A", "ips": ["10.0.2.1"]})[0] == 200
    # With its last PTR gone the DNS server no longer claims the reverse name (no open resolver).
    eventually(dns_server, "1.2.0.10.in-addr.arpa.", "PTR", (dns.rcode.REFUSED, []))
    eventually(dns_server, "host1.example.test.", "A", (NXDOMAIN, []))
    assert api.request("DELETE", "/skydns/api/web", {"type": "TXT"})[0] == 200
    eventually(dns_server, "web.example.test.", "TXT", (NOERROR, []))  # the MX is still there


def _target(ip: str) -> str:
    import hashlib

    return hashlib.sha1(ip.encode()).hexdigest()[:8]


@pytest.mark.skipif(DIG is None, reason="dig is not installed (apt-get install bind9-dnsutils); "
                                        "the same answers are checked with dnspython above")
def test_dig_sees_api_records(api, dns_server, etcd):
    assert api.post("digme", {"type": "A", "ips": ["192.0.2.7"]})[0] == 201
    assert api.post("digme", {"type": "cname", "alias": "alias1"})[0] == 201

    def dig(name, rtype="A"):
        out = subprocess.run([DIG, "@127.0.0.1", "-p", str(dns_server.port), "+time=2",
                              "+tries=1", "+short", name, rtype],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.split()

    wait_for(lambda: dig("digme.example.test") == ["192.0.2.7"], timeout=5)
    wait_for(lambda: dig("alias1.example.test") == ["digme.example.test.", "192.0.2.7"],
             timeout=5, message="dig alias1")
    assert api.request("DELETE", "/skydns/api/digme")[0] == 200
    full = subprocess.run([DIG, "@127.0.0.1", "-p", str(dns_server.port), "+time=2",
                           "+tries=1", "digme.example.test"], capture_output=True, text=True)

    def nxdomain():
        nonlocal full
        full = subprocess.run([DIG, "@127.0.0.1", "-p", str(dns_server.port), "+time=2",
                               "+tries=1", "digme.example.test"], capture_output=True, text=True)
        return "status: NXDOMAIN" in full.stdout

    wait_for(nxdomain, timeout=5, message=f"no NXDOMAIN: {full.stdout}")


def test_down_addresses_are_left_out_and_shown(api, dns_server, etcd):
    assert api.post("hc", {"type": "A", "ips": ["10.9.0.1", "10.9.0.2"]})[0] == 201
    etcd.put(STATUS + "10.9.0.2", {"status": "DOWN", "ports": []})
    eventually(dns_server, "hc.example.test.", "A", (NOERROR, ["10.9.0.1"]))
    entry = api.get_json("/skydns/api/hc")["records"][0]
    assert entry["status"] == {"10.9.0.1": "UP", "10.9.0.2": "DOWN"}
    # Re-posting an address leaves its status alone: the scanner's verdict stands.
    assert api.post("hc", {"type": "A", "ips": ["10.9.0.2"]}) == (200, "OK\n")
    assert etcd.get(STATUS + "10.9.0.2") == '{"status": "DOWN", "ports": []}'


REFUSALS = [
    ("POST", "x", {"type": "A", "ips": ["10.0.0.1"]}, None, 401),
    ("POST", "x", {"type": "A", "ips": ["10.0.0.1"]}, "wrong", 401),
    ("POST", "x", {"type": "A", "ips": ["10.0.0.300"]}, ADMIN_TOKEN, 400),
    ("POST", "x", {"type": "SRV", "ips": ["10.0.0.1"], "ports": [0]}, ADMIN_TOKEN, 400),
    ("POST", "x", {"type": "MAIL"}, ADMIN_TOKEN, 400),
    ("GET", "missing", None, ADMIN_TOKEN, 404),
    ("DELETE", "missing", None, ADMIN_TOKEN, 404),
    ("POST", "owned", {"type": "A", "ips": ["10.0.0.2"]}, TOKENS["bob"], 403),
    ("POST", "owned", {"type": "cname", "alias": "taken"}, TOKENS["alice"], 409),
]


def test_refusals_over_the_wire(api, etcd):
    assert api.post("owned", {"type": "A", "ips": ["10.0.0.1"]}, TOKENS["alice"])[0] == 201
    assert api.post("taken", {"type": "A", "ips": ["10.0.0.3"]})[0] == 201
    for method, name, body, token, status in REFUSALS:
        got, text = api.request(method, f"/skydns/api/{name}", body, token=token)
        assert got == status, (method, name, body, text)
        assert text.startswith("ERR, ") and text.count("\n") == 1, text
    assert "Traceback" not in api.logs()


def test_fifty_parallel_posts_through_two_processes(api, dns_server, etcd, etcd_server):
    """Two API processes: their local per-name locks do not help each other, so only the
    etcd compares keep every address."""
    second = KubeApi(etcd_server.endpoint, zone=ZONE).start()
    try:
        ips = [f"10.77.0.{i}" for i in range(1, 51)]
        ports = [api.port, second.port]
        start = threading.Barrier(50)

        def post(i):
            start.wait()
            return http_request(ports[i % 2], "POST", "/skydns/api/many",
                                {"type": "A", "ips": [ips[i]]}, ADMIN_TOKEN)

        with ThreadPoolExecutor(50) as pool:
            results = list(pool.map(post, range(50)))
        assert [r for r in results if r != (201, "OK\n")] == []
    finally:
        second.stop()
    listed = api.get_json("/skydns/api/many")["records"][0]["ips"]
    assert listed == ips
    assert sorted(etcd.get_prefix(STATUS)) == sorted(STATUS + ip for ip in ips)
    eventually(dns_server, "many.example.test.", "A", (NOERROR, sorted(ips)), tcp=True)
