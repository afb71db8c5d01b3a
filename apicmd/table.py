"""The `-list` / `-show` table, pure: API listing entries -> lines.

    domain:           cctv2.skydns.local       val: { type:A  ips:[192.168.10.1 192.168.10.2] }
    domain:           cctv2.skydns.local       val: { type:Cname  alias:tv1.skydns.local }

    domain:              db.skydns.local       val: { type:SRV  srv:[10 60 5432 127.0.20.1 ...] }

Names are right-aligned to the longest one so the `val:` column lines up. An address whose
health is known to be DOWN is marked `192.168.10.1(DOWN)`, one an operator took out of the
answers `192.168.10.1(MAINT)`, whoever wrote its record; UP is the normal case and, as in the
original tool, not marked (`--json` has every status). SRV records show as
`priority weight port target`, one per record, as in a zone file. Health checks follow the values:
`checks:[http:8080/healthz]` when every address has the same, else per address
`checks:{10.0.0.1:[http:8080/healthz] 10.0.0.2:[]}`. Names the API cannot change
(plain SkyDNS keys written straight into etcd) end in `read-only`.
"""

from __future__ import annotations

import json

from skydns.checks import describe as describe_checks

MIN_WIDTH = 30
TYPE_LABELS = {"CNAME": "Cname"}


def bare(name: str) -> str:
    return name[:-1] if name.endswith(".") and len(name) > 1 else name


def _items(values) -> str:
    return "[" + " ".join(str(v) for v in values) + "]"


def _checks(ips: list, checks: dict) -> str:
    spelled = {ip: "[" + "; ".join(describe_checks(checks.get(ip))) + "]" for ip in ips}
    if len(set(spelled.values())) == 1:
        return next(iter(spelled.values()))
    return "{" + " ".join(f"{ip}:{text}" for ip, text in spelled.items()) + "}"


def marked(entry: dict, ip: str) -> str:
    """`ip`, `ip(MAINT)` or `ip(DOWN)`: what the DNS answers make of it."""
    if ip in (entry.get("maintenance") or {}):
        return f"{ip}(MAINT)"
    if (entry.get("status") or {}).get(ip) == "DOWN":
        return f"{ip}(DOWN)"
    return ip


def _srv(entry: dict) -> str:
    return "[" + ", ".join(
        f"{r.get('priority')} {r.get('weight')} {r.get('port')} "
        f"{marked(entry, str(r.get('target')))}" for r in entry["srv"]) + "]"


def describe(entry: dict) -> str:
    """The `{ ... }` part of one line."""
    rtype = str(entry.get("type", "?"))
    parts = [f"type:{TYPE_LABELS.get(rtype, rtype)}"]
    if isinstance(entry.get("srv"), list):
        parts.append(f"srv:{_srv(entry)}")
    elif "ips" in entry:
        parts.append(f"ips:{_items(marked(entry, ip) for ip in entry['ips'])}")
        if "ports" in entry:
            parts.append(f"ports:{_items(entry['ports'])}")
    if "ips" in entry and entry.get("checks"):
        parts.append(f"checks:{_checks(entry['ips'], entry['checks'])}")
    if "alias" in entry:
        aliases = [bare(a) for a in entry["alias"]]
        parts.append(f"alias:{aliases[0]}" if len(aliases) == 1 else f"alias:{_items(aliases)}")
    if "nsHost" in entry:
        parts.append(f"nsHost:{_items(bare(h) for h in entry['nsHost'])}")
    if "mailHost" in entry:
        parts.append(f"mailHost:{_items(bare(h) for h in entry['mailHost'])}")
        parts.append(f"mailPriority:{_items(entry.get('mailPriority', []))}")
    if "text" in entry:
        texts = [json.dumps(t, ensure_ascii=False) for t in entry["text"]]
        parts.append(f"text:{_items(texts)}")
    if entry.get("readonly"):
        parts.append("read-only")  # a plain SkyDNS key: answered, but not the API's to change
    return "  ".join(parts)


def table(entries: list[dict]) -> list[str]:
    names = [bare(str(e.get("domain", ""))) for e in entries]
    width = max([MIN_WIDTH, *map(len, names)])
    return [f"domain: {name:>{width}}       val: {{ {describe(entry)} }}"
            for name, entry in zip(names, entries, strict=True)]
