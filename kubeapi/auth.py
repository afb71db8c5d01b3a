"""Tokens -> callers. The admin token ([SkydnsApi] skydns-auth) may change anything; each
[Tokens] owner = token line gives an owner whose records others cannot change."""

from __future__ import annotations

import hmac

from skydns.httpauth import UnsupportedScheme, request_token

from .errors import ApiError
from .plan import Caller
from .records import ADMIN


class Authenticator:
    def __init__(self, admin_token: str, tokens: dict[str, str]):
        self._entries: list[tuple[bytes, Caller]] = []
        self.replace(admin_token, tokens)

    def replace(self, admin_token: str, tokens: dict[str, str]) -> None:
        """Swap in a new token set (SIGHUP): one assignment, so a request sees old or new."""
        entries = []
        if admin_token:
            entries.append((admin_token.encode(), Caller(ADMIN, admin=True)))
        for owner, token in sorted(tokens.items()):
            entries.append((token.encode(), Caller(owner)))
        self._entries = entries

    @property
    def configured(self) -> bool:
        return bool(self._entries)

    def caller(self, token: str | None) -> Caller:
        if not token:
            raise ApiError(401, "missing token: pass ?token= or Authorization: Bearer <token>")
        given = token.encode("utf-8", errors="replace")
        found = None
        # Compare against every token, without stopping early, so the time taken does not
        # tell which (or whether a) token matched.
        for secret, caller in self._entries:
            if hmac.compare_digest(given, secret) and found is None:
                found = caller
        if found is None:
            raise ApiError(401, "invalid token")
        return found


def token_of(headers, query) -> str | None:
    """The token from `Authorization: Bearer x` (preferred) or `?token=x` (skydns.httpauth)."""
    try:
        return request_token(headers.get("Authorization"), query.get("token"))
    except UnsupportedScheme as err:
        raise ApiError(401, str(err)) from None
