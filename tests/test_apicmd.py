"""`skydns-apicmd` as a process against a real API process and etcd: output line by line,
writes, and the exit status and message of every kind of failure."""

import json
import os
import subprocess
import sys

import pytest

from apitest import ADMIN_TOKEN, ROOT, STATUS, TOKENS, KubeApi
from etcdtest import free_port


@pytest.fixture(scope="module")
def api(etcd_server):
    proc = KubeApi(etcd_server.endpoint).start()
    yield proc
    proc.stop()


def apicmd(*args, addr=None, token=ADMIN_TOKEN, env_token=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKYDNS_API_")}
    if addr is not None:
        env["SKYDNS_API_ADDR"] = addr
    if env_token is not None:
        env["SKYDNS_API_TOKEN"] = env_token
    argv = [sys.executable, "-m", "apicmd.cli", *args]
    if token is not None:
        argv += ["-token", token]
    return subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=env, timeout=30)


def test_list_and_show(api, etcd):
    for name, body in [
        ("cctv2", {"type": "A", "ips": ["192.168.10.2", "192.168.10.1"]}),
        ("cctv2", {"type": "cname", "alias": "tv1"}),
        ("qiyf-nginx-5.default.svc", {"type": "A", "ips": ["192.168.19.113"]}),
        ("_http._tcp.web", {"type": "SRV", "ips": ["10.0.0.1"], "ports": [8080]}),
    ]:
        assert api.post(name, body)[0] == 201
    etcd.put(STATUS + "192.168.10.2", {"status": "DOWN"})

    done = apicmd("-list", addr=api.addr)
    assert done.returncode == 0, done.stderr
    wide = len("qiyf-nginx-5.default.svc.skydns.local")  # the longest name sets the column
    assert done.stdout.splitlines() == [
        f"domain: {'_http._tcp.web.skydns.local':>{wide}}       val: "
        "{ type:SRV  srv:[10 0 8080 10.0.0.1] }",
        f"domain: {'cctv2.skydns.local':>{wide}}       val: "
        "{ type:A  ips:[192.168.10.1 192.168.10.2(DOWN)] }",
        f"domain: {'cctv2.skydns.local':>{wide}}       val: "
        "{ type:Cname  alias:tv1.skydns.local }",
        "domain: qiyf-nginx-5.default.svc.skydns.local       val: "
        "{ type:A  ips:[192.168.19.113] }",
    ]
    show = apicmd("-show", "qiyf-nginx-5.default", "-addr", api.addr)
    assert show.returncode == 0
    assert show.stdout.splitlines() == [
        "domain: qiyf-nginx-5.default.svc.skydns.local       val: { type:A  ips:[192.168.19.113] }"]
    alias = apicmd("-show", "tv1.skydns.local", addr=api.addr)
    assert alias.stdout.splitlines()[0].endswith("val: { type:Cname  alias:tv1.skydns.local }")
    as_json = json.loads(apicmd("-show", "cctv2", "--json", addr=api.addr).stdout)
    assert as_json["records"][0]["status"] == {"192.168.10.1": "UP", "192.168.10.2": "DOWN"}
    only = apicmd("-list", "-type", "srv", addr=api.addr)
    assert len(only.stdout.splitlines()) == 1


def test_create_update_delete(api, etcd):
    def ips():
        entries = json.loads(apicmd("-show", "cmd", "--json", addr=api.addr).stdout)["records"]
        return [e["ips"] for e in entries if e["type"] in ("A", "SRV")]

    steps = [
        ("-method", "create", "-domain", "cmd", "-ips", "10.1.0.1;10.1.0.2"),
        ("-method", "update", "-domain", "cmd", "-updates", "ips:10.1.0.1->10.1.0.9"),
        ("-method", "create", "-domain", "cmd", "-alias", "cmd-alias"),
        ("-method", "update", "-domain", "cmd", "-updates", "alias:cmd-alias->cmd-alias2"),
        ("-method", "delete", "-domain", "cmd", "-ips", "10.1.0.2"),
    ]
    for step in steps:
        done = apicmd(*step, addr=api.addr)
        assert (done.returncode, done.stdout) == (0, "OK\n"), (step, done.stderr)
    assert ips() == [["10.1.0.9"]]
    alias = json.loads(apicmd("-show", "cmd-alias2", "--json", addr=api.addr).stdout)
    assert alias["records"][0]["alias"] == ["cmd-alias2.skydns.local."]
    done = apicmd("-method", "delete", "-domain", "cmd", "--json", addr=api.addr)
    assert (done.returncode, json.loads(done.stdout)) == (0, {"result": "OK"})
    assert etcd.get_prefix("/skydns/local/skydns/") == {} and etcd.get_prefix(STATUS) == {}


def test_token_from_the_environment(api, etcd):
    done = apicmd("-list", addr=api.addr, token=None, env_token=TOKENS["alice"])
    assert done.returncode == 0, done.stderr


FAILURES = [
    # argv, token, exit status, stderr (start of it)
    (["-list"], "", 2, "skydns-apicmd: no token: use -token or set SKYDNS_API_TOKEN"),
    ([], ADMIN_TOKEN, 2, "skydns-apicmd: give one of -list, -show NAME, -method, -health"),
    (["-list", "-show", "x"], ADMIN_TOKEN, 2, "skydns-apicmd: -list and -show cannot"),
    (["-method", "create"], ADMIN_TOKEN, 2, "skydns-apicmd: -method create needs -domain"),
    (["-list"], "wrong", 1, "skydns-apicmd: ERR, invalid token (HTTP 401)"),
    (["-show", "nothing"], ADMIN_TOKEN, 1,
     "skydns-apicmd: ERR, nothing.skydns.local. has no records (HTTP 404)"),
    (["-method", "create", "-domain", "x", "-ips", "10.0.0.300"], ADMIN_TOKEN, 1,
     "skydns-apicmd: ERR, '10.0.0.300' is not an IP address (HTTP 400)"),
    (["-method", "delete", "-domain", "nothing"], ADMIN_TOKEN, 1,
     "skydns-apicmd: ERR, nothing.skydns.local. does not exist (HTTP 404)"),
    (["-list", "-addr", "not an address"], ADMIN_TOKEN, 2,
     "skydns-apicmd: -addr 'not an address': expected host:port"),
    (["-list", "-addr", "host:port"], ADMIN_TOKEN, 2, "skydns-apicmd: -addr 'host:port': bad port"),
    (["-list", "-addr", "http://[bad"], ADMIN_TOKEN, 2,
     "skydns-apicmd: -addr 'http://[bad': invalid ipv6 url; expected host:port"),
]


@pytest.mark.parametrize("argv, token, status, message", FAILURES)
def test_failures(api, etcd, argv, token, status, message):
    addr = None if "-addr" in argv else api.addr
    done = apicmd(*argv, addr=addr, token=token)
    assert done.returncode == status, (done.stdout, done.stderr)
    assert done.stderr.splitlines()[-1].startswith(message), done.stderr
    assert "Traceback" not in done.stderr


def test_bad_address_from_the_environment():
    done = apicmd("-list", addr="http://[bad")
    assert done.returncode == 2
    assert done.stderr.startswith("skydns-apicmd: SKYDNS_API_ADDR 'http://[bad': "), done.stderr


def test_an_address_that_is_not_the_api(etcd):
    """etcd's port answers HTTP 404 '404 page not found': not the API, so exit 3 (as for no
    answer), not 1 (the API refused), and the message says to look at -addr."""
    done = apicmd("-list", "-addr", etcd.endpoint)
    assert done.returncode == 3, done.stderr
    assert "answered HTTP 404 '404 page not found', not as the skydns API answers" in \
        done.stderr
    assert "-addr" in done.stderr


def test_help_examples_keep_quoted_strings_whole():
    done = apicmd("-h", token=None)
    assert done.returncode == 0
    quoted = [part for i, part in enumerate(done.stdout.split('"')) if i % 2]
    assert quoted and all("  " not in part and "\n" not in part for part in quoted), quoted


def test_unreachable_api():
    done = apicmd("-list", addr=f"127.0.0.1:{free_port()}")
    assert done.returncode == 3
    assert done.stderr.startswith("skydns-apicmd: cannot reach the API at http://127.0.0.1:")
    assert "Connection refused" in done.stderr


def test_help():
    done = apicmd("-help", token=None)
    assert done.returncode == 0
    for flag in ("-addr", "-token", "-list", "-show", "-method", "-domain", "-ips", "-alias",
                 "-updates", "--json", "SKYDNS_API_ADDR", "SKYDNS_API_TOKEN", "exit status"):
        assert flag in done.stdout


def test_checks_are_set_shown_and_removed(api, etcd):
    create = apicmd("-method", "create", "-domain", "chk", "-ips", "10.2.0.1;10.2.0.2",
                    "-check", "http:8080/healthz", addr=api.addr)
    assert (create.returncode, create.stdout) == (0, "OK\n"), create.stderr
    assert json.loads(etcd.get(STATUS + "10.2.0.1"))["checks"] == [
        {"http": "/healthz", "port": 8080}]
    show = apicmd("-show", "chk", addr=api.addr)
    assert show.stdout.rstrip().endswith(
        "{ type:A  ips:[10.2.0.1 10.2.0.2]  checks:[http:8080/healthz] }"), show.stdout
    # Replaced on one address (two checks), its verdict untouched.
    etcd.put(STATUS + "10.2.0.2", {"status": "DOWN", "ports": [], "checks": []})
    update = apicmd("-method", "update", "-domain", "chk", "-ips", "10.2.0.2",
                    "-check", "https:8443/healthz expect=200,204 tls-skip-verify",
                    "-check", "http:8080/ready", addr=api.addr)
    assert update.returncode == 0, update.stderr
    value = json.loads(etcd.get(STATUS + "10.2.0.2"))
    assert value["status"] == "DOWN" and value["checks"] == [
        {"http": "/healthz", "port": 8443, "scheme": "https", "expect": "200,204",
         "tls-skip-verify": True}, {"http": "/ready", "port": 8080}]
    show = apicmd("-show", "chk", addr=api.addr)
    assert ("checks:{10.2.0.1:[http:8080/healthz] 10.2.0.2:[https:8443/healthz "
            "expect=200,204 tls-skip-verify; http:8080/ready]}") in show.stdout, show.stdout
    removed = apicmd("-method", "update", "-domain", "chk", "-check", "none", addr=api.addr)
    assert removed.returncode == 0, removed.stderr
    assert "checks" not in json.loads(etcd.get(STATUS + "10.2.0.1"))
    assert "checks" not in apicmd("-show", "chk", addr=api.addr).stdout
    bad = apicmd("-method", "update", "-domain", "chk", "-check", "http:8080/a b",
                 addr=api.addr)
    assert bad.returncode == 2 and "-check" in bad.stderr
    bad = apicmd("-method", "update", "-domain", "chk", "-check", "http:99999/",
                 addr=api.addr)
    assert bad.returncode == 2 and "port" in bad.stderr
