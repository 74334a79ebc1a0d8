"""The one journaled send: journal the intent, send, record the outcome (DESIGN principle 3).

Every mutation orderguard sends to the broker — placements (also the protection executor's
flattens), cancels, modifications — goes through :class:`JournaledSend`:

1. :meth:`JournaledSend.intent` makes the intent durable (:class:`~.journaling.SendJournal`
   decides what happens when the journal cannot be written: only risk-reducing mutations go
   out). A :class:`Mutation` names its operation and leg explicitly; a placement whose tag is
   already an operation's leg folds into that leg;
2. :meth:`~JournaledSend.place`, :meth:`~JournaledSend.cancel` or
   :meth:`~JournaledSend.modify` sends it through the guarded broker by the re-send rule of
   :func:`~.mutation.send_mutation` and records the broker's answer, returned as the
   three-valued :class:`~orderguard.broker.base.Outcome`. They raise only when the request
   provably never left (recorded as such first);
3. :meth:`JournaledSend.resolved` records how an Unknown was settled later.

This class holds the only handle on the broker's mutations an engine can reach (the engines'
context gives them a read-only broker, :class:`~.engine_context.BrokerReads`). The two steps
are separate calls because callers journal more between them (a modification moves its
operation to ``in_progress`` after its intent and before it leaves; placement notes when it
sent). Turning outcomes into the public exceptions
(:class:`~orderguard.errors.OrderRejectedError`, :class:`~orderguard.errors.OutcomeUnknownError`)
is the caller's business, not this module's.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from orderguard.broker.base import Outcome
from orderguard.clock import Clock
from orderguard.config import OrderManagerConfig
from orderguard.errors import OrderGuardError
from orderguard.journal.base import IntentKind
from orderguard.models import Order, OrderRequest
from orderguard.orders.feed.tracking import OrderTracker
from orderguard.orders.gateway import GuardedBroker
from orderguard.orders.metrics import Counters
from orderguard.orders.reference_data import ReferenceData
from orderguard.orders.send.journaling import Intent, SendJournal
from orderguard.orders.send.mutation import send_mutation
from orderguard.orders.tags import TagFactory
from orderguard.recovery.manager import RecoveryOperation
from orderguard.resilience import Priority

BrokerCall = Callable[[], Awaitable[Outcome]]
"""One request to the broker (re-sent by :func:`~.mutation.send_mutation` only if it never
left)."""


class Mutation(NamedTuple):
    """What is about to be sent, as its intent records it. (A tuple: one is built per
    mutation, on the path whose overhead ``benchmarks/bench_manager_overhead.py`` measures.)"""

    kind: IntentKind
    account_id: int
    contract_id: str
    custom_tag: str
    """The placement's customTag, or the journal key of a cancel or modification."""
    request: Mapping[str, Any]
    reduces_exposure: bool
    """Sent even when the journal cannot record the intent (F15): protective, flattening,
    cancels."""
    operation: RecoveryOperation | None = None
    leg: str = "single"
    """The operation's leg this mutation is (``cancel<id>``, ``modify``, ...)."""


class JournaledSend:
    """Journal-first sending of one mutation (see the module docstring)."""

    def __init__(
        self,
        journal: SendJournal,
        broker: GuardedBroker,
        config: OrderManagerConfig,
        clock: Clock,
        stats: Counters,
    ) -> None:
        self._journal = journal
        self._broker = broker
        self._config = config
        self._clock = clock
        self._stats = stats

    def intent(self, mutation: Mutation) -> Awaitable[Intent]:
        """Make the intent durable before anything can leave (or refuse, see SendJournal).

        This and the three sends below hand back the awaitable of the one coroutine that does
        the work rather than wrapping it in one more: they sit on every mutation's path."""
        return self._journal.before(
            mutation.kind,
            account_id=mutation.account_id,
            contract_id=mutation.contract_id,
            custom_tag=mutation.custom_tag,
            request=mutation.request,
            reduces_exposure=mutation.reduces_exposure,
            operation=mutation.operation,
            leg=mutation.leg,
        )

    def place(
        self,
        intent: Intent,
        request: OrderRequest,
        priority: Priority,
        *,
        cancelled_in_flight: Callable[[], None] | None = None,
    ) -> Awaitable[Outcome]:
        """Send the placement of ``intent`` (see :meth:`_send`); ``cancelled_in_flight`` is
        called when the caller is cancelled while the request is on its way (it may have
        left)."""
        return self._send(
            intent,
            lambda: self._broker.place_order(request, priority=priority),
            cancelled_in_flight=cancelled_in_flight,
        )

    def cancel(
        self, intent: Intent, account_id: int, order_id: int, priority: Priority
    ) -> Awaitable[Outcome]:
        """Send the cancel of ``intent`` (see :meth:`_send`)."""
        return self._send(
            intent,
            lambda: self._broker.cancel_order(account_id, order_id, priority=priority),
            order_id=order_id,
        )

    def modify(
        self,
        intent: Intent,
        account_id: int,
        order_id: int,
        *,
        size: int | None = None,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
        trail_price: Decimal | None = None,
        priority: Priority,
    ) -> Awaitable[Outcome]:
        """Send the modification of ``intent`` (see :meth:`_send`)."""
        return self._send(
            intent,
            lambda: self._broker.modify_order(
                account_id,
                order_id,
                size=size,
                limit_price=limit_price,
                stop_price=stop_price,
                trail_price=trail_price,
                priority=priority,
            ),
            order_id=order_id,
        )

    async def resend(self, request: OrderRequest, priority: Priority) -> Outcome:
        """Send again a placement in doubt under its own tag: its intent is already durable,
        and the broker refuses a duplicate tag. Raises when it provably never left."""
        return await send_mutation(
            lambda: self._broker.place_order(request, priority=priority),
            self._config,
            self._clock,
            self._stats,
        )

    async def _send(
        self,
        intent: Intent,
        call: BrokerCall,
        *,
        order_id: int | None = None,
        cancelled_in_flight: Callable[[], None] | None = None,
    ) -> Outcome:
        """Send the mutation of ``intent`` and record the answer (``order_id``: the order a
        cancel or modification is about). Raises the broker's error when the request provably
        never left, after recording that it did not."""
        try:
            outcome = await send_mutation(call, self._config, self._clock, self._stats)
        except asyncio.CancelledError:
            if cancelled_in_flight is not None:
                cancelled_in_flight()
            raise
        except OrderGuardError as exc:
            await self._journal.refused(intent, exc)  # it never left: nothing exists
            raise
        await self._journal.after(intent, outcome, order_id)
        return outcome

    async def resolved(self, intent: Intent, order: Order | None, detail: str = "") -> None:
        """An Unknown outcome was settled by asking the broker (``order`` None: not there)."""
        await self._journal.resolved(intent, order, detail)


@dataclass(frozen=True, slots=True)
class SendContext:
    """What every journaled mutation path (placement, cancellation) works with: the guarded
    broker, settings, time, the status-check jitter (one stream for all of them), counters,
    tags, reference data, the one journaled send and the order tracker."""

    gateway: GuardedBroker
    config: OrderManagerConfig
    clock: Clock
    jitter: random.Random
    stats: Counters
    tags: TagFactory
    reference: ReferenceData
    send: JournaledSend
    tracker: OrderTracker


__all__ = ["BrokerCall", "JournaledSend", "Mutation", "SendContext"]
