"""The Chirp adapter: the tutorial's worked example of the adapter contract."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from functools import partial

import httpx
from pydantic import Field, SecretStr, ValidationError

from omnichannel.actions import Delete, Hide, Post, PrivateReply, React, Reply, Sent
from omnichannel.adapter import (
    Adapter,
    AdapterSettings,
    Batch,
    Rejected,
    WebhookRequest,
    WebhookResponse,
    convert_item,
)
from omnichannel.capabilities import Capabilities
from omnichannel.errors import (
    AuthenticationError,
    ConfigurationError,
    NotFound,
    OmnichannelError,
    RequestRejected,
    TokenExpired,
    WebhookSignatureError,
)
from omnichannel.events import Event, MessageReceived, event_id
from omnichannel.http import ApiClient, BearerAuth, RateLimitInfo, open_client
from omnichannel.model import Conversation, Message
from omnichannel.text import TextRule

from . import _convert, _wire
from ._convert import NETWORK, person, ref

__all__ = ["ChirpAdapter", "ChirpSettings", "map_error", "parse_rate_limit"]


# --8<-- [start:settings]
class ChirpSettings(AdapterSettings):
    """What the Chirp adapter needs.

    Attributes:
        base_url: Chirp's API root.
        access_token: A bearer token for our account.
        webhook_secret: The secret Chirp signs webhooks with (webhooks only).
        page_size: Items per page when polling.
    """

    base_url: str = "https://api.chirp.example"
    access_token: SecretStr
    webhook_secret: SecretStr | None = None
    page_size: int = Field(default=20, ge=1, le=50)
# --8<-- [end:settings]


# --8<-- [start:http]
def parse_rate_limit(headers: Mapping[str, str], /, *, now: datetime) -> RateLimitInfo | None:
    """Read ``Chirp-RateLimit-Limit/-Remaining/-Reset`` (reset in epoch seconds)."""
    h = httpx.Headers(headers)
    try:
        limit = int(h["chirp-ratelimit-limit"])
        remaining = int(h["chirp-ratelimit-remaining"])
        reset_at = datetime.fromtimestamp(int(h["chirp-ratelimit-reset"]), UTC)
    except (KeyError, ValueError, OverflowError, OSError):
        return None
    return RateLimitInfo(limit=limit, remaining=remaining, reset_at=reset_at)


def map_error(response: httpx.Response) -> OmnichannelError | None:
    """Turn Chirp's ``{"error": {"code", "message"}}`` into our errors (``None``: default)."""
    try:
        code = _wire.ErrorBody.model_validate_json(response.content).error.code
    except ValidationError:
        return None
    status = response.status_code
    if code == "token_expired":
        return TokenExpired("the access token expired", network=NETWORK)
    if status == 401:
        return AuthenticationError(f"credentials refused ({code})", network=NETWORK)
    if status == 404:
        return NotFound(f"not found ({code})", network=NETWORK, status=status, code=code)
    if status in (403, 422):
        return RequestRejected(f"refused ({code})", network=NETWORK, status=status, code=code)
    return None
# --8<-- [end:http]


# --8<-- [start:declare]
class ChirpAdapter(Adapter):
    """Chirp: mentions, replies, DMs, likes, hiding, deleting; polling and webhooks."""

    network = NETWORK
    capabilities = Capabilities(
        text=TextRule.code_points(280),
        dm_text=TextRule.code_points(1000),
        private_reply=True,
        reactions=("like",),
        hide=True,
        delete=True,
        inbound=frozenset({"poll", "webhook"}),
    )
    settings_model = ChirpSettings
    signature_headers = frozenset({"chirp-signature"})  # an HMAC, not a secret: kept
    settings: ChirpSettings
    # --8<-- [end:declare]

    _api: ApiClient | None = None
    _stack: AsyncExitStack | None = None

    # lifecycle -----------------------------------------------------------

    # --8<-- [start:lifecycle]
    async def open(self) -> None:
        """Open the HTTP client and resolve our account with ``GET /me``."""
        stack = AsyncExitStack()
        self._api = await stack.enter_async_context(open_client(
            network=NETWORK,
            base_url=self.settings.base_url,
            auth=BearerAuth(self.settings.access_token),
            transport=self.transport,
            rate_limit_parser=parse_rate_limit,
            error_mapper=map_error,
            default_bucket="account",
        ))
        self._stack = stack
        response = await self._api.request("GET", "/me")
        me = _convert.parse(_wire.User, response.content, path="me")
        self.account = person(me)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        stack, self._stack, self._api = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    @property
    def api(self) -> ApiClient:
        """The open HTTP client.

        Raises:
            ConfigurationError: ``open()`` was not called.
        """
        if self._api is None:
            raise ConfigurationError("the adapter is not open", network=NETWORK)
        return self._api
    # --8<-- [end:lifecycle]

    # offsets: the two methods that know Chirp counts UTF-16 ------------------

    # --8<-- [start:offsets]
    def read_offset(self, text: str, offset: int) -> int:
        """Turn a Chirp offset (UTF-16 units) into a ``str`` index."""
        return _convert.utf16_to_index(text, offset)

    def write_offset(self, text: str, index: int) -> int:
        """Turn a ``str`` index into a Chirp offset (UTF-16 units)."""
        return _convert.index_to_utf16(text, index)
    # --8<-- [end:offsets]

    # inbound ---------------------------------------------------------------

    # --8<-- [start:inbound]
    def message_from_post(self, post: _wire.ChirpPost) -> Message:
        """A Chirp post as a core ``Message``."""
        return Message(
            ref=ref(post.id), conversation=ref(post.thread_id), author=person(post.author),
            text=post.text,
            entities=_convert.entities(post.text, post.entities, read=self.read_offset),
            created_at=post.created_at, visibility="public",
            in_reply_to=ref(post.reply_to) if post.reply_to else None,
            from_us=self.account is not None and post.author.id == self.account.ref.id,
            raw=post.model_dump(mode="json"),
        )

    def message_from_dm(self, dm: _wire.ChirpDM) -> Message:
        """A Chirp direct message as a core ``Message``."""
        return Message(
            ref=ref(dm.id), conversation=ref(dm.conversation_id), author=person(dm.sender),
            text=dm.text,
            entities=_convert.entities(dm.text, dm.entities, read=self.read_offset),
            created_at=dm.created_at, visibility="private",
            in_reply_to=ref(dm.reply_to) if dm.reply_to else None,
            from_us=self.account is not None and dm.sender.id == self.account.ref.id,
            raw=dm.model_dump(mode="json"),
        )

    def received(self, message: Message, *, direct: bool) -> MessageReceived:
        """Wrap a message in a ``MessageReceived`` event."""
        participants = () if message.from_us else (message.author,)
        return MessageReceived(
            id=event_id("message.received", message.ref), network=NETWORK,
            account=self.account.ref.id if self.account else None,
            occurred_at=message.created_at, message=message,
            conversation=Conversation(
                ref=message.conversation, kind="direct" if direct else "thread",
                account=self.account.ref if self.account else None,
                participants=participants,
            ),
        )

    async def poll(self, cursor: str | None) -> Batch:
        """Read one page of mentions and one of DMs after ``cursor`` (``"<mentions>:<dms>"``).

        A malformed item is skipped and reported in ``Batch.rejected``; the
        cursor moves past it all the same.

        Raises:
            PayloadError: A page as a whole is not what Chirp sends.
        """
        mention_since, dm_since = (cursor or ":").partition(":")[::2]
        mentions = await self.page("/mentions", since=mention_since)
        dms = await self.page("/dms", since=dm_since)
        events: list[Event] = []
        rejected: list[Rejected] = []
        for feed, page in (("mentions", mentions), ("dms", dms)):
            for index, item in enumerate(page.data):
                # One bad item never holds up the rest: whatever converting it
                # raises comes back as a Rejected, with the item's raw body.
                found = convert_item(partial(self.event_from, feed), item,
                                     network=NETWORK, path=f"{feed}.{index}")
                if isinstance(found, Rejected):
                    rejected.append(found)
                else:
                    events.append(found)
        next_cursor = f"{mentions.next_since or mention_since}:{dms.next_since or dm_since}"
        return Batch(events=tuple(events), cursor=next_cursor,
                     more=mentions.has_more or dms.has_more, rejected=tuple(rejected))

    async def page(self, path: str, *, since: str = "", **params: str) -> _wire.Page:
        """One page of a Chirp list (``/mentions``, ``/me/posts``...), its items unchecked.

        Raises:
            PayloadError: The answer is not a page at all.
        """
        query: dict[str, str | int] = {"limit": self.settings.page_size, **params}
        if since:
            query["since"] = since
        response = await self.api.request("GET", path, params=query)
        return _convert.parse(_wire.Page, response.content, path=path.strip("/"))
    # --8<-- [end:inbound]

    # --8<-- [start:item]
    def event_from(self, feed: str, item: object) -> MessageReceived:
        """One item of the mentions or DMs feed as its event.

        Call it through `convert_item`: what it raises on a bad item (a
        `PayloadError` with the path in the item, ``author``; the core model's
        ``ValidationError``; anything else) becomes that item's `Rejected`.

        Raises:
            PayloadError: The item is not what Chirp sends.
        """
        if feed == "dms":
            dm = _convert.parse(_wire.ChirpDM, item)
            return self.received(self.message_from_dm(dm), direct=True)
        post = _convert.parse(_wire.ChirpPost, item)
        return self.received(self.message_from_post(post), direct=False)
    # --8<-- [end:item]

    # --8<-- [start:webhook]
    async def verify(self, request: WebhookRequest) -> WebhookResponse | None:
        """Check ``Chirp-Signature: t=<unix>,v1=<hex>`` in constant time.

        Raises:
            WebhookSignatureError: The header is missing or the signature is wrong.
            ConfigurationError: No ``webhook_secret`` is configured.
        """
        if self.settings.webhook_secret is None:
            raise ConfigurationError("webhook_secret is not set", network=NETWORK)
        header = request.header("chirp-signature")
        if not header:
            raise WebhookSignatureError("missing Chirp-Signature", network=NETWORK, missing=True)
        parts = dict(item.partition("=")[::2] for item in header.split(","))
        # Compare bytes: a header may hold any character, and compare_digest
        # raises on str with non-ASCII characters.
        stamp, given = (parts.get(k, "").encode("utf-8", "surrogatepass") for k in ("t", "v1"))
        secret = self.settings.webhook_secret.get_secret_value().encode()
        expected = hmac.new(secret, stamp + b"." + request.body, hashlib.sha256)
        if not stamp or not hmac.compare_digest(expected.hexdigest().encode(), given):
            raise WebhookSignatureError("bad Chirp-Signature", network=NETWORK)
        return None

    def parse(self, request: WebhookRequest) -> Sequence[Event]:
        """Turn a verified webhook body into one event.

        Raises:
            PayloadError: The body is not a Chirp webhook.
        """
        body = _convert.parse(_wire.WebhookBody, request.body)
        feed = "dms" if body.type == "dm" else "mentions"
        found = convert_item(partial(self.event_from, feed), body.data,
                             network=NETWORK, path="data")
        if isinstance(found, Rejected):
            raise found.error(network=NETWORK)
        return [found]
    # --8<-- [end:webhook]

    # outbound ----------------------------------------------------------------

    # --8<-- [start:outbound]
    def reply_to_id(self, message: Message) -> str:
        """The id a reply to ``message`` answers: the message itself, never its thread root."""
        return message.ref.id

    def _body(self, text: str, action: Reply | PrivateReply | Post) -> dict[str, object]:
        return {
            "text": text,
            "entities": _convert.outgoing_entities(text, write=self.write_offset),
            "client_ref": action.idempotency_key,
        }

    def _sent(
        self, action: Reply | PrivateReply | Post, item: _wire.ChirpPost | _wire.ChirpDM
    ) -> Sent:
        conversation = item.thread_id if isinstance(item, _wire.ChirpPost) else item.conversation_id
        return Sent(
            idempotency_key=action.idempotency_key, ref=ref(item.id),
            conversation=ref(conversation), sent_at=item.created_at,
            raw=item.model_dump(mode="json"),
        )

    @staticmethod
    def _private(action: Reply | PrivateReply | Post) -> bool:
        if isinstance(action, PrivateReply):
            return True
        if isinstance(action, Reply):
            return (action.visibility or action.to.visibility) == "private"
        return False

    async def send(self, action: Reply | PrivateReply | Post) -> Sent:
        """Post publicly (``POST /posts``) or privately (``POST /dms``).

        Raises:
            AmbiguousDelivery: The request went out and no answer came back.
            NetworkError: Chirp refused it.
        """
        body = self._body(action.text, action)
        if self._private(action) and not isinstance(action, Post):
            body["to"] = action.to.author.ref.id
            if action.to.is_private:
                body["reply_to"] = action.to.ref.id
            response = await self.api.request("POST", "/dms", json=body)
            return self._sent(action, _convert.parse(_wire.ChirpDM, response.content, path="dm"))
        if isinstance(action, Reply):
            body["reply_to"] = self.reply_to_id(action.to)
        response = await self.api.request("POST", "/posts", json=body)
        return self._sent(action, _convert.parse(_wire.ChirpPost, response.content, path="post"))

    async def find_sent(self, action: Reply | PrivateReply | Post) -> Sent | None:
        """Look our sent items up by ``client_ref`` (the action's idempotency key).

        Raises:
            PayloadError: The answer is not what Chirp sends.
        """
        if self._private(action):
            dms = await self.page("/me/dms", client_ref=action.idempotency_key)
            if not dms.data:
                return None
            return self._sent(action, _convert.parse(_wire.ChirpDM, dms.data[0], path="data.0"))
        posts = await self.page("/me/posts", client_ref=action.idempotency_key)
        if not posts.data:
            return None
        return self._sent(action, _convert.parse(_wire.ChirpPost, posts.data[0], path="data.0"))
    # --8<-- [end:outbound]

    # --8<-- [start:actions]
    async def react(self, action: React) -> Sent:
        """Like a post."""
        await self.api.request("POST", "/posts/{id}/like", path_params={"id": action.target.id},
                               idempotent=True)
        return Sent(idempotency_key=action.idempotency_key, ref=action.target)

    async def hide(self, action: Hide) -> Sent:
        """Hide or unhide a reply under our post."""
        await self.api.request("POST", "/posts/{id}/hide", path_params={"id": action.target.id},
                               json={"hidden": action.hidden}, idempotent=True)
        return Sent(idempotency_key=action.idempotency_key, ref=action.target)

    async def delete(self, action: Delete) -> Sent:
        """Delete one of our posts."""
        await self.api.request("DELETE", "/posts/{id}", path_params={"id": action.target.id})
        return Sent(idempotency_key=action.idempotency_key, ref=action.target)
    # --8<-- [end:actions]
