"""One reading of an HTTP request's token, for the stats server and the API alike."""

from __future__ import annotations

import pytest

from skydns.httpauth import UnsupportedScheme, request_token


@pytest.mark.parametrize(
    ("header", "query", "token"),
    [
        ("Bearer abc", None, "abc"),
        ("bearer  abc ", "other", "abc"),  # the header wins over ?token=
        ("Bearer ", None, None),
        (None, "abc", "abc"),
        (None, "", None),
        (None, None, None),
        ("Basic eDp5", "abc", "abc"),  # a proxy's header beside ?token=: the token counts
    ],
)
def test_request_token(header, query, token):
    assert request_token(header, query) == token


def test_another_scheme_alone_is_named():
    with pytest.raises(UnsupportedScheme, match="use Bearer"):
        request_token("Basic eDp5", None)
