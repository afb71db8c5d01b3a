"""The -health views, pure: documents in, lines out (clock and time zone handed in)."""

from datetime import UTC, datetime

from apicmd.health import address_detail, ago, health_table, when

NOW = datetime(2024, 5, 1, 12, 3, 0, tzinfo=UTC)
DOC = {
    "addresses": [
        {"ip": "10.0.0.1", "status": "DOWN", "since": "2024-05-01T12:00:00.000Z",
         "reason": "tcp 80: refused", "checker": "scan-1", "maintenance": None,
         "scanner": "scan-1", "names": ["web.skydns.local."]},
        {"ip": "10.0.0.2", "status": "UP", "since": None, "reason": None, "checker": None,
         "maintenance": {"reason": "disk swap", "by": "ops",
                         "since": "2024-05-01T11:03:00.000Z"},
         "scanner": None, "names": ["web.skydns.local.", "db.skydns.local."]},
    ],
    "scanners": [{"name": "scan-1", "alive": True, "assigned": 1},
                 {"name": "scan-2", "alive": False, "assigned": 2, "isolated": True}],
    "leader": "sched-1",
}


def test_table():
    lines = health_table(DOC, NOW, UTC)
    assert lines[0].split() == ["ADDRESS", "STATUS", "SINCE", "CHECKER", "REASON", "NAMES"]
    assert lines[1].split() == ["10.0.0.1", "DOWN", "2024-05-01", "12:00:00", "(3m", "ago)",
                                "scan-1", "tcp", "80:", "refused", "web.skydns.local"]
    assert lines[2].split()[:2] == ["10.0.0.2", "MAINT"]
    assert "(1h ago)  ops" in lines[2] and "disk swap" in lines[2]
    assert lines[2].endswith("web.skydns.local,db.skydns.local")
    assert lines[-2] == ("scanners: scan-1 alive 1 address; "
                         "scan-2 DEAD isolated 2 addresses")
    assert lines[-1] == "leader: sched-1"
    assert health_table({}, NOW, UTC)[-2:] == ["scanners: none registered", "leader: none"]


def test_detail_and_times():
    doc = {**DOC["addresses"][0], "lastfailure": {"time": "2024-05-01T12:00:00.000Z",
                                                  "reason": "x", "checker": "scan-1"},
           "history": [{"time": "2024-05-01T12:00:00.000Z", "from": "UP", "to": "DOWN",
                        "reason": "tcp 80: refused", "checker": "scan-1"}]}
    text = "\n".join(address_detail(doc, NOW, UTC))
    assert "status:      DOWN since 2024-05-01 12:00:00 (3m ago)" in text
    assert "UP -> DOWN" in text and "1 change, newest first" in text
    assert when(None, NOW, UTC) == "-" and when("garbage", NOW, UTC) == "garbage"
    assert (ago(5), ago(3600 * 26), ago(-3)) == ("5s ago", "1d ago", "0s ago")
