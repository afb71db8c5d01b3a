"""Root logger setup from a config's [Log] section: logfmt-style "kv" lines or JSON lines.

Structured fields travel in `extra={"kv": {...}}` (see `kv()`), so call sites stay plain
`logging` calls and a log shipper can index the fields without parsing messages.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
from datetime import UTC, datetime

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def kv(**fields) -> dict:
    """`log.info("watch resumed", extra=kv(key=k, rev=5))`."""
    return {"kv": fields}


def _timestamp(record: logging.LogRecord) -> str:
    when = datetime.fromtimestamp(record.created, UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z"


def _fields(record: logging.LogRecord, formatter: logging.Formatter) -> dict:
    out = {
        "ts": _timestamp(record),
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    extra = getattr(record, "kv", None)
    if isinstance(extra, dict):
        for key, value in extra.items():
            key = str(key).replace(" ", "_").replace("=", "_")
            # Never let a caller's field overwrite the fixed ones that every line has.
            out[f"kv_{key}" if key in out else key] = value
    if record.exc_info:
        out["exc"] = formatter.formatException(record.exc_info)
    elif record.exc_text:
        out["exc"] = record.exc_text
    if record.stack_info:
        out["stack"] = record.stack_info
    return out


def _kv_value(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple, dict)):
        text = json.dumps(value, default=str, separators=(",", ":"))
    else:
        text = str(value)
    # Quote whenever a reader could mis-split the line: spaces, quotes, '=', control chars.
    if text == "" or any(ch.isspace() or ch in '"=\\' or not ch.isprintable() for ch in text):
        return json.dumps(text, ensure_ascii=False)
    return text


class KVFormatter(logging.Formatter):
    """ts=... level=info logger=skydns.store msg="watch resumed" key=/skydns/x rev=5"""

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record, self)
        return " ".join(f"{key}={_kv_value(value)}" for key, value in fields.items())


class JSONFormatter(logging.Formatter):
    """One JSON object per line with the same fields as KVFormatter."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record, self), default=str, ensure_ascii=False)


def setup_logging(log_section: dict, program: str) -> None:
    """Configure the root logger from a loaded [Log] section; safe to call again."""
    root = logging.getLogger()
    # Replace only the handlers this function installed: test harnesses (pytest's caplog)
    # attach their own handlers to the root logger and must keep them.
    for handler in list(root.handlers):
        if getattr(handler, "_skydns", False):
            root.removeHandler(handler)
            handler.close()

    formatter = JSONFormatter() if log_section.get("format") == "json" else KVFormatter()
    handlers: list[logging.Handler] = []
    if log_section.get("log-to-stdio", True):
        handlers.append(logging.StreamHandler(sys.stderr))
    log_dir = log_section.get("log-dir") or ""
    if log_dir:
        os.makedirs(log_dir, exist_ok=True)
        # WatchedFileHandler reopens the file after logrotate moves it away.
        path = os.path.join(log_dir, f"{program}.log")
        handlers.append(logging.handlers.WatchedFileHandler(path, encoding="utf-8"))
    if not handlers:
        # Without any handler Python's last-resort handler would still print warnings to
        # stderr; the operator asked for silence.
        handlers.append(logging.NullHandler())

    for handler in handlers:
        handler._skydns = True  # type: ignore[attr-defined]
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(_LEVELS.get(str(log_section.get("log-level", "info")).lower(), logging.INFO))
