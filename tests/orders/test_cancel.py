"""Cancels report final states: "filled" and "not found" are states, not errors (F11)."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

from orderguard.models import OrderSide, OrderStatus
from orderguard.orders import OrderManager, Resolution

from .conftest import ES, MNQ, Harness


async def _rest(h: Harness, contract: str = MNQ, price: str = "20990.00") -> int:
    return (await h.manager.place_limit_order(contract, OrderSide.BUY, 1, Decimal(price))).order_id


async def test_cancel_working_order(h: Harness) -> None:
    """Cancelling a resting order is truthy and reports Cancelled."""
    order_id = await _rest(h)
    result = await h.manager.cancel_order(order_id)
    assert result and result.cancelled and result.accepted
    assert h.exchange.order(1, order_id).status is OrderStatus.CANCELLED  # type: ignore[union-attr]


async def test_cancel_filled_order_reports_filled(h: Harness) -> None:
    """Cancelling a known filled order is falsy, says Filled, and sends nothing."""
    order_id = (await h.manager.place_market_order(MNQ, OrderSide.BUY, 1)).order_id
    await h.settle()
    calls = len(h.broker.calls)
    result = await h.manager.cancel_order(order_id)
    assert not result
    assert (result.status, result.found, result.filled) == (OrderStatus.FILLED, True, True)
    assert result.resolution is Resolution.ALREADY_FINAL
    assert len(h.broker.calls) == calls


async def test_cancel_filled_order_unknown_to_tracker_reads_state(h: Harness) -> None:
    """A fresh manager that never saw the fill learns it from the broker's refusal."""
    order_id = (await h.manager.place_market_order(MNQ, OrderSide.BUY, 1)).order_id
    async with OrderManager(h.sim, clock=h.clock, rng=random.Random(1)) as fresh:
        result = await fresh.cancel_order(order_id)
    assert not result
    assert (result.status, result.resolution, result.error_code) == (
        OrderStatus.FILLED,
        Resolution.STATE_READ,
        3,
    )


async def test_cancel_unknown_order_reports_not_found(h: Harness) -> None:
    """Cancelling an id that exists in no status is falsy with found=False, not an error."""
    result = await h.manager.cancel_order(999_999)
    assert not result
    assert (result.found, result.status) == (False, None)


async def test_cancel_twice_reports_cancelled_without_resending(h: Harness) -> None:
    """A second cancel of a cancelled order is truthy and sends nothing."""
    order_id = await _rest(h)
    await h.manager.cancel_order(order_id)
    calls = len(h.broker.calls)
    result = await h.manager.cancel_order(order_id)
    assert result and result.resolution is Resolution.ALREADY_FINAL
    assert len(h.broker.calls) == calls


async def test_cancel_partially_filled_keeps_fill_volume(make_harness: Any) -> None:
    """Cancelling a partly filled order reports Cancelled with its filled volume."""
    h: Harness = await make_harness()
    h.exchange.liquidity = 1
    order_id = (await h.manager.place_limit_order(MNQ, 0, 3, Decimal("21000.25"))).order_id
    result = await h.manager.cancel_order(order_id)
    assert result and result.fill_volume == 1


async def test_cancel_all_one_result_per_order(h: Harness) -> None:
    """cancel_all_orders returns one cancelled result per working order."""
    ids = [await _rest(h, price=p) for p in ("20990.00", "20980.00", "20970.00")]
    await _rest(h, ES, "5990.00")
    result = await h.manager.cancel_all_orders()
    assert sorted(r.order_id for r in result) == sorted([*ids, ids[-1] + 1])
    assert result and (result.total, result.cancelled, result.failed) == (4, 4, 0)
    assert h.exchange.open_orders(1) == []


async def test_cancel_all_by_contract_leaves_others(h: Harness) -> None:
    """cancel_all_orders(contract) cancels only that contract's orders."""
    ids = [await _rest(h, price=p) for p in ("20990.00", "20980.00")]
    other = await _rest(h, ES, "5990.00")
    result = await h.manager.cancel_all_orders("MNQ")
    assert sorted(r.order_id for r in result) == ids
    assert [o.id for o in h.exchange.open_orders(1)] == [other]


async def test_cancel_all_with_nothing_open_is_empty(h: Harness) -> None:
    """With no working orders there is nothing to report."""
    result = await h.manager.cancel_all_orders()
    assert len(result) == 0
