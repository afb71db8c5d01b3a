"""Confirmation of failures and isolation, end to end: real scanner and scheduler processes,
a real etcd, one scanner in a network namespace that reaches etcd over a veth pair but
reaches the service network only through a route the test takes away and puts back.

The service addresses (198.19.<n>.10+) are local addresses of the root namespace, on the
root side of the veth: the two root scanners always reach them, the namespaced one only while
its route is there. etcd listens on 127.0.0.1 and on the veth's root address.
"""

import json
import signal
import time

import pytest

from dnstest import Skydns
from etcdtest import EtcdServer, wait_for
from healthtest import (
    HEART,
    STATUS,
    Daemon,
    HttpBackend,
    Listener,
    NetnsHost,
    NetnsUnavailable,
    reports,
    sample,
    scrape,
    statuses,
    wait_status,
)

CONFIRM = "/skydns/monitor/confirm/"
SLACK = 8.0  # a busy 2-core machine runs several of these processes at once
FAST = {"check-interval": 0.2, "check-timeout": 0.5, "rise": 2, "fall": 3}


def alive(*daemons: Daemon) -> bool:
    for daemon in daemons:
        assert daemon.running, f"{daemon!r} exited:\n{daemon.logs()[-3000:]}"
    return True


def heart(etcd, name) -> dict | None:
    text = etcd.get(HEART + name)
    return None if text is None else json.loads(text)


def mod_revisions(etcd, prefix) -> dict[str, int]:
    import base64

    out = json.loads(etcd.etcdctl("get", "--prefix", "-w", "json", "--", prefix))
    return {base64.b64decode(kv["key"]).decode(): int(kv["mod_revision"])
            for kv in out.get("kvs") or []}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """(namespace host with a routed service network of 9 addresses, etcd both sides see)."""
    try:
        host = NetnsHost().__enter__()
    except NetnsUnavailable as exc:
        pytest.skip(f"cannot make a network namespace: {exc}")
    etcd = None
    try:
        try:
            host.route_service_net(9)
        except NetnsUnavailable as exc:
            pytest.skip(str(exc))
        etcd = EtcdServer(tmp_path_factory.mktemp("etcd-ns"), also_listen=[host.host_address])
        etcd.start()
        yield host, etcd
    finally:
        if etcd is not None:
            etcd.close()
        host.__exit__(None, None, None)


@pytest.fixture
def cluster(lab):
    """start(**check) -> (scheduler, {name: scanner}) with scan-r1, scan-r2 in the root
    namespace and scan-ns in the namespace; all stopped at the end."""
    host, etcd = lab
    etcd.delete_prefix("/skydns")
    started: list[Daemon] = []

    def start(**check):
        check = {**FAST, **check}
        sched = Daemon("schedule", etcd.endpoint, "sch").start()
        scanners = {name: Daemon("scanner", etcd.endpoint, name, Check=check).start()
                    for name in ("scan-r1", "scan-r2")}
        # Its metrics on the namespace's veth address: the test scrapes them from here.
        ns = Daemon("scanner", etcd.endpoint_on(host.host_address), "scan-ns", netns=host.netns,
                    Check=check, General={"metrics-addr": f"{host.address}:9602"})
        ns.metrics = f"{host.address}:9602"
        scanners["scan-ns"] = ns.start()
        started.extend([sched, *scanners.values()])
        return sched, scanners

    yield start
    host.restore_service_net()
    for daemon in started:
        daemon.kill()
    for daemon in started:
        daemon.close()


def serve_all(host, etcd):
    """A listener on every service address, its status key, all on one port."""
    port = Listener(host.service[0]).start()
    listeners = {host.service[0]: port}
    for ip in host.service[1:]:
        listeners[ip] = Listener(ip, port.port).start()
    etcd.put_many({STATUS + ip: {"ports": [port.port]} for ip in host.service})
    return listeners


def scanner_checks(daemon: Daemon) -> float:
    metrics = wait_for(lambda: scrape(daemon.metrics), timeout=10, message="scanner metrics")
    return sample(metrics, "skydns_scanner_checks_total") or 0


def settled(etcd, host, daemons) -> dict[str, str]:
    """Every address UP and assigned, three to each scanner; the assignment."""
    def ready():
        alive(*daemons)
        now = reports(etcd)
        ok = (set(now) == set(host.service)
              and sorted(list(now.values()).count(n) for n in ("scan-r1", "scan-r2", "scan-ns"))
              == [3, 3, 3]
              and all((v or {}).get("status") == "UP" for v in statuses(etcd).values()))
        return now if ok else None

    return wait_for(ready, timeout=20 + SLACK, interval=0.1,
                    message="all UP, three addresses per scanner")


@pytest.mark.parametrize("silent", [False, True], ids=["unreachable", "timing-out"])
def test_cut_off_scanner_isolates_itself_nothing_goes_down_and_it_comes_back(lab, cluster,
                                                                            silent):
    # Any failed check counts: refused at once (an unreachable route) or timed out (packets
    # silently dropped): the vantage point decides, not the kind of error.
    host, etcd = lab
    listeners = serve_all(host, etcd)
    try:
        sched, scanners = cluster()
        daemons = [sched, *scanners.values()]
        settled(etcd, host, daemons)
        assert heart(etcd, "scan-ns")["isolated"] is False

        # Steady state, all UP: nothing at all is written (heartbeats are lease keep-alives).
        revision = etcd.revision()
        checks = scanner_checks(scanners["scan-ns"])
        # ten check rounds of its three addresses (the others probe at the same pace)
        wait_for(lambda: scanner_checks(scanners["scan-ns"]) >= checks + 30,
                 timeout=10 + SLACK, interval=0.1, message="ten more rounds of checks")
        assert etcd.revision() == revision

        before = mod_revisions(etcd, STATUS)
        try:
            host.cut_service_net(silent)
        except NetnsUnavailable as exc:
            pytest.skip(str(exc))
        wait_for(lambda: alive(*daemons) and (heart(etcd, "scan-ns") or {}).get("isolated"),
                 timeout=10 + SLACK, interval=0.05, message="scan-ns says it is isolated")
        value = heart(etcd, "scan-ns")
        assert "fail from here" in value["isolation"]
        wait_for(lambda: "scan-ns" not in reports(etcd).values(), timeout=5 + SLACK,
                 interval=0.05, message="its addresses moved to the others")
        assert set(reports(etcd)) == set(host.service)
        # 1. Nothing went DOWN: not one status key was written since the cut.
        assert mod_revisions(etcd, STATUS) == before
        assert "isolated: not writing DOWN" in scanners["scan-ns"].logs()
        assert "confirmation disagreed" in scanners["scan-ns"].logs()
        assert "scanner isolated; moving its addresses" in sched.logs()
        metrics = wait_for(lambda: scrape(scanners["scan-ns"].metrics), timeout=10,
                           message="scan-ns metrics")
        assert sample(metrics, "skydns_scanner_isolated") == 1
        assert sample(metrics, "skydns_scanner_isolations_total") == 1
        assert sample(metrics, "skydns_scanner_disagreements_total") >= 1
        assert sample(metrics, "skydns_scanner_assigned_ips") == 3  # held, still probed

        # 3. The route comes back: it leaves isolation within 10 s and takes work again.
        host.restore_service_net()
        start = time.monotonic()
        wait_for(lambda: alive(*daemons) and heart(etcd, "scan-ns")["isolated"] is False,
                 timeout=10 + SLACK, interval=0.05, message="scan-ns leaves isolation")
        took = time.monotonic() - start
        print(f"\nleft isolation {took:.2f}s after the route came back (target: 10 s)")
        wait_for(lambda: "scan-ns" in reports(etcd).values(), timeout=5 + SLACK,
                 interval=0.05, message="scan-ns is given work again")
        settled(etcd, host, daemons)
        assert sample(scrape(scanners["scan-ns"].metrics), "skydns_scanner_isolated") == 0
        assert mod_revisions(etcd, STATUS) == before  # and still nothing went DOWN
        wait_for(lambda: not etcd.get_prefix(CONFIRM), timeout=5, message="no request left")
    finally:
        for listener in listeners.values():
            listener.stop()


def test_real_failure_is_confirmed_by_another_scanner_and_leaves_dns(lab, cluster):
    host, etcd = lab
    listeners = serve_all(host, etcd)
    dns = None
    try:
        for n, ip in enumerate(host.service):
            etcd.put(f"/skydns/test/example/shop/{n}", {"host": ip, "ttl": 5})
        dns = Skydns(etcd.endpoint).start()
        sched, scanners = cluster()
        assignment = settled(etcd, host, [sched, *scanners.values()])
        assert dns.addresses("shop.example.test.") == sorted(host.service)

        # The namespaced scanner's address really stops listening: from the namespace, the
        # failure is confirmed from the root namespace.
        ip = next(ip for ip, owner in assignment.items() if owner == "scan-ns")
        listeners.pop(ip).stop()
        start = time.monotonic()
        wait_status(etcd, ip, "DOWN", timeout=5 + SLACK)
        took = time.monotonic() - start
        value = json.loads(etcd.get(STATUS + ip))
        assert value["checker"] == "scan-ns"
        assert len(value["confirmedby"]) == 1
        assert value["confirmedby"][0] in ("scan-r1", "scan-r2")
        assert value["reason"]
        wait_for(lambda: ip not in dns.addresses("shop.example.test."), timeout=2 + SLACK,
                 interval=0.02, message="the DOWN address leaves the answers")
        print(f"\nconfirmed DOWN written {took:.2f}s after the backend stopped")
        confirmer = value["confirmedby"][0]
        assert f"ip={ip}" in scanners[confirmer].logs()  # "confirmation answered"
        # The request and its verdict are gone once decided.
        wait_for(lambda: not etcd.get_prefix(CONFIRM), timeout=5, message="request deleted")
        # Every other address stays UP.
        assert all(v["status"] == "UP" for k, v in statuses(etcd).items() if k != ip)

        # Back: UP without asking anyone, and confirmedby goes with the DOWN.
        listeners[ip] = Listener(ip, next(iter(listeners.values())).port).start()
        wait_status(etcd, ip, "UP", timeout=5 + SLACK)
        assert "confirmedby" not in json.loads(etcd.get(STATUS + ip))
    finally:
        for listener in listeners.values():
            listener.stop()
        if dns is not None:
            dns.stop()


# --- root namespace only (the shared etcd) ---------------------------------------------------


def test_confirmer_killed_mid_request_does_not_block_the_verdict(etcd, daemons):
    # A check that hangs: the owner's checks and the confirmer's probe each take 2 s, which
    # is the window to kill the confirmer while it works on the request.
    ip = "127.0.9.1"
    check = {"check-interval": 0.2, "check-timeout": 2.0, "rise": 2, "fall": 2}
    with HttpBackend(ip) as backend:
        etcd.put(STATUS + ip, {"checks": [{"http": "/", "port": backend.port, "timeout": 2}]})
        daemons("schedule", etcd, "sch-k")
        scanners = {name: daemons("scanner", etcd, name, Check=check)
                    for name in ("scan-k1", "scan-k2", "scan-k3")}
        wait_status(etcd, ip, "UP", timeout=20)
        owner = wait_for(lambda: reports(etcd).get(ip), timeout=10, message="assigned")
        wait_for(lambda: len(etcd.get_prefix(HEART)) == 3, timeout=10, message="3 live")

        backend.hang = True
        request_key = CONFIRM + f"{ip}/{owner}"
        request = wait_for(lambda: etcd.get(request_key), timeout=15 + SLACK, interval=0.01,
                           message="the owner asks for a confirmation")
        victim = json.loads(request)["ask"][0]
        scanners[victim].proc.send_signal(signal.SIGKILL)
        scanners[victim].proc.wait()

        wait_status(etcd, ip, "DOWN", timeout=15 + SLACK)
        value = json.loads(etcd.get(STATUS + ip))
        survivor = ({"scan-k1", "scan-k2", "scan-k3"} - {owner, victim}).pop()
        assert value["checker"] == owner and value["confirmedby"] == [survivor]
        assert "asking another" in scanners[owner].logs()
        wait_for(lambda: not etcd.get_prefix(CONFIRM), timeout=5, message="request deleted")


def test_confirm_0_decides_alone_as_before(etcd, daemons):
    ip = "127.0.9.2"
    with Listener(ip) as backend:
        etcd.put(STATUS + ip, {"ports": [backend.port]})
        daemons("schedule", etcd, "sch-z")
        scanners = [daemons("scanner", etcd, name, Check={**FAST, "confirm": 0})
                    for name in ("scan-z1", "scan-z2")]
        wait_status(etcd, ip, "UP", timeout=20)
        wait_for(lambda: len(etcd.get_prefix(HEART)) == 2, timeout=10, message="2 live")
        revision = etcd.revision()
        backend.stop()
        wait_status(etcd, ip, "DOWN", timeout=5 + SLACK)
    value = json.loads(etcd.get(STATUS + ip))
    assert "confirmedby" not in value
    # Exactly one write since the stop: the status itself, nothing under confirm/.
    assert etcd.revision() == revision + 1
    assert not any("confirmation" in s.logs() for s in scanners)


def test_one_live_scanner_writes_down_alone_and_warns(etcd, daemons):
    ip = "127.0.9.3"
    with Listener(ip) as backend:
        etcd.put(STATUS + ip, {"ports": [backend.port]})
        daemons("schedule", etcd, "sch-o")
        scanner = daemons("scanner", etcd, "scan-o1", Check=FAST)
        wait_status(etcd, ip, "UP", timeout=20)
        backend.stop()
        wait_status(etcd, ip, "DOWN", timeout=5 + SLACK)
    assert "confirmedby" not in json.loads(etcd.get(STATUS + ip))
    wait_for(lambda: "only live scanner: writing DOWN without confirmation" in scanner.logs(),
             timeout=5, message="the warning")
    assert not etcd.get_prefix(CONFIRM)
