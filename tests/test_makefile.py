"""The Makefile: says what it does while it builds .venv, and `make clean` takes the demo's
data too (its kept records would make the demo's printed expectations wrong)."""

from __future__ import annotations

import subprocess

from dnstest import ROOT


def _dry_run(*targets: str) -> str:
    return subprocess.run(["make", "-n", "-B", *targets], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, check=True).stdout


def test_building_the_venv_says_what_it_does():
    steps = _dry_run(".venv/.installed").splitlines()
    said = [line for line in steps if line.startswith("echo \"make: ")]
    assert len(said) >= 3, steps
    pip = [line for line in steps if "pip install" in line and "-e" in line]
    assert pip and all(" -q" not in line for line in pip), pip  # pip's own progress shows


def test_clean_removes_the_demo_data():
    assert ".skydns-demo" in _dry_run("clean")
