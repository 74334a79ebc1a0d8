"""Each placement method works on the simulated exchange and returns a project-x-py-style result."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from orderguard.config import OrderManagerConfig
from orderguard.errors import OrderRejectedError
from orderguard.models import OrderSide, OrderStatus, OrderType
from orderguard.orders import OrderManager

from .conftest import ES, MES, MNQ, Harness, make_sim


async def test_market_order_fills(h: Harness) -> None:
    """A market buy fills at once and opens a long position."""
    result = await h.manager.place_market_order(MNQ, OrderSide.BUY, 2)
    order = h.exchange.order(1, result.order_id)
    assert order is not None and order.status is OrderStatus.FILLED
    assert h.exchange.position_size(1, MNQ) == 2


async def test_limit_order_rests(h: Harness) -> None:
    """A limit buy below the market rests as Open at its price."""
    result = await h.manager.place_limit_order(MNQ, OrderSide.BUY, 1, Decimal("20990.00"))
    order = h.exchange.order(1, result.order_id)
    assert order is not None
    assert (order.status, order.type, order.limit_price) == (
        OrderStatus.OPEN,
        OrderType.LIMIT,
        Decimal("20990.00"),
    )


async def test_stop_order_rests(h: Harness) -> None:
    """A sell stop below the market rests as Open at its stop price."""
    result = await h.manager.place_stop_order(MNQ, OrderSide.SELL, 1, Decimal("20950.00"))
    order = h.exchange.order(1, result.order_id)
    assert order is not None
    assert (order.status, order.type, order.stop_price) == (
        OrderStatus.OPEN,
        OrderType.STOP,
        Decimal("20950.00"),
    )


async def test_trailing_stop_order_rests(h: Harness) -> None:
    """A trailing sell stop rests at the trail distance below the market."""
    result = await h.manager.place_trailing_stop_order(MNQ, OrderSide.SELL, 1, Decimal("10.00"))
    order = h.exchange.order(1, result.order_id)
    assert order is not None
    assert (order.type, order.stop_price) == (OrderType.TRAILING_STOP, Decimal("20990.00"))


async def test_join_bid_order_buys_at_the_bid(h: Harness) -> None:
    """A join-bid order is a buy limit at the best bid."""
    result = await h.manager.place_join_bid_order(MNQ, 1)
    order = h.exchange.order(1, result.order_id)
    assert order is not None
    assert (order.side, order.type, order.limit_price) == (
        OrderSide.BUY,
        OrderType.JOIN_BID,
        h.exchange.best_bid(MNQ),
    )


async def test_join_ask_order_sells_at_the_ask(h: Harness) -> None:
    """A join-ask order is a sell limit at the best ask."""
    result = await h.manager.place_join_ask_order(MNQ, 1)
    order = h.exchange.order(1, result.order_id)
    assert order is not None
    assert (order.side, order.type, order.limit_price) == (
        OrderSide.SELL,
        OrderType.JOIN_ASK,
        h.exchange.best_ask(MNQ),
    )


async def test_result_has_project_x_py_fields(h: Harness) -> None:
    """The response carries orderId/success/errorCode/errorMessage and the customTag."""
    result = await h.manager.place_limit_order(MNQ, 0, 1, Decimal("20990.00"))
    assert result.orderId == result.order_id
    assert (result.success, result.errorCode, result.errorMessage) == (True, 0, None)
    order = h.exchange.order(1, result.order_id)
    assert order is not None and order.custom_tag == result.custom_tag == result.customTag


async def test_side_accepts_wire_ints(h: Harness) -> None:
    """Sides 0 and 1 are buy and sell."""
    buy = await h.manager.place_limit_order(MNQ, 0, 1, Decimal("20990.00"))
    sell = await h.manager.place_limit_order(MNQ, 1, 1, Decimal("21010.00"))
    assert [h.exchange.order(1, r.order_id).side for r in (buy, sell)] == [  # type: ignore[union-attr]
        OrderSide.BUY,
        OrderSide.SELL,
    ]


async def test_contract_accepted_by_symbol(h: Harness) -> None:
    """A symbol (MNQ) resolves to its contract id."""
    result = await h.manager.place_limit_order("MNQ", OrderSide.BUY, 1, Decimal("20990.00"))
    order = h.exchange.order(1, result.order_id)
    assert order is not None and order.contract_id == MNQ


async def test_contract_accepted_by_cme_ticker(h: Harness) -> None:
    """A CME ticker (ES) resolves to ProjectX's contract (EP)."""
    result = await h.manager.place_limit_order("ES", OrderSide.BUY, 1, Decimal("5990.00"))
    order = h.exchange.order(1, result.order_id)
    assert order is not None and order.contract_id == ES


async def test_float_prices_on_the_grid_are_accepted(h: Harness) -> None:
    """A float price on the tick grid is accepted exactly."""
    result = await h.manager.place_limit_order(MNQ, OrderSide.BUY, 1, 20990.25)
    order = h.exchange.order(1, result.order_id)
    assert order is not None and order.limit_price == Decimal("20990.25")


async def test_tags_are_unique(h: Harness) -> None:
    """Every placement gets a different customTag."""
    results = [
        await h.manager.place_limit_order(MNQ, OrderSide.BUY, 1, Decimal("20990.00"))
        for _ in range(20)
    ]
    assert len({r.custom_tag for r in results}) == 20


async def test_tags_are_deterministic_given_the_rng() -> None:
    """Two managers with the same seed produce the same tags; another seed differs."""

    async def tags(seed: int) -> list[str]:
        clock, _, broker = make_sim()
        async with OrderManager(broker, clock=clock, rng=random.Random(seed)) as manager:
            return [
                (await manager.place_limit_order(MNQ, 0, 1, Decimal("20990.00"))).custom_tag
                for _ in range(3)
            ]

    assert await tags(1) == await tags(1)
    assert await tags(1) != await tags(2)


async def test_broker_rejection_raises_with_code(h: Harness) -> None:
    """A definitive rejection raises OrderRejectedError with the endpoint's code."""
    h.exchange.set_max_order_size(1, 50)
    with pytest.raises(OrderRejectedError) as info:
        await h.manager.place_market_order(MES, OrderSide.BUY, 1)  # MES has no market
    assert info.value.code == 2


async def test_stop_without_market_allowed_by_config(make_harness: object) -> None:
    """With allow_stop_without_last_price the stop is sent when the market is unknown."""
    harness: Harness = await make_harness(  # type: ignore[operator]
        config=OrderManagerConfig(allow_stop_without_last_price=True)
    )
    with pytest.raises(OrderRejectedError):  # the sim itself refuses a stop with no market
        await harness.manager.place_stop_order(MES, OrderSide.SELL, 1, Decimal("5000.00"))
    assert [kind for kind, _ in harness.broker.calls] == ["place"]


async def test_response_reports_status_once_events_arrived(h: Harness) -> None:
    """After events are delivered the tracker knows the order placed through the manager."""
    result = await h.manager.place_market_order(MNQ, OrderSide.BUY, 1)
    await h.settle()
    order = await h.manager.get_order_by_id(result.order_id)
    assert order is not None and order.status is OrderStatus.FILLED
