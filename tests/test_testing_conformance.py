"""The conformance suite catches broken adapters, each with a named failing scenario."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

TUTORIAL = Path(__file__).resolve().parent.parent / "examples" / "adapter_tutorial"
if str(TUTORIAL) not in sys.path:
    sys.path.insert(0, str(TUTORIAL))

from omnichannel.actions import Post, PrivateReply, React, Reply, Sent  # noqa: E402
from omnichannel.adapter import Adapter, Batch  # noqa: E402
from omnichannel.errors import OmnichannelError  # noqa: E402
from omnichannel.model import Message  # noqa: E402
from omnichannel.testing.conformance import AdapterConformance  # noqa: E402
from omnichannel_chirp import ChirpAdapter  # noqa: E402
from omnichannel_chirp.sandbox import ChirpSandbox  # noqa: E402

pytest_plugins = ["pytester"]


class WrongThreading(ChirpAdapter):
    """Answers the thread's root instead of the message replied to."""

    def reply_to_id(self, message: Message) -> str:
        return message.conversation.id


class DoublePosting(ChirpAdapter):
    """Cannot find a message whose response was lost, so the outbox posts it again."""

    async def find_sent(self, action: Reply | PrivateReply | Post) -> Sent | None:
        return None


class UndeclaredHide(ChirpAdapter):
    """Hides comments but does not declare it."""

    capabilities = ChirpAdapter.capabilities.model_copy(update={"hide": False})


class DeclaredButMissingReact(ChirpAdapter):
    """Declares reactions but never sends them."""

    capabilities = ChirpAdapter.capabilities.model_copy(update={"reactions": ("like",)})

    async def react(self, action: React) -> Sent:
        return Sent(idempotency_key=action.idempotency_key, ref=action.target)


class WrongEmojiOffsetIn(ChirpAdapter):
    """Reads Chirp's UTF-16 offsets as code points."""

    def read_offset(self, text: str, offset: int) -> int:
        return offset


class WrongEmojiOffsetOut(ChirpAdapter):
    """Writes code-point offsets where Chirp wants UTF-16 units."""

    def write_offset(self, text: str, index: int) -> int:
        return index


class StreamingChirp(ChirpAdapter):
    """Streams by polling through a held channel (as over a connection) it must close."""

    capabilities = ChirpAdapter.capabilities.model_copy(
        update={"inbound": ChirpAdapter.capabilities.inbound | {"stream"}}
    )

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.stream_log: list[str] = []

    async def stream(self, cursor: str | None) -> AsyncIterator[Batch]:
        send, receive = anyio.create_memory_object_stream[Batch](1)
        self.stream_log.append("opened")
        try:
            while True:
                batch = await self.poll(cursor)
                cursor = batch.cursor or cursor
                await send.send(batch)
                yield await receive.receive()
                if not batch.more:
                    await anyio.sleep(0.01)
        finally:
            await send.aclose()  # a cleanup that awaits, as closing a connection does
            await receive.aclose()
            self.stream_log.append("closed")


def suite_for(adapter: type[Adapter]) -> AdapterConformance:
    """Build the conformance suite for one adapter class against the Chirp sandbox."""

    class Suite(AdapterConformance):
        adapter_class = adapter
        sandbox_class = ChirpSandbox

    return Suite()


CAUGHT = [
    pytest.param(WrongThreading, "test_replies_in_thread", "not the message replied to",
                 id="wrong-threading"),
    pytest.param(DoublePosting, "test_lost_response_does_not_double_post",
                 "find_sent did not find", id="double-post"),
    pytest.param(DoublePosting, "test_outbox_resend_after_lost_response_posts_once",
                 "posted 2 times", id="double-post-outbox"),
    pytest.param(UndeclaredHide, "test_hides_comment", "hide works but is not declared",
                 id="undeclared-hide"),
    pytest.param(UndeclaredHide, "test_capabilities_match_behaviour",
                 "hide: works but is not declared", id="undeclared-hide-table"),
    pytest.param(DeclaredButMissingReact, "test_reacts", "react is declared but",
                 id="declared-missing-react"),
    pytest.param(DeclaredButMissingReact, "test_capabilities_match_behaviour",
                 "react: declared but had no effect", id="declared-missing-react-table"),
    pytest.param(WrongEmojiOffsetIn, "test_inbound_entities_keep_offsets", "Mention",
                 id="emoji-offset-in"),
    pytest.param(WrongEmojiOffsetOut, "test_outbound_entities_keep_offsets", "invalid_entities",
                 id="emoji-offset-out"),
]


@pytest.mark.parametrize(("broken", "scenario", "says"), CAUGHT)
async def test_named_scenario_fails_for_broken_adapter(
    broken: type[ChirpAdapter], scenario: str, says: str
) -> None:
    """Each deliberately broken adapter fails its named scenario, which passes for the real one."""
    good = suite_for(ChirpAdapter)
    async with good.open_conformance("inprocess") as env:
        await getattr(good, scenario)(env)
    bad = suite_for(broken)
    async with bad.open_conformance("inprocess") as env:
        with pytest.raises((AssertionError, OmnichannelError)) as info:
            await getattr(bad, scenario)(env)
    assert says in str(info.value)


def test_broken_adapter_fails_in_a_real_pytest_run(pytester: pytest.Pytester) -> None:
    """Run through pytest, a subclass for a broken adapter reports the named test as failed."""
    pytester.makeconftest("""
import pytest

@pytest.fixture
def anyio_backend():
    return "asyncio"
""")
    pytester.makepyfile(test_chirp=f"""
import sys
sys.path.insert(0, {str(TUTORIAL)!r})
from omnichannel_chirp import ChirpAdapter
from omnichannel_chirp.sandbox import ChirpSandbox
from omnichannel.testing.conformance import AdapterConformance


class WrongThreading(ChirpAdapter):
    def reply_to_id(self, message):
        return message.conversation.id


class TestWrongThreading(AdapterConformance):
    adapter_class = WrongThreading
    sandbox_class = ChirpSandbox
""")
    result = pytester.runpytest_inprocess(
        "-p", "anyio", "-m", "conformance", "-k", "replies_in_thread or receives_public",
        "-W", "ignore::pytest.PytestAssertRewriteWarning",
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*FAILED*test_replies_in_thread[[]inprocess[]]*"])


async def test_scenarios_close_the_streams_they_read() -> None:
    """The stream scenario and the capability probe close their stream before they return."""
    suite = suite_for(StreamingChirp)
    async with suite.open_conformance("inprocess") as env:
        adapter = env.adapter
        assert isinstance(adapter, StreamingChirp)
        await suite.test_streams(env)  # type: ignore[attr-defined]
        after_scenario = list(adapter.stream_log)
        await suite.test_capabilities_match_behaviour(env)  # type: ignore[attr-defined]
        after_probe = list(adapter.stream_log)
    assert after_scenario == ["opened", "closed"]
    assert after_probe == ["opened", "closed", "opened", "closed"]
