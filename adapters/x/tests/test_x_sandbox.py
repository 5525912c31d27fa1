"""XSandbox answers in X's shapes: pages, entities, Problems, headers, token rotation."""

from __future__ import annotations

import pytest

from omnichannel_x.sandbox import XSandbox

pytestmark = pytest.mark.anyio


async def test_mentions_pages_newest_first_with_tokens() -> None:
    """max_results, newest_id/oldest_id/next_token, since_id and includes.users."""
    sandbox = XSandbox(seed=1)
    posts = [sandbox.customer_mention(f"order {i}") for i in range(7)]
    me = sandbox.our_account.id
    async with sandbox.client() as http:
        first = (await http.get(f"/2/users/{me}/mentions",
                                params={"max_results": 5, "expansions": "author_id"})).json()
        assert [t["id"] for t in first["data"]] == [p.id for p in reversed(posts)][:5]
        assert first["meta"]["newest_id"] == posts[-1].id
        assert first["meta"]["oldest_id"] == posts[2].id
        # Each mention came from a new customer (alice...grace); we are mentioned.
        assert {u["username"] for u in first["includes"]["users"]} == {
            "carol", "dave", "erin", "frank", "grace", "shop"}
        second = (await http.get(f"/2/users/{me}/mentions", params={
            "max_results": 5, "pagination_token": first["meta"]["next_token"]})).json()
        assert [t["id"] for t in second["data"]] == [posts[1].id, posts[0].id]
        assert "next_token" not in second["meta"]
        newer = (await http.get(f"/2/users/{me}/mentions",
                                params={"since_id": posts[5].id})).json()
        assert [t["id"] for t in newer["data"]] == [posts[6].id]
        bad = await http.get(f"/2/users/{me}/mentions", params={"max_results": 500})
        assert bad.status_code == 400
        assert bad.json()["type"] == "https://api.twitter.com/2/problems/invalid-request"
        assert bad.headers["x-rate-limit-limit"] == "300"


async def test_post_renders_tco_links_and_code_point_entities() -> None:
    """Links become t.co URLs with expanded_url; offsets count code points of the unescaped text."""
    sandbox = XSandbox(seed=2)
    post = sandbox.customer_mention("🎉 @shop see https://example.com/x #help")
    rendered = sandbox.render_tweet(post)
    text = rendered["text"]
    (url,) = rendered["entities"]["urls"]
    assert text[url["start"]:url["end"]] == url["url"]
    assert url["url"].startswith("https://t.co/")
    assert url["expanded_url"] == "https://example.com/x"
    (mention,) = rendered["entities"]["mentions"]
    assert text[mention["start"]:mention["end"]] == "@shop"
    assert mention["id"] == sandbox.our_account.id
    (tag,) = rendered["entities"]["hashtags"]
    assert (tag["tag"], text[tag["start"]:tag["end"]]) == ("help", "#help")
    assert rendered["conversation_id"] == post.id


async def test_refresh_rotates_and_the_old_refresh_token_is_refused() -> None:
    """A refresh issues a new pair; the refresh token used is dead afterwards."""
    sandbox = XSandbox(seed=3)
    old = sandbox.refresh_token
    form = {"grant_type": "refresh_token", "refresh_token": old,
            "client_id": sandbox.client_id}
    async with sandbox.client() as http:
        first = await http.post("/2/oauth2/token", data=form)
        assert first.status_code == 200
        body = first.json()
        assert body["refresh_token"] == sandbox.refresh_token != old
        assert body["expires_in"] == 7200
        assert "offline.access" in body["scope"]
        again = await http.post("/2/oauth2/token", data=form)
        assert again.status_code == 400
        assert again.json()["error"] == "invalid_request"
        me = await http.get("/2/users/me",
                            headers={"Authorization": f"Bearer {body['access_token']}"})
        assert me.json()["data"]["id"] == sandbox.our_account.id


async def test_self_serve_tier_has_no_likes() -> None:
    """POST /2/users/:id/likes is client-forbidden on pay-per-use, allowed on Enterprise."""
    sandbox = XSandbox(seed=4)
    post = sandbox.customer_mention("hi")
    me = sandbox.our_account.id
    async with sandbox.client() as http:
        refused = await http.post(f"/2/users/{me}/likes", json={"tweet_id": post.id})
        assert refused.status_code == 403
        assert refused.json()["type"].endswith("/client-forbidden")
        sandbox.tier = "enterprise"
        liked = await http.post(f"/2/users/{me}/likes", json={"tweet_id": post.id})
        assert liked.json() == {"data": {"liked": True}}
    assert [like.post_id for like in sandbox.reactions()] == [post.id]


async def test_reply_rule_and_duplicates_answer_like_x() -> None:
    """403 for an unsummoned reply and for duplicate content, 201 with a location otherwise."""
    sandbox = XSandbox(seed=5)
    sandbox.thread_replies_summon = False
    reply = sandbox.customer_reply(sandbox.our_post("Hello"), "hi")
    mention = sandbox.customer_mention("help")
    async with sandbox.client() as http:
        refused = await http.post("/2/tweets", json={
            "text": "Hi!", "reply": {"in_reply_to_tweet_id": reply.id}})
        assert refused.status_code == 403
        assert "not been mentioned" in refused.json()["detail"]
        created = await http.post("/2/tweets", json={
            "text": "Hi!", "reply": {"in_reply_to_tweet_id": mention.id}})
        assert created.status_code == 201
        new_id = created.json()["data"]["id"]
        assert created.headers["location"].endswith(f"/2/tweets/{new_id}")
        duplicate = await http.post("/2/tweets", json={"text": "Hi!"})
        assert duplicate.status_code == 403
        assert "duplicate content" in duplicate.json()["detail"]
