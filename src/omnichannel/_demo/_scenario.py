"""Scripted customers: who writes what, and what the quick bot is expected to do about it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from ..testing import Account, DirectMessage, Post, Sandbox

__all__ = [
    "CUSTOMERS",
    "HISTORY",
    "Line",
    "Written",
    "write",
    "write_history",
    "write_starter_conversations",
]

Expect = Literal["public", "private", "draft"]


@dataclass(frozen=True)
class Line:
    """One scripted customer message.

    Attributes:
        who: The customer's short name (``alice``); the handle follows the network.
        display_name: Shown name, which the bot greets.
        text: What they write.
        channel: ``"mention"`` (public post mentioning us) or ``"dm"``.
        expect: What the quick bot should do: answer ``"public"``-ly in the
            thread, answer ``"private"``-ly, or write a ``"draft"`` for a human.
        about: A few words for the live progress.
    """

    who: str
    display_name: str
    text: str
    channel: Literal["mention", "dm"]
    expect: Expect
    about: str


THANKS = Line("alice", "Alice", "Got my replacement kettle today, thank you so much! 🎉",
              "mention", "public", "a thank-you")
SARCASM = Line("bob", "Bob",
               "Thanks a lot for losing my parcel. Again. Truly outstanding service 🙄👏",
               "mention", "draft", "a complaint with sarcasm and emoji")
QUESTION = Line("carol", "Carol",
                "Hi! Can you check why order #4411 hasn't shipped yet? I moved last week.",
                "mention", "private", "a public question about an order")
DM = Line("dave", "Dave", "Hello, do you ship to Norway? It's for a birthday present 🎁",
          "dm", "private", "a direct message")
AFTER_OUTAGE = Line("erin", "Erin", "The mug arrived in one piece, thanks for the fast delivery ☕",
                    "mention", "public", "a thank-you while the network fails")

CUSTOMERS: tuple[Line, ...] = (THANKS, SARCASM, QUESTION, DM)
"""The first burst of conversations, on every network."""

HISTORY: tuple[Line, ...] = (
    Line("frank", "Frank", "Is the winter sale still on? Asking for a friend", "mention",
         "public", "an old question"),
    Line("grace", "Grace", "Thanks for the quick refund last month!", "mention",
         "public", "an old thank-you"),
    Line("heidi", "Heidi", "Do you have the blue kettle in stock?", "dm",
         "private", "an old direct message"),
)
"""Written days before the bot first starts: history it must leave alone (no backfill)."""


@dataclass(frozen=True)
class Written:
    """A scripted line as it landed on one sandbox."""

    line: Line
    network: str
    customer: Account
    record: Post | DirectMessage
    at: datetime


def write(sandbox: Sandbox, line: Line) -> Written:
    """Have the line's customer write it on ``sandbox`` now (the sandbox clock follows the wall)."""
    now = datetime.now(UTC)
    if now > sandbox.clock.peek():
        sandbox.clock.set(now)
    customer = sandbox.customer(line.who, display_name=line.display_name)
    record: Post | DirectMessage
    if line.channel == "dm":
        record = sandbox.customer_dm(line.text, author=customer)
    else:
        record = sandbox.customer_mention(line.text, author=customer)
    return Written(line, sandbox.network, customer, record, now)


def write_history(sandbox: Sandbox, *, days_ago: float = 3) -> list[Written]:
    """Write `HISTORY` as it was ``days_ago`` days ago, before the bot first starts."""
    then = datetime.now(UTC) - timedelta(days=days_ago)
    if then > sandbox.clock.peek():
        sandbox.clock.set(then)
    written: list[Written] = []
    for line in HISTORY:
        customer = sandbox.customer(line.who, display_name=line.display_name)
        record: Post | DirectMessage = (
            sandbox.customer_dm(line.text, author=customer) if line.channel == "dm"
            else sandbox.customer_mention(line.text, author=customer)
        )
        written.append(Written(line, sandbox.network, customer, record, then))
    return written


def write_starter_conversations(sandbox: Sandbox) -> list[Written]:
    """Write the first burst (a thank-you, a sarcastic complaint, a question, a DM)."""
    return [write(sandbox, line) for line in CUSTOMERS]
