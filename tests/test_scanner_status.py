"""Status and report values: read and written as pure functions over bytes."""

import json
from datetime import UTC, datetime

import pytest

from scanner.status import parse_ports, read_status, render_status
from skydns.health import report_owner

NOW = datetime(2024, 5, 1, 12, 30, 45, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "status", "ports", "problems"),
    [
        (b'{"status": "UP", "ports": [80, 443]}', "UP", (80, 443), ()),
        (b'{"status": "down"}', "DOWN", (), ()),
        (b'{"ports": [8080]}', None, (8080,), ()),
        (b"{}", None, (), ()),
        (b'{"status": "MAYBE"}', None, (), ("status 'MAYBE' is neither UP nor DOWN",)),
        (b'{"ports": ["443", 80, 80, 0, 70000, true, "x"]}', None, (443, 80),
         ("ignored ports [0, 70000, True, 'x']",)),
        (b'{"ports": 22}', None, (22,), ()),
        (b"not json", None, (), ("not valid JSON",)),
        (b"\xff\xfe", None, (), ("not valid JSON",)),
        (b"[1, 2]", None, (), ("a JSON list, not an object",)),
    ],
)
def test_read_status(value, status, ports, problems):
    got = read_status(value)
    assert (got.status, got.ports, got.problems) == (status, ports, problems)


def test_unreadable_value_has_no_fields():
    assert read_status(b"garbage").fields is None
    assert read_status(b'{"ports": [1]}').fields == {"ports": [1]}


def test_render_keeps_every_other_field():
    fields = {"ports": [80, 443], "owner": "team-a", "status": "UP", "nested": {"a": 1}}
    out = json.loads(render_status(fields, "DOWN", "scanner-1", NOW))
    assert out == {"ports": [80, 443], "owner": "team-a", "status": "DOWN",
                   "nested": {"a": 1}, "checker": "scanner-1",
                   "updatetime": "2024-05-01T12:30:45.123Z"}
    assert fields["status"] == "UP"  # the caller's dict is not modified


def test_render_from_nothing_and_round_trip():
    value = render_status(None, "UP", "s", NOW)
    assert read_status(value).status == "UP"
    with pytest.raises(ValueError):
        render_status({}, "MAYBE", "s", NOW)


def test_parse_ports_reports_bad_entries():
    assert parse_ports([80, "x"]) == ((80,), ["x"])
    assert parse_ports(None) == ((), [])


@pytest.mark.parametrize(
    ("value", "owner"),
    [
        (b'{"hostname": "scan-a", "updatetime": "2024-05-01T00:00:00Z"}', "scan-a"),
        (b'{"hostname": ""}', None),
        (b'{"hostname": 5}', None),
        (b'"scan-a"', None),
        (b"{", None),
    ],
)
def test_report_owner(value, owner):
    assert report_owner(value) == owner
