"""Triage rules: what a message says and who sent it set a conversation's priority, tags and queue.

Rules are data: declare them in Python or in ``omnichannel.toml``
(``[[helpdesk.triage]]`` tables). Each rule has conditions (all that are given
must hold) and effects. Every matching rule applies: the most urgent priority
wins, tags add up, and the first matching rule with a queue names the queue.

Words match whole words, case- and accent-insensitively, in any language of
the rule (a message does not say its language on every network, so every
language's words are tried). Phrases match anywhere, with spacing ignored.
Signs (emoji such as 🙄) match anywhere.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import cached_property

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import ConfigurationError
from ..model import Message, Visibility
from ._tables import validate_tables
from .sla import PRIORITIES, Priority

__all__ = ["Triage", "TriageResult", "TriageRule"]


def _fold(text: str) -> str:
    """Case-folded, accents removed, spacing collapsed: the text rules compare."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(bare.split())


class TriageRule(BaseModel):
    """One rule: conditions on a message, and what a match sets.

    Attributes:
        name: Shown in results and logs.
        words: Whole words, per language code (``{"en": ["refund"], "de":
            ["Erstattung"]}``); any one matches. A plain list counts as one
            language.
        phrases: Phrases matched anywhere (``"still waiting"``); any one matches.
        signs: Emoji or other signs matched anywhere (``"🙄"``); any one matches.
        unless: Phrases or signs whose presence stops the rule, whatever else
            matches (``"thanks a lot for losing"`` and ``"🙄"`` keep sarcasm
            out of a praise rule).
        networks: Only on these networks.
        visibility: Only messages with this visibility (``"public"`` for
            complaints in the open: a permanent public record).
        vip: Only from these people (handles without ``@``, or native ids).
        min_followers: Only from people with at least this many followers
            (where the network says; unknown counts as no match).
        waited_longer_than: Only when the customer has waited longer than this.
        priority: The priority a match sets.
        tags: Tags a match adds.
        queue: The queue a match routes to.

    The text conditions (``words``, ``phrases``, ``signs``) match when any one
    of them does; each other condition that is given must hold too. A rule
    with no condition at all matches every message. The most urgent priority
    of the matching rules wins (so a rule may lower one to ``"low"`` when no
    other sets it); with none, the triage's default applies.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    words: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    phrases: tuple[str, ...] = ()
    signs: tuple[str, ...] = ()
    unless: tuple[str, ...] = ()
    networks: frozenset[str] | None = None
    visibility: frozenset[Visibility] | None = None
    vip: frozenset[str] | None = None
    min_followers: int | None = Field(default=None, ge=0)
    waited_longer_than: timedelta | None = None
    priority: Priority | None = None
    tags: tuple[str, ...] = ()
    queue: str | None = None

    @field_validator("words", mode="before")
    @classmethod
    def _one_language(cls, value: object) -> object:
        if isinstance(value, list | tuple):
            return {"*": tuple(value)}
        return value

    @field_validator("vip", mode="before")
    @classmethod
    def _no_at(cls, value: object) -> object:
        if isinstance(value, list | tuple | set | frozenset):
            return frozenset(str(v).removeprefix("@").casefold() for v in value)
        return value

    @cached_property
    def _word_pattern(self) -> re.Pattern[str] | None:
        words = sorted({_fold(w) for ws in self.words.values() for w in ws if w.strip()})
        if not words:
            return None
        alternatives = "|".join(re.escape(w) for w in words)
        return re.compile(rf"(?<![\w])(?:{alternatives})(?![\w])")

    @cached_property
    def _phrases(self) -> tuple[str, ...]:
        return tuple(p for p in (_fold(p) for p in self.phrases) if p)

    def matches(
        self, message: Message, *, now: datetime | None = None,
        waiting_since: datetime | None = None,
    ) -> bool:
        """Return whether ``message`` meets every condition of this rule."""
        if self.networks is not None and message.ref.network not in self.networks:
            return False
        if self.visibility is not None and message.visibility not in self.visibility:
            return False
        if self.vip is not None:
            author = message.author
            names = {author.ref.id.casefold()}
            if author.handle:
                names.add(author.handle.removeprefix("@").casefold())
            if not names & self.vip:
                return False
        if self.min_followers is not None:
            followers = message.author.followers
            if followers is None or followers < self.min_followers:
                return False
        if self.waited_longer_than is not None:
            if now is None or waiting_since is None:
                return False
            if now - waiting_since <= self.waited_longer_than:
                return False
        return self._says(message.text)

    def _says(self, text: str) -> bool:
        if self.unless:
            folded = _fold(text)
            if any(_fold(veto) in folded or veto in text for veto in self.unless if veto.strip()):
                return False
        pattern = self._word_pattern
        if pattern is None and not self._phrases and not self.signs:
            return True
        folded = _fold(text)
        if pattern is not None and pattern.search(folded):
            return True
        if any(phrase in folded for phrase in self._phrases):
            return True
        return any(sign in text for sign in self.signs)


class TriageResult(BaseModel):
    """What the rules decided for one message."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    priority: Priority = "normal"
    tags: tuple[str, ...] = ()
    queue: str | None = None
    rules: tuple[str, ...] = ()
    """The names of the rules that matched, in order."""


class Triage:
    """An ordered set of triage rules.

    Example:
        ```python
        from omnichannel.helpdesk import Triage, TriageRule

        triage = Triage([
            TriageRule(name="angry", signs=["🙄", "😡"], phrases=["thanks for nothing"],
                       words={"en": ["refund", "broken"], "de": ["kaputt"]},
                       priority="high", tags=["complaint"]),
            TriageRule(name="public complaint", visibility=["public"], signs=["🙄"],
                       priority="urgent", queue="social-escalations"),
        ])
        ```
    """

    def __init__(self, rules: Iterable[TriageRule] = (), *, default: Priority = "normal") -> None:
        self.rules: tuple[TriageRule, ...] = tuple(rules)
        self.default: Priority = default
        names = [rule.name for rule in self.rules]
        if len(set(names)) != len(names):
            raise ConfigurationError(f"triage rule names repeat: {names}")

    def __repr__(self) -> str:
        return f"<Triage rules={[rule.name for rule in self.rules]}>"

    @classmethod
    def from_settings(cls, rules: Sequence[Mapping[str, object]]) -> Triage:
        """Build from settings tables (``[[helpdesk.triage]]`` in omnichannel.toml).

        Durations are seconds or ``"HH:MM:SS"``/ISO-8601 strings, as pydantic reads them.

        Raises:
            ConfigurationError: A table is not a valid rule; the message names it.
        """
        return cls(validate_tables(TriageRule, rules, "triage rule"))

    def evaluate(
        self, message: Message, *, now: datetime | None = None,
        waiting_since: datetime | None = None,
    ) -> TriageResult:
        """Apply every rule to ``message``; return the combined decision."""
        priority: Priority | None = None
        tags: list[str] = []
        queue: str | None = None
        matched: list[str] = []
        for rule in self.rules:
            if not rule.matches(message, now=now, waiting_since=waiting_since):
                continue
            matched.append(rule.name)
            if rule.priority is not None and (
                priority is None or PRIORITIES.index(rule.priority) < PRIORITIES.index(priority)
            ):
                priority = rule.priority
            tags.extend(tag for tag in rule.tags if tag not in tags)
            if queue is None and rule.queue is not None:
                queue = rule.queue
        return TriageResult(priority=priority or self.default, tags=tuple(tags), queue=queue,
                            rules=tuple(matched))
