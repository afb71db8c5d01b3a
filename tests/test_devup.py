"""`skydns up` (what `make demo` runs): the whole suite starts on one machine, the scanners find
the stopped backend DOWN by themselves, DNS and the API answer, and Ctrl-C leaves no process."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import dns.message
import dns.query
import pytest

from apicmd.client import Client
from devup import recursor as devup_recursor
from devup.localetcd import find_binary, version_of

from dnstest import ROOT, free_port
from etcdtest import wait_for

MONITOR = "/skydns/monitor/"
WEB = ["127.0.10.1", "127.0.10.2"]  # 127.0.10.3 does not listen


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _free_run(count: int) -> int:
    """The first of `count` consecutive ports free on 127.0.0.1 (the metrics ports)."""
    while True:
        base = free_port()
        if base + count < 65536 and all(_bindable("127.0.0.1", base + i) for i in range(count)):
            return base


def _free_backend_port() -> int:
    while True:
        port = free_port()
        if all(_bindable(f"127.0.10.{i}", port) for i in range(1, 5)):
            return port


def _stat(pid: int) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _descendants(root: int) -> dict[int, bytes]:
    """{pid: start time} of every live process below `root`, from /proc."""
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (fields := _stat(int(name))) is not None:
            parents[int(name)] = int(fields[1])
    found, frontier = {}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found and (fields := _stat(pid)) is not None:
                found[pid] = fields[19]  # start time: tells a reused pid from ours
                frontier.append(pid)
    return found


def _still_running(procs: dict[int, bytes]) -> list[int]:
    return [
        pid for pid, start in procs.items()
        if (fields := _stat(pid)) is not None and fields[19] == start and fields[0] != b"Z"
    ]


def _etcd(endpoint: str, prefix: str) -> dict[str, tuple[dict | str, int]]:
    """{key below prefix: (JSON value or text, create revision)}, read with etcdctl."""
    out = subprocess.run(
        [find_binary("etcdctl"), "--endpoints", endpoint, "get", "--prefix", "-w", "json", prefix],
        capture_output=True, check=True, env={**os.environ, "ETCDCTL_API": "3"},
    ).stdout
    result = {}
    for kv in json.loads(out).get("kvs", []):
        text = base64.b64decode(kv.get("value", "")).decode()
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        result[base64.b64decode(kv["key"]).decode()[len(prefix):]] = (value, kv["create_revision"])
    return result


def _web(port: int) -> list[str]:
    reply = dns.query.udp(dns.message.make_query("web.skydns.test.", "A"), "127.0.0.1",
                          port=port, timeout=2)
    return sorted(rr.address for rrset in reply.answer for rr in rrset)


def _start_up(tmp_path: Path, out: Path, dns_port: int, api_port: int, backend: int,
              *extra: str) -> subprocess.Popen:
    """`skydns up` on free ports with the sample configs, its output going to `out`."""
    with open(out, "wb") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "dnsserver", "up", "--config-dir", str(ROOT / "etc"),
             "--data-dir", str(tmp_path / "demo"), "--dns-port", str(dns_port),
             "--api-port", str(api_port), "--base-port", str(_free_run(6)),
             "--backend-port", str(backend), "--etcd-port", str(free_port()), *extra],
            stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)


def test_up_runs_the_suite_and_stops_clean(tmp_path: Path):
    dns_port, api_port, backend = free_port(), free_port(), _free_backend_port()
    out = tmp_path / "out.txt"
    proc = _start_up(tmp_path, out, dns_port, api_port, backend)
    children: dict[int, bytes] = {}
    try:
        wait_for(lambda: "Ctrl-C stops everything" in out.read_text() or proc.poll() is not None,
                 timeout=60)
        text = out.read_text()
        assert proc.poll() is None, text
        assert f"dig @127.0.0.1 -p {dns_port} web.skydns.test A" in text
        for log in ("skydns", "scanner-a", "scanner-b", "sched-a", "sched-b", "skydns-kubeapi"):
            assert f"{log}.log" in text

        # The scanners, not `skydns up`, found 127.0.10.3 DOWN; skydns leaves it out.
        wait_for(lambda: _web(dns_port) == WEB, timeout=5, message=text)
        endpoint = re.search(r"--endpoints (http://[0-9.:]+)", text)[1]
        status = _etcd(endpoint, MONITOR + "status/")
        assert status["127.0.10.3"][0]["status"] == "DOWN"
        assert status["127.0.10.3"][0]["checker"] in ("scanner-a", "scanner-b")
        assert status["127.0.10.3"][0]["ports"] == [backend]

        assert set(_etcd(endpoint, MONITOR + "heart/")) == {"scanner-a", "scanner-b"}
        locks = _etcd(endpoint, MONITOR + "lock/")
        assert set(locks) == {"sched-a", "sched-b"}
        leader = min(locks, key=lambda name: locks[name][1])  # the oldest lock key leads
        assert f"Scheduler {leader} leads" in text
        reports = _etcd(endpoint, MONITOR + "report/")
        assert set(reports) == set(status)
        assert {value["hostname"] for value, _ in reports.values()} <= {"scanner-a", "scanner-b"}

        token = re.search(r"SKYDNS_API_TOKEN=(\S+)", text)[1]
        listing = Client(f"127.0.0.1:{api_port}", token).listing()
        assert {"domain": "app.skydns.test.", "type": "A", "ips": ["127.0.10.4"]}.items() <= \
            next(r for r in listing["records"] if r["domain"] == "app.skydns.test.").items()

        # The demo's own data passes the lint it suggests (warnings at most).
        assert "--etcd   # lint the records" in text
        check = subprocess.run(
            [sys.executable, "-m", "dnsserver", "check", "--config-file",
             str(tmp_path / "demo" / "skydns.conf"), "--etcd", "--json"],
            capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr
        assert json.loads(check.stdout)["ok"]

        # SIGUSR1 stops the 127.0.10.2 backend: a scanner marks it DOWN, DNS follows.
        proc.send_signal(signal.SIGUSR1)
        wait_for(lambda: _web(dns_port) == WEB[:1], timeout=20, interval=0.1,
                 message=out.read_text())
    finally:
        children = _descendants(proc.pid)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    assert code == 0, out.read_text()
    # etcd, skydns and its worker, two scanners, two schedulers, the API
    assert len(children) >= 8, children
    wait_for(lambda: not _still_running(children), timeout=10,
             message=f"left running: {_still_running(children)}\n{out.read_text()}")


@pytest.mark.skipif(devup_recursor.binary() is None, reason="pdns_recursor not installed")
def test_up_with_recursor_and_janitor(tmp_path: Path):
    dns_port, api_port, rec_port, rec_api = free_port(), free_port(), free_port(), free_port()
    out = tmp_path / "out.txt"
    proc = _start_up(tmp_path, out, dns_port, api_port, _free_backend_port(), "--recursor",
                     "--recursor-port", str(rec_port), "--recursor-api-port", str(rec_api))
    children: dict[int, bytes] = {}
    try:
        wait_for(lambda: "Ctrl-C stops everything" in out.read_text() or proc.poll() is not None,
                 timeout=90)
        text = out.read_text()
        assert proc.poll() is None, text
        assert f"dig @127.0.0.1 -p {rec_port} web.skydns.test A +short" in text
        assert "pdns_recursor.log" in text and "skydns-janitor.log" in text
        assert f"127.0.0.1:{rec_port} udp+tcp, API http://127.0.0.1:{rec_api}/api/v1" in text
        assert f"purges http://127.0.0.1:{rec_api}, metrics http://127.0.0.1:" in text
        wait_for(lambda: _web(rec_port) == WEB, timeout=10, message=text)
        assert _web(rec_port) == WEB  # cached now (TTL 30 s in the samples)
        endpoint = re.search(r"--endpoints (http://[0-9.:]+)", text)[1]
        subprocess.run([find_binary("etcdctl"), "--endpoints", endpoint, "put",
                        MONITOR + "status/127.0.10.1", '{"status":"DOWN"}'], check=True,
                       capture_output=True, env={**os.environ, "ETCDCTL_API": "3"})
        wait_for(lambda: _web(rec_port) == WEB[1:], timeout=10, message=out.read_text())
    finally:
        children = _descendants(proc.pid)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    assert code == 0, out.read_text()
    wait_for(lambda: not _still_running(children), timeout=10,
             message=f"left running: {_still_running(children)}\n{out.read_text()}")


def _ready_json(proc: subprocess.Popen, out: Path, timeout: float = 60) -> dict:
    """The `--json` summary, once `skydns up` prints it."""
    def summary():
        if proc.poll() is not None:
            return {"exited": proc.returncode}
        line = out.read_text().partition("\n")[0]
        return json.loads(line) if line.startswith("{") else None

    try:
        found = wait_for(summary, timeout=timeout, interval=0.1)
    except AssertionError:
        raise AssertionError(f"no summary within {timeout}s: {out.read_text()}") from None
    assert "exited" not in found, out.read_text()
    return found


def _stop(proc: subprocess.Popen, out: Path) -> None:
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0, out.read_text()


@pytest.mark.timeout(300)
def test_restart_within_a_minute_restart_components_and_reset(tmp_path: Path):
    """Stopped and started again at once on the same ports and data: it comes up (TIME_WAIT is
    not "in use", etcd stays where it was), says the records are an earlier run's, restarts a
    component that is killed, and `--reset` starts from the samples again."""
    ports = ["--etcd-port", str(free_port()), "--base-port", str(_free_run(6))]
    dns_port, api_port, backend = free_port(), free_port(), _free_backend_port()

    def start(n: int, *extra: str) -> tuple[subprocess.Popen, Path]:
        out = tmp_path / f"out{n}.json"
        err = tmp_path / f"err{n}.txt"
        with open(err, "wb") as fh:
            proc = subprocess.Popen(
                [sys.executable, "-m", "dnsserver", "up", "--config-dir", str(ROOT / "etc"),
                 "--data-dir", str(tmp_path / "demo"), "--dns-port", str(dns_port),
                 "--api-port", str(api_port), "--backend-port", str(backend), *ports,
                 "--json", *extra],
                stdout=open(out, "wb"), stderr=fh, cwd=ROOT)
        return proc, out

    proc, out = start(1)
    try:
        first = _ready_json(proc, out)
        assert first["samples_written"] and first["zone"] == "skydns.test."
        assert first["etcd"]["moved"] == ""
        scanner = next(c for c in first["components"] if c["name"] == "scanner-a")
        # Talk to every TCP server so the stop leaves connections in TIME_WAIT.
        Client(f"127.0.0.1:{api_port}", first["api"]["token"]).listing()
        # A killed component is started again, and that is said.
        os.kill(scanner["pid"], signal.SIGKILL)
        err = tmp_path / "err1.txt"
        wait_for(lambda: "scanner-a restarted" in err.read_text(), timeout=30, interval=0.1,
                 message=str(err))
        assert "restarting it in" in err.read_text()
        endpoint = first["etcd"]["endpoint"]
        wait_for(lambda: "scanner-a" in _etcd(endpoint, MONITOR + "heart/"), timeout=20)
    finally:
        _stop(proc, out)

    # etcd's data is kept per etcd version: an older etcd on PATH never sees a newer one's
    version = version_of(find_binary("etcd", bundled_first=True))
    assert (tmp_path / "demo" / "etcd" / f"data-{version}").is_dir()
    proc, out = start(2)
    try:
        again = _ready_json(proc, out)
        assert not again["samples_written"]  # the records of the first run are kept
        assert again["etcd"]["endpoint"] == endpoint and again["etcd"]["moved"] == ""
        assert _web(dns_port) == WEB
    finally:
        _stop(proc, out)

    # Its port really taken, etcd moves, and says so (never silently).
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # etcd's TIME_WAIT
    holder.bind(("127.0.0.1", int(endpoint.rsplit(":", 1)[1])))
    holder.listen()
    proc, out = start(3, "--reset", "--no-restart")
    try:
        fresh = _ready_json(proc, out)
        assert fresh["samples_written"] and not fresh["restart"]
        err = (tmp_path / "err3.txt").read_text()
        assert "--reset: removed" in err
        assert fresh["etcd"]["endpoint"] != endpoint
        assert fresh["etcd"]["moved"].startswith(f"{endpoint[7:]} is held by pid {os.getpid()}")
        assert f"etcd on {fresh['etcd']['endpoint']} instead" in err
    finally:
        holder.close()
        _stop(proc, out)


def test_a_taken_port_names_its_holder(tmp_path: Path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        api_port = holder.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "dnsserver", "up", "--data-dir", str(tmp_path / "demo"),
             "--dns-port", str(free_port()), "--api-port", str(api_port),
             "--base-port", str(_free_run(6)), "--backend-port", str(_free_backend_port())],
            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 1
    assert f"127.0.0.1:{api_port}/tcp held by pid {os.getpid()} (" in done.stderr
    assert "pass --api-port" in done.stderr
    assert not (tmp_path / "demo").exists()  # nothing started


def test_etcd_refusing_its_data_says_what_to_do(tmp_path: Path):
    """An etcd older than the one that wrote the data dir stops at once; the message carries
    etcd's own reason and the way out (`--reset`), not only "see etcd.log"."""
    from devup.localetcd import EtcdStartError, LocalEtcd, refusal

    log = tmp_path / "etcd.log"
    log.write_text('{"level":"info","msg":"starting"}\n'
                   '{"level":"fatal","msg":"failed to start etcd",'
                   '"error":"cluster cannot be downgraded (current version: 3.4.30 is lower '
                   'than determined cluster version: 3.5)."}\n')
    assert refusal(log) == ("failed to start etcd; cluster cannot be downgraded (current "
                            "version: 3.4.30 is lower than determined cluster version: 3.5).")
    # A real refusal: the data dir is a file, etcd cannot use it.
    (tmp_path / "etcd").mkdir()
    (tmp_path / "etcd" / "data-x").write_text("not a directory")
    etcd = LocalEtcd(tmp_path / "etcd", free_port(), data_name="data-x")
    with pytest.raises(EtcdStartError) as err:
        etcd.start(timeout=30)
    assert "exited while starting: " in str(err.value)
    assert "skydns up --reset" in str(err.value)


def test_restart_delay_backs_off_while_it_keeps_exiting():
    from devup.procs import FIRST_RESTART, MAX_RESTART, STABLE, restart_delay

    delays = [FIRST_RESTART]
    for _ in range(6):
        delays.append(restart_delay(delays[-1], ran_for=1.0))
    assert delays[:3] == [FIRST_RESTART, FIRST_RESTART * 2, FIRST_RESTART * 4]
    assert delays[-1] == MAX_RESTART
    assert restart_delay(MAX_RESTART, ran_for=STABLE) == FIRST_RESTART
