"""Length counters, offset converters and a thread splitter, each network's way.

Networks disagree on what a "character" is. Mastodon counts grapheme clusters
with URLs as 23, Bluesky counts grapheme clusters *and* UTF-8 bytes, and X
weighs code points (its rule lives in the X adapter, ``omnichannel_x.XTextRule``,
built on this one). Entity offsets disagree too: Bluesky facets use UTF-8 byte
offsets, X and Meta use UTF-16 code units, and Python strings index code
points. This package holds the rules two or more networks share, so adapters
and the hub never count by hand.

```python
from omnichannel.text import TextRule, utf8_to_index

print(TextRule.mastodon().count("Hello, world! 👋"))  # one grapheme per character
#> 15
print(TextRule.bluesky_post().fits("👨‍👩‍👧‍👦" * 300))  # 300 graphemes, but 7,500 bytes
#> False
print(utf8_to_index("📈 localview.net", 5))  # a facet after a 4-byte emoji
#> 2
```

See the "Counting text" explanation page for the rules and their sources.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

if TYPE_CHECKING:
    from ._counters import count_code_points as count_code_points
    from ._counters import count_graphemes as count_graphemes
    from ._counters import count_utf8_bytes as count_utf8_bytes
    from ._counters import count_utf16_units as count_utf16_units
    from ._counters import graphemes as graphemes
    from ._offsets import OffsetMap as OffsetMap
    from ._offsets import index_to_utf8 as index_to_utf8
    from ._offsets import index_to_utf16 as index_to_utf16
    from ._offsets import utf8_to_index as utf8_to_index
    from ._offsets import utf16_to_index as utf16_to_index
    from ._rules import TextRule as TextRule
    from ._rules import TextUnit as TextUnit
    from ._rules import mastodon_length as mastodon_length
    from ._split import split_thread as split_thread

# Loaded on first use (module ``__getattr__``): the counters compile their
# ``regex`` patterns when imported, which only measuring text needs.
_HOMES: dict[str, str] = {
    "count_code_points": "._counters",
    "count_graphemes": "._counters",
    "count_utf8_bytes": "._counters",
    "count_utf16_units": "._counters",
    "graphemes": "._counters",
    "OffsetMap": "._offsets",
    "index_to_utf8": "._offsets",
    "index_to_utf16": "._offsets",
    "utf8_to_index": "._offsets",
    "utf16_to_index": "._offsets",
    "TextRule": "._rules",
    "TextUnit": "._rules",
    "mastodon_length": "._rules",
    "split_thread": "._split",
}

__all__ = [
    "OffsetMap",
    "TextRule",
    "TextUnit",
    "count_code_points",
    "count_graphemes",
    "count_utf8_bytes",
    "count_utf16_units",
    "graphemes",
    "index_to_utf8",
    "index_to_utf16",
    "mastodon_length",
    "split_thread",
    "utf8_to_index",
    "utf16_to_index",
]


__getattr__, __dir__ = lazy_names(__name__, globals(), _HOMES)
