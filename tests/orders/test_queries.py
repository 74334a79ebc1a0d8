"""Order lookups see every status; a filled order is never read as missing."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest

from orderguard.broker.base import Confirmed, ConnectionEvent, ConnectionState
from orderguard.errors import OrderNotFoundError
from orderguard.models import OrderRequest, OrderSide, OrderStatus, OrderType
from orderguard.orders import OrderManager

from .conftest import ES, MNQ, Harness
from .fakes import OpenOnlyGetOrderBroker


async def test_get_order_by_id_finds_filled(h: Harness) -> None:
    """A filled order is found."""
    order_id = (await h.manager.place_market_order(MNQ, OrderSide.BUY, 1)).order_id
    order = await h.manager.get_order_by_id(order_id)
    assert order is not None and order.status is OrderStatus.FILLED


async def test_get_order_by_id_finds_cancelled(h: Harness) -> None:
    """A cancelled order is found."""
    order_id = (await h.manager.place_limit_order(MNQ, 0, 1, Decimal("20990.00"))).order_id
    await h.manager.cancel_order(order_id)
    order = await h.manager.get_order_by_id(order_id)
    assert order is not None and order.status is OrderStatus.CANCELLED


async def test_get_order_by_id_falls_back_to_search_window(make_harness: Any) -> None:
    """When get_order only sees open orders, the search window still finds a filled one."""
    h: Harness = await make_harness(OpenOnlyGetOrderBroker)
    outcome = await h.sim.place_order(_market(1))
    assert isinstance(outcome, Confirmed) and outcome.order_id is not None
    order_id = outcome.order_id
    order = await h.manager.get_order_by_id(order_id)
    assert order is not None and order.status is OrderStatus.FILLED


async def test_get_order_by_id_unknown_is_none(h: Harness) -> None:
    """An id that exists in no status is None."""
    assert await h.manager.get_order_by_id(424242) is None


async def test_get_order_by_id_refresh_reads_broker(h: Harness) -> None:
    """refresh=True reads the broker even when the cache has the order."""
    order_id = (await h.manager.place_limit_order(MNQ, 0, 1, Decimal("20990.00"))).order_id
    await h.settle()
    await h.sim.cancel_order(1, order_id)  # behind the manager's back; event not yet delivered
    order = await h.manager.get_order_by_id(order_id, refresh=True)
    assert order is not None and order.status is OrderStatus.CANCELLED


async def test_is_order_filled(h: Harness) -> None:
    """is_order_filled is True for a filled order and False for a resting one."""
    filled = (await h.manager.place_market_order(MNQ, OrderSide.BUY, 1)).order_id
    resting = (await h.manager.place_limit_order(MNQ, 0, 1, Decimal("20990.00"))).order_id
    assert await h.manager.is_order_filled(filled) is True
    assert await h.manager.is_order_filled(resting) is False


async def test_is_order_filled_unknown_raises(h: Harness) -> None:
    """is_order_filled of an order that exists nowhere raises OrderNotFoundError."""
    with pytest.raises(OrderNotFoundError):
        await h.manager.is_order_filled(424242)


async def test_is_order_filled_sees_fill_behind_cache(h: Harness) -> None:
    """A resting order that filled while events were missing is re-read and reported filled."""
    order_id = (await h.manager.place_limit_order(MNQ, 0, 1, Decimal("20990.00"))).order_id
    await h.settle()
    h.manager._close_subscription()  # events lost from here
    h.exchange.set_price(MNQ, Decimal("20985.00"))
    assert await h.manager.is_order_filled(order_id) is True


async def test_search_open_orders_filters(h: Harness) -> None:
    """search_open_orders filters by contract (id or symbol) and side."""
    buy = (await h.manager.place_limit_order(MNQ, 0, 1, Decimal("20990.00"))).order_id
    sell = (await h.manager.place_limit_order(MNQ, 1, 1, Decimal("21010.00"))).order_id
    other = (await h.manager.place_limit_order(ES, 0, 1, Decimal("5990.00"))).order_id
    assert {o.id for o in await h.manager.search_open_orders()} == {buy, sell, other}
    assert {o.id for o in await h.manager.search_open_orders("MNQ")} == {buy, sell}
    assert [o.id for o in await h.manager.search_open_orders(MNQ, side=1)] == [sell]


async def test_search_open_orders_excludes_filled(h: Harness) -> None:
    """Filled orders are not open."""
    await h.manager.place_market_order(MNQ, OrderSide.BUY, 1)
    assert await h.manager.search_open_orders() == []


async def test_modify_limit_price(h: Harness) -> None:
    """modify_order moves a resting limit and reports the live order."""
    order_id = (await h.manager.place_limit_order(MNQ, 0, 1, Decimal("20990.00"))).order_id
    result = await h.manager.modify_order(order_id, limit_price=Decimal("20985.00"))
    assert result and result.order is not None
    assert h.exchange.order(1, order_id).limit_price == Decimal("20985.00")  # type: ignore[union-attr]


async def test_modify_filled_order_reports_state_without_sending(h: Harness) -> None:
    """Modifying a filled order is falsy, reports Filled, and sends nothing."""
    order_id = (await h.manager.place_market_order(MNQ, OrderSide.BUY, 1)).order_id
    calls = len(h.broker.calls)
    result = await h.manager.modify_order(order_id, size=2)
    assert not result and result.order is not None and result.order.status is OrderStatus.FILLED
    assert len(h.broker.calls) == calls


async def test_reconnect_reconciles_from_rest(h: Harness) -> None:
    """After a reconnect event the manager re-reads orders it missed during the gap."""
    order_id = (await h.manager.place_limit_order(MNQ, 0, 1, Decimal("20990.00"))).order_id
    await h.settle()
    sub = h.manager._subscription
    h.manager._subscription = None
    assert sub is not None
    sub.close()
    h.exchange.set_price(MNQ, Decimal("20985.00"))  # fills during the gap
    h.manager._subscription = h.sim.subscribe(h.manager.feed.on_event)
    h.sim.emit(ConnectionEvent(ConnectionState.RECONNECTED))
    await h.settle()
    order = h.manager.tracker.get(order_id)
    assert order is not None and order.status is OrderStatus.FILLED


async def test_fresh_manager_finds_old_orders(h: Harness) -> None:
    """A manager started after an order filled still finds it by id."""
    order_id = (await h.manager.place_market_order(MNQ, OrderSide.BUY, 1)).order_id
    async with OrderManager(h.sim, clock=h.clock, rng=random.Random(3)) as fresh:
        order = await fresh.get_order_by_id(order_id)
    assert order is not None and order.status is OrderStatus.FILLED


def _market(size: int) -> OrderRequest:
    return OrderRequest(1, MNQ, OrderType.MARKET, OrderSide.BUY, size, custom_tag="manual-mkt")
