"""cancel_all_orders as a journaled BULK_CANCEL operation reporting every order's final state."""

from __future__ import annotations

from decimal import Decimal

from orderguard.broker.faults import FaultKind
from orderguard.models import OrderSide, OrderStatus

from .conftest import MNQ, Harness, HarnessFactory
from .operations_helpers import exchange_order, faults, faulty_harness


async def _rest(h: Harness, n: int) -> list[int]:
    ids = []
    for i in range(n):
        placed = await h.manager.place_limit_order(MNQ, OrderSide.BUY, 1, Decimal("20900.00") - i)
        ids.append(placed.order_id)
    return ids


async def test_bulk_cancel_completes_when_all_cancelled(h: Harness) -> None:
    """Every order ends cancelled at the exchange and the operation completes."""
    ids = await _rest(h, 3)
    result = await h.manager.cancel_all_orders()
    assert all(exchange_order(h, i).status is OrderStatus.CANCELLED for i in ids)
    status = h.manager.recovery.get_operation_status(result.operation_id or "")
    assert status is not None and status["type"] == "bulk_cancel"
    assert status["state"] == "completed"
    assert status["extra"]["final_states"] == {str(i): "cancelled" for i in ids}


async def test_bulk_cancel_reports_a_refused_cancel(make_harness: HarnessFactory) -> None:
    """A rejected cancel leaves that order working; the result and the record say so."""
    h = await faulty_harness(make_harness)
    ids = await _rest(h, 3)
    faults(h).fail_next("cancel_order", FaultKind.REJECT)
    result = await h.manager.cancel_all_orders()
    live = [i for i in ids if exchange_order(h, i).status is OrderStatus.OPEN]
    assert len(live) == 1
    assert (result.total, result.cancelled, result.failed) == (3, 2, 1)
    [refused] = [r for r in result if not r.cancelled]
    assert refused.order_id == live[0] and refused.status is OrderStatus.OPEN
    status = h.manager.recovery.get_operation_status(result.operation_id or "")
    assert status is not None and status["state"] == "failed"
    assert status["extra"]["final_states"][str(live[0])] == "open"


async def test_bulk_cancel_journals_one_cancel_intent_per_order(h: Harness) -> None:
    """Each cancel is an intent of the operation, with an outcome."""
    ids = await _rest(h, 2)
    result = await h.manager.cancel_all_orders()
    intents = await h.manager.journal.intents_for(result.operation_id or "")
    assert sorted(i.request["order_id"] for i in intents) == sorted(ids)
    assert {i.kind.value for i in intents} == {"cancel"}
    for intent in intents:
        assert await h.manager.journal.outcome_for(intent.intent_id) is not None


async def test_bulk_cancel_with_nothing_open_completes(h: Harness) -> None:
    """No working orders: the operation goes pending -> completed and nothing is sent."""
    result = await h.manager.cancel_all_orders()
    assert result.total == 0 and not h.broker.calls
    status = h.manager.recovery.get_operation_status(result.operation_id or "")
    assert status is not None and status["state"] == "completed"
