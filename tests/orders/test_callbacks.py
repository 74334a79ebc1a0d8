"""Callbacks run after state is updated, outside locks; re-entry never deadlocks (F12, F8)."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from typing import Any

import pytest

from orderguard.models import Order, OrderSide, OrderStatus, Trade
from orderguard.orders import CancelResult

from .conftest import MNQ, Harness
from .fakes import EventFilterBroker, TradeFirst, drop_fill_order_events


async def test_order_filled_fires_once(h: Harness) -> None:
    """order_filled fires exactly once for a market order, with the filled order."""
    seen: list[Order] = []
    h.manager.add_callback("order_filled", seen.append)
    result = await h.manager.place_market_order(MNQ, OrderSide.BUY, 1)
    await h.settle()
    await h.manager.get_order_by_id(result.order_id, refresh=True)  # a duplicate via REST
    assert [(o.id, o.status) for o in seen] == [(result.order_id, OrderStatus.FILLED)]


async def test_callback_sees_updated_state(h: Harness) -> None:
    """When a callback runs, the manager's own view already shows the new state."""
    views: list[Order | None] = []
    h.manager.add_callback("order_filled", lambda o: views.append(h.manager.tracker.get(o.id)))
    await h.manager.place_market_order(MNQ, OrderSide.BUY, 1)
    await h.settle()
    assert views and views[0] is not None and views[0].status is OrderStatus.FILLED


async def test_on_order_update_sees_each_change(h: Harness) -> None:
    """on_order_update is called for placement and cancellation."""
    statuses: list[OrderStatus] = []
    h.manager.on_order_update(lambda o: statuses.append(o.status))
    order_id = (await h.manager.place_limit_order(MNQ, 0, 1, Decimal("20990.00"))).order_id
    await h.settle()
    await h.manager.cancel_order(order_id)
    await h.settle()
    assert statuses == [OrderStatus.OPEN, OrderStatus.CANCELLED]


async def test_trade_executed_receives_trade(h: Harness) -> None:
    """trade_executed is called with each new Trade."""
    trades: list[Trade] = []
    h.manager.add_callback("trade_executed", trades.append)
    result = await h.manager.place_market_order(MNQ, OrderSide.BUY, 2)
    await h.settle()
    assert [(t.order_id, t.size) for t in trades] == [(result.order_id, 2)]


async def test_failing_callback_is_logged_and_counted(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """A raising callback is logged and counted; later callbacks still run."""
    later: list[Order] = []

    def boom(order: Order) -> None:
        raise RuntimeError("user bug")

    h.manager.add_callback("order_filled", boom)
    h.manager.add_callback("order_filled", later.append)
    with caplog.at_level(logging.ERROR, logger="orderguard.orders.callbacks"):
        await h.manager.place_market_order(MNQ, OrderSide.BUY, 1)
        await h.settle()
    assert len(later) == 1
    assert h.manager.get_order_statistics()["callback_errors"] == 1
    assert "user bug" in caplog.text


async def test_failing_async_callback_is_counted(h: Harness) -> None:
    """An async callback that raises is counted, not propagated."""

    async def boom(order: Order) -> None:
        raise RuntimeError("async user bug")

    h.manager.add_callback("order_filled", boom)
    await h.manager.place_market_order(MNQ, OrderSide.BUY, 1)
    await h.settle()
    assert h.manager.get_order_statistics()["callback_errors"] == 1


async def test_async_callback_reenters_manager_without_deadlock(h: Harness) -> None:
    """An order_filled callback that awaits cancel_order on the same manager completes."""
    sibling = (await h.manager.place_limit_order(MNQ, 1, 1, Decimal("21010.00"))).order_id
    results: list[CancelResult] = []
    done = asyncio.Event()

    async def cancel_sibling(order: Order) -> None:
        if order.id != sibling:
            results.append(await h.manager.cancel_order(sibling))
            done.set()

    h.manager.add_callback("order_filled", cancel_sibling)
    await h.manager.place_market_order(MNQ, OrderSide.BUY, 1)
    await h.clock.run(done.wait(), max_seconds=5)  # DeadlockError if it never completes
    assert results[0].cancelled


async def test_sync_callback_may_register_and_remove_callbacks(h: Harness) -> None:
    """A callback that removes itself and adds another during dispatch is safe."""
    calls: list[str] = []

    def once(order: Order) -> None:
        calls.append("once")
        h.manager.remove_callback("order_update", once)
        h.manager.add_callback("order_update", lambda o: calls.append("later"))

    h.manager.on_order_update(once)
    order_id = (await h.manager.place_limit_order(MNQ, 0, 1, Decimal("20990.00"))).order_id
    await h.settle()
    await h.manager.cancel_order(order_id)
    await h.settle()
    assert calls == ["once", "later"]


async def test_trade_before_order_counts_as_fill(make_harness: Any) -> None:
    """A trade delivered before its order update still marks the order filled (F8)."""
    h: Harness = await make_harness(lambda sim: EventFilterBroker(sim, TradeFirst()))
    filled: list[Order] = []
    h.manager.add_callback("order_filled", filled.append)
    result = await h.manager.place_market_order(MNQ, OrderSide.BUY, 1)
    await h.settle()
    assert [o.id for o in filled] == [result.order_id]


async def test_fill_known_from_trades_alone(make_harness: Any) -> None:
    """With every filled-order update lost, the trade alone tells the order filled (F8)."""
    h: Harness = await make_harness(lambda sim: EventFilterBroker(sim, drop_fill_order_events))
    order_id = (await h.manager.place_limit_order(MNQ, 0, 1, Decimal("20990.00"))).order_id
    await h.settle()
    h.exchange.set_price(MNQ, Decimal("20985.00"))
    await h.settle()
    searches = h.broker.searches
    assert await h.manager.is_order_filled(order_id) is True
    assert h.broker.searches == searches  # answered from the tracker


async def test_failed_background_task_is_logged_and_counted_at_once(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """A background task (a saga, a poller) that dies of a bug is reported when it ends, not
    whenever asyncio garbage-collects it; a cancelled one is not a failure."""

    async def broken() -> None:
        raise RuntimeError("saga bug")

    async def idle() -> None:
        await asyncio.Event().wait()

    with caplog.at_level(logging.ERROR, logger="orderguard.orders"):
        failed = h.manager.spawn(broken())  # white-box: how the manager starts its tasks
        stopped = h.manager.spawn(idle())
        await asyncio.sleep(0)
        stopped.cancel()
        await asyncio.gather(failed, stopped, return_exceptions=True)
    assert h.manager.get_order_statistics()["background_task_failures"] == 1
    assert "saga bug" in caplog.text
    assert failed not in h.manager._tasks and stopped not in h.manager._tasks
