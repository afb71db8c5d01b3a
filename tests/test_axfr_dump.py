"""AXFR from skydns and `skydns dump` print the same zone, as it is answered; `dump --raw`
prints the etcd leaves; AXFR only for allowed clients."""

from __future__ import annotations

import json
import subprocess
import sys

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.xfr
import dns.zone
import pytest

from dnstest import ROOT, Skydns

RECORDS = {
    "/skydns/test/example/api/i1": {"host": "10.0.0.1", "ttl": 60},
    "/skydns/test/example/api/i2": {"host": "10.0.0.2", "ttl": 60},
    "/skydns/test/example/www/x": {"host": "api.example.test"},
    "/skydns/test/example/west/db/1": {"host": "10.0.1.1", "port": 5432, "priority": 10},
    "/skydns/test/example/motd/x": {"text": "maintenance at 02:00"},
    "/skydns/test/example/dns/ns/ns1": {"host": "10.0.9.1"},
    "/skydns/arpa/in-addr/10/0/0/1": {"host": "api.example.test"},
}


@pytest.fixture
def server(etcd):
    for key, value in RECORDS.items():
        etcd.put(key, value)
    etcd.put("/skydns/monitor/status/10.0.0.2", {"status": "DOWN"})
    srv = Skydns(etcd.endpoint, Dns={"axfr-allow": "127.0.0.1/32"}).start()
    yield srv
    srv.stop()


def axfr_lines(port: int, zone: str, source="127.0.0.1") -> list[str]:
    xfr = dns.query.xfr("127.0.0.1", zone, port=port, source=source, lifetime=5, relativize=False)
    lines = []
    for message in xfr:
        for rrset in message.answer:
            for rr in rrset:
                lines.append(
                    f"{rrset.name} {rrset.ttl} IN {dns.rdatatype.to_text(rrset.rdtype)} "
                    f"{rr.to_text()}"
                )
    return lines


def dump(srv: Skydns, *args) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "dnsserver", "dump", "--config-file", str(srv.config), *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_axfr_matches_dump(server):
    lines = axfr_lines(server.port, "example.test.")
    assert lines[0].split()[3] == "SOA" and lines[-1] == lines[0]
    dumped = [line.split(" ; ")[0] for line in dump(server).splitlines()]
    assert lines[:-1] == dumped
    assert "example.test. 30 IN NS ns1.ns.dns.example.test." in dumped
    # as answered: the aggregated name, the DOWN address left out, the CNAME where asked
    assert "api.example.test. 60 IN A 10.0.0.1" in dumped
    assert "api.example.test. 60 IN A 10.0.0.2" not in dumped
    # i2 alone: every address DOWN, so all are answered (fail open), and so transferred
    assert "i2.api.example.test. 60 IN A 10.0.0.2" in dumped
    assert "www.example.test. 30 IN CNAME api.example.test." in dumped
    assert "db.west.example.test. 30 IN SRV 10 100 5432 1.db.west.example.test." in dumped
    zone = dns.zone.from_xfr(dns.query.xfr("127.0.0.1", "example.test.", port=server.port))
    assert zone.get_rdataset("i1.api", "A")[0].address == "10.0.0.1"
    raw = dump(server, "--raw")
    assert "i2.api.example.test. 60 IN A 10.0.0.2 ; DOWN" in raw
    assert "api.example.test. 60 IN A" not in raw.replace(".api.example", "")


def test_reverse_zone_transfer_and_json_dump(server):
    lines = axfr_lines(server.port, "in-addr.arpa.")
    assert "1.0.0.10.in-addr.arpa. 30 IN PTR api.example.test." in lines
    # only PTRs (and the SOAs): no SRV at every reverse label
    assert {line.split()[3] for line in lines} == {"SOA", "PTR"}, lines
    dumped = dump(server, "--zone", "in-addr.arpa").splitlines()
    assert {line.split()[3] for line in dumped} == {"SOA", "PTR"}, dumped
    objs = [json.loads(line) for line in dump(server, "--json", "--raw").splitlines()]
    assert {
        "name": "i2.api.example.test.",
        "ttl": 60,
        "class": "IN",
        "type": "A",
        "data": "10.0.0.2",
        "key": "/skydns/test/example/api/i2",
        "health": "DOWN",
    } in objs
    served = [json.loads(line) for line in dump(server, "--json").splitlines()]
    assert {"name": "api.example.test.", "ttl": 60, "class": "IN", "type": "A",
            "data": "10.0.0.1"} in served


def test_ixfr_gets_the_whole_zone(server):
    soa = dns.rrset.from_text("example.test.", 10, "IN", "SOA",
                              "ns.dns.example.test. hostmaster.example.test. 1 1 1 1 1")
    query = dns.message.make_query("example.test.", "IXFR")
    query.authority.append(soa)
    reply = dns.query.udp(query, "127.0.0.1", port=server.port, timeout=2)
    assert [r.rdtype for r in reply.answer] == [dns.rdatatype.SOA]  # "ask over TCP"
    xfr = dns.query.xfr("127.0.0.1", "example.test.", port=server.port, rdtype="IXFR",
                        serial=1, lifetime=5, relativize=False)
    names = {str(rrset.name) for message in xfr for rrset in message.answer}
    assert "api.example.test." in names


def test_axfr_refused_outside_allow_list_and_over_udp(server):
    with pytest.raises(dns.xfr.TransferError) as err:
        axfr_lines(server.port, "example.test.", source="127.0.0.2")
    assert err.value.rcode == dns.rcode.REFUSED
    query = dns.message.make_query("example.test.", "AXFR")
    reply = dns.query.udp(query, "127.0.0.1", port=server.port, timeout=2)
    assert reply.rcode() == dns.rcode.FORMERR
    with pytest.raises(dns.xfr.TransferError):
        axfr_lines(server.port, "other.test.")


def test_dump_of_a_zone_not_served_says_so(server):
    proc = subprocess.run(
        [sys.executable, "-m", "dnsserver", "dump", "--config-file", str(server.config),
         "--zone", "other.org"], capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "other.org. is not a zone skydns serves (example.test., " in proc.stderr
