"""HTTP/1.1 as a health check needs it, sans-I/O: the request bytes, and the status code out of
the response head. The socket lives in probes.py.

Only the status line and the headers are ever read: the check sends `Connection: close` and
drops the connection once the head is in, so a backend's body (however large, however slow)
costs nothing. Redirects are not followed: a 3xx is a status like any other, judged by
`expect`.
"""

from __future__ import annotations

from skydns.checks import DEFAULT_PORTS, HttpCheck

# A head larger than this is not a health endpoint's answer (or not HTTP at all).
MAX_HEAD = 16384
USER_AGENT = "skydns-scanner"


class BadResponse(Exception):
    """The bytes are not the head of an HTTP/1.x response."""


def host_header(check: HttpCheck, address: str) -> str:
    host = check.host or address
    if ":" in host:  # an IPv6 literal (a zone, if any, is not sent: RFC 6874 is optional)
        host = "[" + host.split("%", 1)[0] + "]"
    if check.port != DEFAULT_PORTS[check.scheme]:
        host = f"{host}:{check.port}"
    return host


def request(check: HttpCheck, address: str) -> bytes:
    """The GET request of a check; the path was validated (skydns.checks), so it cannot end
    the request line or add a header."""
    return (f"GET {check.path} HTTP/1.1\r\nHost: {host_header(check, address)}\r\n"
            f"User-Agent: {USER_AGENT}\r\nAccept: */*\r\nConnection: close\r\n\r\n").encode()


def head_complete(data: bytes) -> bool:
    """True once data holds the whole head (status line and headers)."""
    return b"\r\n\r\n" in data or b"\n\n" in data


def status_code(data: bytes) -> int:
    """The status code of a response head (complete, or at least its status line)."""
    line, sep, _ = data.partition(b"\n")
    if not sep:
        raise BadResponse("no status line")
    parts = line.rstrip(b"\r").split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or len(parts[1]) != 3 \
            or not parts[1].isdigit():
        raise BadResponse("not an HTTP/1.x status line")
    code = int(parts[1])
    if not 100 <= code <= 599:
        raise BadResponse(f"status {code} out of range")
    return code
