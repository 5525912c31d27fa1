"""What a store finds follows edits and deletions (MemoryStore keeps indexes for it).

Run on every store, like tests/test_store.py, whose helpers and fixtures it uses.
"""

from __future__ import annotations

from datetime import timedelta

from tests.test_store import (  # noqa: F401 - the fixtures are used by name
    NET,
    T0,
    deleted,
    harness,
    message,
    received,
    ref,
    store,
    updated,
)

from omnichannel.store import Store


async def test_search_and_threads_follow_edits_and_deletions(
    store: Store,  # noqa: F811 - the fixture imported above
) -> None:
    """An edit replaces the words found; a deletion removes the message from both."""
    first = message("120001", "my parcel is late", thread="120001")
    second = message("120002", "parcel tracking please", thread="120001",
                     at=T0 + timedelta(minutes=1))
    await store.record_batch(NET, [received(first), received(second)], cursor=None)
    edit = first.model_copy(update={"text": "my invoice is wrong",
                                    "edited_at": T0 + timedelta(minutes=5)})
    await store.record_batch(NET, [updated(edit)], cursor=None)

    assert [m.ref.id for m in await store.search("parcel")] == ["120002"]
    assert [m.ref.id for m in await store.search("invoi*")] == ["120001"]
    assert [m.ref.id for m in await store.conversation_messages(ref("120001"))] == [
        "120001", "120002"
    ]

    await store.record_batch(NET, [deleted(ref("120002"))], cursor=None)

    assert await store.search("parcel") == []
    assert await store.search("track*") == []
    assert [m.text for m in await store.conversation_messages(ref("120001"))] == [
        "my invoice is wrong"
    ]
