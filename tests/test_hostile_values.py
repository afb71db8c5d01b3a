"""Stored values that pass JSON checks but cannot be DNS data (issue 18, item 5): refused when
loaded (logged once, skipped), never breaking the names beside them, an AXFR or `skydns dump`."""

from __future__ import annotations

import subprocess
import sys

import dns.query
import dns.rcode

from dnsserver.zone.context import Context, ZoneSettings
from dnsserver.zone.index import RecordIndex
from dnsserver.zone.records import transfer_chunks, zone_rrs
from dnsserver.zone.rows import plain_rows
from skydns import store
from skydns.health import HealthView
from skydns.records import Record

from dnstest import ROOT, Skydns
from etcdtest import run_async, wait_for

LONG_NAME = "/skydns/test/example/" + "/".join(["n" * 60] * 4)  # 5 labels: > 255 octets
BAD = {
    "/skydns/test/example/" + "l" * 300: {"host": "10.1.0.1"},  # a 300-octet label
    LONG_NAME: {"host": "10.1.0.2"},
    "/skydns/test/example/bigtxt/x": {"text": "t" * 70_000},  # TXT over 65,535 octets
    "/skydns/test/example/typo/x": {"host": "999.1.1.1"},  # not an address, not a name
}


def _put_raw_keys(etcd) -> None:
    async def put():
        client = store.make_client(etcd.etcd_section())
        try:
            await client.put(b"/skydns/test/example/nul\x00x", b'{"host": "10.1.0.3"}')
            await client.put(b"/skydns/test/example/bin\xffx", b'{"host": "10.1.0.4"}')
        finally:
            await client.close()

    run_async(put())


def test_unrenderable_values_are_skipped_at_load(etcd):
    etcd.put("/skydns/test/example/ok/x", {"host": "10.1.0.9"})
    etcd.put("/skydns/test/example/mapped/x", {"host": "::ffff:1.2.3.4"})
    for key, value in BAD.items():
        etcd.put(key, value)
    _put_raw_keys(etcd)
    srv = Skydns(etcd.endpoint, Dns={"axfr-allow": "127.0.0.1/32"}).start()
    try:
        logs = srv.logs()
        assert logs.count("bad record skipped") == len(BAD), logs
        assert logs.count("etcd key skipped") == 2
        assert "Traceback" not in logs
        # the mapped address is an AAAA like any other; the names beside the bad ones answer
        assert srv.addresses("mapped.example.test.", "AAAA") == ["::ffff:1.2.3.4"]
        assert srv.addresses("ok.example.test.") == ["10.1.0.9"]
        assert srv.query("typo.example.test.").rcode() == dns.rcode.NXDOMAIN
        # the NUL key is not served as "nul?x" or anything else
        assert srv.query("bin\\255x.example.test.").rcode() == dns.rcode.NXDOMAIN
        # a watch event carries the same checks: logged once, skipped, nothing else breaks
        etcd.put("/skydns/test/example/" + "w" * 64, {"host": "10.1.0.5"})
        wait_for(lambda: srv.logs().count("bad record skipped") == len(BAD) + 1, timeout=5)
        xfr = list(dns.query.xfr("127.0.0.1", "example.test.", port=srv.port, lifetime=5,
                                 relativize=False))
        text = "\n".join(m.to_text() for m in xfr)
        assert "ok.example.test." in text and "::ffff:1.2.3.4" in text
        dump = subprocess.run(
            [sys.executable, "-m", "dnsserver", "dump", "--config-file", str(srv.config)],
            capture_output=True, text=True, cwd=ROOT, timeout=60,
        )
        assert dump.returncode == 0, dump.stderr
        assert "ok.example.test." in dump.stdout and "999.1.1.1" not in dump.stdout
        assert srv.query("ok.example.test.").answer
        assert "Traceback" not in srv.logs()
    finally:
        srv.stop()


def test_transfer_skips_a_record_it_cannot_render(caplog):
    """Records that reach the index some other way (older data, a future bug) cost only
    themselves in a transfer, and long records never push a message past 64 KB."""
    index = RecordIndex()
    zone = ("test", "example")
    index.put(Record(path=zone + ("ok",), host="10.0.0.1", ip="10.0.0.1", family=4))
    index.put(Record(path=zone + ("huge",), text="t" * 70_000))  # rdata > 65,535
    for i in range(3):
        index.put(Record(path=zone + (f"t{i}",), text="u" * 30_000))
    ctx = Context(index, HealthView(), ZoneSettings(domain="example.test.", ttl=30, min_ttl=30))
    rrs = [rr for rr, _ in zone_rrs(ctx, zone)]
    names = [row.name for row in plain_rows(rrs)]  # records.py's leaves: the rules' form
    assert "ok.example.test." in names and "huge.example.test." not in names
    assert "record left out of the zone" in caplog.text
    chunks = transfer_chunks(rrs, 32_000)
    assert len(chunks) >= 3 and sum(map(len, chunks)) == len(rrs)
