"""HTTP(S) health checks of an address: the model, pure, shared by the scanner (which runs
them), the API (which validates and stores them) and skydns-apicmd (which spells them).

A status value may carry them beside its ports:

    {"status": "UP", "ports": [8080], "checks": [{"http": "/healthz", "port": 8080}]}

Fields: `http` (path, with query), `port` (default 80, or 443 for https), `scheme` (`http` or
`https`), `host` (Host header and TLS server name; default the address), `expect` (status
codes: `"200-399"` default, `"200"`, `"200,204"`, `"200-299,304"`), `timeout` (seconds;
default the scanner's `[Check] check-timeout`), `tls-skip-verify` (default false).

The one-line spelling (`skydns-apicmd -check`, the status page):

    [SCHEME:][PORT][/PATH] [host=NAME] [expect=CODES] [timeout=SECONDS] [tls-skip-verify]

e.g. `http:8080/healthz`, `https:8443/healthz host=api.example.com expect=200,204`,
`https:/ready tls-skip-verify` (port 443). A path holds no spaces (percent-encode them), so
the options are simply the words after it.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass

SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
DEFAULT_EXPECT = "200-399"
FIELDS = ("http", "port", "scheme", "host", "expect", "timeout", "tls-skip-verify")
# Every check is a connection per round: a value listing hundreds would take the scanner's
# probe slots from every other address. Real services need one or two.
MAX_CHECKS = 8
MAX_PATH = 2048
MAX_TIMEOUT = 300.0

# RFC 3986 path and query characters (percent-encoding included): nothing that could end the
# request line or start a header (space, CR, LF) gets into the request.
_PATH_RE = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*")
_HOST_LABEL_RE = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_EXPECT_PART_RE = re.compile(r"([1-5][0-9][0-9])(?:-([1-5][0-9][0-9]))?")


class CheckError(ValueError):
    """A check that cannot be run; the message says which field and why."""


@dataclass(frozen=True, slots=True)
class HttpCheck:
    path: str
    port: int
    scheme: str = "http"
    host: str | None = None
    expect: str = DEFAULT_EXPECT
    timeout: float | None = None  # None: the scanner's check-timeout
    tls_skip_verify: bool = False
    codes: tuple[tuple[int, int], ...] = ((200, 399),)  # expect as inclusive ranges

    @property
    def kind(self) -> str:
        return self.scheme

    def accepts(self, code: int) -> bool:
        return any(low <= code <= high for low, high in self.codes)

    def to_dict(self) -> dict:
        """The stored form: `http` and `port`, and every other field that is not its default."""
        out: dict = {"http": self.path, "port": self.port}
        if self.scheme != "http":
            out["scheme"] = self.scheme
        if self.host is not None:
            out["host"] = self.host
        if self.expect != DEFAULT_EXPECT:
            out["expect"] = self.expect
        if self.timeout is not None:
            out["timeout"] = self.timeout
        if self.tls_skip_verify:
            out["tls-skip-verify"] = True
        return out

    def spec(self) -> str:
        """The one-line spelling (module doc): parse_spec(c.spec()) gives c back."""
        words = [f"{self.scheme}:{self.port}{self.path}"]
        if self.host is not None:
            words.append(f"host={self.host}")
        if self.expect != DEFAULT_EXPECT:
            words.append(f"expect={self.expect}")
        if self.timeout is not None:
            words.append(f"timeout={self.timeout:g}")
        if self.tls_skip_verify:
            words.append("tls-skip-verify")
        return " ".join(words)


def parse_expect(raw) -> tuple[str, tuple[tuple[int, int], ...]]:
    """(canonical text, ranges) from "200-399", "200,204", 200 or [200, 204]."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    elif isinstance(raw, list) and raw and all(
            isinstance(x, int) and not isinstance(x, bool) for x in raw):
        raw = ",".join(str(x) for x in raw)
    if not isinstance(raw, str) or not raw.strip():
        raise CheckError('expect must be status codes like "200-399", "200" or "200,204"')
    ranges = []
    for part in raw.replace(" ", "").split(","):
        match = _EXPECT_PART_RE.fullmatch(part)
        if match is None:
            raise CheckError(f"expect {_shown(raw)}: {_shown(part)} is not a status code "
                             "(100-599) or a range of them")
        low = int(match.group(1))
        high = int(match.group(2) or low)
        if high < low:
            raise CheckError(f"expect {_shown(raw)}: range {part} runs backwards")
        ranges.append((low, high))
    text = ",".join(f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi in ranges)
    return text, tuple(ranges)


def _shown(value) -> str:
    text = value if isinstance(value, str) else repr(value)
    return repr(text if len(text) <= 40 else text[:40] + "...")


def _path(raw) -> str:
    if not isinstance(raw, str) or not raw:
        raise CheckError("http must be the path to request, like \"/healthz\"")
    if len(raw) > MAX_PATH:
        raise CheckError(f"http path longer than {MAX_PATH} characters")
    if not _PATH_RE.fullmatch(raw):
        raise CheckError(f"http {_shown(raw)}: a path starting with '/', with spaces and other "
                         "special characters percent-encoded")
    return raw


def _port(raw) -> int:
    # Digit strings too, as "ports" takes them: a hand-written value is often "8080".
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 5:
        raw = int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= 65535:
        raise CheckError(f"port {_shown(raw)} is not a port (1-65535)")
    return raw


def _host(raw) -> str:
    if not isinstance(raw, str) or not raw:
        raise CheckError("host must be a host name or an IP address")
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        pass
    name = raw[:-1] if raw.endswith(".") else raw
    if len(name) > 253 or not all(_HOST_LABEL_RE.fullmatch(x) for x in name.split(".")):
        raise CheckError(f"host {_shown(raw)} is neither a host name nor an IP address")
    return raw.lower()


def _timeout(raw) -> float:
    if isinstance(raw, str):
        try:
            raw = float(raw)
        except ValueError:
            raise CheckError(f"timeout {_shown(raw)} is not a number of seconds") from None
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw) \
            or not 0 < raw <= MAX_TIMEOUT:
        raise CheckError(f"timeout {_shown(raw)}: seconds, more than 0 and at most "
                         f"{MAX_TIMEOUT:g}")
    return float(raw)


def parse_check(obj, *, strict: bool = True) -> HttpCheck:
    """An HttpCheck from its JSON object; CheckError says what is wrong. strict (the API)
    refuses unknown fields; values read from etcd only have them ignored, so a newer tool's
    field does not switch a check off."""
    if not isinstance(obj, dict):
        raise CheckError(f"a check must be a JSON object, not {type(obj).__name__}")
    unknown = [k for k in obj if k not in FIELDS]
    if unknown and strict:
        raise CheckError(f"unknown field {_shown(str(unknown[0]))} in a check (expected: "
                         f"{', '.join(FIELDS)})")
    if "http" not in obj:
        raise CheckError('a check needs "http": the path to request')
    scheme = obj.get("scheme", "http")
    if not isinstance(scheme, str) or scheme.lower() not in SCHEMES:
        raise CheckError(f"scheme {_shown(scheme)}: expected http or https")
    scheme = scheme.lower()
    skip = obj.get("tls-skip-verify", False)
    if not isinstance(skip, bool):
        raise CheckError("tls-skip-verify must be true or false")
    expect, codes = parse_expect(obj.get("expect", DEFAULT_EXPECT))
    return HttpCheck(
        path=_path(obj["http"]),
        port=_port(obj["port"]) if "port" in obj else DEFAULT_PORTS[scheme],
        scheme=scheme,
        host=_host(obj["host"]) if obj.get("host") is not None else None,
        expect=expect,
        timeout=_timeout(obj["timeout"]) if obj.get("timeout") is not None else None,
        tls_skip_verify=skip,
        codes=codes,
    )


def parse_checks(raw, *, strict: bool = True) -> tuple[list[HttpCheck], list[str]]:
    """(checks, problems) from a `checks` list (or one object). Not strict: every bad entry
    is a problem and is skipped. Strict: the first problem raises CheckError. Past MAX_CHECKS
    nothing more is parsed: a value from etcd may be a list of any length."""
    if raw is None:
        return [], []
    items = raw if isinstance(raw, list) else [raw]
    checks: list[HttpCheck] = []
    problems: list[str] = []
    bad = 0
    for i, item in enumerate(items):
        if len(checks) == MAX_CHECKS:
            if strict:
                raise CheckError(f"at most {MAX_CHECKS} checks per address")
            problems.append(f"only the first {MAX_CHECKS} checks are run; "
                            f"{len(items) - i} more entries ignored")
            break
        try:
            check = parse_check(item, strict=strict)
        except CheckError as err:
            if strict:
                raise CheckError(f"check {i + 1}: {err}") from None
            bad += 1
            if bad <= _MAX_PROBLEMS:  # one log line, not a dump of a broken value
                problems.append(f"check {i + 1} skipped: {err}")
            continue
        if check not in checks:
            checks.append(check)
    if bad > _MAX_PROBLEMS:
        problems.append(f"{bad - _MAX_PROBLEMS} more bad checks skipped")
    return checks, problems


_MAX_PROBLEMS = 5
_SPEC_HEAD_RE = re.compile(r"(?:(?P<scheme>[A-Za-z]+):)?(?P<port>[0-9]+)?(?P<path>/\S*)?")


def parse_spec(text: str) -> dict:
    """The JSON object of a one-line check (module doc); CheckError when it is not one."""
    if not isinstance(text, str) or not text.strip():
        raise CheckError("empty check; expected e.g. http:8080/healthz")
    head, *options = text.split()
    match = _SPEC_HEAD_RE.fullmatch(head)
    if match is None or not (match.group("port") or match.group("path")):
        raise CheckError(f"check {_shown(text)}: expected [SCHEME:][PORT][/PATH], e.g. "
                         "http:8080/healthz or https:8443/healthz")
    obj: dict = {"http": match.group("path") or "/"}
    if match.group("scheme"):
        obj["scheme"] = match.group("scheme").lower()
    if match.group("port"):
        obj["port"] = int(match.group("port")) if len(match.group("port")) <= 5 else -1
    for word in options:
        key, sep, value = word.partition("=")
        key = key.lower()
        if key == "tls-skip-verify" and (not sep or value.lower() in ("true", "false")):
            obj[key] = not sep or value.lower() == "true"
        elif key in ("host", "expect", "timeout") and sep and value:
            obj[key] = value
        else:
            raise CheckError(f"check option {_shown(word)}: expected host=NAME, expect=CODES, "
                             "timeout=SECONDS or tls-skip-verify")
    parse_check(obj)  # every other mistake, said the same way as for a JSON check
    return obj


def describe(raw) -> list[str]:
    """One-line spellings of a stored `checks` value, for listings; unreadable entries are
    shown as such rather than dropped, so an operator sees that something is there."""
    if raw is None:
        return []
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for item in items[:MAX_CHECKS]:
        try:
            out.append(parse_check(item, strict=False).spec())
        except CheckError as err:
            out.append(f"(unreadable check: {err})")
    if len(items) > MAX_CHECKS:
        out.append(f"({len(items) - MAX_CHECKS} more, not run)")
    return out
