"""The test clock shift (tests/clockshift/): children see time.monotonic() start at the
origin they are given, and code that must log its first error does so on a fresh boot."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time

import pytest
from conftest import CLOCKSHIFT

from scanner.probes import Prober


@pytest.mark.parametrize("origin", [0.0, 5.0, 4e7])
def test_children_start_their_monotonic_clock_at_the_origin(origin):
    env = {**os.environ, "SKYDNS_TEST_MONOTONIC_ORIGIN": repr(origin),
           "PYTHONPATH": str(CLOCKSHIFT)}
    done = subprocess.run(
        [sys.executable, "-c", "import time; print(time.monotonic(), time.monotonic_ns())"],
        capture_output=True, text=True, env=env, timeout=30, check=True)
    seconds, nanos = done.stdout.split()
    assert origin <= float(seconds) < origin + 5
    assert origin * 1e9 <= int(nanos) < (origin + 5) * 1e9


def test_first_probe_error_is_logged_on_a_machine_just_booted(monkeypatch, caplog):
    # 0.0 once meant "never logged": with the clock near 0 the first error went unlogged.
    monkeypatch.setattr(time, "monotonic", lambda: 1.0)
    prober = Prober(tcp_timeout=1.0, icmp_mode=None)
    with caplog.at_level(logging.WARNING, logger="skydns.scanner"):
        prober._local_error("tcp", "127.0.0.1", OSError("too many open files"))
    assert "probe could not run" in caplog.text
