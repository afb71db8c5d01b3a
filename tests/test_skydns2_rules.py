"""SkyDNS2's rules through real DNS queries: SRV priority 10 when unset, `[Dns] local` and
`local.dns.<domain>`, CoreDNS's `group` rule, and the runtime settings at /skydns/config
(read at start, applied again on SIGHUP, bad values logged and ignored)."""

from __future__ import annotations

import signal

import pytest

from dnstest import Skydns, free_port
from etcdtest import wait_for

BASE = "/skydns/test/example"


def load(etcd, records: dict) -> None:
    for key, value in records.items():
        etcd.put(BASE + key, value)


def srv_rows(reply) -> list[tuple[int, int, int, str]]:
    return sorted((rr.priority, rr.weight, rr.port, rr.target.to_text())
                  for rrset in reply.answer for rr in rrset if rrset.rdtype == 33)


def ttls(reply) -> set[int]:
    return {rrset.ttl for rrset in reply.answer}


@pytest.fixture
def server(etcd):
    load(etcd, {
        # SRV without a priority
        "/svc/a": {"host": "10.0.2.1", "port": 80},
        "/svc/b": {"host": "10.0.2.2", "port": 81, "priority": 20},
        # groups (the cases of CoreDNS's own tests, and a disagreement)
        "/dom/a": {"host": "10.0.3.1", "group": "g1"},
        "/dom/sub/b": {"host": "10.0.3.2", "group": "g1"},
        "/dom2/a": {"host": "10.0.4.1", "group": "g1"},
        "/dom2/sub/b": {"host": "10.0.4.2"},
        "/dom1/a": {"host": "10.0.5.1", "group": "g1"},
        "/dom1/sub/b": {"host": "10.0.5.2", "group": "g2"},
        "/dom3/a": {"host": "10.0.6.1", "group": "g1"},
        "/dom3/b": {"host": "10.0.6.2", "group": "g2"},
        "/grp/srv/a": {"host": "10.0.7.1", "port": 80, "group": "blue"},
        "/grp/srv/b": {"host": "10.0.7.2", "port": 80, "group": "green"},
        "/grp/srv/c": {"host": "10.0.7.3", "port": 80},
        # this host's own record, for `local`
        "/nodes/host1": {"host": "10.0.8.1"},
        "/nodes/host2": {"host": "10.0.8.2"},
    })
    srv = Skydns(etcd.endpoint, Dns={"local": "host1.nodes.example.test."}).start()
    yield srv
    srv.stop()


def test_srv_priority_is_10_when_unset(server):
    reply = server.query("svc.example.test.", "SRV")
    assert srv_rows(reply) == [(10, 100, 80, "a.svc.example.test."),
                               (20, 100, 81, "b.svc.example.test.")]
    # the record's own name too
    assert srv_rows(server.query("a.svc.example.test.", "SRV")) == [
        (10, 100, 80, "a.svc.example.test.")]


@pytest.mark.parametrize("name,expected", [
    ("dom.example.test.", ["10.0.3.1", "10.0.3.2"]),  # one group throughout
    ("dom2.example.test.", ["10.0.4.1", "10.0.4.2"]),  # its group plus the ungrouped
    ("dom1.example.test.", ["10.0.5.1"]),  # the shortest key's group decides
    ("sub.dom1.example.test.", ["10.0.5.2"]),  # a set of its own: its own group
    ("dom3.example.test.", ["10.0.6.1", "10.0.6.2"]),  # disagreement: no grouping
])
def test_group_rule(server, name, expected):
    assert server.addresses(name) == expected


def test_group_rule_for_srv(server):
    # three keys at the same level, two groups: they disagree, so all answer
    assert [row[3] for row in srv_rows(server.query("srv.grp.example.test.", "SRV"))] == [
        "a.srv.grp.example.test.", "b.srv.grp.example.test.", "c.srv.grp.example.test."]


def test_local_dns_name_answers_for_the_local_name(server, etcd):
    reply = server.query("local.dns.example.test.")
    assert [rrset.name.to_text() for rrset in reply.answer] == ["local.dns.example.test."]
    assert server.addresses("local.dns.example.test.") == ["10.0.8.1"]
    assert server.addresses("host1.nodes.example.test.") == ["10.0.8.1"]
    # a change to the local name's record reaches the local.dns answer (no stale cache)
    etcd.put(BASE + "/nodes/host1", {"host": "10.0.8.9"})
    wait_for(lambda: server.addresses("local.dns.example.test.") == ["10.0.8.9"], timeout=5)
    # other names below dns. are not the local one
    assert server.query("other.dns.example.test.").rcode() == 3  # NXDOMAIN


def test_runtime_settings_at_start_and_on_sighup(etcd):
    load(etcd, {"/api/i1": {"host": "10.0.0.1"}, "/api/i2": {"host": "10.0.0.2"},
                "/api/i3": {"host": "10.0.0.3"}, "/nodes/me": {"host": "10.0.9.1"}})
    port = free_port()
    etcd.put("/skydns/config", {
        "dns_addr": f"127.0.0.1:{port}", "ttl": 77, "local": "me.nodes.example.test",
        "hostmaster": "ops@example.test.", "min_ttl": "soon",
    })
    srv = Skydns(etcd.endpoint, Dns={"workers": 1})
    srv.port = port  # dns_addr in etcd overrides the file's address
    srv.start()
    try:
        assert ttls(srv.query("api.example.test.")) == {77}
        assert srv.addresses("local.dns.example.test.") == ["10.0.9.1"]
        soa = srv.query("example.test.", "SOA").answer[0][0]
        assert soa.rname.to_text() == "ops.example.test."
        assert soa.minimum == 10  # min_ttl was bad: the file's value, and a log line
        assert "bad runtime setting" in srv.logs() and "min_ttl" in srv.logs()
        assert "bad record skipped" not in srv.logs()  # the key itself is no record
        pid = srv.proc.pid

        # changed in etcd, applied by a reload, no restart
        etcd.put("/skydns/config", {"dns_addr": f"127.0.0.1:{port}", "ttl": 90,
                                    "round_robin": False})
        srv.proc.send_signal(signal.SIGHUP)
        # (until the old worker has stopped: the new one binds beside it first)
        wait_for(lambda: all(ttls(srv.query("api.example.test.")) == {90} for _ in range(8)),
                 timeout=20, message=srv.logs())
        assert srv.proc.pid == pid and srv.proc.poll() is None
        # round_robin false: addresses in key order, every time
        orders = {tuple(rr.address for rr in srv.query("api.example.test.").answer[0])
                  for _ in range(12)}
        assert orders == {("10.0.0.1", "10.0.0.2", "10.0.0.3")}

        # junk in the key: logged, the file's values, still answering
        etcd.put("/skydns/config", "{not json")
        srv.port = srv_file_port(srv)
        srv.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: _answers(srv) and ttls(srv.query("api.example.test.")) == {30},
                 timeout=20, message=srv.logs())
        assert "not valid JSON" in srv.logs()
        assert srv.proc.poll() is None
    finally:
        srv.stop()


def srv_file_port(srv: Skydns) -> int:
    for line in srv.config.read_text().splitlines():
        if line.startswith("dns-addr"):
            return int(line.rsplit(":", 1)[1])
    raise AssertionError("no dns-addr in the test config")


def _answers(srv: Skydns) -> bool:
    try:
        return srv.query("api.example.test.", timeout=0.5).rcode() == 0
    except Exception:  # noqa: BLE001 - the reload is still going on
        return False

