"""Maintenance and the health view end to end: real etcd, two skydns-scanner processes and a
scheduler, skydns-kubeapi and skydns answering real DNS queries (dig), and skydns-apicmd.

An address put in maintenance leaves the answers within 1 s and the scanners, which keep
probing it (and flip it), never put it back; leaving maintenance puts it back; an answer
whose every address is in maintenance fails open; `-health --json` agrees with dig.
"""

import json
import os
import subprocess
import sys
import time

from apitest import ADMIN_TOKEN, ROOT, KubeApi
from dnstest import Skydns
from etcdtest import wait_for
from healthtest import STATUS, Listener, status_of

NAME = "web.example.test."  # the zone tests/dnstest.py serves
IPS = ("127.0.0.71", "127.0.0.72")
DNS_DEADLINE = 1.0  # the bound on maintenance reaching the answers


def apicmd(api, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKYDNS_API_")}
    return subprocess.run([sys.executable, "-m", "apicmd.cli", *args, "-addr", api.addr,
                           "-token", ADMIN_TOKEN], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=30)


def answers_within(server, want: list[str], message: str) -> None:
    """Wait until the DNS answer for NAME is `want`, failing only when a query *sent* after
    the deadline still disagrees: a slow query on a busy machine is not the server's delay.
    dnspython over UDP, not a dig process per poll, so each look is quick."""
    deadline = time.monotonic() + DNS_DEADLINE
    while True:
        sent = time.monotonic()
        got = server.addresses(NAME)
        if got == sorted(want):
            return
        if sent >= deadline:
            raise AssertionError(f"{message}: still {got} after {DNS_DEADLINE}s")
        time.sleep(0.01)


def dig(server, *args) -> list[str]:
    out = subprocess.run(["dig", "@127.0.0.1", "-p", str(server.port), "+short", "+tries=1",
                          "+time=2", *args], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return sorted(line for line in out.stdout.split() if line)


def health(api) -> dict:
    done = apicmd(api, "-health", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def served(doc: dict, name: str) -> list[str]:
    """What the health view says the DNS answers for `name`: UP and not in maintenance,
    all of them when none is (fail open)."""
    rows = [r for r in doc["addresses"] if name in r["names"]]
    up = [r["ip"] for r in rows if r["status"] != "DOWN" and not r["maintenance"]]
    return sorted(up or [r["ip"] for r in rows])


def test_maintenance_takes_an_address_out_and_scanners_leave_it_out(etcd, daemons):
    api = KubeApi(etcd.endpoint, zone="example.test.").start()
    server = Skydns(etcd.endpoint).start()
    backends = [Listener(ip).start() for ip in IPS]
    try:
        status, _ = api.post("web", {"type": "A", "ips": list(IPS)})
        assert status == 201
        for ip, backend in zip(IPS, backends, strict=True):
            etcd.put(STATUS + ip, {"status": "UP", "ports": [backend.port]})
        for host in ("scan-m1", "scan-m2"):
            daemons("scanner", etcd, host, Check={"rise": 1, "fall": 1})
        daemons("schedule", etcd, "sch-m")
        wait_for(lambda: all(r["scanner"] for r in health(api)["addresses"]), timeout=20,
                 message="every address assigned to a scanner")
        assert dig(server, NAME) == sorted(IPS)

        done = apicmd(api, "-maint", IPS[0], "-reason", "disk swap")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"OK: {IPS[0]} is MAINT"
        answers_within(server, [IPS[1]], "the address in maintenance leaves the answers")
        # AXFR carries the zone as answered (each instance's own name keeps its one address:
        # fail open, as for DOWN)
        axfr = subprocess.run(["dig", "@127.0.0.1", "-p", str(server.port), "+tcp",
                               "example.test.", "AXFR"], capture_output=True, text=True,
                              timeout=30).stdout
        assert sorted(line.split()[-1] for line in axfr.splitlines()
                      if line.startswith(NAME)) == [IPS[1]], axfr

        # The scanners keep probing it: it goes DOWN and UP again under maintenance, and
        # neither flip brings it back or removes the field.
        backends[0].stop()
        wait_for(lambda: status_of(etcd, IPS[0]) == "DOWN", timeout=20)
        backends[0] = Listener(IPS[0], backends[0].port).start()
        wait_for(lambda: status_of(etcd, IPS[0]) == "UP", timeout=20)
        value = json.loads(etcd.get(STATUS + IPS[0]))
        assert value["maintenance"]["reason"] == "disk swap"
        assert dig(server, NAME) == [IPS[1]]

        doc = health(api)
        assert served(doc, NAME) == dig(server, NAME)
        row = next(r for r in doc["addresses"] if r["ip"] == IPS[0])
        assert row["maintenance"]["by"] == "admin" and row["status"] == "UP"
        assert "(MAINT)" in apicmd(api, "-show", "web").stdout
        table = apicmd(api, "-health")
        assert table.returncode == 0, table.stderr
        line = next(line for line in table.stdout.splitlines() if line.startswith(IPS[0]))
        assert "MAINT" in line and "disk swap" in line and "ago)" in line
        assert "scan-m1 alive" in table.stdout and "leader: sch-m" in table.stdout
        detail = apicmd(api, "-health", IPS[0])
        assert detail.returncode == 0, detail.stderr
        assert "UP -> MAINT" in detail.stdout and "DOWN -> UP" in detail.stdout

        # Every address in maintenance: the all-DOWN rule answers them all (fail open).
        assert apicmd(api, "-maint", IPS[1], "-reason", "rack move").returncode == 0
        answers_within(server, IPS, "fail open when every address is in maintenance")
        assert served(health(api), NAME) == dig(server, NAME)
        assert apicmd(api, "-unmaint", IPS[1]).returncode == 0
        answers_within(server, [IPS[1]], "back to one address in maintenance")

        # Leaving maintenance puts an UP address back.
        done = apicmd(api, "-unmaint", IPS[0])
        assert done.returncode == 0, done.stderr
        answers_within(server, IPS, "the address is back once maintenance ends")
        assert served(health(api), NAME) == dig(server, NAME)
        again = apicmd(api, "-unmaint", IPS[0])
        assert again.returncode == 1 and "not in maintenance" in again.stderr
        usage = apicmd(api, "-maint", IPS[0])
        assert usage.returncode == 2 and "-reason" in usage.stderr
        bad = apicmd(api, "-health", "10.0.0.300")
        assert bad.returncode == 1 and "not an IP address" in bad.stderr
    finally:
        for backend in backends:
            backend.stop()
        server.stop()
        api.stop()
