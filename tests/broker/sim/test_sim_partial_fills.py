"""Partial fills under the liquidity model: at most N contracts per order per matching run."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from orderguard.broker.sim import SimExchange
from orderguard.clock import VirtualClock
from orderguard.models import Order, OrderRequest, OrderStatus, OrderType

D = Decimal
MNQ = "CON.F.US.MNQ.Z26"
RequestFactory = Callable[..., OrderRequest]


@pytest.fixture
def thin(clock: VirtualClock) -> SimExchange:
    """A market where one order fills at most 2 contracts per price step; MNQ at 21000."""
    ex = SimExchange(clock, liquidity=2)
    ex.open_account()
    ex.set_price(MNQ, D("21000"))
    return ex


def get(ex: SimExchange, order_id: int | None) -> Order:
    order = ex.order(1, order_id or 0)
    assert order is not None
    return order


def test_market_order_fills_liquidity_per_step(thin: SimExchange, req: RequestFactory) -> None:
    """A market buy of 5 fills 2 at once, 2 on the next step and the last 1 on the step after."""
    result = thin.place(req(OrderType.MARKET, "buy", 5))
    volumes = [get(thin, result.order_id).fill_volume]
    for _ in range(2):
        thin.set_price(MNQ, D("21000"))
        volumes.append(get(thin, result.order_id).fill_volume)
    assert volumes == [2, 4, 5]
    assert get(thin, result.order_id).status is OrderStatus.FILLED


def test_partially_filled_order_stays_open(thin: SimExchange, req: RequestFactory) -> None:
    """An order with fill_volume below its size is still Open."""
    result = thin.place(req(OrderType.MARKET, "buy", 3))
    order = get(thin, result.order_id)
    assert (order.status, order.fill_volume, order.remaining) == (OrderStatus.OPEN, 2, 1)


def test_filled_price_is_the_average_of_the_fills(thin: SimExchange, req: RequestFactory) -> None:
    """Two contracts at 21000.25 and two at 21001.25 average 21000.75."""
    result = thin.place(req(OrderType.MARKET, "buy", 4))
    thin.set_price(MNQ, D("21001"))
    assert get(thin, result.order_id).filled_price == D("21000.75")


def test_resting_limit_fills_in_slices_at_its_limit(thin: SimExchange, req: RequestFactory) -> None:
    """A resting buy limit for 3 fills 2 then 1, each at its limit."""
    result = thin.place(req(OrderType.LIMIT, "buy", 3, limit_price=D("20995")))
    thin.set_price(MNQ, D("20990"))
    thin.set_price(MNQ, D("20990"))
    assert [t.size for t in thin.trades(1)] == [2, 1]
    assert {t.price for t in thin.trades(1)} == {D("20995")}
    assert get(thin, result.order_id).status is OrderStatus.FILLED


def test_cancel_of_a_partial_fill_keeps_the_filled_volume(
    thin: SimExchange, req: RequestFactory
) -> None:
    """Cancelling a partly filled order cancels the rest; fill_volume and the position stay."""
    result = thin.place(req(OrderType.MARKET, "buy", 5))
    assert thin.cancel(1, result.order_id or 0).success
    order = get(thin, result.order_id)
    assert (order.status, order.fill_volume) == (OrderStatus.CANCELLED, 2)
    assert thin.position_size(1, MNQ) == 2


def test_liquidity_applies_per_order_not_per_market(thin: SimExchange, req: RequestFactory) -> None:
    """Two resting orders each fill their own 2 contracts on the same step."""
    first = thin.place(req(OrderType.LIMIT, "buy", 2, limit_price=D("20995")))
    second = thin.place(req(OrderType.LIMIT, "buy", 2, limit_price=D("20995")))
    thin.set_price(MNQ, D("20990"))
    assert get(thin, first.order_id).fill_volume == 2
    assert get(thin, second.order_id).fill_volume == 2


def test_position_close_is_not_limited_by_liquidity(thin: SimExchange, req: RequestFactory) -> None:
    """close_position flattens the whole position at once whatever the liquidity."""
    thin.place(req(OrderType.MARKET, "buy", 2))
    thin.place(req(OrderType.MARKET, "buy", 2))
    assert thin.close_position(1, MNQ).success
    assert thin.position_size(1, MNQ) == 0
