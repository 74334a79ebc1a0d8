"""modify_order as a journaled ORDER_MODIFICATION: a failed modification says what is live."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orderguard.broker.faults import FaultKind
from orderguard.errors import OrderRejectedError
from orderguard.models import OrderSide
from orderguard.orders.results import Resolution

from .conftest import MNQ, Harness, HarnessFactory
from .operations_helpers import exchange_order, faults, faulty_harness

OLD = Decimal("20900.00")
NEW = Decimal("20950.00")


async def _resting(h: Harness) -> int:
    placed = await h.manager.place_limit_order(MNQ, OrderSide.BUY, 1, OLD)
    return placed.order_id


async def test_confirmed_modify_completes_the_operation(h: Harness) -> None:
    """The exchange shows the new price and the operation completes, previous state kept."""
    order_id = await _resting(h)
    result = await h.manager.modify_order(order_id, limit_price=NEW)
    assert exchange_order(h, order_id).limit_price == NEW and result.success
    status = h.manager.recovery.get_operation_status(result.operation_id or "")
    assert status is not None and status["state"] == "completed"
    assert Decimal(str(status["extra"]["previous"]["limit_price"])) == OLD


async def test_rejected_modify_leaves_the_previous_working_state(
    make_harness: HarnessFactory,
) -> None:
    """A rejection changes nothing at the exchange; the record fails saying what is live."""
    h = await faulty_harness(make_harness)
    order_id = await _resting(h)
    faults(h).fail_next("modify_order", FaultKind.REJECT)
    with pytest.raises(OrderRejectedError, match="unchanged"):
        await h.manager.modify_order(order_id, limit_price=NEW)
    live = exchange_order(h, order_id)
    assert live.limit_price == OLD and live.is_working
    [op] = await h.manager.journal.operations(limit=1)
    assert (op.type, op.state) == ("order_modification", "failed")


async def test_modify_answer_lost_but_applied_reads_the_change(
    make_harness: HarnessFactory,
) -> None:
    """Executed, answer lost: the re-read shows the change; success from broker truth."""
    h = await faulty_harness(make_harness)
    order_id = await _resting(h)
    faults(h).fail_next("modify_order", FaultKind.AMBIGUOUS)
    result = await h.manager.modify_order(order_id, limit_price=NEW)
    assert exchange_order(h, order_id).limit_price == NEW
    assert result.success and result.resolution is Resolution.STATE_READ
    assert result.order is not None and result.order.limit_price == NEW


async def test_modify_lost_on_the_way_reports_the_live_previous_state(
    make_harness: HarnessFactory,
) -> None:
    """Never arrived: the result says the previous price is live, and the exchange agrees."""
    h = await faulty_harness(make_harness)
    order_id = await _resting(h)
    faults(h).fail_next("modify_order", FaultKind.LOST)
    result = await h.manager.modify_order(order_id, limit_price=NEW)
    assert not result.success
    assert result.order is not None and result.order.limit_price == OLD
    assert exchange_order(h, order_id).limit_price == OLD
    assert "limit_price=20900" in (result.error_message or "")
    status = h.manager.recovery.get_operation_status(result.operation_id or "")
    assert status is not None and status["state"] == "failed"
