"""The Chirp adapter: the tutorial's worked example of the adapter contract."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime

import httpx
from pydantic import Field, SecretStr, ValidationError

from omnichannel.actions import Delete, Hide, Post, PrivateReply, React, Reply, Sent
from omnichannel.adapter import Adapter, AdapterSettings, Batch, WebhookRequest, WebhookResponse
from omnichannel.capabilities import Capabilities
from omnichannel.errors import (
    AuthenticationError,
    ConfigurationError,
    NotFound,
    OmnichannelError,
    PayloadError,
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
        me = _wire.User.model_validate_json((await self._api.request("GET", "/me")).content)
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
        """Read one page of mentions and one of DMs after ``cursor`` (``"<mentions>:<dms>"``)."""
        mention_since, dm_since = (cursor or ":").partition(":")[::2]
        limit = self.settings.page_size

        def query(since: str) -> dict[str, str | int]:
            return {"limit": limit, **({"since": since} if since else {})}

        posts = _wire.PostPage.model_validate_json(
            (await self.api.request("GET", "/mentions", params=query(mention_since))).content)
        dms = _wire.DMPage.model_validate_json(
            (await self.api.request("GET", "/dms", params=query(dm_since))).content)
        events: list[Event] = [self.received(self.message_from_post(p), direct=False)
                               for p in posts.data]
        events += [self.received(self.message_from_dm(d), direct=True) for d in dms.data]
        next_cursor = f"{posts.next_since or mention_since}:{dms.next_since or dm_since}"
        return Batch(events=tuple(events), cursor=next_cursor,
                     more=posts.has_more or dms.has_more)
    # --8<-- [end:inbound]

    # --8<-- [start:webhook]
    async def verify(self, request: WebhookRequest) -> WebhookResponse | None:
        """Check ``Chirp-Signature: t=<unix>,v1=<hex>`` in constant time.

        Raises:
            WebhookSignatureError: The header is missing or the signature is wrong.
            ConfigurationError: No ``webhook_secret`` is configured.
        """
        if self.settings.webhook_secret is None:
            raise ConfigurationError("webhook_secret is not set", network=NETWORK)
        header = request.header("chirp-signature") or ""
        parts = dict(item.partition("=")[::2] for item in header.split(","))
        stamp, given = parts.get("t", ""), parts.get("v1", "")
        if not stamp or not given:
            raise WebhookSignatureError("missing Chirp-Signature", network=NETWORK)
        secret = self.settings.webhook_secret.get_secret_value().encode()
        expected = hmac.new(secret, f"{stamp}.".encode() + request.body, hashlib.sha256)
        if not hmac.compare_digest(expected.hexdigest(), given):
            raise WebhookSignatureError("bad Chirp-Signature", network=NETWORK)
        return None

    def parse(self, request: WebhookRequest) -> Sequence[Event]:
        """Turn a verified webhook body into one event.

        Raises:
            PayloadError: The body is not a Chirp webhook.
        """
        try:
            body = _wire.WebhookBody.model_validate_json(request.body)
            if body.type == "dm":
                dm = _wire.ChirpDM.model_validate(body.data)
                return [self.received(self.message_from_dm(dm), direct=True)]
            post = _wire.ChirpPost.model_validate(body.data)
        except ValidationError as exc:
            first = exc.errors()[0]
            path = ".".join(str(p) for p in first["loc"])
            raise PayloadError(first["msg"], network=NETWORK, path=path) from None
        return [self.received(self.message_from_post(post), direct=False)]
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
            return self._sent(action, _wire.ChirpDM.model_validate_json(response.content))
        if isinstance(action, Reply):
            body["reply_to"] = self.reply_to_id(action.to)
        response = await self.api.request("POST", "/posts", json=body)
        return self._sent(action, _wire.ChirpPost.model_validate_json(response.content))

    async def find_sent(self, action: Reply | PrivateReply | Post) -> Sent | None:
        """Look our sent items up by ``client_ref`` (the action's idempotency key)."""
        params = {"client_ref": action.idempotency_key}
        if self._private(action):
            dms = _wire.DMPage.model_validate_json(
                (await self.api.request("GET", "/me/dms", params=params)).content)
            return self._sent(action, dms.data[0]) if dms.data else None
        posts = _wire.PostPage.model_validate_json(
            (await self.api.request("GET", "/me/posts", params=params)).content)
        return self._sent(action, posts.data[0]) if posts.data else None
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
