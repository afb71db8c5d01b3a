"""Reading a request body with bounds: a size limit known before reading when the client says
its length, and a deadline for the whole body (slowclients.py bounds the headers)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from .errors import ApiError


async def read_body(request: web.Request, limit: int, timeout: float) -> bytes:
    """The whole body, refused with 413 as soon as it is known to be larger than `limit`."""
    length = request.content_length
    if length is not None and length > limit:
        raise ApiError(413, f"body larger than {limit} bytes")
    chunks, size = [], 0
    try:
        # a slow client gets `timeout` seconds for the whole body, not per byte
        async with asyncio.timeout(timeout):
            while True:
                chunk = await request.content.read(65536)
                if not chunk:
                    return b"".join(chunks)
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, f"body larger than {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(408, "body not received in time") from None
    except ConnectionError:  # the client went away mid-body: its problem, not a 500
        raise ApiError(499, "client closed the connection before sending the whole body") \
            from None
