"""What every console script does alike (skydns/cli.py): `--version`, a bad flag as one line
with no traceback, and a quiet end when stdout is closed under it.

The scripts are read from pyproject.toml, so a new program is covered without touching this.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from skydns.cli import EXIT_PIPE, package_version

from dnstest import ROOT, write_config

SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
BIN = Path(sys.executable).parent


def _run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT, **kwargs)


def test_every_script_is_listed():
    assert "skydns" in SCRIPTS and "skydns-apicmd" in SCRIPTS


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_version(script: str):
    done = _run([str(BIN / script), "--version"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{script} {package_version()}"
    assert package_version() != "unknown"


@pytest.mark.parametrize("sub", ["up", "dump", "resolv-conf", "dnssec", "check"])
def test_version_of_subcommands(sub: str):
    done = _run([str(BIN / "skydns"), sub, "--version"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"skydns {sub} {package_version()}"


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_unknown_flag_is_one_line(script: str):
    done = _run([str(BIN / script), "--no-such-flag"])
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"{script}: error: ") and "--no-such-flag" in done.stderr


@pytest.mark.parametrize("argv", [
    ["up", "--dns-port", "70000"],
    ["up", "--api-port", "0"],
    ["up", "--base-port", "x"],
    ["up", "--backend-port", "-1"],
    ["up", "--timeout", "nan"],
    ["up", "--recursor-port", "65536"],
    ["up", "--base-port", "65534"],  # and the next four
    ["resolv-conf", "--ndots", "99"],
])
def test_bad_values_are_one_line(argv: list[str]):
    done = _run([str(BIN / "skydns"), *argv])
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"skydns {argv[0]}: error: ")


def test_dump_into_a_closed_pipe_ends_quietly(etcd, tmp_path):
    """`skydns dump | head -1`: the reader goes after one line; no BrokenPipeError."""
    etcd.put_many({f"/skydns/test/example/n{i}/x": {"host": f"10.1.{i // 250}.{i % 250 + 1}"}
                   for i in range(3000)})
    conf = write_config(tmp_path / "skydns.conf", etcd.endpoint, 53)
    proc = subprocess.Popen([str(BIN / "skydns"), "dump", "--config-file", str(conf)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    first = proc.stdout.readline()
    assert first.startswith(b"example.test. "), first
    proc.stdout.close()  # as `head -1` does once it has its line
    err = proc.stderr.read().decode()
    code = proc.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert err == "", err
    assert code == EXIT_PIPE


def test_a_socket_broken_pipe_is_not_hidden():
    """Only stdout's broken pipe is quiet: others are bugs and must stay loud."""
    code = (
        "import sys\n"
        "from skydns.cli import entry\n"
        "@entry\n"
        "def main():\n"
        "    raise BrokenPipeError(32, 'from a socket')\n"
        "sys.exit(main())\n"
    )
    done = _run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert "BrokenPipeError" in done.stderr
