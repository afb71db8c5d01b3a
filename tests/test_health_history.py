"""Each flip the scanner writes records since/reason/checker/lastfailure in status/<ip> and an
entry in history/<ip>, in one transaction (real etcd, the agent probing real sockets)."""

import json

from scanner.agent import Agent

from etcdtest import wait_for
from healthtest import MONITOR, REPORT, STATUS, InThread, Listener, load, wait_status

HISTORY = MONITOR + "history/"
HOST = "scan-h"
INTERVAL = 0.2


def history(etcd, ip):
    text = etcd.get(HISTORY + ip)
    return [] if text is None else json.loads(text)


def test_three_flips_leave_three_history_entries_with_reasons(etcd, tmp_path):
    config = load("scanner", etcd.endpoint, HOST, tmp_path,
                  Check={"check-interval": INTERVAL, "rise": 1, "fall": 1})
    ip = "127.0.0.36"
    backend = Listener(ip).start()
    port = backend.port
    maint = {"reason": "kept by scanners", "by": "ops", "since": "2024-01-01T00:00:00.000Z"}
    # An old-style value with a stale reason, an operator's maintenance and someone's ports.
    etcd.put(STATUS + ip, {"status": "UP", "ports": [port], "reason": "stale",
                           "maintenance": maint})
    etcd.put(REPORT + ip, {"hostname": HOST, "updatetime": "2024-01-01T00:00:00Z"})
    try:
        with InThread(lambda: Agent(config)):
            backend.stop()
            wait_status(etcd, ip, "DOWN", timeout=10)
            down = json.loads(etcd.get(STATUS + ip))
            assert down["checker"] == HOST and down["since"]
            assert str(port) in down["reason"] and down["lastfailure"]["reason"]
            backend = Listener(ip, port).start()
            wait_status(etcd, ip, "UP", timeout=10)
            up = json.loads(etcd.get(STATUS + ip))
            assert "reason" not in up and up["lastfailure"] == down["lastfailure"]
            assert up["since"] >= down["since"]
            backend.stop()
            wait_status(etcd, ip, "DOWN", timeout=10)
            items = wait_for(lambda: len(history(etcd, ip)) == 3 and history(etcd, ip),
                             timeout=10, message="three history entries")
    finally:
        backend.stop()
    assert [(e["from"], e["to"]) for e in items] == [("UP", "DOWN"), ("DOWN", "UP"),
                                                     ("UP", "DOWN")]
    assert all(e["checker"] == HOST and e["time"] for e in items)
    assert items[0]["reason"] and items[2]["reason"] and items[1]["reason"] is None
    last = json.loads(etcd.get(STATUS + ip))
    assert last["maintenance"] == maint and last["ports"] == [port]  # never removed
    assert items[0]["time"] == last["since"]  # the entry and the value in one transaction
