"""The Bluesky adapter against its sandbox: sessions, polling, sending, reconciling."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from omnichannel.actions import Delete, Hide, Post, PrivateReply, React, Reply
from omnichannel.errors import (
    AmbiguousDelivery,
    AuthenticationError,
    CapabilityNotSupported,
    TextTooLong,
)
from omnichannel.events import Event, MessageReceived, ReactionAdded
from omnichannel.http import RetryPolicy
from omnichannel.model import Message
from omnichannel_bluesky import BlueskyAdapter, BlueskySettings, record_key
from omnichannel_bluesky._convert import tid_datetime
from omnichannel_bluesky.sandbox import BlueskySandbox

CREATE = "POST /xrpc/com.atproto.repo.createRecord"
SEND_DM = "POST /xrpc/chat.bsky.convo.sendMessage"


@asynccontextmanager
async def opened(sandbox: BlueskySandbox, **settings: Any) -> AsyncIterator[BlueskyAdapter]:
    """An adapter logged in to the sandbox in-process."""
    adapter = BlueskyAdapter({**sandbox.adapter_settings(), **settings},
                             transport=sandbox.transport(), retry=RetryPolicy.testing())
    async with adapter:
        yield adapter


async def poll_all(adapter: BlueskyAdapter, cursor: str | None = None) -> tuple[
    list[MessageReceived], str | None
]:
    """Poll until no page is left; return the events and the last cursor."""
    events: list[MessageReceived] = []
    while True:
        batch = await adapter.poll(cursor)
        events.extend(e for e in batch.events if isinstance(e, MessageReceived))
        cursor = batch.cursor or cursor
        if not batch.more:
            return events, cursor


async def first_message(adapter: BlueskyAdapter) -> Message:
    """The first message a poll gives."""
    events, _ = await poll_all(adapter)
    return events[0].message


# --- sessions ---------------------------------------------------------------------------


async def test_open_logs_in_and_resolves_our_account() -> None:
    """open() creates a session with the app password and knows our DID and handle."""
    sandbox = BlueskySandbox(seed=1)
    async with opened(sandbox) as adapter:
        assert adapter.account is not None
        assert adapter.account.ref.id == sandbox.our_account.id
        assert adapter.account.handle == "shop.bsky.social"
        assert adapter.did.startswith("did:plc:")


async def test_wrong_app_password_is_authentication_error() -> None:
    """A refused app password raises AuthenticationError naming Bluesky."""
    sandbox = BlueskySandbox(seed=1)
    with pytest.raises(AuthenticationError) as info:
        async with opened(sandbox, app_password="nope-nope-nope-nope"):
            pass
    assert info.value.network == "bluesky"
    assert "nope" not in str(info.value)


async def test_expired_access_token_is_refreshed_once_and_request_repeated() -> None:
    """A 400 ExpiredToken answer refreshes the session once and the poll still succeeds."""
    sandbox = BlueskySandbox(seed=1)
    async with opened(sandbox) as adapter:
        sandbox.customer_mention("hello")
        sandbox.expire_token()
        events, _ = await poll_all(adapter)
        assert [e.message.text for e in events] == ["@shop.bsky.social hello"]
        assert adapter._auth is not None
        assert adapter._auth.refresh_count == 1
        assert sandbox.served(400, "/xrpc/app.bsky.notification.listNotifications") == 1
        assert sandbox.request_count("POST /xrpc/com.atproto.server.refreshSession") == 1


async def test_failed_refresh_raises_authentication_error() -> None:
    """When the refresh token is refused too, the typed authentication error comes out."""
    sandbox = BlueskySandbox(seed=1)
    async with opened(sandbox) as adapter:
        sandbox.expire_token()
        sandbox.revoke_credentials()
        with pytest.raises(AuthenticationError):
            await adapter.poll(None)
        assert sandbox.request_count("POST /xrpc/com.atproto.server.refreshSession") == 1


def test_settings_keep_the_app_password_secret() -> None:
    """The app password never shows in the settings' repr."""
    settings = BlueskySettings(identifier="shop.example.com", app_password="abcd-efgh-ijkl-mnop")
    assert "abcd" not in repr(settings)
    assert settings.app_password.get_secret_value() == "abcd-efgh-ijkl-mnop"


# --- receiving --------------------------------------------------------------------------


async def test_mention_arrives_with_entities_after_emoji() -> None:
    """A mention with emoji before its link and tag keeps ids, cid and exact spans."""
    sandbox = BlueskySandbox(seed=2)
    post = sandbox.customer_mention("🚚💨 late again! https://shop.example/orders/42 #help")
    async with opened(sandbox) as adapter:
        (event,) = (await poll_all(adapter))[0]
    message = event.message
    assert message.ref.id == post.id
    assert message.ref.extra["cid"] == post.extra["cid"]
    assert message.conversation == message.ref
    assert message.author.handle == "alice.bsky.social"
    assert message.visibility == "public"
    shown = [(e.type, message.text[e.start : e.end]) for e in message.entities]
    assert shown == [("mention", "@shop.bsky.social"),
                     ("link", "https://shop.example/orders/42"), ("hashtag", "#help")]


async def test_reply_in_thread_keeps_root_and_parent() -> None:
    """A customer's reply to our post is addressed by the thread root and its parent."""
    sandbox = BlueskySandbox(seed=2)
    ours = sandbox.our_post("We ship worldwide 🌍")
    reply = sandbox.customer_reply(ours, "do you ship to Åland?")
    async with opened(sandbox) as adapter:
        (event,) = (await poll_all(adapter))[0]
    assert event.message.ref.id == reply.id
    assert event.message.conversation.id == ours.id
    assert event.message.conversation.extra["cid"] == ours.extra["cid"]
    assert event.message.in_reply_to is not None
    assert event.message.in_reply_to.id == ours.id


async def test_polling_across_pages_and_a_stored_cursor_sees_each_mention_once() -> None:
    """Mentions polled two per page, before and after a stored cursor, arrive once each."""
    sandbox = BlueskySandbox(seed=3)
    async with opened(sandbox, page_size=2) as adapter:
        none, cursor = await poll_all(adapter)
        for n in range(5):
            sandbox.customer_mention(f"first {n}")
        first, cursor = await poll_all(adapter, cursor)
        again, cursor = await poll_all(adapter, cursor)
        for n in range(3):
            sandbox.customer_mention(f"second {n}")
        later, _ = await poll_all(adapter, cursor)
    assert none == []
    assert [e.message.text[18:] for e in first] == [f"first {n}" for n in range(5)]
    assert again == []
    assert [e.message.text[18:] for e in later] == [f"second {n}" for n in range(3)]
    assert sandbox.request_count("/xrpc/app.bsky.notification.listNotifications") >= 6


async def test_first_poll_reads_the_newest_page() -> None:
    """Without a cursor, the first poll reads the newest page of notifications only."""
    sandbox = BlueskySandbox(seed=3)
    for n in range(5):
        sandbox.customer_mention(f"old {n}")
    async with opened(sandbox, page_size=2) as adapter:
        events, _ = await poll_all(adapter)
    assert [e.message.text[18:] for e in events] == ["old 3", "old 4"]


async def test_direct_messages_before_and_after_open_arrive_once() -> None:
    """An unread DM from before open and one sent after both arrive, private, once each."""
    sandbox = BlueskySandbox(seed=4)
    alice = sandbox.customer("alice")
    before = sandbox.customer_dm("are you there? 🙏", author=alice)
    async with opened(sandbox) as adapter:
        after = sandbox.customer_dm("hello again", author=alice)
        events, cursor = await poll_all(adapter)
        again, _ = await poll_all(adapter, cursor)
    assert [e.message.ref.id for e in events] == [before.id, after.id]
    assert all(e.message.is_private for e in events)
    assert all(e.conversation.kind == "direct" for e in events)
    assert events[0].message.author.handle == "alice.bsky.social"
    assert events[0].message.conversation.id == before.conversation_id
    assert again == []


async def test_chat_without_dm_access_leaves_mentions_working() -> None:
    """An app password without DM access still polls mentions; chat is skipped."""
    sandbox = BlueskySandbox(seed=4)
    sandbox.chat_allowed = False
    sandbox.customer_mention("public question")
    async with opened(sandbox) as adapter:
        events, _ = await poll_all(adapter)
    assert [e.message.text for e in events] == ["@shop.bsky.social public question"]


async def test_fetch_conversation_returns_thread_and_chat_oldest_first() -> None:
    """History of a thread and of a chat conversation comes oldest first."""
    sandbox = BlueskySandbox(seed=5)
    root = sandbox.customer_mention("root")
    sandbox.customer_reply(root, "second")
    sandbox.customer_dm("private one")
    async with opened(sandbox) as adapter:
        events, _ = await poll_all(adapter)
        mention = next(e.message for e in events if not e.message.is_private)
        dm = next(e.message for e in events if e.message.is_private)
        thread = await adapter.fetch_conversation(mention.conversation)
        chat = await adapter.fetch_conversation(dm.conversation)
    assert [m.text for m in thread] == ["@shop.bsky.social root", "second"]
    assert [m.text for m in chat] == ["private one"]
    assert chat[0].is_private


# --- sending ----------------------------------------------------------------------------


async def test_reply_lands_in_thread_with_exact_facets() -> None:
    """A reply with emoji, a mention, a link and a tag lands under the post, facets exact."""
    sandbox = BlueskySandbox(seed=6)
    sandbox.customer("alice")
    sandbox.customer_mention("help 😭", author=sandbox.world.account_by_handle("alice"))
    async with opened(sandbox) as adapter:
        to = await first_message(adapter)
        text = "Sorry @alice.bsky.social 🙇🏽‍♀️ — see https://help.example.com/r?id=1 #support"
        sent = await adapter.send(Reply(network="bluesky", to=to, text=text))
    record = sandbox.sent()[-1]
    assert sent.ref.id == record.id
    assert record.in_reply_to == to.ref.id
    assert record.conversation == to.ref.id
    assert [(f.kind, f.text_in(text)) for f in record.facets] == [
        ("mention", "@alice.bsky.social"),
        ("link", "https://help.example.com/r?id=1"),
        ("hashtag", "#support"),
    ]
    post = sandbox.world.post(record.id)
    data = text.encode("utf-8")
    for facet in post.extra["facets"]:  # type: ignore[attr-defined]
        index = facet["index"]
        assert data[index["byteStart"] : index["byteEnd"]].decode() in {
            "@alice.bsky.social", "https://help.example.com/r?id=1", "#support"}
    assert sent.ref.id.endswith("/" + record_key(sent.idempotency_key))


async def test_reply_to_a_reply_keeps_the_thread_root() -> None:
    """Answering a reply sends root = the thread's first post and parent = the reply."""
    sandbox = BlueskySandbox(seed=6)
    ours = sandbox.our_post("Launch day 🚀")
    customer = sandbox.customer_reply(ours, "it crashed")
    async with opened(sandbox) as adapter:
        to = await first_message(adapter)
        await adapter.send(Reply(network="bluesky", to=to, text="Looking into it"))
    post = sandbox.world.post(sandbox.sent()[-1].id)
    assert post.in_reply_to == customer.id
    assert post.root == ours.id


async def test_text_over_the_limit_makes_no_request() -> None:
    """301 graphemes, or 300 that weigh over 3000 bytes, fail before any request."""
    sandbox = BlueskySandbox(seed=7)
    sandbox.customer_mention("hi")
    async with opened(sandbox) as adapter:
        to = await first_message(adapter)
        before = sandbox.request_count(CREATE)
        with pytest.raises(TextTooLong) as graphemes:
            await adapter.send(Reply(network="bluesky", to=to, text="a" * 301))
        with pytest.raises(TextTooLong) as data:
            await adapter.send(Reply(network="bluesky", to=to, text="👨‍👩‍👧‍👦" * 300))
        assert sandbox.request_count(CREATE) == before
        assert (graphemes.value.length, graphemes.value.limit) == (301, 300)
        assert data.value.limit == 3000
        await adapter.send(Reply(network="bluesky", to=to, text="é" * 300))
    assert sandbox.sent()[-1].text == "é" * 300


async def test_lost_response_then_find_sent_then_no_second_post() -> None:
    """A create whose answer is lost is ambiguous, found by key, and never posted twice."""
    sandbox = BlueskySandbox(seed=8)
    sandbox.customer_mention("where is my parcel")
    async with opened(sandbox) as adapter:
        to = await first_message(adapter)
        action = Reply(network="bluesky", to=to, text="On it! 📦")
        sandbox.faults.lose_response(CREATE, times=1)
        with pytest.raises(AmbiguousDelivery):
            await adapter.send(action)
        found = await adapter.find_sent(action)
        again = await adapter.send(action)
    assert found is not None
    assert [r.text for r in sandbox.sent()] == ["On it! 📦"]
    assert found.ref == again.ref
    assert found.ref.id == sandbox.sent()[0].id


async def test_server_error_before_writing_stays_ambiguous() -> None:
    """A 500 on a create that wrote nothing is AmbiguousDelivery, and find_sent says None."""
    sandbox = BlueskySandbox(seed=8)
    sandbox.customer_mention("hello")
    async with opened(sandbox) as adapter:
        to = await first_message(adapter)
        action = Reply(network="bluesky", to=to, text="Hi!")
        sandbox.faults.fail(CREATE, 500)
        with pytest.raises(AmbiguousDelivery) as info:
            await adapter.send(action)
        sandbox.faults.clear()
        assert info.value.status == 500
        assert await adapter.find_sent(action) is None
        sent = await adapter.send(action)
    assert sent.ref.id == sandbox.sent()[-1].id


async def test_private_reply_opens_a_chat_with_the_author() -> None:
    """A private answer to a public mention is a chat message to its author."""
    sandbox = BlueskySandbox(seed=9)
    alice = sandbox.customer("alice")
    sandbox.customer_mention("my account is locked", author=alice)
    async with opened(sandbox) as adapter:
        to = await first_message(adapter)
        sent = await adapter.send(PrivateReply(network="bluesky", to=to, text="DMing you 🔒"))
    record = sandbox.sent()[-1]
    assert record.kind == "message"
    assert record.private
    assert record.recipient == alice.id
    assert sent.ref.id == record.id
    assert sent.conversation is not None
    assert sent.conversation.id == record.conversation


async def test_private_visibility_reply_goes_to_the_authors_chat() -> None:
    """A Reply asked to be private goes to the author's chat, as a PrivateReply would."""
    sandbox = BlueskySandbox(seed=9)
    alice = sandbox.customer("alice")
    sandbox.customer_mention("refund?", author=alice)
    async with opened(sandbox) as adapter:
        to = await first_message(adapter)
        action = Reply(network="bluesky", to=to, text="details by DM", visibility="private")
        sent = await adapter.send(action)
        found = await adapter.find_sent(action)
    record = sandbox.sent()[-1]
    assert (record.kind, record.recipient) == ("message", alice.id)
    assert found is not None
    assert found.ref == sent.ref


async def test_reply_to_a_dm_stays_in_the_conversation() -> None:
    """Replying to a chat message sends a chat message in the same conversation."""
    sandbox = BlueskySandbox(seed=9)
    dm = sandbox.customer_dm("psst")
    async with opened(sandbox) as adapter:
        to = await first_message(adapter)
        sent = await adapter.send(Reply(network="bluesky", to=to, text="hello back"))
    record = sandbox.sent()[-1]
    assert record.conversation == dm.conversation_id
    assert sent.ref.id == record.id
    assert record.private


async def test_lost_chat_answer_is_found_and_not_sent_twice() -> None:
    """A chat send whose answer is lost is found afterwards and a retry sends nothing new."""
    sandbox = BlueskySandbox(seed=10)
    sandbox.customer_dm("help")
    async with opened(sandbox) as adapter:
        to = await first_message(adapter)
        action = Reply(network="bluesky", to=to, text="one moment")
        sandbox.faults.lose_response(SEND_DM, times=1)
        with pytest.raises(AmbiguousDelivery):
            await adapter.send(action)
        again = await adapter.send(action)
        found = await adapter.find_sent(action)
    assert [r.text for r in sandbox.sent()] == ["one moment"]
    assert found is not None
    assert found.ref == again.ref


async def test_public_post_and_like_and_delete() -> None:
    """A post is created, a mention is liked, and our reply is deleted."""
    sandbox = BlueskySandbox(seed=11)
    sandbox.customer_mention("nice shop")
    async with opened(sandbox) as adapter:
        to = await first_message(adapter)
        liked = await adapter.react(React(network="bluesky", target=to.ref))
        posted = await adapter.send(Post(network="bluesky", text="Open today ☀️"))
        reply = await adapter.send(Reply(network="bluesky", to=to, text="thanks!"))
        await adapter.delete(Delete(network="bluesky", target=reply.ref))
    assert liked.ref.id == to.ref.id
    assert [like.post_id for like in sandbox.reactions()] == [to.ref.id]
    assert [r.id for r in sandbox.sent()] == [posted.ref.id]


async def test_customer_like_of_our_reply_is_a_reaction() -> None:
    """A customer likes our answer: the next poll gives ReactionAdded on our reply by them."""
    sandbox = BlueskySandbox(seed=12)
    alice = sandbox.customer("alice")
    sandbox.customer_mention("where is my parcel?", author=alice)
    async with opened(sandbox) as adapter:
        events, cursor = await poll_all(adapter)
        sent = await adapter.send(Reply(network="bluesky", to=events[0].message,
                                        text="On its way! 🚚"))
        sandbox.customer_like(sent.ref.id, author=alice)
        batch = await adapter.poll(cursor)
        replayed = await adapter.poll(cursor)
    [like] = batch.events
    assert isinstance(like, ReactionAdded)
    assert like.target.id == sent.ref.id
    assert like.target.extra["cid"] == sent.ref.extra["cid"]
    assert like.by.ref.id == alice.id
    assert like.by.handle == "alice.bsky.social"
    assert like.reaction == "like"
    assert like.id == f"bluesky:reaction.added:{sent.ref.id}:{alice.id}:like"
    assert [e.id for e in replayed.events] == [like.id]  # stable: the hub sees it once


async def test_likes_can_be_left_out_of_polling() -> None:
    """With reasons limited to messages, a like is never requested nor delivered."""
    sandbox = BlueskySandbox(seed=13)
    ours = sandbox.our_post("New arrivals")
    sandbox.customer_like(ours)
    async with opened(sandbox, reasons=("mention", "reply", "quote")) as adapter:
        batch = await adapter.poll(None)
    assert batch.events == ()


async def test_undeclared_actions_are_refused() -> None:
    """Hiding, emoji reactions and non-public posts raise CapabilityNotSupported."""
    sandbox = BlueskySandbox(seed=11)
    sandbox.customer_mention("hey")
    async with opened(sandbox) as adapter:
        to = await first_message(adapter)
        with pytest.raises(CapabilityNotSupported):
            await adapter.hide(Hide(network="bluesky", target=to.ref))
        with pytest.raises(CapabilityNotSupported):
            await adapter.react(React(network="bluesky", target=to.ref, reaction="🎉"))
        with pytest.raises(CapabilityNotSupported):
            await adapter.send(Post(network="bluesky", text="secret", visibility="followers"))
    assert sandbox.sent() == []


async def test_rate_limited_call_waits_for_the_reset() -> None:
    """With every bucket exhausted, the next poll waits for RateLimit-Reset and succeeds."""
    sandbox = BlueskySandbox(seed=12)
    sandbox.customer_mention("hi")
    async with opened(sandbox) as adapter:
        sandbox.exhaust_rate_limits(reset_in=0.3)
        events, _ = await poll_all(adapter)
        info = adapter.client.rate_limits.get("bluesky", "account")
    assert len(events) == 1
    assert sandbox.served(429) >= 1
    assert info is not None
    assert info.policy_window is not None
    assert info.limit == 3000


async def test_unresolvable_mention_is_sent_as_plain_text() -> None:
    """A handle that does not resolve gets no facet; the rest keep theirs."""
    sandbox = BlueskySandbox(seed=13)
    sandbox.customer_mention("hi")
    async with opened(sandbox) as adapter:
        to = await first_message(adapter)
        await adapter.send(Reply(network="bluesky", to=to,
                                 text="ask @nobody.example.com #faq"))
    assert [(f.kind, f.value) for f in sandbox.sent()[-1].facets] == [("hashtag", "faq")]


def test_record_keys_are_stable_past_tids() -> None:
    """A record key is a 13-character TID, the same for the same key, dated in the past."""
    keys = [record_key(f"key-{n:04d}") for n in range(200)]
    assert record_key("key-0000") == keys[0]
    assert len(set(keys)) == 200
    for key in keys:
        when = tid_datetime(key)
        assert when is not None
        assert datetime(2023, 11, 1, tzinfo=UTC) < when < datetime(2026, 3, 1, tzinfo=UTC)


# --- a backlog of many pages between two polls -----------------------------------------


async def _drain(adapter: BlueskyAdapter, cursor: str | None, *, stop_after: int | None = None
                 ) -> tuple[list[Event], str | None, int]:
    """Poll as the hub does (cursor stored after each batch); stop early to simulate a crash."""
    events: list[Event] = []
    batches = 0
    while True:
        batch = await adapter.poll(cursor)
        events.extend(batch.events)
        cursor = batch.cursor or cursor
        batches += 1
        if not batch.more or batches == stop_after:
            return events, cursor, batches


async def test_seven_hundred_mentions_while_down_all_arrive_once_oldest_first() -> None:
    """700 mentions between two polls (14 pages): every one, once, oldest first."""
    sandbox = BlueskySandbox(seed=70)
    async with opened(sandbox) as adapter:
        _, cursor, _ = await _drain(adapter, None)
        posted = [sandbox.customer_mention(f"m{n}").id for n in range(700)]
        events, cursor, batches = await _drain(adapter, cursor)
        again, _, _ = await _drain(adapter, cursor)
    assert [e.message.ref.id for e in events if isinstance(e, MessageReceived)] == posted
    assert batches >= 14  # one page per batch: the hub stores progress after each
    assert again == []


async def test_three_mentions_then_six_hundred_likes_lose_nothing() -> None:
    """3 mentions, then 600 likes of our post: the mentions and every like arrive once."""
    sandbox = BlueskySandbox(seed=71)
    ours = sandbox.our_post("We are open")
    async with opened(sandbox) as adapter:
        _, cursor, _ = await _drain(adapter, None)
        mentions = [sandbox.customer_mention(f"help {n}").id for n in range(3)]
        for _ in range(600):
            sandbox.customer_like(ours, author=sandbox.customer())
        events, cursor, _ = await _drain(adapter, cursor)
        again, _, _ = await _drain(adapter, cursor)
    assert [e.message.ref.id for e in events if isinstance(e, MessageReceived)] == mentions
    likes = [e for e in events if isinstance(e, ReactionAdded)]
    assert len(likes) == 600
    assert len({e.id for e in likes}) == 600
    assert events[:3] == [e for e in events if isinstance(e, MessageReceived)]  # oldest first
    assert again == []


@pytest.mark.parametrize("crash_after", [1, 5, 13])
async def test_crash_while_delivering_a_backlog_resumes_without_loss(crash_after: int) -> None:
    """A restart at the cursor stored after any page goes on: no loss, no repeat."""
    sandbox = BlueskySandbox(seed=72)
    async with opened(sandbox) as adapter:
        _, cursor, _ = await _drain(adapter, None)
    posted = [sandbox.customer_mention(f"m{n}").id for n in range(700)]
    async with opened(sandbox) as adapter:
        before, cursor, _ = await _drain(adapter, cursor, stop_after=crash_after)
    sandbox.customer_mention("while restarting")
    async with opened(sandbox) as restarted:
        after, cursor, _ = await _drain(restarted, cursor)
    ids = [e.message.ref.id for e in [*before, *after] if isinstance(e, MessageReceived)]
    assert ids[:700] == posted
    assert len(ids) == 701
    assert len(before) <= 50 * crash_after  # progress is stored page by page, not at the end


async def test_lost_chat_answer_is_found_among_decoys_when_the_customer_wrote_twice() -> None:
    """Our lost answer is found by sender, text and time, not by being our newest message.

    The customer wrote twice; the answer to the first was lost, the answer to the second
    landed after it, and an earlier answer of ours has the same text: a fresh adapter (as
    after a restart) finds exactly the lost message, and ``None`` for an answer never sent.
    """
    sandbox = BlueskySandbox(seed=15)
    alice = sandbox.customer("alice")
    sandbox.customer_dm("hello?", author=alice)
    async with opened(sandbox) as adapter:
        events, cursor = await poll_all(adapter)
        await adapter.send(Reply(network="bluesky", to=events[0].message, text="one moment"))
        sandbox.customer_dm("my order is late", author=alice)
        sandbox.customer_dm("it is order 42", author=alice)
        events, cursor = await poll_all(adapter, cursor)
        first, second = (e.message for e in events)
        lost = Reply(network="bluesky", to=first, text="one moment")
        sandbox.faults.lose_response(SEND_DM, times=1)
        with pytest.raises(AmbiguousDelivery):
            await adapter.send(lost)
        await adapter.send(Reply(network="bluesky", to=second, text="checking order 42"))
    landed = sandbox.sent()[1]
    assert landed.text == "one moment"
    async with opened(sandbox) as restarted:
        found = await restarted.find_sent(lost)
        never = await restarted.find_sent(Reply(network="bluesky", to=second, text="all done"))
        again = await restarted.send(lost) if found is None else found
    assert found is not None
    assert found.ref.id == landed.id
    assert never is None
    assert again.ref.id == landed.id
    assert [r.text for r in sandbox.sent()] == ["one moment", "one moment", "checking order 42"]
