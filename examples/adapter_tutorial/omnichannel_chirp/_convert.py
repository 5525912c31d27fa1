"""Chirp JSON -> the core model, and our text -> Chirp entities.

Chirp counts entity offsets in UTF-16 code units, Python indexes strings by
code point: every span goes through ``omnichannel.text.OffsetMap`` both ways.
An emoji before a mention is where getting this wrong shows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from omnichannel.errors import PayloadError
from omnichannel.model import Entity, Hashtag, Link, Mention, Person, Ref
from omnichannel.text import OffsetMap

from . import _wire

NETWORK = "chirp"

M = TypeVar("M", bound=BaseModel)

OffsetReader = Callable[[str, int], int]
"""Turns a wire offset in ``text`` into a ``str`` index."""

OffsetWriter = Callable[[str, int], int]
"""Turns a ``str`` index in ``text`` into a wire offset."""


# --8<-- [start:parse]
def parse(model: type[M], data: object, *, path: str = "") -> M:
    """Validate Chirp JSON (bytes, or decoded) as one of the wire models.

    Raises:
        PayloadError: It does not fit; ``path`` plus the first bad field says where.
    """
    try:
        if isinstance(data, bytes):
            return model.model_validate_json(data)
        return model.model_validate(data)
    except ValidationError as exc:
        raise PayloadError.from_validation(exc, network=NETWORK, path=path) from exc
# --8<-- [end:parse]


def utf16_to_index(text: str, offset: int) -> int:
    """Chirp's UTF-16 offset -> Python index."""
    return OffsetMap(text).utf16_to_index(offset, network=NETWORK, path="entities")


def index_to_utf16(text: str, index: int) -> int:
    """Python index -> Chirp's UTF-16 offset."""
    return OffsetMap(text).index_to_utf16(index, network=NETWORK, path="entities")


def ref(native_id: str) -> Ref:
    """A Chirp ref."""
    return Ref(network=NETWORK, id=native_id)


def person(user: _wire.User) -> Person:
    """A Chirp user as a ``Person``."""
    return Person(
        ref=ref(user.id), handle=user.handle, display_name=user.name,
        profile_url=f"https://chirp.example/@{user.handle}",
    )


def entities(
    text: str, wire: tuple[_wire.Entity, ...], *, read: OffsetReader = utf16_to_index
) -> tuple[Entity, ...]:
    """Chirp entities as core entities with ``str`` spans."""
    out: list[Entity] = []
    for item in wire:
        start, end = read(text, item.start), read(text, item.end)
        if item.type == "mention":
            person_ref = ref(item.user_id) if item.user_id else None
            out.append(Mention(start=start, end=end, handle=item.handle or "", person=person_ref))
        elif item.type == "link":
            out.append(Link(start=start, end=end, url=item.url or text[start:end]))
        else:
            out.append(Hashtag(start=start, end=end, tag=item.tag or text[start + 1 : end]))
    return tuple(out)


_MENTION = re.compile(r"(?<![\w@/])@([A-Za-z0-9_][A-Za-z0-9_.-]*[A-Za-z0-9_]|[A-Za-z0-9_])")
_LINK = re.compile(r"https?://[^\s<>\"]+")
_TAG = re.compile(r"(?<![\w#&/])#(\w+)")


def outgoing_entities(
    text: str, *, write: OffsetWriter = index_to_utf16
) -> list[dict[str, object]]:
    """Find mentions, links and hashtags in our text; return Chirp entities."""
    found: list[tuple[int, int, dict[str, object]]] = []
    for m in _LINK.finditer(text):
        url = m.group(0).rstrip(".,;:!?)]}'\"")
        found.append((m.start(), m.start() + len(url), {"type": "link", "url": url}))
    taken = [(a, b) for a, b, _ in found]

    def free(start: int) -> bool:
        return not any(a <= start < b for a, b in taken)

    for m in _MENTION.finditer(text):
        if free(m.start()):
            found.append((m.start(), m.end(), {"type": "mention", "handle": m.group(1)}))
    for m in _TAG.finditer(text):
        if free(m.start()):
            found.append((m.start(), m.end(), {"type": "hashtag", "tag": m.group(1)}))
    return [
        {**extra, "start": write(text, start), "end": write(text, end)}
        for start, end, extra in sorted(found, key=lambda item: item[0])
    ]
