"""`omnichannel.errors`: the tree's data attributes and the shared payload-error helper."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from omnichannel.adapter import Rejected
from omnichannel.errors import NetworkError, OmnichannelError, PayloadError


class _Author(BaseModel):
    id: str


class _Item(BaseModel):
    id: str
    author: _Author


def _invalid(data: object) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        _Item.model_validate(data)
    return info.value


def test_payload_error_from_validation_names_the_first_bad_field() -> None:
    """The path joins the given prefix and pydantic's location; the network is kept."""
    error = PayloadError.from_validation(
        _invalid({"id": "7", "author": {"id": 42}}), network="mastodon", path="notifications.3"
    )
    assert isinstance(error, OmnichannelError)
    assert error.network == "mastodon"
    assert error.path == "notifications.3.author.id"
    assert error.reason == "Input should be a valid string"
    top = PayloadError.from_validation(_invalid({"id": "7"}))
    assert top.path == "author"


def test_payload_error_from_validation_never_quotes_the_value() -> None:
    """A bad value (here a token pasted in the wrong field) is not in the message."""
    secret = "tok-d41d8cd98f00b204e980"
    error = PayloadError.from_validation(_invalid({"id": ["x"], "author": secret}), path="item")
    assert secret not in str(error)
    assert secret not in repr(error)


def test_rejected_keeps_the_item_as_bytes_with_the_error_path() -> None:
    """A rejected item carries the reason, the path and its JSON bytes, not shown in its repr."""
    error = PayloadError("Field required", network="mastodon", path="notifications.1.account")
    rejected = Rejected.from_error(error, {"id": "21", "text": "😀"})
    assert rejected.path == "notifications.1.account"
    assert rejected.reason == "Field required"
    assert rejected.body == '{"id": "21", "text": "😀"}'.encode()
    assert "😀" not in repr(rejected)
    assert Rejected.from_error(error, b"\x00raw").body == b"\x00raw"
    assert Rejected.from_error(error, "21").body == b"21"


def test_network_error_prefixes_the_network_and_keeps_status_and_code() -> None:
    """A network error's message starts with the network; status and code are attributes."""
    error = NetworkError("refused", network="bluesky", status=400, code="InvalidRequest")
    assert str(error) == "bluesky: refused"
    assert (error.status, error.code) == (400, "InvalidRequest")
