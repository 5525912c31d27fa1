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

Several workers may share one store. Each outbox has a ``worker`` id; a claim
is a lease on the item (the id and an expiry), renewed while the worker still
has the item, and an outcome is recorded only while the lease holds. A worker
that dies stops renewing: once its lease ran out, another worker claims the
item as ``ambiguous`` and reconciles it before any resend.

Delivery is concurrent across conversations and ordered within one. The store
keeps the order across retries and workers: it lets a conversation's next item
be claimed only once the one queued before it is finished (sent, failed or
cancelled; see `OutboxItem.order_key`), so a reply backing off or held by a dead
worker holds back the replies queued after it. In the worker, every claimed item
goes in the lane of its conversation (a post in its network's lane of posts, a
reaction, hide or delete in the lane of its target); the items of a lane go out
one after another in claim order, and up to ``max_in_flight`` lanes of one
network have a request out at the same time. An item finished for good wakes
the worker to claim what it held back.

Long because: the worker's outcomes (send, retry, reconcile, fail) and its
per-conversation lanes are one state machine over the same items; apart, each
half would reach into the other.
"""

from __future__ import annotations

import heapq
import logging
import os
import platform
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

import anyio
import anyio.abc

from ._logging import with_log_lines
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
    StoreConflict,
    TransientError,
)
from .instrumentation import Instrumentation
from .model import Message, Person
from .store import DEFAULT_LEASE, AuditEntry, OutboxItem, Store

__all__ = ["DEFAULT_MAX_IN_FLIGHT", "Clock", "Outbox", "new_worker_id"]

Clock = Callable[[], datetime]
"""A callable returning the current time as a timezone-aware datetime."""

logger = logging.getLogger("omnichannel.outbox")

_FIRST_RESPONSE_SCAN = 200
"""Stored messages of a conversation read to tell whether a reply is our first."""

_MESSAGE_ACTIONS = (Reply, PrivateReply, Post)
_Retry = Literal["pending", "ambiguous"]
_Lane = tuple[str, str]

DEFAULT_MAX_IN_FLIGHT = 16
"""Requests the outbox has out at once per network unless told otherwise.

Neither Mastodon nor Bluesky documents a limit on concurrent requests; both
count requests against a budget per account (Mastodon 300 per 5 minutes,
Bluesky writes 5,000 points per hour), which the HTTP client obeys whatever the
concurrency: it never starts a request the known budget cannot cover, counting
the requests still in flight. 16 keeps a round trip of 100 ms from capping
delivery below 160 actions a second while staying polite to small instances.
"""


_FINAL = frozenset({"sent", "failed", "cancelled"})
"""Outcomes that finish an item for good, letting the next of its conversation go."""


def _lane(item: OutboxItem) -> _Lane:
    """The lane an item is delivered in: items of one lane go out in order."""
    return (item.network, item.order_key or "posts")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def new_worker_id() -> str:
    """A worker id unique to this process and call: ``"<host>:<pid>:<random>"``.

    Example:
        ```python
        import os

        from omnichannel.outbox import new_worker_id

        host, pid, tag = new_worker_id().rsplit(":", 2)
        assert int(pid) == os.getpid() and len(tag) == 6
        ```
    """
    return f"{platform.node()}:{os.getpid()}:{secrets.token_hex(3)}"  # no socket import


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"




def _stamp_writer(action: Action, *, human_agent: bool) -> Action:
    """``action`` saying who wrote it: a reply's ``human_agent`` set to the checked value.

    Who wrote a reply travels with it, so the adapter reads it at delivery
    time: a reply queued by a bot never goes out under a human-agent tag
    (Meta's ``HUMAN_AGENT``), however late it is delivered.
    """
    if isinstance(action, Reply | PrivateReply) and action.human_agent != human_agent:
        return action.model_copy(update={"human_agent": human_agent})
    return action

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
        max_in_flight: Actions of one network delivered at the same time, each
            in a different conversation: one number for every network, or a
            mapping from network id to number (networks it leaves out get
            [`DEFAULT_MAX_IN_FLIGHT`][omnichannel.outbox.DEFAULT_MAX_IN_FLIGHT]).
            ``1`` sends one action at a time per network. Actions of one
            conversation always go out one after another, in queue order.
        on_outcome: Called with the updated item after every delivery attempt
            (sent, failed, or put back as ``pending`` or ``ambiguous`` for a
            later try); the hub counts its statistics through it. It must not
            block; an exception it raises is logged and ignored.
        instrumentation: Consumers of the outcome of each attempt (see
            [`Instrumentation`][omnichannel.instrumentation.Instrumentation]),
            called after the log lines; or one instrumentation used as it is
            (the hub passes its own, which writes the log lines).
        worker: This worker's id, stamped on every item it claims
            (``OutboxItem.worker``); by default a new
            [`new_worker_id`][omnichannel.outbox.new_worker_id]. Give each
            worker sharing a store its own.
        lease: How long a claim holds unless renewed. The worker renews the
            claims of items it still has every third of it; an item of a
            worker that died is claimed by another once its lease ran out.

    Attributes:
        max_in_flight: The limits in force, by network id (change them before
            the worker starts, e.g. ``hub.outbox.max_in_flight["mastodon"] = 4``).
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
        max_in_flight: int | Mapping[str, int] = DEFAULT_MAX_IN_FLIGHT,
        on_outcome: Callable[[OutboxItem], None] | None = None,
        instrumentation: Sequence[Instrumentation] | Instrumentation = (),
        worker: str | None = None,
        lease: timedelta = DEFAULT_LEASE,
    ) -> None:
        if max_attempts < 1:
            raise ConfigurationError("max_attempts must be at least 1")
        if lease <= timedelta(0):
            raise ConfigurationError("lease must be positive")
        if isinstance(max_in_flight, int):
            limits = dict.fromkeys(adapters, max_in_flight)
        else:
            limits = {network: max_in_flight.get(network, DEFAULT_MAX_IN_FLIGHT)
                      for network in adapters}
            limits.update(max_in_flight)
        if any(limit < 1 for limit in limits.values()):
            raise ConfigurationError("max_in_flight must be at least 1")
        self.store = store
        self.adapters = dict(adapters)
        self.clock = clock
        self.max_attempts = max_attempts
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.ambiguous_delay = ambiguous_delay
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self.max_in_flight: dict[str, int] = limits
        self.on_outcome = on_outcome
        self.instrumentation: Instrumentation = (
            instrumentation if isinstance(instrumentation, Instrumentation)
            else with_log_lines(instrumentation)
        )
        self.worker = worker if worker is not None else new_worker_id()
        self.lease = lease
        self._wake: anyio.Event | None = None
        self._drained: list[anyio.Event] = []
        self._paused_until: dict[str, datetime] = {}

    def __repr__(self) -> str:
        return f"<Outbox worker={self.worker} networks={sorted(self.adapters)}>"

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
        action = _stamp_writer(action, human_agent=human_agent)
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

        Items are claimed as delivery slots free up, so a slow conversation
        does not hold back the others (see `run_once` for the order kept).
        Cancelling it mid-send is safe: the item stays claimed until its lease
        runs out (or the store reopens, for a store one process owns), then it
        is claimed as ``ambiguous`` and reconciled before any retry.
        A failing store is logged and tried again after ``poll_interval``; it
        does not end the worker.
        """
        self._wake = anyio.Event()
        try:
            async with anyio.create_task_group() as tg:
                lanes = _Lanes(self, tg, reraise=False)
                tg.start_soon(self._renew, lanes)
                wait_for_work = getattr(self.store, "wait_for_work", None)
                if wait_for_work is not None:  # PostgreSQL: woken by other workers' queuing
                    tg.start_soon(self._woken_by_store, wait_for_work)
                task_status.started()
                while True:
                    self._wake = anyio.Event()
                    room = self._window() - lanes.outstanding
                    lanes.starved = room <= 0
                    if room > 0:
                        # Who waits for the drain from before this claim: released
                        # once it finds nothing due and nothing is being sent.
                        waiting, self._drained = self._drained, []
                        failed = False
                        try:
                            items = await self._claim(min(room, self.batch_size))
                        except Exception:
                            logger.exception("the outbox worker failed; trying again")
                            items, failed = [], True
                        fresh = await self._hold(lanes, items)
                        if fresh:
                            lanes.add(fresh)
                            self._drained[:0] = waiting
                            continue
                        if failed or lanes.outstanding:
                            self._drained[:0] = waiting
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

    async def _woken_by_store(self, wait_for_work: Callable[[float], Awaitable[bool]]) -> None:
        """Wake the worker whenever the store says an item was queued (by any process).

        Each wait is at most a second: the wait blocks a thread, and stopping
        the worker waits for that thread to return.
        """
        while True:
            try:
                queued = await wait_for_work(min(max(self.poll_interval, 0.05), 1.0))
            except Exception:
                logger.exception("waiting for the store's notifications failed")
                await anyio.sleep(self.poll_interval)
                continue
            if queued:
                self.wake()

    async def wait_drained(self) -> None:
        """Wait until the running worker finds nothing due; return at once if none runs.

        Every item due when this is called has then been tried: sent, failed,
        or put back for a later attempt. Items waiting for that later attempt
        (a retry after a network error) are not waited for, nor are the items
        of their conversations queued after them, which wait for them.
        """
        if self._wake is None:
            return
        drained = anyio.Event()
        self._drained.append(drained)
        self.wake()
        await drained.wait()

    async def _hold(self, lanes: _Lanes, items: list[OutboxItem]) -> list[OutboxItem]:
        """The claimed items not already in a lane.

        A claim takes only items no lease holds, so it returns one the worker
        has only when that item's lease ran out meanwhile (a renewal the store
        missed); it stays in its lane, and is not delivered a second time.
        """
        return [item for item in items if not lanes.holds(item.key)]

    async def _claim(self, limit: int) -> list[OutboxItem]:
        return await self.store.claim_due(
            now=self.clock(), limit=limit, worker=self.worker, lease=self.lease
        )

    async def _renew(self, lanes: _Lanes) -> None:
        """Renew the claims of the items in ``lanes`` every third of the lease, forever."""
        period = self.lease.total_seconds() / 3
        while True:
            await anyio.sleep(period)
            keys = lanes.keys()
            if not keys:
                continue
            try:
                kept = await self.store.renew_claims(
                    keys, worker=self.worker, now=self.clock(), lease=self.lease
                )
            except Exception:
                logger.exception("the outbox worker could not renew its claims; trying again")
                continue
            for key in sorted(set(keys) - set(kept)):
                if lanes.holds(key):
                    logger.warning(
                        "outbox %s: the claim of worker %s ran out before it was done",
                        key, self.worker,
                    )

    def _window(self) -> int:
        """Most items claimed and not yet done at once: enough to keep every slot busy."""
        return max(self.batch_size, 2 * sum(self.max_in_flight.values()))

    async def run_once(self) -> int:
        """Claim the items due now and try each once; return how many were claimed.

        Items of one conversation go out one after another, in queue order:
        the store gives a conversation's next item once the one before it is
        finished, so a round of claims follows every round that finished one
        (up to ``batch_size`` items a round). Conversations are served
        concurrently, up to ``max_in_flight`` of one network at a time, and
        networks independently. An item put back for a later try holds back
        the rest of its conversation until then.
        """
        claimed = 0
        while items := await self._claim(self.batch_size):
            claimed += len(items)
            async with anyio.create_task_group() as renewing:
                async with anyio.create_task_group() as tg:
                    lanes = _Lanes(self, tg, reraise=True)
                    renewing.start_soon(self._renew, lanes)
                    lanes.add(items)
                renewing.cancel_scope.cancel()
            if lanes.errors:
                raise lanes.errors[0]
            if not lanes.finished:
                break  # nothing was let go: what is left waits for a later try
        return claimed

    async def deliver(self, item: OutboxItem) -> OutboxItem:
        """Try one claimed item once and record the outcome; return the updated item.

        Not for items that were not claimed (``claim_due``): two deliveries of
        one item at the same time could both send. The outcome is recorded
        only while the claim the item was taken under (``item.worker``) still
        holds; otherwise the item is another worker's by now, and the stored
        item is returned unchanged.
        """
        try:
            updated = await self._attempt(item)
        except StoreConflict:
            # The claim ran out and another worker has the item: its outcome is
            # that worker's to record (it reconciles what this one may have sent).
            logger.warning(
                "outbox %s: worker %s lost its claim; the outcome is left to the next worker",
                item.key, item.worker,
            )
            stored = await self.store.get_outbox(item.key)
            return stored if stored is not None else item
        if self.on_outcome is not None:
            try:
                self.on_outcome(updated)
            except Exception:
                logger.exception("outbox %s: the on_outcome hook failed", item.key)
        return updated

    async def _attempt(self, item: OutboxItem) -> OutboxItem:
        now = self.clock()
        adapter = self.adapters.get(item.network)
        if adapter is None:
            return await self._fail(item, f"no adapter for network {item.network!r}", now=now)
        paused = self._paused_until.get(item.network)
        if paused is not None and paused > now:
            return await self.store.update_outbox(
                item.key, status=self._retry_status(item), next_attempt_at=paused,
                worker=item.worker,
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
        self.instrumentation.delivery_outcome(
            item, "ambiguous" if status == "ambiguous" else "retried", error=_describe(error),
            retry_at=at,
        )
        return await self.store.update_outbox(
            item.key, status=status, next_attempt_at=at, last_error=_describe(error),
            worker=item.worker,
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
        self.instrumentation.delivery_outcome(item, "failed", error=error)
        audit = AuditEntry(
            at=now, network=item.network, action_type=item.action.type,
            idempotency_key=item.key, actor=item.origin,
            approved_by=item.approved_by, detail=f"failed: {error}",
        )
        with anyio.CancelScope(shield=True):
            updated = await self.store.update_outbox(
                item.key, status="failed", last_error=error, audit=audit, worker=item.worker
            )
        return updated

    async def _succeed(
        self, item: OutboxItem, sent: Sent | None, adapter: Adapter, *,
        reconciled: bool, detail: str | None = None,
    ) -> OutboxItem:
        now = self.clock()
        if isinstance(item.action, Reply | PrivateReply) and self.instrumentation.wants(
            "first_response"
        ):
            await self._first_response(item.action, now=now)
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
        message = _sent_message(item.action, sent, adapter.account)
        failure: Exception | None = None
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as tg:
                # Our message is saved while the outcome is recorded: a store that
                # commits writes arriving together at once (SQLite) writes both in
                # one commit. Either order is right: the network has it now.
                if message is not None:
                    tg.start_soon(self._save_sent, item.key, message)
                try:
                    # One transaction marks the item sent and writes its audit line:
                    # a crash leaves both or neither (then the item is reconciled
                    # and audited once), so every sent action has exactly one line.
                    updated = await self.store.update_outbox(
                        item.key, status="sent", sent=sent, audit=audit, worker=item.worker
                    )
                except Exception as exc:  # raised as it is, not in an exception group
                    failure = exc
        if failure is not None:
            raise failure
        self.instrumentation.delivery_outcome(
            item, "reconciled" if reconciled else "sent", sent=sent
        )
        return updated


    async def _save_sent(self, key: str, message: Message) -> None:
        """Keep our sent message in its conversation's history (a failure is logged)."""
        try:
            await self.store.save_messages([message])
        except Exception:
            logger.exception("outbox %s: sent, but our message could not be saved", key)

    async def _first_response(self, action: Reply | PrivateReply, *, now: datetime) -> None:
        """Report the delay to our first reply in ``action``'s conversation, if it is the first."""
        conversation = action.to.conversation
        try:
            messages = await self.store.conversation_messages(
                conversation, limit=_FIRST_RESPONSE_SCAN
            )
        except Exception:
            logger.exception("could not read conversation %s for its first response", conversation)
            return
        if len(messages) >= _FIRST_RESPONSE_SCAN or any(m.from_us for m in messages):
            return  # answered before (or too long to tell)
        customers = [message for message in messages if not message.from_us]
        start = customers[0].created_at if customers else action.to.created_at
        self.instrumentation.first_response(action.network, conversation, delay=now - start)


class _Slots:
    """One network's delivery slots, granted to ready items in claim order."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.busy = 0
        self._ready: list[tuple[int, anyio.Event]] = []

    def ready(self, seq: int) -> anyio.Event:
        """Queue item ``seq`` (its lane's head) for a slot; the event is set when it has one."""
        granted = anyio.Event()
        heapq.heappush(self._ready, (seq, granted))
        self._grant()
        return granted

    def release(self) -> None:
        """Give a slot back."""
        self.busy -= 1
        self._grant()

    def _grant(self) -> None:
        while self.busy < self.limit and self._ready:
            _, granted = heapq.heappop(self._ready)
            self.busy += 1
            granted.set()


class _Lanes:
    """Claimed items in their lanes, and the tasks delivering them.

    An item is ready when it heads its lane; ready items get their network's
    slots in claim order, so a limit of one delivers in queue order.
    """

    def __init__(self, outbox: Outbox, tg: anyio.abc.TaskGroup, *, reraise: bool) -> None:
        self._outbox = outbox
        self._tg = tg
        self._reraise = reraise
        self._queues: dict[_Lane, deque[tuple[int, OutboxItem]]] = {}
        self._slots: dict[str, _Slots] = {}
        self._seq = 0
        self._keys: set[str] = set()
        self.outstanding = 0
        self.finished = 0  # items with an order key finished for good
        self.starved = False  # the worker waits for an item to finish
        self.errors: list[Exception] = []

    def holds(self, key: str) -> bool:
        """Whether the item with this key is in a lane (waiting or being delivered)."""
        return key in self._keys

    def keys(self) -> list[str]:
        """The keys of the items in a lane, whose claims the worker renews."""
        return sorted(self._keys)

    def add(self, items: list[OutboxItem]) -> None:
        """Queue claimed items (in claim order) behind their lanes' earlier items."""
        for item in items:
            self._seq += 1
            self.outstanding += 1
            self._keys.add(item.key)
            lane = _lane(item)
            queue = self._queues.get(lane)
            if queue is not None:
                queue.append((self._seq, item))
            else:
                self._queues[lane] = deque(((self._seq, item),))
                granted = self._network(item.network).ready(self._seq)
                self._tg.start_soon(self._drain, lane, granted)

    def _network(self, network: str) -> _Slots:
        slots = self._slots.get(network)
        if slots is None:
            limit = self._outbox.max_in_flight.get(network, DEFAULT_MAX_IN_FLIGHT)
            slots = self._slots[network] = _Slots(limit)
        return slots

    async def _drain(self, lane: _Lane, granted: anyio.Event) -> None:
        queue = self._queues[lane]
        try:
            while queue:
                _, item = queue[0]
                slots = self._network(item.network)
                failure: Exception | None = None
                try:
                    await granted.wait()
                except BaseException:  # cancelled before its turn
                    if granted.is_set():
                        slots.release()
                    raise
                try:
                    outcome = await self._outbox.deliver(item)
                except Exception as exc:
                    failure = exc
                else:
                    if outcome.status in _FINAL and outcome.order_key is not None:
                        # The store now lets the next item of this conversation go.
                        self.finished += 1
                        self._outbox.wake()
                finally:
                    queue.popleft()
                    self.outstanding -= 1
                    self._keys.discard(item.key)
                    if failure is not None and self._reraise:
                        # Like a sequential run: what was after the failure stays
                        # claimed, and is reconciled once its lease runs out.
                        self.errors.append(failure)
                        self.outstanding -= len(queue)
                        self._keys.difference_update(i.key for _, i in queue)
                        queue.clear()
                    if queue:
                        # The lane's next item is ready before the slot is given
                        # back: with one slot, it goes before later-claimed items.
                        next_seq, next_item = queue[0]
                        granted = self._network(next_item.network).ready(next_seq)
                    slots.release()
                if failure is not None and not self._reraise:
                    logger.error("the outbox worker failed; trying again", exc_info=failure)
                if self.starved or self.outstanding == 0:
                    # The worker waits for room, or for the last send (to report a drain).
                    self.starved = False
                    self._outbox.wake()
        finally:
            del self._queues[lane]


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
