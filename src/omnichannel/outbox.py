"""Durable delivery of outgoing actions: check, persist, send, reconcile.

Every action takes the same path:

1. **Checked** against the adapter's capabilities (text length counted the
   network's way, private-reply window, reactions...): a typed
   [`ActionError`][omnichannel.errors.ActionError] before anything is stored.
2. **Persisted** in the store's outbox under the action's idempotency key.
   Queuing the same key twice returns the first item: a handler that runs
   again after a crash does not queue its reply twice.
3. **Delivered** by the worker, which claims due items and calls the adapter.
   A rate limit reschedules the item at the reset time (and pauses the network);
   a transient error backs off; a refusal fails the item and is audited.
4. **Reconciled** when the first try may have landed (a timeout after sending,
   a dropped connection, a crash mid-send, an answer the adapter cannot read
   as a `PayloadError`): before any retry the worker asks the
   adapter's ``find_sent`` whether the message exists, and only sends again when
   the network shows it does not. This holds for networks with native
   idempotency too (their adapters send the key, so a resend the lookup missed
   still collides on the network): one adapter can mix idempotent writes with
   others that are not (Bluesky posts and chat messages). Reactions, hides and
   deletes are idempotent and are simply tried again.

The result: an accepted action is delivered exactly once wherever the network
lets us find what we sent (see the delivery guarantees page in the docs).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Literal

import anyio
import anyio.abc

from . import _logging
from .actions import Action, Post, PrivateReply, Reply, Sent
from .adapter import Adapter
from .errors import (
    AmbiguousDelivery,
    AuthenticationError,
    ConfigurationError,
    DuplicateContent,
    OmnichannelError,
    PayloadError,
    RateLimited,
    TransientError,
)
from .model import Message, Person
from .store import AuditEntry, OutboxItem, Store

__all__ = ["Clock", "Outbox"]

Clock = Callable[[], datetime]
"""A callable returning the current time as a timezone-aware datetime."""

logger = logging.getLogger("omnichannel.outbox")

_MESSAGE_ACTIONS = (Reply, PrivateReply, Post)
_Retry = Literal["pending", "ambiguous"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class Outbox:
    """The durable outbox and its delivery worker.

    The hub builds one (``hub.outbox``); use it directly to run delivery
    without a hub (a separate worker process, a script draining a queue).

    Args:
        store: Where items are kept.
        adapters: The adapters, by network id.
        clock: Returns the current time (inject a fake one in tests).
        max_attempts: Claims after which an item that keeps failing with a
            retryable error is marked ``failed``.
        backoff_initial: Wait after the first retryable failure; it doubles
            with each further attempt.
        backoff_max: Longest wait between attempts.
        ambiguous_delay: Wait before reconciling an item whose send may have
            landed.
        poll_interval: Seconds the worker sleeps when nothing is due (it wakes
            at once when something is queued).
        batch_size: Items claimed per round.
    """

    def __init__(
        self,
        store: Store,
        adapters: Mapping[str, Adapter],
        *,
        clock: Clock = _utcnow,
        max_attempts: int = 12,
        backoff_initial: timedelta = timedelta(seconds=2),
        backoff_max: timedelta = timedelta(minutes=10),
        ambiguous_delay: timedelta = timedelta(seconds=1),
        poll_interval: float = 1.0,
        batch_size: int = 20,
    ) -> None:
        if max_attempts < 1:
            raise ConfigurationError("max_attempts must be at least 1")
        self.store = store
        self.adapters = dict(adapters)
        self.clock = clock
        self.max_attempts = max_attempts
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.ambiguous_delay = ambiguous_delay
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self._wake: anyio.Event | None = None
        self._drained: list[anyio.Event] = []
        self._paused_until: dict[str, datetime] = {}

    def __repr__(self) -> str:
        return f"<Outbox networks={sorted(self.adapters)}>"

    # queuing ---------------------------------------------------------------

    def adapter_for(self, network: str) -> Adapter:
        """Return the adapter serving ``network``.

        Raises:
            ConfigurationError: No adapter for this network was given.
        """
        try:
            return self.adapters[network]
        except KeyError:
            raise ConfigurationError(
                f"no adapter for network {network!r} is configured", network=network
            ) from None

    def check(self, action: Action, *, human_agent: bool = False) -> None:
        """Check ``action`` against its network's capabilities; no I/O.

        Args:
            action: The outgoing action.
            human_agent: Whether a human sends it (opens the longer private
                window where the network has one).

        Raises:
            ConfigurationError: No adapter for the action's network.
            CapabilityNotSupported: The network cannot do this.
            TextTooLong: The text is over the network's limit.
            WindowClosed: The private-messaging window has closed.
        """
        adapter = self.adapter_for(action.network)
        adapter.check(action, now=self.clock(), human_agent=human_agent)

    async def submit(
        self,
        action: Action,
        *,
        origin: str,
        approved_by: str | None = None,
        human_agent: bool = False,
        recipient: str | None = None,
        text_digest: str | None = None,
    ) -> OutboxItem:
        """Check and persist ``action``; the worker delivers it.

        Queuing a key that is already queued returns the stored item unchanged.

        Args:
            action: What to do.
            origin: Who or what queued it (``"handler:triage"``, ``"agent:anna"``).
            approved_by: The human who approved it, if one did (recorded only).
            human_agent: Whether a human wrote or approved it: ``True`` opens
                the network's longer human-agent window (Meta's ``HUMAN_AGENT``
                tag, 7 days) for the capability check; ``False`` (automated)
                checks the ordinary windows. ``approved_by`` alone does not
                open it: say who wrote the action here.
            recipient: Native id of the person answered (for the guardrail).
            text_digest: Digest of the normalized text (for the guardrail).

        Raises:
            ConfigurationError: No adapter for the action's network.
            CapabilityNotSupported: The network cannot do this.
            TextTooLong: The text is over the network's limit.
            WindowClosed: The private-messaging window has closed.
        """
        self.check(action, human_agent=human_agent)
        item = OutboxItem.for_action(
            action, origin=origin, approved_by=approved_by, recipient=recipient,
            text_digest=text_digest, now=self.clock(),
        )
        stored = await self.store.enqueue(item)
        self.wake()
        return stored

    def wake(self) -> None:
        """Make a sleeping worker look for due items now."""
        if self._wake is not None:
            self._wake.set()

    # the worker ------------------------------------------------------------

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Deliver due items forever (until cancelled).

        Cancelling it mid-send is safe: the store turns the item back into
        ``ambiguous`` when it next opens, and it is reconciled before any retry.
        A failing store is logged and tried again after ``poll_interval``; it
        does not end the worker.
        """
        self._wake = anyio.Event()
        task_status.started()
        try:
            while True:
                self._wake = anyio.Event()
                waiting, self._drained = self._drained, []
                try:
                    if await self.run_once():
                        self._drained[:0] = waiting
                        continue
                except Exception:
                    self._drained[:0] = waiting
                    logger.exception("the outbox worker failed; trying again")
                else:
                    for drained in waiting:
                        drained.set()
                with anyio.move_on_after(self.poll_interval):
                    await self._wake.wait()
        finally:
            self._wake = None
            waiting, self._drained = self._drained, []
            for drained in waiting:
                drained.set()

    async def wait_drained(self) -> None:
        """Wait until the running worker finds nothing due; return at once if none runs.

        Every item due when this is called has then been tried: sent, failed,
        or put back for a later attempt. Items waiting for that later attempt
        (a retry after a network error) are not waited for.
        """
        if self._wake is None:
            return
        drained = anyio.Event()
        self._drained.append(drained)
        self.wake()
        await drained.wait()

    async def run_once(self) -> int:
        """Claim the items due now and try each once; return how many were claimed.

        Items of one network go out one after another, in queue order; networks
        are served concurrently.
        """
        items = await self.store.claim_due(now=self.clock(), limit=self.batch_size)
        if not items:
            return 0
        by_network: dict[str, list[OutboxItem]] = {}
        for item in items:
            by_network.setdefault(item.network, []).append(item)
        if len(by_network) == 1:
            await self._deliver_all(items)
        else:
            async with anyio.create_task_group() as tg:
                for group in by_network.values():
                    tg.start_soon(self._deliver_all, group)
        return len(items)

    async def _deliver_all(self, items: list[OutboxItem]) -> None:
        for item in items:
            await self.deliver(item)

    async def deliver(self, item: OutboxItem) -> OutboxItem:
        """Try one claimed item once and record the outcome; return the updated item.

        Not for items that were not claimed (``claim_due``): two deliveries of
        one item at the same time could both send.
        """
        now = self.clock()
        adapter = self.adapters.get(item.network)
        if adapter is None:
            return await self._fail(item, f"no adapter for network {item.network!r}", now=now)
        paused = self._paused_until.get(item.network)
        if paused is not None and paused > now:
            return await self.store.update_outbox(
                item.key, status=self._retry_status(item), next_attempt_at=paused,
            )
        action = item.action
        absent = False  # find_sent showed the first try did not land
        try:
            if item.status == "ambiguous" and isinstance(action, _MESSAGE_ACTIONS):
                found = await adapter.find_sent(action)
                if found is not None:
                    return await self._succeed(item, found, adapter, reconciled=True)
                absent = True
            sent = await adapter.execute(action)
        except AmbiguousDelivery as exc:
            return await self._reschedule(
                item, status="ambiguous", at=now + self.ambiguous_delay, error=exc
            )
        except RateLimited as exc:
            at = exc.reset_at if exc.reset_at is not None and exc.reset_at > now else (
                now + self._backoff(item.attempts)
            )
            self._paused_until[item.network] = at
            retry: _Retry = "pending" if absent else self._retry_status(item)
            return await self._reschedule(item, status=retry, at=at, error=exc)
        except DuplicateContent as exc:
            if item.status == "ambiguous":
                # The network refuses a repeat of what may have been our first try
                # (its lookup lagging behind): count the first try as landed.
                return await self._succeed(
                    item, None, adapter, reconciled=True,
                    detail=f"the network refused a repeat as a duplicate ({exc})",
                )
            return await self._fail(item, _describe(exc), now=now)
        except (TransientError, AuthenticationError) as exc:
            retry = "pending" if absent else self._retry_status(item)
            return await self._retry_or_fail(item, status=retry, error=exc, now=now)
        except PayloadError as exc:
            # The network answered in a shape the adapter cannot read: what was
            # asked may have been done. Look it up before any resend.
            logger.warning("outbox %s: unreadable answer (%s)", item.key, _describe(exc))
            retry = "ambiguous" if isinstance(action, _MESSAGE_ACTIONS) else "pending"
            return await self._retry_or_fail(item, status=retry, error=exc, now=now)
        except OmnichannelError as exc:
            return await self._fail(item, _describe(exc), now=now)
        except Exception as exc:
            # An adapter bug after the request may have gone out: treat as ambiguous.
            logger.exception(
                "outbox %s: unexpected error from the %s adapter", item.key, item.network
            )
            retry = "ambiguous" if isinstance(action, _MESSAGE_ACTIONS) else "pending"
            return await self._retry_or_fail(item, status=retry, error=exc, now=now)
        return await self._succeed(item, sent, adapter, reconciled=False)

    # outcomes --------------------------------------------------------------

    def _retry_status(self, item: OutboxItem) -> _Retry:
        return "ambiguous" if item.status == "ambiguous" else "pending"

    def _backoff(self, attempts: int) -> timedelta:
        factor = 1 << min(30, max(0, attempts - 1))
        return min(self.backoff_max, self.backoff_initial * factor)

    async def _reschedule(
        self, item: OutboxItem, *, status: _Retry, at: datetime, error: BaseException
    ) -> OutboxItem:
        _logging.delivery_retried(logger, item, status=status, at=at, error=_describe(error))
        return await self.store.update_outbox(
            item.key, status=status, next_attempt_at=at, last_error=_describe(error)
        )

    async def _retry_or_fail(
        self, item: OutboxItem, *, status: _Retry, error: BaseException, now: datetime
    ) -> OutboxItem:
        if item.attempts >= self.max_attempts:
            return await self._fail(item, _describe(error), now=now)
        return await self._reschedule(
            item, status=status, at=now + self._backoff(item.attempts), error=error
        )

    async def _fail(self, item: OutboxItem, error: str, *, now: datetime) -> OutboxItem:
        _logging.delivery_failed(logger, item, error=error)
        audit = AuditEntry(
            at=now, network=item.network, action_type=item.action.type,
            idempotency_key=item.key, actor=item.origin,
            approved_by=item.approved_by, detail=f"failed: {error}",
        )
        with anyio.CancelScope(shield=True):
            updated = await self.store.update_outbox(
                item.key, status="failed", last_error=error, audit=audit
            )
        return updated

    async def _succeed(
        self, item: OutboxItem, sent: Sent | None, adapter: Adapter, *,
        reconciled: bool, detail: str | None = None,
    ) -> OutboxItem:
        now = self.clock()
        notes = []
        if reconciled:
            notes.append("reconciled: found on the network, not sent again")
        if detail:
            notes.append(detail)
        audit = AuditEntry(
            at=now, network=item.network, action_type=item.action.type,
            idempotency_key=item.key, actor=item.origin,
            approved_by=item.approved_by,
            result_ref=str(sent.ref) if sent is not None else None,
            detail="; ".join(notes) or None,
        )
        with anyio.CancelScope(shield=True):
            # One transaction marks the item sent and writes its audit line: a
            # crash leaves both or neither (then the item is reconciled and
            # audited once), so every sent action has exactly one line.
            updated = await self.store.update_outbox(
                item.key, status="sent", sent=sent, audit=audit
            )
            message = _sent_message(item.action, sent, adapter.account)
            if message is not None:
                await self.store.save_messages([message])
        _logging.action_sent(logger, item, sent, reconciled=reconciled)
        return updated


def _sent_message(action: Action, sent: Sent | None, account: Person | None) -> Message | None:
    """Our own message as the store should remember it, when we know enough."""
    if sent is None or account is None:
        return None
    if isinstance(action, Reply):
        return Message(
            ref=sent.ref, conversation=sent.conversation or action.to.conversation,
            author=account, text=action.text, created_at=sent.sent_at,
            visibility=action.visibility or action.to.visibility,
            in_reply_to=action.to.ref, from_us=True,
        )
    if isinstance(action, PrivateReply):
        if sent.conversation is None:
            return None
        return Message(
            ref=sent.ref, conversation=sent.conversation, author=account, text=action.text,
            created_at=sent.sent_at, visibility="private", in_reply_to=action.to.ref,
            from_us=True,
        )
    if isinstance(action, Post):
        return Message(
            ref=sent.ref, conversation=sent.conversation or sent.ref, author=account,
            text=action.text, created_at=sent.sent_at, visibility=action.visibility,
            from_us=True,
        )
    return None
