"""cancel_position_orders really cancels and reports each order's final state (F11, F12)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from orderguard.broker.base import Outcome
from orderguard.errors import ValidationError
from orderguard.models import BracketSpec, Order, OrderRequest, OrderSide, OrderStatus, OrderType
from orderguard.orders.positions.results import CancelPositionOrdersResult

from .conftest import ES, MNQ, Harness, HarnessFactory
from .fakes import DelegatingBroker
from .position_helpers import open_position, quiet, working


async def _stop_target_entry(h: Harness) -> tuple[int, int, int]:
    """A long of 2 with a stop, a target and a resting buy (entry) limit."""
    await open_position(h, 2)
    stop = await h.manager.add_stop_loss(MNQ, Decimal("20990.00"))
    target = await h.manager.add_take_profit(MNQ, Decimal("21010.00"))
    entry = await h.manager.place_limit_order(MNQ, OrderSide.BUY, 1, Decimal("20980.00"))
    await quiet(h)
    return stop.order_id, target.order_id, entry.order_id


async def test_cancels_everything_at_the_exchange(h: Harness) -> None:
    """Every working order of the contract ends cancelled at the exchange (not just in a count)."""
    await _stop_target_entry(h)
    result = await h.manager.cancel_position_orders(MNQ)
    assert working(h) == []
    assert (result["entry"], result["stop"], result["target"]) == (1, 1, 1)
    assert (result["failed"], result["errors"]) == (0, [])
    assert result.success


async def test_reports_each_order_final_state(h: Harness) -> None:
    """One entry per order, with the state re-read after the cancel."""
    stop, target, entry = await _stop_target_entry(h)
    result = await h.manager.cancel_position_orders(MNQ)
    states = {o.order_id: (o.kind, o.status) for o in result.orders}
    assert states == {
        stop: ("stop", OrderStatus.CANCELLED),
        target: ("target", OrderStatus.CANCELLED),
        entry: ("entry", OrderStatus.CANCELLED),
    }


async def test_only_requested_types_are_cancelled(h: Harness) -> None:
    """order_types=("stop",) leaves the target and the entry working."""
    stop, target, entry = await _stop_target_entry(h)
    result = await h.manager.cancel_position_orders(MNQ, order_types=("stop",))
    assert sorted(o.id for o in working(h)) == sorted([target, entry])
    assert result.counts == {"entry": 0, "stop": 1, "target": 0}
    assert h.exchange.order(1, stop).status is OrderStatus.CANCELLED  # type: ignore[union-attr]


async def test_other_contracts_are_untouched(h: Harness) -> None:
    """Orders on another contract keep working."""
    await _stop_target_entry(h)
    other = await h.manager.place_limit_order(ES, OrderSide.BUY, 1, Decimal("5990.00"))
    await h.manager.cancel_position_orders(MNQ)
    assert [o.id for o in working(h, ES)] == [other.order_id]


async def test_unmanaged_orders_are_classified_by_side_and_type(h: Harness) -> None:
    """Hand-placed reducing stop/limit count as stop/target; a same-side limit is an entry."""
    await open_position(h, 2)
    await h.manager.place_stop_order(MNQ, OrderSide.SELL, 2, Decimal("20990.00"))
    await h.manager.place_limit_order(MNQ, OrderSide.SELL, 2, Decimal("21010.00"))
    await h.manager.place_limit_order(MNQ, OrderSide.BUY, 1, Decimal("20980.00"))
    result = await h.manager.cancel_position_orders(MNQ)
    assert result.counts == {"entry": 1, "stop": 1, "target": 1}
    assert working(h) == []


async def test_suspended_bracket_children_are_cancelled(h: Harness) -> None:
    """Native bracket legs (Suspended, invisible to searchOpen) are found and cancelled too."""
    await h.sim.place_order(
        OrderRequest(
            account_id=1,
            contract_id=MNQ,
            type=OrderType.LIMIT,
            side=OrderSide.BUY,
            size=1,
            limit_price=Decimal("20980.00"),
            custom_tag="bracket-1",
            stop_loss_bracket=BracketSpec(-40, OrderType.STOP),
            take_profit_bracket=BracketSpec(40, OrderType.LIMIT),
        )
    )
    await quiet(h)
    assert len(working(h)) == 3
    result = await h.manager.cancel_position_orders(MNQ)
    assert working(h) == []
    assert result.counts == {"entry": 1, "stop": 1, "target": 1}


async def test_nothing_to_cancel_is_a_clean_empty_result(h: Harness) -> None:
    """No working orders: zero counts, nothing failed, nothing sent."""
    calls = len(h.broker.calls)
    result = await h.manager.cancel_position_orders(MNQ)
    assert result.as_dict() == {
        "entry": 0,
        "stop": 0,
        "target": 0,
        "filled": 0,
        "failed": 0,
        "errors": [],
        "orders": [],
    }
    assert len(h.broker.calls) == calls


async def test_unknown_order_type_name_is_refused(h: Harness) -> None:
    """A kind other than entry/stop/target is a ValidationError."""
    with pytest.raises(ValidationError):
        await h.manager.cancel_position_orders(MNQ, order_types=("stops",))


class FillBeforeCancelBroker(DelegatingBroker):
    """The market runs through the order just before the cancel reaches the exchange."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.crash_to: Decimal | None = None

    async def cancel_order(self, account_id: int, order_id: int) -> Outcome:
        if self.crash_to is not None:
            self.inner.exchange.set_price(MNQ, self.crash_to)
            self.crash_to = None
        return await super().cancel_order(account_id, order_id)


async def test_order_that_filled_before_its_cancel_is_reported_filled(
    make_harness: HarnessFactory,
) -> None:
    """F11: a stop filled before the cancel is reported filled, not failed and not raised."""
    h: Harness = await make_harness(wrapper=FillBeforeCancelBroker)
    await open_position(h, 1)
    stop = await h.manager.add_stop_loss(MNQ, Decimal("20990.00"))
    h.broker.crash_to = Decimal("20980.00")  # type: ignore[attr-defined]
    result = await h.manager.cancel_position_orders(MNQ, order_types=("stop",))
    [outcome] = result.orders
    assert (outcome.order_id, outcome.status, outcome.fill_volume) == (
        stop.order_id,
        OrderStatus.FILLED,
        1,
    )
    assert (result["stop"], result["filled"], result["failed"]) == (0, 1, 0)
    assert h.exchange.position_size(1, MNQ) == 0


async def test_callback_calling_cancel_position_orders_does_not_deadlock(h: Harness) -> None:
    """F12: an order_filled callback that awaits cancel_position_orders completes."""
    results: list[CancelPositionOrdersResult] = []

    async def on_filled(order: Order) -> None:
        if order.type is OrderType.LIMIT and order.side is OrderSide.BUY:
            results.append(await h.manager.cancel_position_orders(MNQ, order_types=("entry",)))

    h.manager.add_callback("order_filled", on_filled)
    await h.manager.place_limit_order(MNQ, OrderSide.BUY, 1, Decimal("20990.00"))
    await h.manager.place_limit_order(MNQ, OrderSide.BUY, 1, Decimal("20950.00"))
    h.exchange.set_price(MNQ, Decimal("20985.00"))
    await quiet(h)
    assert len(results) == 1 and results[0]["entry"] == 1
    assert working(h) == []


async def test_concurrent_calls_each_end_with_nothing_working(h: Harness) -> None:
    """Two overlapping calls on one contract both finish; no order is left working."""
    await _stop_target_entry(h)
    first, second = await asyncio.gather(
        h.manager.cancel_position_orders(MNQ), h.manager.cancel_position_orders(MNQ)
    )
    assert working(h) == []
    assert first.success and second.success
