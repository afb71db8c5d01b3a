"""Values in etcd that are JSON nested too deep for the parser (RecursionError, not
ValueError) are bad input like any other: logged and skipped, never a stalled load."""

from __future__ import annotations

import pytest

from scanner.status import read_status
from skydns.health import parse_status, report_owner
from skydns.keys import key_to_path
from skydns.records import RecordError, parse_record

from dnstest import Skydns
from etcdtest import wait_for

DEEP = b"[" * 100_000  # within etcd's value size limit


def test_deep_nesting_is_a_record_error_and_an_unreadable_status():
    key = "/skydns/test/example/api/deep"
    with pytest.raises(RecordError, match="not valid JSON"):
        parse_record(key, key_to_path(key), DEEP)
    assert parse_status("/skydns/monitor/status/10.0.0.1", DEEP) == "UP"
    assert report_owner(DEEP) is None
    assert read_status(DEEP).problems == ("not valid JSON",)


def test_deep_value_in_the_initial_load_and_in_the_watch(etcd):
    etcd.put("/skydns/test/example/api/i1", {"host": "10.0.0.1"})
    etcd.put("/skydns/test/example/api/deep", DEEP.decode())
    etcd.put("/skydns/monitor/status/10.0.0.1", DEEP.decode())
    srv = Skydns(etcd.endpoint).start()  # ready means the load completed despite the values
    try:
        assert srv.addresses("api.example.test.") == ["10.0.0.1"]
        etcd.put("/skydns/test/example/api/deep2", DEEP.decode())
        etcd.put("/skydns/test/example/api/i2", {"host": "10.0.0.2"})
        wait_for(lambda: srv.addresses("api.example.test.") == ["10.0.0.1", "10.0.0.2"],
                 timeout=5, message=srv.logs())
        assert "/skydns/test/example/api/deep2" in srv.logs()
        assert srv.proc.poll() is None
    finally:
        srv.stop()
