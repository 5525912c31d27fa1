"""`TextRule`: how a network measures text, and its limit."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..errors import TextTooLong

# The counters and link finders compile their ``regex`` patterns when imported:
# they are imported where text is first measured, not with the rule.

TextUnit = Literal["code_points", "graphemes", "weighted", "utf8_bytes"]
"""What a [`TextRule`][omnichannel.text.TextRule] counts.

``code_points`` is ``len(str)``; ``graphemes`` are extended grapheme clusters
(user-perceived characters); ``weighted`` is X's weighted length, counted by
the rule the X adapter brings (``omnichannel_x.XTextRule``); ``utf8_bytes`` is
the size of the UTF-8 encoding.
"""


def mastodon_length(text: str, *, url_length: int = 23, spoiler_text: str = "") -> int:
    """Count a status the way Mastodon's ``StatusLengthValidator`` does.

    Every ``http(s)://`` URL counts ``url_length`` characters (the instance's
    ``characters_reserved_per_url``), a remote mention ``@user@domain``
    counts as ``@user``, and the result is counted in grapheme clusters
    together with the content warning.

    Args:
        text: The status text.
        url_length: What each URL counts (``characters_reserved_per_url``).
        spoiler_text: The content warning, which shares the limit.

    Returns:
        The length to compare with the instance's ``max_characters``.
    """
    from ._counters import count_graphemes

    rule = TextRule.mastodon(url_length=url_length)
    return count_graphemes(spoiler_text + rule.countable(text))


# --------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------


class TextRule(BaseModel):
    """How a network measures text, and its limit.

    Adapters declare one in their capabilities; the hub checks outgoing
    text with [`check`][omnichannel.text.TextRule.check] before any network
    call.

    ```python
    from omnichannel.text import TextRule

    rule = TextRule.mastodon(limit=500)
    print(rule.count("see https://example.com/a/very/long/path"))  # 4 + 23
    #> 27
    ```

    Attributes:
        unit: What is counted.
        limit: The most the text may count, in ``unit``.
        url_length: When set, every link counts as this many characters.
            Links are what [`link_spans`][omnichannel.text.TextRule.link_spans]
            finds: ``http://`` and ``https://`` URLs here, bare domains such
            as ``example.com`` too in X's rule.
        max_bytes: An additional ceiling on the UTF-8 size of the raw text
            (Bluesky); both limits must hold.
        strip_mention_domains: Count a remote mention ``@user@domain`` as
            ``@user`` (Mastodon).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    unit: TextUnit
    limit: int = Field(ge=0)
    url_length: int | None = Field(default=None, ge=0)
    max_bytes: int | None = Field(default=None, ge=0)
    strip_mention_domains: bool = False

    @classmethod
    def mastodon(cls, limit: int = 500, *, url_length: int = 23) -> TextRule:
        """Mastodon statuses: graphemes, URLs as ``url_length``, remote mentions as local.

        Args:
            limit: The instance's ``configuration.statuses.max_characters``.
            url_length: The instance's ``characters_reserved_per_url``.
        """
        return cls(
            unit="graphemes", limit=limit, url_length=url_length, strip_mention_domains=True
        )

    @classmethod
    def bluesky_post(cls) -> TextRule:
        """Bluesky posts: 300 graphemes and 3000 UTF-8 bytes (``app.bsky.feed.post``)."""
        return cls(unit="graphemes", limit=300, max_bytes=3000)

    @classmethod
    def bluesky_dm(cls) -> TextRule:
        """Bluesky chat messages: 1000 graphemes and 10000 UTF-8 bytes."""
        return cls(unit="graphemes", limit=1000, max_bytes=10000)

    @classmethod
    def code_points(cls, limit: int) -> TextRule:
        """A plain limit in code points (``len(str)``).

        Args:
            limit: The most code points allowed.
        """
        return cls(unit="code_points", limit=limit)

    @classmethod
    def graphemes(cls, limit: int) -> TextRule:
        """A plain limit in grapheme clusters.

        Args:
            limit: The most grapheme clusters allowed.
        """
        return cls(unit="graphemes", limit=limit)

    @model_validator(mode="after")
    def _unit_is_counted_here(self) -> TextRule:
        if self.unit == "weighted" and type(self).measure is TextRule.measure:
            raise ValueError(
                "the weighted unit is X's: use omnichannel_x.XTextRule, which counts it"
            )
        return self

    def link_spans(self, text: str) -> list[tuple[int, int]]:
        """Find the links the network makes of text.

        URLs count ``url_length`` when it is set, and
        [`split_thread`][omnichannel.text.split_thread] never cuts inside one.
        A rule for a network that links more than ``http(s)://`` URLs (X
        links bare domains) overrides this.

        Args:
            text: The text to read.

        Returns:
            ``(start, end)`` spans of the ``http://`` and ``https://`` URLs,
            as ``str`` indices, in order.
        """
        from ._links import scheme_urls

        return scheme_urls(text)

    def countable(self, text: str) -> str:
        """Return the text as the network measures it (URLs and mentions rewritten).

        Args:
            text: The text to prepare.

        Returns:
            ``text`` with each link replaced by ``url_length`` placeholder
            characters and remote mentions shortened, as this rule asks.
        """
        from ._links import REMOTE_MENTION, replace_spans

        if self.url_length is not None:
            text = replace_spans(text, self.link_spans(text), "x" * self.url_length)
        if self.strip_mention_domains and "@" in text:
            text = REMOTE_MENTION.sub(r"@\1", text)
        return text

    def measure(self, countable: str) -> int:
        """Count text already prepared by [`countable`][omnichannel.text.TextRule.countable].

        A rule for a network with its own unit (X's ``weighted``) overrides this.

        Args:
            countable: The prepared text.

        Returns:
            The length in ``unit``.
        """
        match self.unit:
            case "code_points":
                return len(countable)
            case "graphemes":
                from ._counters import count_graphemes

                return count_graphemes(countable)
            case "utf8_bytes":
                from ._counters import count_utf8_bytes

                return count_utf8_bytes(countable)
            case _:
                raise TypeError(f"{type(self).__name__} does not count {self.unit!r}")

    def count(self, text: str, *, skip_leading_mentions: bool = False) -> int:
        """Measure text in this rule's unit.

        Args:
            text: The text to measure.
            skip_leading_mentions: Leave out the ``@mentions`` (and the space
                after them) at the start, for networks that add reply
                mentions themselves and do not count them (X).

        Returns:
            The length in ``unit``. The byte ceiling is not part of it.
        """
        if skip_leading_mentions:
            from ._links import strip_leading_mentions

            text = strip_leading_mentions(text)
        return self.measure(self.countable(text))

    def _excess(self, text: str, skip_leading_mentions: bool) -> tuple[int, int, str] | None:
        length = self.count(text, skip_leading_mentions=skip_leading_mentions)
        if length > self.limit:
            return length, self.limit, self.unit
        if self.max_bytes is not None:
            from ._counters import count_utf8_bytes
            from ._links import strip_leading_mentions

            raw = strip_leading_mentions(text) if skip_leading_mentions else text
            size = count_utf8_bytes(raw)
            if size > self.max_bytes:
                return size, self.max_bytes, "utf8_bytes"
        return None

    def fits(self, text: str, *, skip_leading_mentions: bool = False) -> bool:
        """Tell whether text is within the limit (and the byte ceiling, if any).

        Args:
            text: The text to measure.
            skip_leading_mentions: As in [`count`][omnichannel.text.TextRule.count].

        Returns:
            ``True`` when the network would accept the text's length.
        """
        return self._excess(text, skip_leading_mentions) is None

    def check(
        self, text: str, *, network: str | None = None, skip_leading_mentions: bool = False
    ) -> None:
        """Raise if text is over the limit; return quietly otherwise.

        Args:
            text: The text to measure.
            network: The network name, for the error.
            skip_leading_mentions: As in [`count`][omnichannel.text.TextRule.count].

        Raises:
            TextTooLong: The count is over ``limit`` (``unit`` is this rule's
                unit), or the UTF-8 size is over ``max_bytes`` (``unit`` is
                ``"utf8_bytes"``).
        """
        excess = self._excess(text, skip_leading_mentions)
        if excess is not None:
            length, limit, unit = excess
            raise TextTooLong(length=length, limit=limit, unit=unit, network=network)


# --------------------------------------------------------------------------
# Thread splitter
