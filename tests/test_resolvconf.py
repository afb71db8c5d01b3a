"""`skydns resolv-conf`: nameservers from the zone's NS records in etcd, search list, ndots."""

from __future__ import annotations

import json
import subprocess
import sys

from dnstest import ROOT, write_config


def resolv_conf(etcd, tmp_path, *args):
    config = write_config(tmp_path / "skydns.conf", etcd.endpoint, 5353)
    return subprocess.run([sys.executable, "-m", "dnsserver", "resolv-conf", "--config-file",
                           str(config), *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)


def test_nameservers_from_ns_records(etcd, tmp_path):
    etcd.put("/skydns/test/example/dns/ns/ns1", {"host": "127.0.0.53"})
    etcd.put("/skydns/test/example/dns/ns/ns2", {"host": "ns2.example.test"})
    etcd.put("/skydns/test/example/ns2/x", {"host": "127.0.0.54"})
    etcd.put("/skydns/test/example/dns/ns/ns3", {"host": "127.0.0.55"})
    etcd.put("/skydns/monitor/status/127.0.0.55", {"status": "DOWN"})
    out = resolv_conf(etcd, tmp_path, "--namespace", "prod", "--ndots", "3")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert sorted(line for line in lines if line.startswith("nameserver")) == [
        "nameserver 127.0.0.53", "nameserver 127.0.0.54"]  # the DOWN one left out
    assert "search prod.svc.example.test svc.example.test example.test" in lines
    assert "options ndots:3" in lines

    docker = resolv_conf(etcd, tmp_path, "--docker")
    assert docker.returncode == 0, docker.stderr
    flags = docker.stdout.split()
    assert "--dns=127.0.0.53" in flags and "--dns=127.0.0.54" in flags
    assert flags[-3:] == ["--dns-search=svc.example.test", "--dns-search=example.test",
                          "--dns-opt=ndots:5"]

    as_json = resolv_conf(etcd, tmp_path, "--json", "--namespace", "prod")
    assert as_json.returncode == 0, as_json.stderr
    obj = json.loads(as_json.stdout)
    assert sorted(obj["nameservers"]) == ["127.0.0.53", "127.0.0.54"]
    assert obj["search"] == ["prod.svc.example.test", "svc.example.test", "example.test"]
    assert obj["ndots"] == 5


def test_nameserver_option_needs_no_etcd(tmp_path):
    config = write_config(tmp_path / "skydns.conf", "http://127.0.0.1:1", 5353)
    out = subprocess.run([sys.executable, "-m", "dnsserver", "resolv-conf", "--config-file",
                          str(config), "--nameserver", "127.0.0.1", "--nameserver", "::1"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[1:] == [
        "nameserver 127.0.0.1", "nameserver ::1", "search svc.example.test example.test",
        "options ndots:5"]


def test_no_ns_records_and_bad_options(etcd, tmp_path):
    out = resolv_conf(etcd, tmp_path)
    assert out.returncode == 1 and "no NS record" in out.stderr and "--nameserver" in out.stderr
    for args in (["--nameserver", "ns1.example.test"], ["--ndots", "16"],
                 ["--namespace", "a b"]):
        bad = resolv_conf(etcd, tmp_path, *args)
        assert bad.returncode == 2 and "skydns resolv-conf: error:" in bad.stderr, bad.stderr
