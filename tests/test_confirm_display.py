"""What the operator's views show of confirmations and isolation: confirmedby per address,
each scanner's state, the one-scanner warning. Pure: plain values, no etcd, no HTTP."""

import json
from datetime import UTC, datetime

from apicmd.health import address_detail, health_table
from kubeapi.healthview import HealthFacts
from kubeapi.statusview import Address, StatusState, build_snapshot, status_details
from skydns.flips import read_facts
from skydns.store import KV

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
DOWN_CONFIRMED = json.dumps({"status": "DOWN", "checker": "scan-1", "reason": "tcp 80",
                             "confirmedby": ["scan-2"]}).encode()
ISOLATED = json.dumps({"hostname": "scan-3", "isolated": True,
                       "isolation": "3 of 3 addresses fail from here"}).encode()
PREFIXES = {"records": "/skydns/", "status": "/s/", "report": "/r/", "heart": "/h/",
            "lock": "/l/"}


def test_confirmedby_is_read_only_from_a_down():
    assert read_facts(DOWN_CONFIRMED).confirmedby == ("scan-2",)
    up = json.dumps({"status": "UP", "confirmedby": ["scan-2"]}).encode()
    assert read_facts(up).confirmedby is None
    odd = json.dumps({"status": "DOWN", "confirmedby": "scan-2"}).encode()
    assert read_facts(odd).confirmedby is None
    assert status_details(DOWN_CONFIRMED)[4] == ("scan-2",)


def test_status_page_snapshot():
    addrs = [Address("web.z.", "A", "10.0.0.1"), Address("web.z.", "A", "10.0.0.2")]
    details = {"10.0.0.1": status_details(DOWN_CONFIRMED)}
    snap = build_snapshot("z.", addrs, {"10.0.0.1": "DOWN", "10.0.0.2": "UP"},
                          {"10.0.0.1": "scan-1", "10.0.0.2": "scan-1"},
                          {"scan-1": None, "scan-3": "3 of 3 addresses fail from here"}, {},
                          details=details)
    rows = snap["names"][0]["addresses"]
    assert rows[0]["confirmedby"] == ["scan-2"] and "confirmedby" not in rows[1]
    assert snap["scanners"] == [
        {"hostname": "scan-1", "addresses": 2},
        {"hostname": "scan-3", "addresses": 0, "state": "isolated",
         "isolation": "3 of 3 addresses fail from here"}]
    assert snap["warnings"][0].startswith("one live scanner (scan-1) (1 more isolated)")
    # Two working scanners: nothing to warn about, and the key is not there.
    assert "warnings" not in build_snapshot("z.", addrs, {}, {}, ["a", "b"], {})


def test_status_state_follows_heartbeat_values():
    state = StatusState("z.", PREFIXES)
    state.reset("heart", [KV("/h/scan-1", b'{"hostname": "scan-1"}', 1, 0),
                          KV("/h/scan-3", ISOLATED, 2, 0)], 2)
    assert state.hearts == {"scan-1": None, "scan-3": "3 of 3 addresses fail from here"}
    state.apply("heart", [("put", KV("/h/scan-3", b'{"isolated": false}', 3, 0))], 3)
    assert state.hearts["scan-3"] is None
    state.apply("heart", [("delete", KV("/h/scan-3", b"", 4, 0))], 4)
    assert set(state.hearts) == {"scan-1"}


def test_health_listing_and_apicmd():
    facts = HealthFacts(PREFIXES, records=[],
                        statuses=[KV("/s/10.0.0.1", DOWN_CONFIRMED, 5, 0)],
                        reports=[KV("/r/10.0.0.1", b'{"hostname": "scan-1"}', 3, 0)],
                        hearts=[KV("/h/scan-1", b'{"hostname": "scan-1"}', 1, 0),
                                KV("/h/scan-3", ISOLATED, 2, 0)],
                        locks=[])
    doc = facts.document()
    row = doc["addresses"][0]
    assert row["confirmedby"] == ["scan-2"]
    by_name = {s["name"]: s for s in doc["scanners"]}
    assert by_name["scan-3"]["isolated"] is True and "fail from here" in \
        by_name["scan-3"]["isolation"]
    assert doc["warnings"][0].startswith("one live scanner (scan-1)")

    lines = health_table(doc, NOW, UTC)
    assert "scan-1 (confirmed by scan-2)" in lines[1]
    assert any("scan-3 alive isolated (3 of 3 addresses fail from here)" in line
               for line in lines)
    assert lines[-1].startswith("warning: one live scanner (scan-1)")
    detail = address_detail(facts.detail("10.0.0.1", None), NOW, UTC)
    assert "confirmedby: scan-2" in detail
