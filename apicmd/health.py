"""The `-health` views, pure: GET /skydns/health documents -> lines of text.

    ADDRESS   STATUS  SINCE                         CHECKER  REASON           NAMES
    10.0.0.1  DOWN    2024-05-01 14:00:00 (3m ago)  scan-1   tcp 80: refused  web.skydns.local
    10.0.0.2  MAINT   2024-05-01 13:00:00 (1h ago)  ops      disk swap        web.skydns.local

    scanners: scan-1 alive 2 addresses; scan-2 DEAD 0 addresses
    leader: sched-1

A confirmed DOWN shows who confirmed it beside its checker (`scan-1 (confirmed by scan-2)`),
an isolated scanner why (`scan-3 alive isolated (3 of 3 addresses fail from here ...)`),
and the API's warnings (one live scanner: nobody to confirm failures with) follow as lines
of their own.

Times are shown in the local time zone (`tz`, for tests) with how long ago (`now`, handed
in). MAINT is shown for an address in maintenance whatever the scanners found (the detail
view has both); its since, checker and reason are the operator's.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

from .table import bare


def parse_time(text) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def when(text, now: datetime, tz: tzinfo | None = None) -> str:
    """`2024-05-01 14:00:00 (3m ago)` in local time; `-` when unknown."""
    moment = parse_time(text)
    if moment is None:
        return "-" if not text else str(text)
    local = moment.astimezone(tz) if tz is not None else moment.astimezone()
    return f"{local:%Y-%m-%d %H:%M:%S} ({ago((now - moment).total_seconds())})"


def shown_status(row: dict) -> str:
    if row.get("maintenance"):
        return "MAINT"
    return row.get("status") or "-"


def _facts(row: dict) -> tuple[str | None, str | None, str | None]:
    """(since, checker, reason) to show: the operator's while in maintenance."""
    maint = row.get("maintenance")
    if isinstance(maint, dict) and maint:
        return maint.get("since"), maint.get("by"), maint.get("reason")
    return row.get("since"), row.get("checker"), row.get("reason")


def health_table(doc: dict, now: datetime, tz: tzinfo | None = None) -> list[str]:
    rows = [["ADDRESS", "STATUS", "SINCE", "CHECKER", "REASON", "NAMES"]]
    for row in doc.get("addresses") or []:
        since, checker, reason = _facts(row)
        names = ",".join(bare(n) for n in row.get("names") or []) or "-"
        confirmed = row.get("confirmedby")
        if checker and confirmed and not row.get("maintenance"):
            checker = f"{checker} (confirmed by {', '.join(map(str, confirmed))})"
        rows.append([str(row.get("ip")), shown_status(row), when(since, now, tz),
                     checker or "-", reason or "-", names])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=False)) + "  " + r[-1]
             for r in rows]
    lines.append("")
    lines.append("scanners: " + ("; ".join(_scanner(s) for s in doc.get("scanners") or [])
                                 or "none registered"))
    lines.append(f"leader: {doc.get('leader') or 'none'}")
    lines += [f"warning: {text}" for text in doc.get("warnings") or []]
    return lines


def _scanner(entry: dict) -> str:
    state = "alive" if entry.get("alive") else "DEAD"
    if entry.get("isolated"):
        state += " isolated"
        if entry.get("isolation"):
            state += f" ({entry['isolation']})"
    count = entry.get("assigned", 0)
    return f"{entry.get('name')} {state} {count} address{'es' if count != 1 else ''}"


def address_detail(doc: dict, now: datetime, tz: tzinfo | None = None) -> list[str]:
    lines = [f"address:     {doc.get('ip')}",
             f"status:      {doc.get('status') or 'unknown'} since "
             f"{when(doc.get('since'), now, tz)}"]
    maint = doc.get("maintenance")
    if isinstance(maint, dict) and maint:
        lines.append(f"maintenance: {maint.get('reason')} (by {maint.get('by')}, since "
                     f"{when(maint.get('since'), now, tz)}): left out of every answer")
    lines.append(f"checker:     {doc.get('checker') or '-'}")
    if doc.get("confirmedby"):
        lines.append(f"confirmedby: {', '.join(map(str, doc['confirmedby']))}")
    if doc.get("reason"):
        lines.append(f"reason:      {doc['reason']}")
    lines.append(f"scanner:     {doc.get('scanner') or 'not assigned'}")
    lines.append(f"names:       {', '.join(doc.get('names') or []) or '-'}")
    last = doc.get("lastfailure")
    if isinstance(last, dict):
        lines.append(f"lastfailure: {when(last.get('time'), now, tz)} by "
                     f"{last.get('checker') or '-'}: {last.get('reason') or '-'}")
    history = doc.get("history") or []
    lines.append(f"history:     {len(history)} change{'s' if len(history) != 1 else ''}"
                 + (", newest first" if history else ""))
    for entry in history:
        move = f"{entry.get('from') or '-'} -> {entry.get('to')}"
        reason = f"  {entry['reason']}" if entry.get("reason") else ""
        lines.append(f"  {when(entry.get('time'), now, tz)}  {move:<13} "
                     f"{entry.get('checker') or '-'}{reason}")
    return lines
