"""The values a flip and maintenance write (skydns/flips.py), and how readers count them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from skydns.flips import (
    HISTORY_MAX,
    Flip,
    clear_maintenance,
    dump,
    maintenance_of,
    push_history,
    read_facts,
    read_history,
    render_flip,
    set_maintenance,
)
from skydns.health import parse_status

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def test_down_then_up_records_since_reason_and_lastfailure():
    old = {"status": "UP", "ports": [80], "checks": [{"http": "/", "port": 80}],
           "maintenance": {"reason": "disk", "by": "ops", "since": "x"}}
    down, entry = render_flip(old, "UP", Flip("DOWN", "scan-a", T0, "tcp:80: refused"))
    assert down["status"] == "DOWN" and down["since"] == "2024-05-01T12:00:00.000Z"
    assert down["reason"] == "tcp:80: refused" and down["checker"] == "scan-a"
    assert down["lastfailure"] == {"time": "2024-05-01T12:00:00.000Z",
                                   "reason": "tcp:80: refused", "checker": "scan-a"}
    # whoever writes status keeps ports, checks and an operator's maintenance
    assert down["ports"] == [80] and down["checks"] == old["checks"]
    assert down["maintenance"] == old["maintenance"]
    assert entry == {"time": "2024-05-01T12:00:00.000Z", "from": "UP", "to": "DOWN",
                     "reason": "tcp:80: refused", "checker": "scan-a"}
    up, entry = render_flip(down, "DOWN", Flip("UP", "scan-b", T0 + timedelta(minutes=3)))
    assert "reason" not in up  # a stale reason on a healthy address misleads
    assert up["checker"] == "scan-b" and up["since"] == "2024-05-01T12:03:00.000Z"
    assert up["lastfailure"] == down["lastfailure"]  # kept after recovery
    assert entry["from"] == "DOWN" and entry["to"] == "UP" and entry["reason"] is None


def test_extra_fields_go_into_the_value_not_the_history():
    value, entry = render_flip({}, "UP", Flip("DOWN", "a", T0, "x",
                                              extra={"confirmedby": ["b"]}))
    assert value["confirmedby"] == ["b"] and "confirmedby" not in entry


def test_history_is_bounded_newest_first():
    value = None
    for i in range(HISTORY_MAX + 5):
        value = push_history(value, {"time": str(i), "from": "UP", "to": "DOWN"})
    items = read_history(value)
    assert len(items) == HISTORY_MAX
    assert items[0]["time"] == str(HISTORY_MAX + 4)
    assert read_history(b"not json") == [] and read_history(b'{"a": 1}') == []
    assert read_history(b'[1, {"time": "t"}]') == [{"time": "t"}]


def test_maintenance_counts_as_down_for_every_answer_path():
    fields, entry = set_maintenance({"status": "UP", "ports": [80]}, "disk swap", "ops", T0)
    assert fields["maintenance"] == {"reason": "disk swap", "by": "ops",
                                     "since": "2024-05-01T12:00:00.000Z"}
    assert entry["from"] == "UP" and entry["to"] == "MAINT"
    assert parse_status("k", dump(fields)) == "DOWN"
    cleared, entry = clear_maintenance(fields, "ops", T0)
    assert parse_status("k", dump(cleared)) == "UP" and cleared["ports"] == [80]
    assert entry["from"] == "MAINT" and entry["to"] == "UP"
    # A hand-written flag counts as well; false/null/absent do not.
    assert parse_status("k", b'{"status": "UP", "maintenance": true}') == "DOWN"
    assert parse_status("k", b'{"status": "UP", "maintenance": null}') == "UP"
    assert maintenance_of({"maintenance": {}}) is None


def test_old_values_keep_working():
    assert read_facts(b'{"status": "UP"}').since is None
    facts = read_facts(b'{"status": "up", "reason": "stale", "ports": [80]}')
    assert facts.status == "UP" and facts.reason is None  # reason only while DOWN
    assert read_facts(b"[]").status is None
    assert json.loads(dump({"a": "\udc80"}))  # lone surrogates survive as escapes
