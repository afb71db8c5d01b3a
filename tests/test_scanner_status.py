"""Status and report values: read and written as pure functions over bytes."""

import json
from datetime import UTC, datetime

import pytest

from scanner.status import MAX_PORTS, parse_ports, read_status, render_status
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
    out = json.loads(render_status(fields, "DOWN", "scanner-1", NOW, old="UP"))
    assert out == {"ports": [80, 443], "owner": "team-a", "status": "DOWN",
                   "nested": {"a": 1}, "checker": "scanner-1",
                   "updatetime": "2024-05-01T12:30:45.123Z",
                   "since": "2024-05-01T12:30:45.123Z",
                   "lastfailure": {"time": "2024-05-01T12:30:45.123Z", "reason": None,
                                   "checker": "scanner-1"}}
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


def test_ports_are_capped_and_the_rest_reported():
    listed = list(range(1, 101))
    got = read_status(json.dumps({"ports": listed}).encode())
    assert got.ports == tuple(range(1, MAX_PORTS + 1))
    assert got.problems == (f"ignored ports {list(range(MAX_PORTS + 1, MAX_PORTS * 2 + 1))!r} "
                            f"and {100 - 2 * MAX_PORTS} more: at most {MAX_PORTS} are probed",)


def test_a_huge_ports_list_is_read_in_one_pass():
    # Every port twice and a pile of junk: repeats collapse, junk is listed only in part.
    raw = list(range(1, 65536)) * 2 + ["x"] * 50_000
    ports, bad = parse_ports(raw)
    assert ports == tuple(range(1, 65536)) and len(bad) == 50_000
    got = read_status(json.dumps({"ports": raw}).encode())
    assert len(got.ports) == MAX_PORTS
    assert "and 49968 more" in got.problems[0] and len(got.problems[0]) < 1000


def test_port_strings_int_would_refuse_are_bad_entries():
    # str.isdigit() is true for both; int() raises on the first and refuses the second.
    assert parse_ports(["²", "9" * 5000, " 443 "]) == ((443,), ["²", "9" * 5000])
