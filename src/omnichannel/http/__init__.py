"""The one place adapters get an HTTP client.

```python
import anyio
import httpx

from omnichannel.http import BearerAuth, open_client, parse_mastodon_headers


async def main() -> None:
    async with open_client(
        network="mastodon",
        base_url="https://mastodon.example",
        auth=BearerAuth("token-from-settings"),
        transport=httpx.MockTransport(lambda request: httpx.Response(200, json={"id": "1"})),
        rate_limit_parser=parse_mastodon_headers,
        default_bucket="account",
    ) as client:
        response = await client.request(
            "POST", "/api/v1/statuses",
            data={"status": "Thanks, we are on it!"},
            headers={"Idempotency-Key": "reply-42"},  # makes this POST safe to retry
        )
        print(response.json()["id"])


anyio.run(main)
#> 1
```

`ApiClient.request` retries what is safe to retry, waits for rate limits instead
of hitting them, and raises `omnichannel.errors` for error answers. A write
that may have landed raises `AmbiguousDelivery` and is never sent twice blindly.
Long-lived streams open with `ApiClient.open_stream` and reconnect at the pace
of `ApiClient.reconnects`, so an adapter never sleeps or retries by hand.
"""

from ._auth import BearerAuth, OAuth1Auth, RefreshingBearerAuth
from ._client import ApiClient, ErrorMapper, Reconnects, open_client
from ._ratelimit import (
    RateLimitInfo,
    RateLimitParser,
    RateLimitState,
    parse_bluesky_headers,
    parse_epoch_headers,
    parse_mastodon_headers,
)
from ._retry import RetryPolicy

__all__ = [
    "ApiClient",
    "BearerAuth",
    "ErrorMapper",
    "OAuth1Auth",
    "RateLimitInfo",
    "RateLimitParser",
    "RateLimitState",
    "Reconnects",
    "RefreshingBearerAuth",
    "RetryPolicy",
    "open_client",
    "parse_bluesky_headers",
    "parse_epoch_headers",
    "parse_mastodon_headers",
]
