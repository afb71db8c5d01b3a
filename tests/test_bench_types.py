"""The per-type table of `bench/run.py miss` (issue #27) compares skydns with C servers loading
bench/peers.py's zone file; a ratio means something only if both answer each kind of question
with the same records. Here a real skydns reads the bench data set from etcd and knotd (the
reference peer CI has; PowerDNS's bind backend is bench-only) loads the zone file: every kind
gets the same rcode and record types per section, and a zone that lacks a kind is reported."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from dnstest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import miss  # noqa: E402
from dataset import TYPE_KINDS, DataSet, write_records  # noqa: E402
from peers import Knot, zone_text  # noqa: E402
from procs import Skydns  # noqa: E402

pytestmark = pytest.mark.skipif(not Knot.installed(), reason="knotd is not installed")


def _knot(workdir: Path, label: str, text: str, probe: str) -> Knot:
    zonefile = workdir / f"{label}.zone"
    zonefile.write_text(text)
    knot = Knot(workdir, zonefile, label=label)
    knot.start(None, probe)
    return knot


def test_zone_file_answers_every_kind_as_skydns_does(etcd, tmp_path):
    ds = DataSet(names=20, multi=2, srv=3, kinds=5)
    write_records(etcd.endpoint, ds.records())
    started = []
    try:
        sky = Skydns(tmp_path, etcd.endpoint, 1, name="c0", Dns={"cacheSize": 0})
        started.append(sky)
        sky.start(None, ds.single_name(0), timeout=60)
        text = zone_text(ds)
        same = _knot(tmp_path, "same", text, ds.single_name(0))
        started.append(same)
        # the TXT records left out: knotd answers NODATA where skydns answers the text
        no_txt = "".join(line for line in text.splitlines(keepends=True) if " TXT " not in line)
        assert no_txt != text
        other = _knot(tmp_path, "no-txt", no_txt, ds.single_name(0))
        started.append(other)

        servers = [miss._Server("skydns", sky.port, sky.worker_pids),
                   miss._Server("knotd", same.port, []),
                   miss._Server("knotd without TXT", other.port, [])]
        checks = miss.compare_sections(ds, servers)
    finally:
        for server in reversed(started):
            server.stop()

    assert set(checks) == set(TYPE_KINDS)
    for kind, check in checks.items():
        assert check["differ"] == (["knotd without TXT"] if kind == "TXT" else []), (kind, check)
    shapes = {kind: check["shapes"]["skydns"] for kind, check in checks.items()}
    assert shapes["MX"]["additional"] == ["A"]  # the exchange's address as glue
    assert shapes["SRV"]["additional"] == ["A", "A"]
    assert shapes["CNAME"]["answer"] == ["A", "CNAME"]
    assert shapes["NODATA"] == {"rcode": "NOERROR", "answer": [], "authority": ["SOA"],
                                "additional": []}
    assert shapes["NXDOMAIN"]["rcode"] == "NXDOMAIN"
    lines = miss.per_type_report({"per_type": [], "per_type_sections": checks})
    assert any(line.startswith("warning: TXT") for line in lines), lines


def test_type_lines_ask_each_kind_of_distinct_names():
    ds = DataSet(names=100, multi=2, srv=10, kinds=50)
    mix = ds.type_lines("mix", 800)
    assert [line.split()[1] for line in mix[:8]] == ["A", "AAAA", "A", "MX", "TXT", "SRV",
                                                      "MX", "A"]
    nx = ds.type_lines("NXDOMAIN", 500)
    assert len(set(nx)) == 500
    for kind in TYPE_KINDS:
        assert len(set(ds.type_lines(kind, 500))) > 5, kind


def test_rcodes_over_a_run_that_differ_are_reported():
    sky, pdns, knot = miss.PER_TYPE_SERVERS

    def rounds(**codes):
        return [{"rcodes": codes, "lost": 0, "qps": 1, "cpu_us_per_query": 1.0}]

    runs = {("per-type: NXDOMAIN", sky): rounds(NXDOMAIN=1000),
            ("per-type: NXDOMAIN", pdns): rounds(NXDOMAIN=990, NOERROR=10),
            ("per-type: NXDOMAIN", knot): rounds(NXDOMAIN=600, SERVFAIL=400)}
    (row,) = [r for r in miss.per_type_rows(runs) if r["kind"] == "NXDOMAIN"]
    assert miss.rcode_differences(row) == [knot]  # 1% off is within the mix's tolerance
    lines = miss.per_type_report({"per_type": [row]})
    assert any("rcodes over the run differ" in line and knot in line for line in lines), lines
