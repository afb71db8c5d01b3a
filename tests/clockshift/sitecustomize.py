"""Moves the origin of time.monotonic() in Python processes the tests start.

pytest's `--monotonic-origin=SECONDS` (tests/conftest.py) sets SKYDNS_TEST_MONOTONIC_ORIGIN
and puts this directory first on PYTHONPATH, so every `python -m <daemon>` a test starts
imports this file at start-up (site.py imports `sitecustomize`) and sees a monotonic clock
that starts near SECONDS: 0 is a machine that has just booted (every CI machine), a large
value one that has been up for a year. Code that takes "0.0" for "never" or expects
`monotonic() - x` to be positive then fails in the tests, as it would in the field.

Only under tests/: nothing shipped imports it.
"""

from __future__ import annotations

import os
import time

ENV = "SKYDNS_TEST_MONOTONIC_ORIGIN"


def install(origin: float) -> None:
    """Replace time.monotonic (and _ns) with a clock that reads `origin` now and advances at
    the real rate. Modules that copied the real function before this ran (`from time import
    monotonic` in the standard library) keep it, and they only ever compare it with itself."""
    real, real_ns = time.monotonic, time.monotonic_ns
    base, base_ns = real(), real_ns()
    origin_ns = int(origin * 1e9)

    def monotonic() -> float:
        return origin + (real() - base)

    def monotonic_ns() -> int:
        return origin_ns + (real_ns() - base_ns)

    time.monotonic, time.monotonic_ns = monotonic, monotonic_ns


_value = os.environ.get(ENV)
if _value:
    install(float(_value))
