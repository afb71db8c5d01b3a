"""The one error type of the API: an HTTP status and a one-line reason for the client."""

from __future__ import annotations


class ApiError(Exception):
    """A request the API refuses; `reason` is shown to the client as `ERR, <reason>`."""

    def __init__(self, status: int, reason: str):
        # Reasons often quote client input: keep them one short line whatever was sent.
        reason = " ".join(str(reason).split())
        # Client input can hold lone surrogates, which no response could encode.
        reason = reason.encode("utf-8", "backslashreplace").decode("utf-8")
        if len(reason) > 300:
            reason = reason[:297] + "..."
        super().__init__(reason)
        self.status = status
        self.reason = reason


def bad_request(reason: str) -> ApiError:
    return ApiError(400, reason)


def not_found(reason: str) -> ApiError:
    return ApiError(404, reason)


def conflict(reason: str) -> ApiError:
    return ApiError(409, reason)


def forbidden(reason: str) -> ApiError:
    return ApiError(403, reason)
