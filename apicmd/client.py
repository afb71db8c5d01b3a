"""A minimal HTTP client of skydns-kubeapi (urllib: no dependencies beyond Python).

Every failure becomes one of two exceptions with a message fit for a terminal:
ApiAnswer (the API answered with an error status) or Unreachable (no usable answer at all).
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request

DEFAULT_ADDR = "127.0.0.1:9001"


class ApiAnswer(Exception):
    """The API refused the request: status and its one-line reason."""

    def __init__(self, status: int, reason: str):
        super().__init__(f"ERR, {reason} (HTTP {status})")
        self.status = status
        self.reason = reason


class Unreachable(Exception):
    """No answer from the API (refused, timed out, not HTTP, not the skydns API)."""


def base_url(addr: str) -> str:
    """`127.0.0.1:9001`, `[::1]:9001`, `http://host:9001` -> `http://host:port` (no slash)."""
    addr = addr.strip()
    if not addr:
        raise ValueError("empty API address")
    if any(ch.isspace() or not ch.isprintable() for ch in addr):
        raise ValueError("expected host:port or http://host:port")
    url = addr if "://" in addr else f"http://{addr}"
    expected = "expected host:port or http://host:port"
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as err:  # "Invalid IPv6 URL" for `http://[bad`
        raise ValueError(f"{str(err).lower()}; {expected}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(expected)
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ValueError("bad port; " + expected) from None
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def _reason(status: int, body: bytes) -> str | None:
    """The API's one-line reason in an error answer, or None when the answer is not shaped
    as the API's errors are (`{"error": ...}` or `ERR, ...`): something else answered."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        obj = None
    if isinstance(obj, dict) and isinstance(obj.get("error"), str):
        return obj["error"]
    if text.startswith("ERR,"):
        return text[4:].strip().splitlines()[0] if text[4:].strip() else "error"
    return None


def _first_line(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace").strip()
    return (text.splitlines()[0] if text else "")[:100]


_LIST_FIELDS = ("ips", "ports", "alias", "nsHost", "mailHost", "mailPriority", "text", "ptr")


def _entry_problem(entry) -> str | None:
    """What is wrong with one listing entry, or None when the table can show it."""
    if not isinstance(entry, dict):
        return "is not an object"
    for field in ("domain", "type"):
        if not isinstance(entry.get(field), str):
            return f"has no string {field!r}"
    for field in _LIST_FIELDS:
        values = entry.get(field, [])
        if not isinstance(values, list) or not all(
                isinstance(v, (str, int, float)) for v in values):
            return f"{field!r} is not a list of plain values"
    status = entry.get("status", {})
    if not isinstance(status, dict):
        return "'status' is not an object"
    return None


class Client:
    def __init__(self, addr: str, token: str, timeout: float = 15.0):
        self.base = base_url(addr)
        self.token = token
        self.timeout = timeout

    def request(self, method: str, path: str, body: dict | None = None,
                query: dict | None = None) -> tuple[int, bytes]:
        url = self.base + urllib.parse.quote(path)
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        # The header, not ?token=: URLs end up in proxy and access logs.
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            raise self._refusal(err) from None
        except urllib.error.URLError as err:
            reason = err.reason
            text = getattr(reason, "strerror", None) or str(reason)
            raise Unreachable(f"cannot reach the API at {self.base}: {text}") from None
        except TimeoutError:
            raise Unreachable(f"no answer from the API at {self.base} within "
                              f"{self.timeout:g}s") from None
        except (http.client.HTTPException, ConnectionError, OSError) as err:
            raise Unreachable(f"cannot talk to the API at {self.base}: "
                              f"{type(err).__name__}: {err}") from None

    def _refusal(self, err: urllib.error.HTTPError) -> ApiAnswer | Unreachable:
        """The API's error answer; Unreachable when what answered is not the API (etcd's
        port, a web server: `-addr` is wrong, exit 3, not the API refusing, exit 1)."""
        # The status line arrived, the body may not: a reset or a timeout while reading it
        # must still end as the API's error, not as a traceback from inside this handler.
        try:
            body = err.read() or b""
        except (http.client.HTTPException, OSError) as exc:
            detail = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
            return ApiAnswer(err.code, f"{err.reason or 'error'} (the rest of the answer was "
                             f"lost: {detail})")
        reason = _reason(err.code, body)
        if reason is not None:
            return ApiAnswer(err.code, reason)
        said = _first_line(body) or err.reason or ""
        return Unreachable(f"{self.base} answered HTTP {err.code}"
                           + (f" {said!r}" if said else "")
                           + ", not as the skydns API answers; is -addr (or SKYDNS_API_ADDR) "
                           "the API's address?")

    def json(self, method: str, path: str, **kwargs) -> dict:
        _, raw = self.request(method, path, **kwargs)
        try:
            obj = json.loads(raw)
        except (ValueError, RecursionError):
            raise Unreachable(f"{self.base} did not answer JSON; is it the skydns API?") from None
        if not isinstance(obj, dict):
            raise Unreachable(f"{self.base} answered unexpected JSON")
        return obj

    def listing(self, rtype: str | None = None) -> dict:
        return self._records(
            self.json("GET", "/skydns/api", query={"type": rtype} if rtype else None))

    def show(self, name: str, rtype: str | None = None) -> dict:
        return self._records(
            self.json("GET", f"/skydns/api/{name}", query={"type": rtype} if rtype else None))

    def _records(self, answer: dict) -> dict:
        """The listing as the table and the type lookup expect it, or Unreachable: whatever
        answered is not the skydns API, and its JSON must not turn into a traceback."""
        records = answer.get("records", [])
        if not isinstance(records, list):
            raise Unreachable(f"{self.base} answered unexpected JSON: 'records' is not a list; "
                              "is it the skydns API?")
        for i, entry in enumerate(records):
            problem = _entry_problem(entry)
            if problem:
                raise Unreachable(f"{self.base} answered unexpected JSON: records[{i}] "
                                  f"{problem}; is it the skydns API?")
        return answer

    def write(self, method: str, name: str, body: dict | None) -> tuple[int, dict]:
        status, raw = self.request(method, f"/skydns/api/{name}", body=body)
        try:
            obj = json.loads(raw)
        except (ValueError, RecursionError):
            obj = {"result": raw.decode("utf-8", errors="replace").strip()}
        return status, obj if isinstance(obj, dict) else {"result": obj}

    # -- health (GET /skydns/health, maintenance) ----------------------------------------------

    def health(self, ip: str | None = None) -> dict:
        return self.json("GET", "/skydns/health" + (f"/{ip}" if ip else ""))

    def maintenance(self, ip: str, reason: str | None) -> dict:
        """Set maintenance with `reason`, or clear it with None."""
        if reason is None:
            return self.json("DELETE", f"/skydns/health/{ip}/maintenance")
        return self.json("PUT", f"/skydns/health/{ip}/maintenance", body={"reason": reason})
