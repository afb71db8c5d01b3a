"""The `-list` / `-show` table, pure: API listing entries -> lines.

    domain:           cctv2.skydns.local       val: { type:A  ips:[192.168.10.1 192.168.10.2] }
    domain:           cctv2.skydns.local       val: { type:Cname  alias:tv1.skydns.local }

Names are right-aligned to the longest one so the `val:` column lines up. An address whose
health is known to be DOWN is marked `192.168.10.1(DOWN)`; UP is the normal case and, as in
the original tool, not marked (`--json` has every status). Health checks follow the values:
`checks:[http:8080/healthz]` when every address has the same, else per address
`checks:{10.0.0.1:[http:8080/healthz] 10.0.0.2:[]}`. Names the API cannot change
(plain SkyDNS keys written straight into etcd) end in `read-only`.
"""

from __future__ import annotations

import json

from skydns.checks import describe as describe_checks

MIN_WIDTH = 30
TYPE_LABELS = {"CNAME": "Cname"}


def _bare(name: str) -> str:
    return name[:-1] if name.endswith(".") and len(name) > 1 else name


def _items(values) -> str:
    return "[" + " ".join(str(v) for v in values) + "]"


def _checks(ips: list, checks: dict) -> str:
    spelled = {ip: "[" + "; ".join(describe_checks(checks.get(ip))) + "]" for ip in ips}
    if len(set(spelled.values())) == 1:
        return next(iter(spelled.values()))
    return "{" + " ".join(f"{ip}:{text}" for ip, text in spelled.items()) + "}"


def describe(entry: dict) -> str:
    """The `{ ... }` part of one line."""
    rtype = str(entry.get("type", "?"))
    parts = [f"type:{TYPE_LABELS.get(rtype, rtype)}"]
    if "ips" in entry:
        status = entry.get("status") or {}
        ips = [f"{ip}(DOWN)" if status.get(ip) == "DOWN" else ip for ip in entry["ips"]]
        parts.append(f"ips:{_items(ips)}")
        if "ports" in entry:
            parts.append(f"ports:{_items(entry['ports'])}")
        if entry.get("checks"):
            parts.append(f"checks:{_checks(entry['ips'], entry['checks'])}")
    if "alias" in entry:
        aliases = [_bare(a) for a in entry["alias"]]
        parts.append(f"alias:{aliases[0]}" if len(aliases) == 1 else f"alias:{_items(aliases)}")
    if "nsHost" in entry:
        parts.append(f"nsHost:{_items(_bare(h) for h in entry['nsHost'])}")
    if "mailHost" in entry:
        parts.append(f"mailHost:{_items(_bare(h) for h in entry['mailHost'])}")
        parts.append(f"mailPriority:{_items(entry.get('mailPriority', []))}")
    if "text" in entry:
        texts = [json.dumps(t, ensure_ascii=False) for t in entry["text"]]
        parts.append(f"text:{_items(texts)}")
    if entry.get("readonly"):
        parts.append("read-only")  # a plain SkyDNS key: answered, but not the API's to change
    return "  ".join(parts)


def table(entries: list[dict]) -> list[str]:
    names = [_bare(str(e.get("domain", ""))) for e in entries]
    width = max([MIN_WIDTH, *map(len, names)])
    return [f"domain: {name:>{width}}       val: {{ {describe(entry)} }}"
            for name, entry in zip(names, entries, strict=True)]
