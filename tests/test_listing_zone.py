"""Listings show the whole zone: GET /skydns/api, `skydns-apicmd -list` and `-show NAME` give
every name with its records, whoever wrote them; plain SkyDNS keys written straight into etcd
are marked read-only, in the same sorted order."""

import os
import subprocess
import sys

import pytest

from apitest import ADMIN_TOKEN, ROOT, STATUS, KubeApi

BASE = "/skydns/local/skydns"


@pytest.fixture
def api(etcd):
    proc = KubeApi(etcd.endpoint).start()
    yield proc
    proc.stop()


def apicmd(api, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKYDNS_API_")}
    return subprocess.run([sys.executable, "-m", "apicmd.cli", "-addr", api.addr,
                           "-token", ADMIN_TOKEN, *args],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=30)


def test_listing_has_every_name_of_the_zone(api, etcd):
    assert api.post("cctv2", {"type": "A", "ips": ["192.168.10.1"]})[0] == 201
    # written straight into etcd, SkyDNS style (etcdctl put, kube2sky, SkyDNS2 tools)
    etcd.put(f"{BASE}/db/x1", {"host": "10.0.1.1", "port": 5432})
    etcd.put(f"{BASE}/db/x2", {"host": "10.0.1.2"})
    etcd.put(f"{BASE}/motd/x", {"text": "maintenance at 02:00"})
    etcd.put(f"{BASE}/www/x", {"host": "db.skydns.local"})

    listed = api.get_json("/skydns/api")["records"]
    assert [(e["domain"], e["type"], e.get("readonly", False)) for e in listed] == [
        ("cctv2.skydns.local.", "A", False),
        ("db.skydns.local.", "A", True),
        ("db.skydns.local.", "SRV", True),
        ("db.skydns.local.", "CNAME", True),
        ("motd.skydns.local.", "TXT", True),
    ]
    assert listed[1]["ips"] == ["10.0.1.2"] and listed[2]["ips"] == ["10.0.1.1"]
    assert listed[3]["alias"] == ["www.skydns.local."]

    one = api.get_json("/skydns/api/db")["records"]
    assert [(e["type"], e["readonly"]) for e in one] == [("A", True), ("SRV", True),
                                                         ("CNAME", True)]

    # health marks hand-written records too
    etcd.put(f"{STATUS}10.0.1.2", {"status": "DOWN"})
    etcd.put(f"{STATUS}10.0.1.1", {"status": "UP", "maintenance": {"reason": "r"}})
    done = apicmd(api, "-list")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 5
    assert lines[0].endswith("val: { type:A  ips:[192.168.10.1] }")
    assert lines[1].endswith("val: { type:A  ips:[10.0.1.2(DOWN)]  read-only }")
    assert lines[2].endswith("val: { type:SRV  srv:[10 0 5432 10.0.1.1(MAINT)]  read-only }")
    assert lines[3].endswith("val: { type:Cname  alias:www.skydns.local  read-only }")
    assert lines[4].endswith('val: { type:TXT  text:["maintenance at 02:00"]  read-only }')

    shown = apicmd(api, "-show", "db")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == lines[1:4]

    # the API still refuses to change what it did not write, for a non-admin owner
    status, _ = api.request("DELETE", "/skydns/api/db", token="alice-token-0001")
    assert status in (403, 409)
    assert etcd.get(f"{BASE}/db/x1") is not None
