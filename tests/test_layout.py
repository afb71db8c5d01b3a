"""The package structure the code promises: the core imports no component, and no component
imports the local-suite launcher."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPONENTS = ("dnsserver", "pdnsbackend", "scanner", "scheduler", "kubeapi", "apicmd", "devup")


def imported(package: str) -> dict[str, set[str]]:
    """Top-level packages each module of `package` imports (function-level imports too)."""
    found = {}
    for path in sorted((ROOT / package).glob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[path.name] = names
    return found


def test_core_imports_no_component():
    wrong = {m: names & set(COMPONENTS) for m, names in imported("skydns").items()}
    assert not {m: n for m, n in wrong.items() if n}


def test_no_component_imports_the_launcher():
    for package in COMPONENTS[:-1]:
        wrong = {m for m, names in imported(package).items() if "devup" in names}
        assert not wrong, f"{package} imports devup: {wrong}"
