"""What a bracket saga tells: the caller's response, and the result journaled at its end.

Pure: built from the saga's facts and records, passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orderguard.models import Order
from orderguard.orders.bracket_plan import BracketFacts, Finish, LegKind, outcome_of
from orderguard.orders.bracket_state import BracketRequest, Slot
from orderguard.orders.bracket_types import BracketOrderResponse, BracketOutcome
from orderguard.orders.exposure import ExposureMeter
from orderguard.recovery.manager import OrderReference, RecoveryOperation
from orderguard.recovery.operations import OperationState


def bracket_response(
    *,
    op: RecoveryOperation,
    req: BracketRequest,
    facts: BracketFacts,
    final: Finish | None,
    going_flat: str | None,
    entry_order_id: int | None,
    entry_view: Order | None,
    slots: Mapping[LegKind, Slot],
    native: bool,
    error: str | None,
) -> BracketOrderResponse:
    """The caller's view: final once the saga finished, else what the facts say so far."""
    reason: str | None
    if final is not None:
        outcome, reason = final.outcome, final.reason
    else:
        outcome, reason = outcome_of(facts), going_flat
    owned = facts.owned
    success = entry_order_id is not None and outcome not in (
        BracketOutcome.NAKED,
        BracketOutcome.UNKNOWN,
    )
    if final is not None and final.state is OperationState.FAILED:
        success = False
    message = error
    if message is None and not success:
        message = reason or op.last_error
    return BracketOrderResponse(
        success=success,
        entry_order_id=entry_order_id,
        stop_order_id=slots[LegKind.STOP].order_id,
        target_order_id=slots[LegKind.TARGET].order_id,
        entry_price=req.entry_price,
        stop_loss_price=req.stop_price,
        take_profit_price=req.target_price,
        error_message=message,
        operation_id=op.operation_id,
        outcome=outcome,
        filled_size=facts.entry_filled,
        protected_size=min(max(owned, 0), facts.stop.covering),
        average_fill_price=None if entry_view is None else entry_view.filled_price,
        owned_size=owned,
        native=native,
        finished=final is not None,
        reason=reason,
    )


def bracket_result(
    decision: Finish, incidents: list[str], meter: ExposureMeter, now: float
) -> dict[str, Any]:
    """The ``bracket_result`` journaled with the operation when the saga finishes."""
    return {
        "outcome": decision.outcome.value,
        "reason": decision.reason,
        "incidents": list(incidents),
        **meter.as_dict(now),
    }


def placed_refs(
    op: RecoveryOperation, entry_order_id: int | None
) -> list[tuple[OrderReference, int]]:
    """The operation's legs with the order id each has at the broker (the entry's may be known
    to the saga only, found by its tag), whose final state is journaled at the end."""
    refs: list[tuple[OrderReference, int]] = []
    for leg, ref in op.orders.items():
        if ref.order_id is not None:
            refs.append((ref, ref.order_id))
        elif leg == "entry" and entry_order_id is not None:
            refs.append((ref, entry_order_id))
    return refs


__all__ = ["bracket_response", "bracket_result", "placed_refs"]
