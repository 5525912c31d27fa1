"""Canned replies: a team's prepared answers, with per-network variants and variables.

A canned reply has a default text and, where a network needs a different
length or tone, a variant for it. Variables (``{name}``, ``{order_id}``) are
filled in when it is used; a missing one is an error, never a literal
``{order_id}`` sent to a customer. The rendered text is checked against the
network's text rule, so a reply that would not fit is refused before it
reaches the outbox.

A canned reply goes out through the usual reply calls, so the copy-paste
guardrail sees it: the same filled-in line sent publicly to several customers
in a short time is refused (``DuplicateReply``) unless varied, which the
variables (the customer's name) usually do.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Iterator, Mapping

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..errors import ConfigurationError, TextTooLong
from ..text import TextRule
from ._tables import validate_tables

__all__ = ["CannedReplies", "CannedReply"]

_FORMATTER = string.Formatter()


def _fields(template: str) -> set[str]:
    try:
        return {name for _, name, _, _ in _FORMATTER.parse(template) if name is not None}
    except ValueError as exc:
        raise ConfigurationError(f"canned reply template {template!r}: {exc}") from None


class CannedReply(BaseModel):
    """One prepared answer.

    Attributes:
        name: How agents and code refer to it (``"shipping-delay"``).
        text: The default text; ``{variable}`` marks a value filled in on use.
        variants: Per network, a text that replaces the default there.
        private_variants: Per network, a text for direct messages there
            (else the network's public variant, else ``text``).

    Example:
        ```python
        from omnichannel.helpdesk import CannedReply

        delay = CannedReply(
            name="shipping-delay",
            text="Hi {name}, we're sorry order {order_id} is late. It ships today, with tracking "
                 "sent by email. Thanks for your patience!",
            variants={"x": "Sorry {name}! Order {order_id} ships today, tracking by email."},
        )
        text = delay.render("x", name="Ada", order_id="4411")
        assert text == "Sorry Ada! Order 4411 ships today, tracking by email."
        ```
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    text: str = Field(min_length=1)
    variants: dict[str, str] = Field(default_factory=dict)
    private_variants: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _templates_parse(self) -> CannedReply:
        for template in (self.text, *self.variants.values(), *self.private_variants.values()):
            _fields(template)
        return self

    @property
    def variables(self) -> frozenset[str]:
        """Every variable any of its texts uses."""
        names: set[str] = set()
        for template in (self.text, *self.variants.values(), *self.private_variants.values()):
            names |= _fields(template)
        return frozenset(names)

    def template(self, network: str, *, private: bool = False) -> str:
        """Return the text used on ``network`` (publicly, or in a direct message)."""
        if private and network in self.private_variants:
            return self.private_variants[network]
        return self.variants.get(network, self.text)

    def render(
        self,
        network: str,
        *,
        private: bool = False,
        rule: TextRule | None = None,
        **values: object,
    ) -> str:
        """Fill in the network's text.

        Args:
            network: The network it goes to.
            private: Whether it goes as a direct message.
            rule: The network's text rule (``adapter.capabilities.text``, or
                ``dm_text`` for direct messages); the filled-in text is checked
                against it.
            **values: The variables.

        Raises:
            ConfigurationError: A variable the text uses was not given.
            TextTooLong: The filled-in text is over ``rule``'s limit.
        """
        template = self.template(network, private=private)
        missing = _fields(template) - values.keys()
        if missing:
            raise ConfigurationError(
                f"canned reply {self.name!r} needs {', '.join(sorted(missing))}"
            )
        text = template.format_map({key: str(value) for key, value in values.items()})
        if rule is not None and not rule.fits(text):
            raise TextTooLong(
                network=network, length=rule.count(text), limit=rule.limit, unit=rule.unit
            )
        return text


class CannedReplies:
    """A team's canned replies by name.

    Example:
        ```python
        from omnichannel.helpdesk import CannedReplies

        replies = CannedReplies.from_settings([
            {"name": "thanks", "text": "Thank you, {name}! 💙"},
        ])
        assert replies["thanks"].render("mastodon", name="Ada") == "Thank you, Ada! 💙"
        ```
    """

    def __init__(self, replies: Iterable[CannedReply] = ()) -> None:
        self._replies: dict[str, CannedReply] = {}
        for reply in replies:
            if reply.name in self._replies:
                raise ConfigurationError(f"two canned replies are named {reply.name!r}")
            self._replies[reply.name] = reply

    def __repr__(self) -> str:
        return f"<CannedReplies {sorted(self._replies)}>"

    def __getitem__(self, name: str) -> CannedReply:
        try:
            return self._replies[name]
        except KeyError:
            raise ConfigurationError(
                f"no canned reply named {name!r}; known: {', '.join(sorted(self._replies))}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._replies

    def __iter__(self) -> Iterator[CannedReply]:
        return iter(self._replies.values())

    def __len__(self) -> int:
        return len(self._replies)

    @classmethod
    def from_settings(cls, tables: Iterable[Mapping[str, object]]) -> CannedReplies:
        """Build from settings tables (``[[helpdesk.canned]]`` in omnichannel.toml).

        Raises:
            ConfigurationError: A table is not a valid canned reply; the message names it.
        """
        return cls(validate_tables(CannedReply, tables, "canned reply"))

