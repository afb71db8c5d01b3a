"""Pure pieces of the hostile-input defences (issue 18): bounded name counters, connection
caps, rate-limited error lines."""

from __future__ import annotations

import logging

from dnsserver.front.namecount import ENTRY_OVERHEAD, NameCounts
from dnsserver.front.ratelog import RateLimitedLog
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


class Conn:
    """A connection as ConnectionLimits sees it: busy or idle since a stamp."""

    def __init__(self, since: float | None, queued: bool = False):
        self.since = since  # None: a query in progress or a reply unsent in the transport
        self.queued = queued  # a reply still in the kernel: evict() declines
        self.closed = False

    def idle_since(self):
        return self.since

    def evict(self):
        if self.queued:
            return False
        self.closed = True
        return True


def test_connection_limits_refuse_only_when_every_held_connection_is_busy():
    limits = ConnectionLimits(total=3, per_client=2)
    a1, a2, a3 = Conn(None), Conn(None), Conn(5.0)
    assert limits.admit("a", a1) and limits.admit("a", a2) and not limits.admit("a", a3)
    b1, c1 = Conn(None), Conn(1.0)
    assert limits.admit("b", b1) and not limits.admit("c", c1)  # total reached, all busy
    limits.release("a", a1)
    assert limits.admit("c", c1) and limits.refused == 2 and limits.evicted == 0
    for client, conn in (("a", a2), ("b", b1), ("c", c1), ("c", c1)):  # twice: a no-op
        limits.release(client, conn)
    assert limits.open == 0 and not limits.by_client


def test_connection_limits_close_the_idle_longest_to_admit():
    limits = ConnectionLimits(total=4, per_client=2)
    slow = Conn(1.0, queued=True)  # idle by its stamp, but the kernel still holds a reply
    old, new = Conn(2.0), Conn(3.0)
    for client, conn in (("a", slow), ("a", old), ("b", new)):
        assert limits.admit(client, conn)
    # a's cap: a's idle-longest that is really idle goes, never b's
    a3 = Conn(9.0)
    assert limits.admit("a", a3) and old.closed and not slow.closed and not new.closed
    limits.release("a", old)  # its connection_lost, after the eviction: a no-op
    assert limits.open == 3 and limits.by_client["a"].keys() == {slow, a3}
    c1, d1 = Conn(10.0), Conn(11.0)
    assert limits.admit("c", c1)  # 4 open: the total cap
    assert limits.admit("d", d1) and new.closed  # anyone's idle-longest: b's
    assert "b" not in limits.by_client and limits.open == 4 and limits.evicted == 2
    for conn in (a3, c1, d1):
        conn.since = None
    slow.queued = True
    assert not limits.admit("e", Conn(12.0)) and limits.refused == 1


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


def test_a_flood_at_the_total_cap_does_not_scan_per_connection():
    """A scan at the total cap keeps the next idle-longest (total // 16) for the newcomers
    after it; one that had work since (a newer stamp) is passed over."""
    limits = ConnectionLimits(total=32, per_client=0)
    held = [Conn(float(i)) for i in range(32)]
    for i, conn in enumerate(held):
        assert limits.admit(f"10.0.0.{i}", conn)
    assert limits.admit("new1", Conn(50.0)) and held[0].closed
    assert [k for _, _, k in limits._victims] == [held[2], held[1]]  # kept, oldest last
    held[1].since = 60.0  # a query came in on it since the scan
    assert limits.admit("new2", Conn(51.0)) and held[2].closed and not held[1].closed
    assert limits.admit("new3", Conn(52.0)) and held[3].closed and not held[1].closed
    assert limits.open == 32 and limits.evicted == 3
