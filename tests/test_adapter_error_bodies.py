"""A network's answer, however deeply nested, never escapes an adapter as a RecursionError."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from omnichannel.errors import OmnichannelError, PayloadError
from omnichannel_mastodon._errors import error_for as mastodon_error_for
from omnichannel_meta._errors import MetaErrors
from omnichannel_meta._ratelimit import parse_meta_headers
from omnichannel_x import XAdapter
from omnichannel_x._errors import error_for as x_error_for

DEEP = b"[" * 100_000 + b"]" * 100_000


def _answer(status: int, body: bytes) -> httpx.Response:
    request = httpx.Request("POST", "https://network.test/api/items")
    return httpx.Response(status, content=body, request=request)


@pytest.mark.parametrize("mapper", [mastodon_error_for, x_error_for, MetaErrors("facebook")],
                         ids=["mastodon", "x", "facebook"])
def test_a_deeply_nested_error_body_is_mapped_not_raised(
    mapper: Callable[[httpx.Response], OmnichannelError | None],
) -> None:
    """An error answer whose body is nested past Python's limit maps like an unreadable one."""
    for status in (400, 503):
        found = mapper(_answer(status, DEEP))
        assert found is None or isinstance(found, OmnichannelError)


def test_a_deeply_nested_usage_header_is_ignored() -> None:
    """Meta's usage headers are JSON: one nested past the limit is ignored, never an error."""
    assert parse_meta_headers({"X-App-Usage": DEEP.decode()}) is None


def test_x_replay_of_a_deeply_nested_body_is_a_payload_error() -> None:
    """`omnichannel replay x` on a body nested past the limit: PayloadError, not RecursionError."""
    with pytest.raises(PayloadError):
        XAdapter.parse_payload(DEEP, path="/2/users/1/mentions")
