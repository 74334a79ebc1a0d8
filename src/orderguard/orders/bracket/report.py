"""What a bracket saga tells: the caller's response, and the result journaled at its end.

Pure: built from the saga's facts and records, passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orderguard.models import Order
from orderguard.orders.bracket.plan import BracketFacts, Finish, LegKind, outcome_of
from orderguard.orders.bracket.state import BracketRequest, Slot
from orderguard.orders.bracket.values import BracketOrderResponse, BracketOutcome
from orderguard.orders.exposure import ExposureMeter
from orderguard.recovery.legs import STOP, TARGET, has_role
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
    exit_views: Mapping[LegKind, Order | None] | None = None,
) -> BracketOrderResponse:
    """The caller's view: final once the saga finished, else what the facts say so far.

    Prices are the working exits' own (``exit_views``) when known; fills of the exits are
    counted over every generation from the operation's legs."""
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
    views = exit_views or {}
    stop_view, target_view = views.get(LegKind.STOP), views.get(LegKind.TARGET)
    stop_price = stop_view.stop_price if stop_view is not None else None
    target_price = target_view.limit_price if target_view is not None else None
    stop_filled = sum(r.filled_size for r in op.orders.values() if has_role(r.leg, STOP))
    target_filled = sum(r.filled_size for r in op.orders.values() if has_role(r.leg, TARGET))
    if stop_filled and target_filled and reason is not None and "both" not in reason:
        reason = f"{reason}; both exits filled (stop {stop_filled}, target {target_filled})"
    return BracketOrderResponse(
        success=success,
        entry_order_id=entry_order_id,
        stop_order_id=slots[LegKind.STOP].order_id,
        target_order_id=slots[LegKind.TARGET].order_id,
        entry_price=req.entry_price,
        stop_loss_price=stop_price if stop_price is not None else req.stop_price,
        take_profit_price=target_price if target_price is not None else req.target_price,
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
        stop_filled=stop_filled,
        target_filled=target_filled,
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
