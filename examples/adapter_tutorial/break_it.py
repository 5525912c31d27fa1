"""Break the Chirp adapter and its network on purpose, and watch each mistake get caught.

Run it from this folder: ``python break_it.py``. Three experiments:

1. an adapter that reads Chirp's UTF-16 offsets as code points fails the
   conformance scenario about offsets, run here on its own, outside pytest;
2. a reply whose answer is lost on the way back is found by ``find_sent``,
   never posted twice;
3. a Chirp that sends one malformed post: the rest of the page is delivered
   and the bad post comes back in ``Batch.rejected``, with where it is wrong.
"""

from __future__ import annotations

import anyio

from omnichannel.actions import Reply
from omnichannel.errors import AmbiguousDelivery
from omnichannel.events import MessageReceived
from omnichannel.testing import Post
from omnichannel.testing.conformance import AdapterConformance
from omnichannel_chirp import ChirpAdapter
from omnichannel_chirp.sandbox import ChirpSandbox


# --8<-- [start:broken]
class Broken(ChirpAdapter):
    """Reads Chirp's offsets as code points instead of UTF-16 units."""

    def read_offset(self, text: str, offset: int) -> int:
        return offset
# --8<-- [end:broken]


class BrokenConformance(AdapterConformance):
    """The conformance suite, pointed at the broken adapter."""

    adapter_class = Broken
    sandbox_class = ChirpSandbox


async def one_scenario() -> None:
    """Run the offsets scenario alone against the broken adapter."""
    # --8<-- [start:debug]
    suite = BrokenConformance()
    async with suite.open_conformance("inprocess") as env:
        try:
            await suite.test_inbound_entities_keep_offsets(env)
        except AssertionError:
            print("Broken fails test_inbound_entities_keep_offsets")
    # --8<-- [end:debug]


async def lost_answer() -> None:
    """A reply whose answer never comes back is looked up, not sent again."""
    # --8<-- [start:faults]
    sandbox = ChirpSandbox(seed=7)
    sandbox.faults.lose_response("POST /posts", times=1)  # posted, but the answer is lost
    sandbox.faults.fail("GET /mentions", 503, times=1, retry_after=0)  # a failed read, retried
    sandbox.faults.latency("*", 0.01)                     # every answer 10 ms late
    # --8<-- [end:faults]
    sandbox.customer_mention("is my order on its way?")
    async with ChirpAdapter(sandbox.adapter_settings(), transport=sandbox.transport()) as chirp:
        batch = await chirp.poll(None)
        message = next(e.message for e in batch.events if isinstance(e, MessageReceived))
        reply = Reply(network="chirp", to=message, text="It ships today!")
        try:
            await chirp.send(reply)
        except AmbiguousDelivery:
            found = await chirp.find_sent(reply)
            print("lost answer: AmbiguousDelivery, then find_sent found",
                  "the reply" if found is not None else "nothing")
    print("replies on Chirp:", len(sandbox.sent()))


# --8<-- [start:glitch]
class Glitchy(ChirpSandbox):
    """A Chirp that sometimes sends a post without its author."""

    def render_post(self, post: Post) -> dict[str, object]:
        data = super().render_post(post)
        if "glitch" in post.text:
            del data["author"]
        return data


async def bad_item() -> None:
    """One malformed post on the page: reported, and the page still delivered."""
    sandbox = Glitchy(seed=7)
    sandbox.customer_mention("a glitch in the matrix")
    sandbox.customer_mention("where is my parcel?")
    async with ChirpAdapter(sandbox.adapter_settings(), transport=sandbox.transport()) as chirp:
        batch = await chirp.poll(None)
    print("delivered:", [e.message.text for e in batch.events if isinstance(e, MessageReceived)])
    for rejected in batch.rejected:
        print("rejected:", rejected.path, "-", rejected.reason)
# --8<-- [end:glitch]


async def main() -> None:
    """Run the three experiments."""
    await one_scenario()
    await lost_answer()
    await bad_item()


if __name__ == "__main__":
    anyio.run(main)
