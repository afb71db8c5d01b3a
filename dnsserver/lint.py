"""`skydns check --etcd`: what is wrong with the data in etcd, as findings an operator can act on.

Pure: the keys and values read from etcd in, findings out (no sockets, no etcd). Records are
decoded with the server's own parser (skydns/records.py) and looked up in its own index
(index.py, wildcards included), and "CNAME" and "address" mean what the answer rules
(zone/rules.py) make of a record, so a finding describes what
skydns really answers.

    bad-record         a value the server skips (bad JSON, not a record)
    bad-status         a status value that is read as UP whatever it says
    wildcard-middle    `*` anywhere but the first label of a name: it matches below every
                       name of its parent (`/skydns/local/skydns/*/wild` gives `www` an address)
    cname-and-address  a name with a CNAME and addresses: A/AAAA get the addresses only
    missing-target     a CNAME/SRV/MX/NS target inside the zone that does not exist
    orphan-status      a status key of an address no record holds (still probed)
    no-status          an address without a status key (never probed: always UP); a
                       warning, as skydns without health checks is a setup of its own
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from skydns.keys import Path, ip_of_key, key_to_path, name_to_path, path_to_key, path_to_name
from skydns.records import Record, RecordError, parse_record
from skydns.skydns2 import SETTINGS_KEY

from .zone.context import REVERSE_ZONES
from .zone.index import RecordIndex
from .zone.rules import _cname_of, _is_address

SHOWN = 3  # keys named in one finding before "and N more"


@dataclass(frozen=True)
class Finding:
    key: str
    code: str
    problem: str
    fix: str
    severity: str = "error"  # or "warning": reported, yet nothing is wrong for sure

    def line(self) -> str:
        return f"{self.key}: {self.problem}; {self.fix}"

    def as_dict(self) -> dict:
        return asdict(self)


def _keys(records: list[Record]) -> str:
    shown = ", ".join(r.key for r in records[:SHOWN])
    more = len(records) - SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def _in(path: Path, zone: Path) -> bool:
    return path[: len(zone)] == zone


def bad_values(records: Iterable[tuple[str, bytes]]) -> tuple[list[Record], list[Finding]]:
    """The records the server loads from these keys, and a finding for each it skips."""
    good, found = [], []
    for key, value in records:
        path = key_to_path(key)
        if not path or key == SETTINGS_KEY:
            continue
        try:
            good.append(parse_record(key, path, value))
        except RecordError as err:
            found.append(Finding(key, "bad-record", f"skipped by the server: {err}",
                                 f"write a valid record there or delete it (etcdctl del {key})"))
    return good, found


def _wildcards(records: list[Record]) -> list[Finding]:
    found = []
    for rec in records:
        # API-style keys are `<id>.<name>`: a wildcard name `*.x` is stored at x/*/<id>.
        name = rec.path[:-1] if rec.rtype else rec.path
        if "*" not in name[:-1]:
            continue
        better = tuple(label for label in rec.path if label != "*") + ("*",)
        found.append(Finding(
            rec.key, "wildcard-middle",
            f"'*' in the middle of {path_to_name(rec.path)}: it matches below every name "
            f"of {path_to_name(rec.path[:rec.path.index('*')])}, so they all answer with it",
            f"a wildcard is the first label: {path_to_key(better)} answers every name below "
            f"{path_to_name(better[:-1])}"))
    return found


def _cname_conflicts(index: RecordIndex, records: list[Record], zone: Path) -> list[Finding]:
    found = []
    for rec in records:
        # A host name without a port: answered as a CNAME (with a port it is an SRV target).
        if rec.port or not _in(rec.path, zone) or _cname_of([rec]) is not rec:
            continue
        # SkyDNS style: `www/x` is an instance of `www`; both names answer with it.
        for owner in (rec.path, rec.path[:-1]):
            if len(owner) <= len(zone):
                continue
            addresses = [r for r in index.below(owner) if _is_address(r)]
            if addresses:
                found.append(Finding(
                    rec.key, "cname-and-address",
                    f"{path_to_name(owner)} has this CNAME to {rec.host} and addresses "
                    f"({_keys(addresses)}): A/AAAA questions get the addresses, never the CNAME",
                    "keep one: delete this key or the address keys, or move one to another name"))
                break
    return found


def _missing_targets(index: RecordIndex, records: list[Record], zone: Path) -> list[Finding]:
    found = []
    for rec in records:
        if not rec.host or rec.ip or not _in(rec.path, zone) or rec.rtype == "PTR":
            continue
        target = name_to_path(rec.host)
        if not _in(target, zone) or index.exists(target):
            continue
        kind = "MX" if rec.mail else rec.rtype or ("SRV" if rec.port else "CNAME")
        found.append(Finding(
            rec.key, "missing-target",
            f"{kind} target {rec.host} is in the zone but has no records: questions end in "
            "NXDOMAIN", f"create {rec.host} ({path_to_key(target)}) or point this record at "
            "a name that exists"))
    return found


def _health(records: list[Record], statuses: Iterable[tuple[str, bytes]], status_path: str,
            zone: Path) -> list[Finding]:
    held: dict[str, list[Record]] = {}
    for rec in records:
        if rec.ip and (_in(rec.path, zone) or rec.path[:2] in REVERSE_ZONES):
            held.setdefault(rec.ip, []).append(rec)
    found, seen = [], set()
    for key, value in statuses:
        ip = ip_of_key(key, status_path)
        if ip is None:
            found.append(Finding(key, "bad-status", "not a status key: the part after "
                                 f"{status_path} is not an IP address",
                                 f"delete it (etcdctl del {key})"))
            continue
        seen.add(ip)
        if not _readable_status(value):
            found.append(Finding(key, "bad-status", "unreadable status value, counted as UP",
                                 'write {"status": "UP"} or {"status": "DOWN"} (with "ports")'))
        if ip not in held:
            found.append(Finding(key, "orphan-status", f"no record holds {ip}, yet scanners "
                                 "keep probing it", f"delete it (etcdctl del {key}) unless a "
                                 "record for it is on its way"))
    for ip, recs in sorted(held.items()):
        if ip not in seen:
            found.append(Finding(
                recs[0].key, "no-status",
                f"{ip} has no status key ({status_path}{ip}): no scanner probes it, it is "
                f"always UP" + (f" (also held by {_keys(recs[1:])})" if recs[1:] else ""),
                f"etcdctl put {status_path}{ip} '{{\"ports\":[80]}}' with its ports (the API "
                "writes one for the addresses it creates)", "warning"))
    return found


def _readable_status(value: bytes) -> bool:
    """Whether the server reads what a status value says (health.parse_status counts anything
    else as UP): a JSON object whose status, if any, is UP or DOWN."""
    try:
        obj = json.loads(value)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False
    status = obj.get("status", "UP") if isinstance(obj, dict) else None
    return isinstance(status, str) and status.upper() in ("UP", "DOWN")


def lint(records: Iterable[tuple[str, bytes]], statuses: Iterable[tuple[str, bytes]],
         zone: str, status_path: str) -> list[Finding]:
    """Every finding about the records (keys below /skydns/ that are not health state) and
    the status keys, for the zone `zone`."""
    zone_path = name_to_path(zone)
    good, found = bad_values(records)
    index = RecordIndex()
    for rec in good:
        index.put(rec)
    found += _wildcards(good)
    found += _cname_conflicts(index, good, zone_path)
    found += _missing_targets(index, good, zone_path)
    found += _health(good, statuses, status_path, zone_path)
    return found
