"""A small fuzz run against a real 2-worker skydns (bench/fuzz.py does the 1M-packet run):
no worker dies, no traceback is logged, every interleaved valid query is answered right."""

from __future__ import annotations

import sys

from dnstest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import fuzz as fuzz_bench  # noqa: E402


def test_fuzzed_packets_never_crash_or_log_tracebacks(etcd):
    result = fuzz_bench.run(packets=30_000, seconds=60, every=100, workers=2, etcd=etcd,
                            bombs=500)
    assert result["workers_crashed"] == 0 and result["tracebacks"] == 0, result
    assert result["probes"] >= 50 and result["good"] == result["probes"], result
    assert result["answers_now"], result
    assert result["rss_growth_kb"] < 20_000, result
    # each bomb answered FORMERR, bar a few datagrams a loaded machine may drop under the flood
    assert result["formerr"] >= 0.95 * result["bombs"], result
