"""The token of an HTTP request, read one way by every server that asks for one (the DNS
stats server, the record API): `Authorization: Bearer <token>`, else `?token=<token>`.

An Authorization header of another scheme (Basic, from a proxy or a browser) is not ours:
with a `?token=` beside it, that token counts; without one, the caller hears that the scheme
is not supported rather than a bare "missing token".
"""

from __future__ import annotations

UNSUPPORTED = "unsupported Authorization scheme; use Bearer <token>"


class UnsupportedScheme(ValueError):
    """An Authorization header of a scheme other than Bearer, and no ?token= to fall back on."""

    def __init__(self) -> None:
        super().__init__(UNSUPPORTED)


def request_token(header: str | None, query_token: str | None) -> str | None:
    """The token given, or None; raises UnsupportedScheme (see the module doc)."""
    if header is not None:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() == "bearer":
            return value.strip() or None
        if not query_token:
            raise UnsupportedScheme()
    return query_token or None
