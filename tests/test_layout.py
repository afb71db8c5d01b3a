"""The package structure the code promises: the core imports no component, and no component
imports the local-suite launcher."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPONENTS = ("dnsserver", "pdnsbackend", "scanner", "scheduler", "kubeapi", "apicmd",
              "cloudstack", "devup")


def imported(package: str) -> dict[str, set[str]]:
    """Top-level packages each module of `package` imports (function-level imports too)."""
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT / package))] = names
    return found


def test_core_imports_no_component():
    wrong = {m: names & set(COMPONENTS) for m, names in imported("skydns").items()}
    assert not {m: n for m, n in wrong.items() if n}


def test_no_component_imports_the_launcher():
    for package in COMPONENTS[:-1]:
        wrong = {m for m, names in imported(package).items() if "devup" in names}
        assert not wrong, f"{package} imports devup: {wrong}"


LAYOUT = ("Name", "Description", "Syntax", "Config", "Metrics", "Examples")
PROGRAMS = ("dnsserver", "pdnsbackend", "scanner", "scheduler", "kubeapi", "apicmd", "devup",
            "cloudstack")


def headings(text: str, level: str = "## ") -> list[str]:
    found, fence = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fence = not fence
        elif not fence and line.startswith(level):
            found.append(line[len(level):].strip())
    return found


def test_module_readmes_share_one_layout():
    """Name, Description, Syntax, Config, Metrics, Examples, in that order, first; anything
    else (modules, see also) after them. `Config (file)` names its file."""
    for package in PROGRAMS:
        found = headings((ROOT / package / "README.md").read_text())
        first = [h.split(" (")[0] for h in found[: len(LAYOUT)]]
        assert first == list(LAYOUT), f"{package}/README.md: {found}"


DNSSERVER_PARTS = ("wire", "zone", "front")


def test_dnsserver_readme_lists_every_module():
    """The top README lists the top-level modules and the parts; each part's README its own."""
    text = (ROOT / "dnsserver" / "README.md").read_text()
    table = text[text.index("## Modules"):]
    for part in DNSSERVER_PARTS:
        assert f"`{part}/`" in table, f"dnsserver/README.md: no {part}/"
    for folder in (ROOT / "dnsserver", *(ROOT / "dnsserver" / p for p in DNSSERVER_PARTS)):
        readme = folder / "README.md"
        text = readme.read_text()
        if folder.name != "dnsserver":
            table = text
        for path in sorted(folder.glob("*.py")):
            if path.name != "__init__.py":
                assert f"`{path.name}`" in table, f"{readme.relative_to(ROOT)}: no {path.name}"
    subfolders = {p.name for p in (ROOT / "dnsserver").iterdir()
                  if p.is_dir() and (p / "__init__.py").exists()}
    assert subfolders == set(DNSSERVER_PARTS)


def test_record_sources_reach_the_api_planner_only_through_sources():
    """skydns-cloudstack imports no other component: the record model it shares with the
    API and the Kubernetes sync comes through sources/ (sources/reconciler.py)."""
    wrong = {m: names & set(COMPONENTS) for m, names in imported("cloudstack").items()}
    assert not {m: n for m, n in wrong.items() if n}


def test_the_wheel_carries_every_package():
    """pyproject's package patterns find every package directory, subpackages included (a
    plain list once left skydns/dnssec out of the Docker image's wheel)."""
    import tomllib

    from setuptools import find_packages

    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = set(find_packages(str(ROOT), include=find["packages"]["find"]["include"]))
    tops = [d for d in ROOT.iterdir() if (d / "__init__.py").exists() and d.name != "tests"]
    on_disk = {".".join(p.parent.relative_to(ROOT).parts)
               for top in tops for p in top.rglob("__init__.py")}
    assert on_disk <= found, sorted(on_disk - found)
