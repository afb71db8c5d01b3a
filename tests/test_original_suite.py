"""Drop-in for users of the original suite: each daemon starts with the config file printed in
the original README (tests/data/original/, verbatim; addresses and directories patched here),
and the README's flow works: POST through the API, then `nslookup` against skydns."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from apitest import ADMIN_TOKEN, KubeApi
from dnstest import Skydns, free_port
from etcdtest import wait_for
from proctest import Process

DATA = Path(__file__).resolve().parent / "data" / "original"
LOCK = "/skydns/monitor/lock/"
HEART = "/skydns/monitor/heart/"
REPORT = "/skydns/monitor/report/"


def patched(name: str, dst: Path, **values: str) -> Path:
    """The README file `name` with the given keys' values replaced, every other byte kept.

    Keys are written with '_' for '-'. Each key must occur, so a patch cannot go unnoticed.
    """
    text = (DATA / name).read_text()
    for key, value in values.items():
        key = key.replace("_", "-")
        text, count = re.subn(rf"(?m)^({re.escape(key)}\s*=\s*).*$",
                              lambda m, v=value: m.group(1) + v, text)
        assert count >= 1, f"{key} not in {name}"
    dst.write_text(text)
    return dst


class OriginalSkydns(Skydns):
    def __init__(self, etcd_endpoint: str):
        Process.__init__(self, "skydns-original-", "skydns.log")
        self.port = free_port()
        self.config = patched(
            "skydns.conf", self.dir / "skydns.conf",
            dns_addr=f"127.0.0.1:{self.port}", log_dir=str(self.dir / "log"),
            etcd_servers=etcd_endpoint, statsServer=f"127.0.0.1:{free_port()}")

    def ready(self) -> bool:
        self.assert_running()
        try:
            return self.query("skydns.local.", "SOA", timeout=0.5).rcode() == 0
        except Exception:  # noqa: BLE001 - not up yet
            return False


class OriginalApi(KubeApi):
    def __init__(self, etcd_endpoint: str):
        Process.__init__(self, "skydns-api-original-", "api.log")
        self.port = free_port()
        # The README's API file says domain=hades.local while its DNS file serves skydns.local
        # and its flow asks for cctv2.skydns.local: the one patch beyond addresses and
        # directories makes the two files agree, as a user following it would.
        self.config = patched(
            "skydns-api.conf", self.dir / "api.conf", domain="skydns.local",
            api_address=f"127.0.0.1:{self.port}", etcd_server=etcd_endpoint,
            log_dir=str(self.dir / "log"))


class OriginalDaemon(Process):
    def __init__(self, module: str, name: str, etcd_endpoint: str):
        super().__init__(f"skydns-{module}-original-", f"{module}.log")
        self.module = self.what = module
        self.config = patched(name, self.dir / name, etcd_machine=etcd_endpoint,
                              log_dir=str(self.dir / "log"))

    def ready(self) -> bool:
        self.assert_running()
        return True


def nslookup(name: str, port: int) -> str:
    done = subprocess.run(["nslookup", f"-port={port}", "-type=A", name, "127.0.0.1"],
                          capture_output=True, text=True, timeout=30)
    return done.stdout


def addresses(output: str) -> list[str]:
    # Skip the server's own "Address: 127.0.0.1#port" line.
    return sorted(re.findall(r"(?m)^Address:\s*([0-9.]+)$", output))


@pytest.fixture
def stack(etcd):
    started: list[Process] = []

    def start(proc: Process) -> Process:
        started.append(proc)
        return proc.start()

    yield start
    for proc in started:
        proc.stop()


def warnings_of(proc: Process) -> list[str]:
    return [line for line in proc.logs().splitlines() if ": config warning: " in line]


def test_readme_flow_with_the_original_files(etcd, stack):
    dns = stack(OriginalSkydns(etcd.endpoint))
    api = stack(OriginalApi(etcd.endpoint))

    # the README: POST type A, then an alias, then nslookup each
    ips = ["127.0.10.1", "127.0.10.2", "127.0.10.3"]
    assert api.post(f"cctv2?token={ADMIN_TOKEN}", {"type": "A", "ips": ips}, token=None)[0] in (
        200, 201)
    assert api.post("cctv2.skydns.local", {"type": "cname", "alias": "tv1"})[0] in (200, 201)
    wait_for(lambda: addresses(nslookup("cctv2.skydns.local", dns.port)) == ips, timeout=10,
             message=nslookup("cctv2.skydns.local", dns.port))
    out = nslookup("tv1.skydns.local", dns.port)
    assert "tv1.skydns.local\tcanonical name = cctv2.skydns.local." in out, out
    assert addresses(out) == ips

    # monitor: an address marked DOWN where the README's DNS file watches is left out
    etcd.put("/hades/monitor/status/127.0.10.3", {"status": "DOWN"})
    wait_for(lambda: addresses(nslookup("cctv2.skydns.local", dns.port)) == ips[:2],
             timeout=10)

    # the API's file: its obsolete keys are named once, with why; the DNS file has none
    api_warnings = warnings_of(api)
    assert len(api_warnings) == 1, api.logs()  # kube-enable = NO is read, not warned about
    assert api_warnings[0].startswith("skydns-kubeapi: config warning: ")
    assert "[General] host: ignored: " in api_warnings[0]
    assert warnings_of(dns) == []
    # log-dir is honoured (glog's numeric log-level 2 reads as debug)
    assert (api.dir / "log" / "skydns-kubeapi.log").exists()


def test_scanner_and_scheduler_run_with_the_original_files(etcd, stack):
    scheduler = stack(OriginalDaemon("scheduler", "skydns-schedule.conf", etcd.endpoint))
    scanner = stack(OriginalDaemon("scanner", "skydns-scanner.conf", etcd.endpoint))
    # hostname = hostname1 in both files: the scheduler leads, the scanner beats
    wait_for(lambda: etcd.get(LOCK + "hostname1") is not None, timeout=20,
             message=scheduler.logs())
    wait_for(lambda: etcd.get(HEART + "hostname1") is not None, timeout=20,
             message=scanner.logs())
    # an address to monitor under the files' status-path is assigned to the scanner
    etcd.put("/skydns/monitor/status/127.0.0.1", {"status": "UP", "ports": [free_port()]})
    wait_for(lambda: "hostname1" in (etcd.get(REPORT + "127.0.0.1") or ""), timeout=90,
             message=scheduler.logs())
    for proc, key, program in ((scanner, "[General] core", "skydns-scanner"),
                               (scheduler, "[General] force-lock-time", "skydns-schedule")):
        found = warnings_of(proc)
        assert len(found) == 1, proc.logs()
        assert found[0].startswith(f"{program}: config warning: ") and key in found[0]
    scanner.assert_running()
    scheduler.assert_running()
