"""X webhook security: the CRC challenge answer and the delivery signature check.

X checks a webhook URL with a CRC: ``GET <url>?crc_token=<token>``, answered
with ``{"response_token": "sha256=" + base64(HMAC-SHA256(consumer secret,
crc_token))}`` within 3 seconds. Every delivery carries
``x-twitter-webhooks-signature: sha256=<base64 HMAC-SHA256 of the raw body>``
under the same consumer secret (the app's API secret, not a token). These
helpers do both; the comparison runs in constant time.

```python
from omnichannel_x.webhooks import crc_response, sign, verify_signature

print(crc_response("challenge", "consumer-secret").body.decode())
#> {"response_token": "sha256=2RUZDVKjSpEV/C/r9ivMsVZJ4DFPAawjJFQQzY+6ba4="}
body = b'{"for_user_id": "1"}'
verify_signature(body, sign(body, "consumer-secret"), "consumer-secret")
```

`XAdapter.verify` and `XAdapter.parse` use them behind the hub's webhook
app (``hub.asgi``); they are public for an endpoint of your own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from pydantic import SecretStr

from omnichannel.adapter import WebhookResponse
from omnichannel.errors import WebhookSignatureError

__all__ = ["SIGNATURE_HEADER", "crc_response", "sign", "verify_signature"]

SIGNATURE_HEADER = "x-twitter-webhooks-signature"
"""The header carrying a delivery's signature."""

_NETWORK = "x"


def _secret(value: SecretStr | str) -> bytes:
    raw = value.get_secret_value() if isinstance(value, SecretStr) else value
    return raw.encode("utf-8")


def sign(message: bytes | str, consumer_secret: SecretStr | str) -> str:
    """``"sha256=" + base64(HMAC-SHA256(consumer_secret, message))``, as X signs.

    Args:
        message: The raw body (or the CRC token).
        consumer_secret: The app's API secret.
    """
    data = message.encode("utf-8") if isinstance(message, str) else message
    digest = hmac.new(_secret(consumer_secret), data, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(digest).decode("ascii")


def crc_response(crc_token: str, consumer_secret: SecretStr | str) -> WebhookResponse:
    """The answer to X's CRC challenge ``GET ...?crc_token=...``.

    Args:
        crc_token: The ``crc_token`` query parameter.
        consumer_secret: The app's API secret.

    Raises:
        WebhookSignatureError: The token is empty (not a CRC request).
    """
    if not crc_token:
        raise WebhookSignatureError("the CRC request carries no crc_token", network=_NETWORK,
                                    missing=True)
    body = json.dumps({"response_token": sign(crc_token, consumer_secret)})
    return WebhookResponse(status=200, body=body.encode("ascii"),
                           content_type="application/json; charset=utf-8")


def verify_signature(
    body: bytes, signature: str | None, consumer_secret: SecretStr | str
) -> None:
    """Check a delivery's ``x-twitter-webhooks-signature`` in constant time.

    Args:
        body: The raw body, exactly as received.
        signature: The header's value, or ``None`` when it is absent.
        consumer_secret: The app's API secret.

    Raises:
        WebhookSignatureError: The signature is missing (``missing=True``) or wrong.
    """
    if not signature:
        raise WebhookSignatureError("the delivery carries no signature", network=_NETWORK,
                                    missing=True)
    expected = sign(body, consumer_secret)
    if not hmac.compare_digest(expected.encode("ascii"), signature.strip().encode("utf-8")):
        raise WebhookSignatureError(network=_NETWORK)
