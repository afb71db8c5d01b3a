"""The Dockerfile (docs/kubernetes.md builds the image from it): parsed with BuildKit's own
parser (the `dockerfile` package), since no Docker daemon runs here to build it. Checked:
it parses, every package of pyproject.toml is copied into the build, every path it copies
exists, and the image runs any program (no ENTRYPOINT; the default command is skydns)."""

from __future__ import annotations

import tomllib

import dockerfile

from dnstest import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _commands():
    return dockerfile.parse_file(str(ROOT / "Dockerfile"))


def test_it_parses_into_two_stages_on_a_slim_python():
    commands = _commands()
    froms = [c.value[0] for c in commands if c.cmd == "FROM"]
    assert len(froms) == 2 and all(f.startswith("python:3.") and "slim" in f for f in froms)
    requires = PYPROJECT["project"]["requires-python"]  # ">=3.11"
    minor = int(requires.split(".")[1])
    assert all(int(f.split(":")[1].split(".")[1].split("-")[0]) >= minor for f in froms)


def test_every_package_is_copied_and_every_source_exists():
    copies = [c for c in _commands() if c.cmd == "COPY" and not c.flags]
    sources = {src.rstrip("/") for c in copies for src in c.value[:-1]}
    for pattern in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]:
        package = pattern.rstrip("*")
        assert package in sources, f"{package} is not copied into the image build"
    for src in sources:
        assert (ROOT / src).exists(), src


def test_any_program_runs_from_it():
    commands = _commands()
    assert not [c for c in commands if c.cmd == "ENTRYPOINT"]
    [cmd] = [c for c in commands if c.cmd == "CMD"]
    assert cmd.json and cmd.value[0] in PYPROJECT["project"]["scripts"]
    users = [c.value[0] for c in commands if c.cmd == "USER"]
    assert users == ["skydns"]  # not root, as the systemd units


def test_the_build_context_leaves_out_local_state():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for path in (".git", ".venv", ".skydns-demo"):
        assert path in ignored
