"""The systemd units: valid for systemd-analyze, Type=notify, least privilege."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dnstest import ROOT

UNITS = sorted((ROOT / "systemd").glob("*.service"))
NAMES = {"skydns", "skydns-scanner", "skydns-schedule", "skydns-kubeapi", "skydns-pdns-backend",
         "skydns-janitor", "skydns-cloudstack"}


def test_every_daemon_has_a_unit():
    assert {u.stem for u in UNITS} == NAMES


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_unit_contract(unit):
    text = unit.read_text()
    assert "Type=notify" in text and "Restart=on-failure" in text
    assert "User=skydns" in text and "ProtectSystem=strict" in text
    assert "NoNewPrivileges=yes" in text
    caps = re.search(r"^AmbientCapabilities=(.*)$", text, re.M).group(1).split()
    expected = {"skydns": ["CAP_NET_BIND_SERVICE"], "skydns-scanner": ["CAP_NET_RAW"]}
    assert caps == expected.get(unit.stem, [])
    assert re.search(r"--config-file /etc/skydns/\S+\.conf", text)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_systemd_analyze_verify(unit, tmp_path):
    # Point ExecStart at this checkout's scripts: verify checks that the binary exists. Quoted:
    # the checkout's path may hold a space, which would split the command line.
    bindir = str(Path(sys.executable).parent)
    text = re.sub(r"/usr/local/bin/(\S+)", lambda m: f'"{bindir}/{m.group(1)}"',
                  unit.read_text())
    copy = tmp_path / unit.name
    copy.write_text(text)
    copy.chmod(0o644)  # under umask 000 systemd complains that the unit is world-writable
    out = subprocess.run(["systemd-analyze", "verify", "--man=no", str(copy)],
                         capture_output=True, text=True, timeout=60)
    problems = [line for line in (out.stdout + out.stderr).splitlines()
                if unit.name in line or "Unknown" in line]
    assert out.returncode == 0 and not problems, out.stdout + out.stderr
