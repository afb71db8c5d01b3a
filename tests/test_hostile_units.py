"""Pure pieces of the hostile-input defences (issue 18): bounded name counters, connection
caps, rate-limited error lines."""

from __future__ import annotations

import logging

from dnsserver.namecount import ENTRY_OVERHEAD, NameCounts
from dnsserver.ratelog import RateLimitedLog
from skydns.connlimit import ConnectionLimits


def test_name_counts_are_bounded_by_bytes():
    counts = NameCounts(budget=100 * (ENTRY_OVERHEAD + 250))
    for i in range(10_000):
        counts.add(f"{i:05d}" + "x" * 245)  # 250-octet names
    assert len(counts) == 100 and counts.used <= counts.budget
    assert counts.refused == 9_900
    counts.add("00000" + "x" * 245, 5)  # names already in keep counting
    assert counts["00000" + "x" * 245] == 6
    counts.clear()
    counts.add("a.")
    assert counts.used == ENTRY_OVERHEAD + 2
    assert counts.copy() == counts


def test_connection_limits():
    limits = ConnectionLimits(total=3, per_client=2)
    assert limits.admit("a") and limits.admit("a") and not limits.admit("a")
    assert limits.admit("b") and not limits.admit("c")  # total reached
    limits.release("a")
    assert limits.admit("c") and limits.refused == 2
    for client in ("a", "b", "c", "c"):
        limits.release(client)
    assert limits.open == 0 and not limits.by_client


def test_repeated_error_lines_are_rate_limited(caplog):
    now = [0.0]  # a clock that starts at 0, as a freshly booted machine's monotonic() does
    log = RateLimitedLog(logging.getLogger("test.ratelog"), burst=3, interval=3600,
                         clock=lambda: now[0])
    with caplog.at_level(logging.INFO, "test.ratelog"):
        for _ in range(1000):
            try:
                raise ValueError("boom")
            except ValueError:
                log.exception("query failed", {"client": "x"})
    assert len(caplog.records) == 3
    now[0] = 1800.0  # still inside the window: nothing more is written
    with caplog.at_level(logging.INFO, "test.ratelog"):
        log.warning("query failed", {})
    assert len(caplog.records) == 3
    now[0] = 3600.0  # the window is over: the next line tells how many were left out
    with caplog.at_level(logging.INFO, "test.ratelog"):
        log.warning("query failed", {})
    assert caplog.records[-1].kv["suppressed"] == 998
