"""`.ci/run` fails, naming the tool, when one the tests need is missing after its install
step, instead of letting whole test modules skip and CI go green."""

from __future__ import annotations

import shutil
import subprocess

from dnstest import ROOT


def test_missing_tools_fail_with_their_names():
    bash = shutil.which("bash")
    done = subprocess.run([bash, str(ROOT / ".ci" / "check-tools")], capture_output=True,
                          text=True, env={"PATH": "/nonexistent"}, timeout=30)
    assert done.returncode == 1
    for tool in ("dig", "chromium", "ip", "delv", "dnssec-keygen", "kubectl", "systemd-analyze"):
        assert f"ci:   {tool} (Debian:" in done.stderr, done.stderr


def test_run_checks_before_testing():
    script = (ROOT / ".ci" / "run").read_text()
    assert script.index("\n.ci/check-tools") < script.index("\nmake test")
    want = script.split('want="', 1)[1].split('"', 1)[0].split()
    for package in ("bind9-dnsutils", "bind9-utils", "unbound", "iproute2", "pdns-server",
                    "pdns-backend-remote", "pdns-recursor", "chromium", "openssl", "systemd"):
        assert package in want, package
    subprocess.run(["bash", "-n", str(ROOT / ".ci" / "run")], check=True, timeout=30)
