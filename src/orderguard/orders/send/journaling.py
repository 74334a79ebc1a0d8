"""Journal first (DESIGN principle 3) for every mutation the OrderManager sends.

Before a mutation leaves, its intent is durable in the journal (with its customTag for a
placement); after the broker answered, the outcome is recorded (confirmed, rejected, unknown, and
``resolved`` once a look-up settles an unknown). An order leg of an operation already has its
intent (written by :meth:`OperationRecoveryManager.add_order_to_operation`); its outcome is folded
into the operation's leg, and the operation's owner reporting it again is a no-op.

If the intent cannot be written (FAILURES F15: disk full, locked), the mutation is sent only when
it reduces risk — protective orders, flattening, cancels — and refused with
:class:`~orderguard.errors.ExposureRefusedError` otherwise, before anything leaves. A failed outcome
write never hides the broker's answer from the caller: the intent is durable, so recovery can
resolve it by its tag.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orderguard.broker.base import Confirmed, Outcome, Rejected, Unknown
from orderguard.errors import ExposureRefusedError, JournalError
from orderguard.journal.base import IntentKind, OutcomeKind
from orderguard.models import Order, OrderRequest, OrderStatus
from orderguard.orders.metrics import Counters, Metric
from orderguard.recovery.manager import (
    OperationRecoveryManager,
    OrderReference,
    RecoveryOperation,
)

log = logging.getLogger("orderguard.orders")


@dataclass(frozen=True, slots=True)
class Intent:
    """Handle of one journaled (or knowingly unjournaled) mutation."""

    intent_id: str | None  # None: sent without a journal record (F15, risk-reducing only)
    custom_tag: str
    leg: tuple[RecoveryOperation, OrderReference] | None = None


class SendJournal:
    """Writes intents before and outcomes after each mutation (see module docstring)."""

    def __init__(self, recovery: OperationRecoveryManager, stats: Counters) -> None:
        self._recovery = recovery
        self._stats = stats

    async def before(
        self,
        kind: IntentKind,
        *,
        account_id: int,
        contract_id: str,
        custom_tag: str,
        request: Mapping[str, Any],
        reduces_exposure: bool,
        operation: RecoveryOperation | None = None,
        leg: str = "single",
    ) -> Intent:
        """Make the intent durable, or decide whether the mutation may go out without it."""
        existing = self._recovery.leg_for_tag(account_id, custom_tag)
        if existing is not None:
            return Intent(existing[1].intent_id, custom_tag, existing)
        try:
            intent_id = await self._recovery.record_intent(
                kind,
                account_id=account_id,
                contract_id=contract_id,
                custom_tag=custom_tag,
                request=request,
                operation=operation,
                leg=leg,
            )
        except JournalError as exc:
            # A re-send of the same intent (same tag) reuses its record: the broker itself then
            # refuses the duplicate tag (DESIGN principle 2). Only a real write failure refuses.
            previous = await self._previous_intent(custom_tag, account_id)
            if previous is not None:
                self._stats[Metric.INTENTS_REUSED] += 1
                return Intent(previous, custom_tag)
            self._stats[Metric.JOURNAL_FAILURES] += 1
            if not reduces_exposure:
                self._stats[Metric.EXPOSURE_REFUSED_JOURNAL] += 1
                raise ExposureRefusedError(
                    f"{kind.value} {custom_tag} refused: the journal cannot record its intent "
                    f"({exc}); only protective orders, flattening and cancels go out"
                ) from exc
            self._stats[Metric.UNJOURNALED_SENDS] += 1
            log.error("journal unavailable; sending risk-reducing %s %s anyway", kind, custom_tag)
            return Intent(None, custom_tag)
        return Intent(intent_id, custom_tag)

    async def _previous_intent(self, custom_tag: str, account_id: int) -> str | None:
        try:
            rec = await self._recovery.journal.intent_by_tag(custom_tag, account_id)
        except JournalError:
            return None
        return None if rec is None else rec.intent_id

    async def after(self, intent: Intent, outcome: Outcome, order_id: int | None = None) -> None:
        """Record the broker's answer."""
        if isinstance(outcome, Unknown):
            self._stats[Metric.UNKNOWN_OUTCOMES] += 1
        if intent.intent_id is None:
            return
        try:
            if intent.leg is not None:
                op, ref = intent.leg
                if isinstance(outcome, Confirmed):
                    await self._recovery.record_order_success(op, ref, outcome)
                else:
                    await self._recovery.record_order_failure(op, ref, outcome)
                return
            if isinstance(outcome, Confirmed):
                kind, code, message = OutcomeKind.CONFIRMED, None, ""
                order_id = outcome.order_id if outcome.order_id is not None else order_id
            elif isinstance(outcome, Rejected):
                kind, code, message = OutcomeKind.REJECTED, outcome.code, outcome.message
                order_id = outcome.order_id if outcome.order_id is not None else order_id
            else:
                kind, code = OutcomeKind.UNKNOWN, None
                message = f"{outcome.origin.value} {outcome.detail}".strip()
            await self._recovery.record_outcome(
                intent.intent_id,
                intent.custom_tag,
                kind,
                order_id=order_id,
                code=code,
                message=message,
            )
        except JournalError as exc:
            self._outcome_lost(intent, exc)

    async def refused(self, intent: Intent, error: BaseException) -> None:
        """The mutation never left (a refused connection after every re-send)."""
        if intent.intent_id is None:
            return
        try:
            if intent.leg is not None:
                await self._recovery.record_order_failure(*intent.leg, error)
            else:
                await self._recovery.record_outcome(
                    intent.intent_id, intent.custom_tag, OutcomeKind.REJECTED, message=str(error)
                )
        except JournalError as exc:
            self._outcome_lost(intent, exc)

    async def resolved(self, intent: Intent, order: Order | None, detail: str = "") -> None:
        """An unknown outcome was settled by asking the broker (``order`` None: not there)."""
        self._stats[Metric.UNKNOWN_RESOLVED] += 1
        if intent.intent_id is None:
            return
        try:
            if intent.leg is not None:
                await self._recovery.record_resolution(*intent.leg, order)
                return
            message = detail or (
                "absent" if order is None else f"found status={OrderStatus(order.status).name}"
            )
            await self._recovery.record_outcome(
                intent.intent_id,
                intent.custom_tag,
                OutcomeKind.RESOLVED,
                order_id=None if order is None else order.id,
                message=message,
            )
        except JournalError as exc:
            self._outcome_lost(intent, exc)

    def _outcome_lost(self, intent: Intent, exc: JournalError) -> None:
        self._stats[Metric.JOURNAL_FAILURES] += 1
        log.error("outcome of %s not journaled (%s); its intent is durable", intent.custom_tag, exc)


def request_payload(request: OrderRequest) -> dict[str, Any]:
    """What an order intent records about its request (plain JSON values, no secrets)."""
    return {
        "type": int(request.type),
        "side": int(request.side),
        "size": request.size,
        "limit_price": request.limit_price,
        "stop_price": request.stop_price,
        "trail_price": request.trail_price,
        "stop_loss_bracket": request.stop_loss_bracket,
        "take_profit_bracket": request.take_profit_bracket,
    }


__all__ = ["Intent", "SendJournal", "request_payload"]
