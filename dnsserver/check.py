"""`skydns check`: every problem of the config files, and with --etcd of the data in etcd.

    skydns check [--config-dir DIR | --config-file FILE ...] [--etcd] [--json]

Like `named-checkconf` and `pdnsutil check-zone`: reads, changes nothing, prints one line per
finding (the file and key, or the etcd key, and what to do) and exits 1 when there is any
error; warnings (keys that no longer do anything, addresses without a status key) are
printed and leave the status 0.
Every error of a file is reported, not only the first a daemon would stop at. Each file is
checked as what its name says (skydns.conf, skydns-scanner.conf, skydns-schedule.conf,
skydns-api.conf, skydns-janitor.conf; other names by their sections). --etcd reads the
records and health statuses once, through the [Etcd] section and the zone of the skydns
config given (defaults without one), and lints them (dnsserver/lint.py).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from skydns import cli, store
from skydns.config import PROGRAMS, ConfigError, config_problems, load_config
from skydns.keys import not_record_prefixes

from .lint import Finding, lint
from .zone.sync import RECORDS_PREFIX

EXIT_OK, EXIT_FOUND, EXIT_USAGE = 0, 1, 2
FILES = {"skydns.conf": "dns", "skydns-scanner.conf": "scanner",
         "skydns-schedule.conf": "schedule", "skydns-api.conf": "api",
         "skydns-janitor.conf": "janitor"}
# A section only one kind of file has, for files named otherwise.
_SECTION_KINDS = {"Dns": "dns", "Pdns": "dns", "Check": "scanner", "SkydnsApi": "api",
                  "Tokens": "api", "Kube2Skydns": "api", "Janitor": "janitor"}


def kind_of(path: Path) -> str:
    """The config kind a file is checked as: by its name, else by its sections."""
    if path.name in FILES:
        return FILES[path.name]
    stem = path.stem.lower()
    for word, kind in (("scanner", "scanner"), ("sched", "schedule"), ("janitor", "janitor"),
                       ("api", "api")):
        if word in stem:
            return kind
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "dns"  # the read error is reported by the check itself
    for line in lines:
        section = line.strip().strip("[]").strip()
        if line.strip().startswith("[") and section in _SECTION_KINDS:
            return _SECTION_KINDS[section]
    return "dns"


def _config_finding(err: ConfigError, kind: str, severity: str = "error") -> dict:
    return {"source": "config", "severity": severity, "program": PROGRAMS[kind],
            "file": err.path, "section": err.section, "key": err.key,
            "problem": err.reason, "line": str(err)}


def check_configs(files: list[tuple[Path | None, str]]) -> list[dict]:
    out = []
    for path, kind in files:
        errors, warnings = config_problems(None if path is None else str(path), kind)
        out += [_config_finding(e, kind) for e in errors]
        out += [_config_finding(w, kind, "warning") for w in warnings]
    return out


async def _read(cfg: dict) -> tuple[list, list]:
    client = store.make_client(cfg["Etcd"])
    try:
        kvs, _ = await store.load_prefix(client, RECORDS_PREFIX)
        status_path = cfg["Etcd"]["status-path"]
        statuses = [kv for kv in kvs if kv.key.startswith(status_path)]
        if not status_path.startswith(RECORDS_PREFIX):
            statuses, _ = await store.load_prefix(client, status_path)
    finally:
        await client.close()
    skip = not_record_prefixes(cfg["Etcd"])
    records = [(kv.key, kv.value) for kv in kvs if not kv.key.startswith(skip)]
    return records, [(kv.key, kv.value) for kv in statuses]


def check_etcd(cfg: dict) -> list[Finding]:
    records, statuses = asyncio.run(
        asyncio.wait_for(_read(cfg), cfg["Etcd"]["etcd-timeout"] * 3))
    return lint(records, statuses, cfg["Dns"]["dns-domain"], cfg["Etcd"]["status-path"])


def _parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(
        prog="skydns check",
        description="Check config files (every error, not only the first) and, with --etcd, "
        "the records and health statuses in etcd: bad values, wildcards in the middle of a "
        "name, names with both a CNAME and addresses, CNAME/SRV/MX/NS targets in the zone that "
        "do not exist, status keys of addresses no record holds, addresses without a status "
        "key (a warning). One line per finding with what to do; exit status 1 when there is any "
        "but warnings, 0 when all is well, 2 for bad usage.",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--config-dir", metavar="DIR",
                       help="check every config file of DIR (" + ", ".join(FILES) + ")")
    where.add_argument("--config-file", "-config-file", metavar="PATH", action="append",
                       default=[], help="check this file (repeatable); its kind comes from "
                       "its name, else its sections")
    parser.add_argument("--etcd", action="store_true",
                        help="also lint the data in etcd (its address and the zone from the "
                        "skydns config given, else the defaults)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object: {\"ok\": bool, \"findings\": [...]}")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    files: list[tuple[Path | None, str]] = []
    if args.config_dir:
        folder = Path(args.config_dir)
        if not folder.is_dir():
            parser.error(f"--config-dir {args.config_dir}: not a directory")
        files = [(folder / name, kind) for name, kind in FILES.items()
                 if (folder / name).exists()]
        if not files:
            parser.error(f"--config-dir {args.config_dir}: none of {', '.join(FILES)} in it")
    files += [(Path(name), kind_of(Path(name))) for name in args.config_file]
    if not files:
        files = [(None, "dns")]  # the built-in defaults
    findings = check_configs(files)

    if args.etcd:
        findings += _etcd_findings(files)

    errors = [f for f in findings if f["severity"] == "error"]
    if args.json:
        print(json.dumps({"ok": not errors, "findings": findings}, indent=2))
    else:
        for f in findings:
            label = "" if f["severity"] == "error" else "warning: "
            print(f"skydns check: {label}{f['line']}")
        checked = ", ".join("<defaults>" if p is None else str(p) for p, _ in files)
        summary = f"{len(errors)} problem{'s' if len(errors) != 1 else ''}"
        print(f"skydns check: {summary} ({checked}{'; etcd' if args.etcd else ''})",
              file=sys.stderr)
    return EXIT_FOUND if errors else EXIT_OK


def _etcd_findings(files: list[tuple[Path | None, str]]) -> list[dict]:
    dns = next((p for p, kind in files if kind == "dns"), None)
    where = "the defaults" if dns is None else str(dns)
    try:
        cfg = load_config(None if dns is None else str(dns), "dns")
    except ConfigError:
        return [_etcd_problem(f"not checked: the skydns config ({where}) has errors",
                              "fix them first")]
    try:
        found = check_etcd(cfg)
    except Exception as err:  # unreachable, TLS, timeout: one finding, never a traceback
        servers = ", ".join(cfg["Etcd"]["etcd-servers"])
        return [_etcd_problem(f"cannot read etcd at {servers}: {store.describe_error(err)}",
                              f"check [Etcd] etcd-servers in {where} and that etcd runs")]
    return [{"source": "etcd", **f.as_dict(), "line": f.line()} for f in found]


def _etcd_problem(problem: str, fix: str) -> dict:
    finding = Finding("etcd", "etcd", problem, fix)
    return {"source": "etcd", "severity": "error", **finding.as_dict(), "line": finding.line()}
