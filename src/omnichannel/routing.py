"""Routing: which handler runs for which event.

A [`Router`][omnichannel.routing.Router] collects handlers with their filters.
Every [`Hub`][omnichannel.hub.Hub] and every [`Bot`][omnichannel.bot.Bot] has
one (``hub.on`` and ``bot.on`` register on it), and a router written in its
own module can be included in either, so a large set of handlers can be split
by topic:

```python
billing = Router()

@billing.on(MessageReceived, when=lambda event: "invoice" in event.message.text)
async def invoice(event: MessageReceived, ctx: Context) -> None:
    await ctx.reply("Our billing team will look at your invoice.")

hub.include_router(billing)
```
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar, cast

from .errors import ConfigurationError
from .events import (
    AuthHealth,
    Event,
    MessageDeleted,
    MessageReceived,
    MessageUpdated,
    ReactionAdded,
    ReactionRemoved,
    SlaBreached,
    SlaWarning,
)
from .model import ConversationKind, Message, Visibility

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .context import Context

__all__ = ["CallNext", "Handler", "Middleware", "Registration", "Router"]

_EventT = TypeVar(
    "_EventT", MessageReceived, MessageUpdated, MessageDeleted, ReactionAdded, ReactionRemoved,
    SlaWarning, SlaBreached, AuthHealth,
)

Handler = Callable[[_EventT, "Context"], Awaitable[None]]
"""An event handler: ``async def handler(event, ctx) -> None``."""

CallNext = Callable[[], Awaitable[None]]
"""Runs the rest of the middleware chain and the handler."""

Middleware = Callable[[Event, "Context", CallNext], Awaitable[None]]
"""Wraps every handler call: ``async def mw(event, ctx, call_next) -> None``.

Call ``await call_next()`` exactly once to run the handler (and the
middleware after this one); skip it to drop the event for this handler.
"""


def _as_set(value: str | Iterable[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return frozenset({value})
    return frozenset(value)


def _event_message(event: Event) -> Message | None:
    """Return the message an event carries (received or edited), if any."""
    if isinstance(event, MessageReceived | MessageUpdated):
        return event.message
    return None


def _event_kind(event: Event) -> ConversationKind | None:
    if isinstance(event, MessageReceived):
        return event.conversation.kind
    if isinstance(event, MessageUpdated):
        return "direct" if event.message.is_private else "thread"
    return None


class Registration:
    """One handler and its filters, as [`Router.on`][omnichannel.routing.Router.on] keeps it.

    Attributes:
        event_type: The event class it handles.
        func: The handler.
        name: The handler's dotted name (in logs and stored failures).
    """

    def __init__(
        self,
        event_type: type[Any],
        func: Callable[[Any, Context], Awaitable[None]],
        *,
        networks: frozenset[str] | None,
        visibilities: frozenset[str] | None,
        kinds: frozenset[str] | None,
        when: Callable[[Any], bool] | None,
    ) -> None:
        self.event_type = event_type
        self.func = func
        qualname = getattr(func, "__qualname__", None) or repr(func)
        module = getattr(func, "__module__", None)
        self.name = f"{module}.{qualname}" if module else qualname
        self.networks = networks
        self.visibilities = visibilities
        self.kinds = kinds
        self.when = when

    def matches(self, event: Event) -> bool:
        if not isinstance(event, self.event_type):
            return False
        if self.networks is not None and event.network not in self.networks:
            return False
        if self.visibilities is not None:
            message = _event_message(event)
            if message is None or message.visibility not in self.visibilities:
                return False
        if self.kinds is not None and _event_kind(event) not in self.kinds:
            return False
        return self.when is None or bool(self.when(event))


class Router:
    """Handlers with their filters, in the order they were registered.

    Included routers stay live: a handler registered on one after it was
    included runs too. A router may be included in several hubs or routers,
    but never in itself (directly or through another router).

    Args:
        name: Shown in the router's repr.
    """

    def __init__(self, name: str = "router") -> None:
        self.name = name
        self._entries: list[Registration | Router] = []

    def __repr__(self) -> str:
        return f"<Router {self.name!r} handlers={len(list(self.registrations()))}>"

    def on(
        self,
        event_type: type[_EventT],
        *,
        network: str | Iterable[str] | None = None,
        visibility: Visibility | Iterable[Visibility] | None = None,
        kind: ConversationKind | Iterable[ConversationKind] | None = None,
        when: Callable[[_EventT], bool] | None = None,
    ) -> Callable[[Handler[_EventT]], Handler[_EventT]]:
        """Register an async handler for ``event_type``, optionally filtered.

        Handlers run in registration order for each event (an included
        router's handlers run where it was included). Filters that an event
        cannot satisfy (``visibility`` on a deletion, say) exclude it. Our own
        messages (``MessageReceived`` with ``message.from_us``, such as
        Messenger echoes) are stored for the history but reach no handler.

        Args:
            event_type: The event class (``MessageReceived``...).
            network: Only events from this network (or these networks).
            visibility: Only messages with this visibility (or these).
            kind: Only messages in a ``"thread"`` or a ``"direct"`` conversation.
            when: Only events for which this predicate is true.

        Example:
            ```python
            @hub.on(MessageReceived, network="mastodon", kind="direct")
            async def dm(event: MessageReceived, ctx: Context) -> None:
                await ctx.reply("Thanks for writing to us!")
            ```
        """

        def register(func: Handler[_EventT]) -> Handler[_EventT]:
            self._entries.append(
                Registration(
                    event_type, cast(Callable[[Any, "Context"], Awaitable[None]], func),
                    networks=_as_set(network), visibilities=_as_set(visibility),
                    kinds=_as_set(kind), when=cast(Callable[[Any], bool] | None, when),
                )
            )
            return func

        return register

    def include_router(self, router: Router) -> Router:
        """Run ``router``'s handlers too, after the handlers registered so far.

        Returns:
            ``router``, so a call can be chained or used in an expression.

        Raises:
            ConfigurationError: ``router`` is this router or includes it.
        """
        if router is self or self in router._descendants():
            raise ConfigurationError(f"{router!r} cannot include itself")
        self._entries.append(router)
        return router

    def _descendants(self) -> Iterator[Router]:
        for entry in self._entries:
            if isinstance(entry, Router):
                yield entry
                yield from entry._descendants()

    def registrations(self) -> Iterator[Registration]:
        """Yield every handler registration, included routers' in place."""
        for entry in self._entries:
            if isinstance(entry, Router):
                yield from entry.registrations()
            else:
                yield entry

    def handled_types(self) -> frozenset[type[Any]]:
        """Return the event classes some handler listens to."""
        return frozenset(reg.event_type for reg in self.registrations())
