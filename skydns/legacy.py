"""The original suite's config files, read as they were written (see docs/migration.md).

Its programs spelled some settings differently (`[Etcd] etcd-machine`, `tls-key`, the API's
`[General] etcd-server`), kept the log settings in `[General]`, gave `log-level` as a glog
verbosity number and the scanner's `ping-timeout` in milliseconds, and had keys that no longer
do anything (`core`, `force-lock-time`, the API's `host`).  `translate` rewrites such a parsed
file onto the canonical keys before it is validated, so one validation and one set of error
messages serves both spellings, and returns one warning per key it dropped.  Pure: it only
edits the parsed file it is given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["LegacyError", "Result", "translate"]


class LegacyError(ValueError):
    """An original-suite key that cannot be honoured; config.py reports it with the file."""

    def __init__(self, reason: str, section: str, key: str):
        super().__init__(reason)
        self.section = section
        self.key = key


@dataclass
class Result:
    warnings: list[tuple[str, str, str]]  # (section, key, why it is ignored)
    legacy: bool  # the file uses the original suite's spellings: its units apply


_HEALTH = ("scanner", "schedule")
_GENERAL_LOG = ("scanner", "schedule", "api")

# (section, original key) -> (section, canonical key, the programs whose files had it).
# Another program's file with such a key gets the usual unknown-key error.
RENAMES: dict[tuple[str, str], tuple[str, str, tuple[str, ...]]] = {
    ("Etcd", "etcd-machine"): ("Etcd", "etcd-servers", _HEALTH),
    ("Etcd", "tls-key"): ("Etcd", "etcd-keyfile", _HEALTH),
    ("Etcd", "tls-pem"): ("Etcd", "etcd-certfile", _HEALTH),
    ("Etcd", "ca-cert"): ("Etcd", "etcd-cafile", _HEALTH),
    ("General", "etcd-server"): ("Etcd", "etcd-servers", ("api",)),
    ("General", "etcd-certfile"): ("Etcd", "etcd-certfile", ("api",)),
    ("General", "etcd-keyfile"): ("Etcd", "etcd-keyfile", ("api",)),
    ("General", "etcd-cafile"): ("Etcd", "etcd-cafile", ("api",)),
    ("General", "ip-monitor-path"): ("Etcd", "status-path", ("api",)),
    ("General", "log-dir"): ("Log", "log-dir", _GENERAL_LOG),
    ("General", "log-level"): ("Log", "log-level", _GENERAL_LOG),
    ("General", "log-to-stdio"): ("Log", "log-to-stdio", _GENERAL_LOG),
    ("Kube2Skydns", "kube-config-file"): ("Kube2Skydns", "kube-config", ("api",)),
}

# (kind, section, key) -> why the key no longer does anything.
OBSOLETE: dict[tuple[str, str, str], str] = {
    ("scanner", "General", "core"): (
        "it set the Go runtime's CPU count; the scanner is one asyncio process whose "
        "parallelism is [Check] max-concurrency"
    ),
    ("schedule", "General", "force-lock-time"): (
        "it broke a stale scheduler lock after that many seconds; leadership is now an etcd "
        "lease that lapses agent-downtime seconds after its holder dies"
    ),
    ("api", "General", "host"): (
        "it named this API's registration key in etcd, which nothing reads any more"
    ),
}

_GLOG_LEVEL = re.compile(r"[+-]?[0-9]+")
PING_TIMEOUT_MS_HINT = 60.0  # a canonical ping-timeout above this many seconds is an error
DEFAULT_AGENT_DOWNTIME = 10.0  # the scanner spec's default heartbeat lease TTL


def _value_text(value) -> str | None:
    return value.strip() if isinstance(value, str) else None


def glog_level(verbosity: int) -> str:
    """glog -v verbosity -> level: 0 logged only the normal messages, any V(n) more."""
    return "info" if verbosity <= 0 else "debug"


def translate(cfg, kind: str, spec_sections) -> Result:
    """Rewrite the original suite's keys of a parsed ConfigObj `cfg` in place (see module doc).

    `spec_sections` maps section name -> the keys the program's spec knows.
    """
    result = Result(warnings=[], legacy=False)
    for section_name in list(cfg.sections):
        section = cfg[section_name]
        moved = False
        for key in list(section.scalars):
            where = (kind, section_name, key)
            if where in OBSOLETE:
                del section[key]
                result.warnings.append((section_name, key, OBSOLETE[where]))
                result.legacy = moved = True
                continue
            target = RENAMES.get((section_name, key))
            if target is None or key in spec_sections.get(section_name, ()):
                continue
            tsection, tkey, kinds = target
            if kind not in kinds or tkey not in spec_sections.get(tsection, ()):
                continue  # not this program's key: left for the unknown-key error
            if tsection in cfg and tkey in cfg[tsection].scalars:
                raise LegacyError(
                    f"set twice: also as [{tsection}] {tkey}; keep one of them", section_name, key
                )
            if tsection not in cfg:
                cfg[tsection] = {}
            cfg[tsection][tkey] = section[key]
            del section[key]
            result.legacy = moved = True
        if moved and section_name not in spec_sections and not section.scalars \
                and not section.sections:
            del cfg[section_name]
    _kube_section(cfg, spec_sections, result)
    _log_level(cfg, result)
    if kind == "scanner":
        _scanner_units(cfg, result)
    return result


def _kube_section(cfg, spec_sections, result: Result) -> None:
    """The API file's [Kube2Skydns] where this build has no Kubernetes sync: `kube-enable = NO`
    keeps its meaning (nothing to sync); asking for the sync is an error, not silence."""
    if "Kube2Skydns" not in cfg or "Kube2Skydns" in spec_sections:
        return
    section = cfg["Kube2Skydns"]
    if section.sections:
        return  # left for the structure check's error
    for key in list(section.scalars):
        value = (_value_text(section[key]) or "").lower()
        if key == "kube-enable" and value in ("yes", "true", "on", "1"):
            raise LegacyError(
                "the Kubernetes sync is not part of this build; set kube-enable = NO",
                "Kube2Skydns",
                key,
            )
        result.warnings.append(("Kube2Skydns", key, "this build has no Kubernetes sync"))
    del cfg["Kube2Skydns"]
    result.legacy = True


def _log_level(cfg, result: Result) -> None:
    log = cfg.get("Log")
    if log is None or "log-level" not in log.scalars:
        return
    text = _value_text(log["log-level"])
    if text is None or not _GLOG_LEVEL.fullmatch(text):
        return
    number = int(text)
    if number < 0:
        raise LegacyError(f"glog verbosity must be 0 or more, got {number}", "Log", "log-level")
    log["log-level"] = glog_level(number)
    result.legacy = True


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _scanner_units(cfg, result: Result) -> None:
    check = cfg.get("Check")
    if check is not None and "ping-timeout" in check.scalars:
        text = _value_text(check["ping-timeout"])
        number = _number(text)
        if number is not None and result.legacy and _GLOG_LEVEL.fullmatch(text):
            # The original scanner read ping-timeout as whole milliseconds; a value with a
            # fraction is already the canonical seconds.
            check["ping-timeout"] = f"{number / 1000:g}"
        elif number is not None and number > PING_TIMEOUT_MS_HINT:
            raise LegacyError(
                f"{number:g} seconds is far too long for one echo reply; ping-timeout is in "
                f"seconds (the original suite's milliseconds apply only in its own files): "
                f"write {number / 1000:g}",
                "Check",
                "ping-timeout",
            )
    general = cfg.get("General")
    if not result.legacy or general is None:
        return
    interval = _number(_value_text(general.get("heartbeat-interval")))
    if interval is not None and "agent-downtime" not in general.scalars:
        # The original scanner wrote heartbeats without a TTL and the scheduler judged them by
        # its own agent-downtime; here the heartbeat is a lease that must outlive one missed
        # keep-alive, so an interval the default TTL cannot cover sets its own.
        if interval >= DEFAULT_AGENT_DOWNTIME:
            general["agent-downtime"] = f"{2 * interval:g}"
