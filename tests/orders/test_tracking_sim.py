"""The tracker converges to the simulated exchange's truth under any delivery order (F8)."""

from __future__ import annotations

import asyncio
import functools
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from orderguard.broker.base import BrokerEvent, OrderEvent, TradeEvent
from orderguard.broker.sim import SimExchange, default_contracts
from orderguard.clock import VirtualClock
from orderguard.models import Order, OrderRequest, OrderSide, OrderType
from orderguard.orders.feed.tracking import OrderTracker

MNQ = "CON.F.US.MNQ.Z26"


def _limit(side: OrderSide, size: int, price: str, tag: str) -> OrderRequest:
    return OrderRequest(1, MNQ, OrderType.LIMIT, side, size, Decimal(price), custom_tag=tag)


async def _scenario() -> tuple[list[BrokerEvent], list[Order]]:
    clock = VirtualClock()
    exchange = SimExchange(clock, contracts=default_contracts(), liquidity=1)
    exchange.open_account(account_id=1, name="SIM-1", balance=Decimal("50000"))
    exchange.set_price(MNQ, Decimal("21000.00"))
    events: list[BrokerEvent] = []
    exchange.listen(events.append)

    async def step() -> None:
        await clock.advance(1)

    a = exchange.place(_limit(OrderSide.BUY, 3, "21000.25", "a")).order_id  # 1 fills on arrival
    await step()
    exchange.set_price(MNQ, Decimal("21000.00"))  # a: 2 of 3
    await step()
    b = exchange.place(_limit(OrderSide.BUY, 1, "20990.00", "b")).order_id
    await step()
    assert b is not None
    exchange.modify(1, b, limit_price=Decimal("20985.00"))
    await step()
    exchange.cancel(1, b)
    await step()
    exchange.set_price(MNQ, Decimal("20999.75"))  # a: filled
    await step()
    c = exchange.place(_limit(OrderSide.SELL, 2, "21010.00", "c")).order_id
    await step()
    exchange.set_price(MNQ, Decimal("21010.00"))  # c: 1 of 2
    await step()
    assert a is not None and c is not None
    exchange.cancel(1, c)  # c: cancelled with 1 filled
    relevant: list[BrokerEvent] = [e for e in events if isinstance(e, OrderEvent | TradeEvent)]
    return relevant, exchange.orders(1)


@functools.cache
def real_sequence() -> tuple[tuple[BrokerEvent, ...], tuple[Order, ...]]:
    events, truth = asyncio.run(_scenario())
    return tuple(events), tuple(truth)


def _apply(tracker: OrderTracker, event: BrokerEvent) -> None:
    if isinstance(event, OrderEvent):
        tracker.apply_order(event.order)
    elif isinstance(event, TradeEvent):
        tracker.apply_trade(event.trade)


def _essence(order: Order | None) -> tuple[object, ...]:
    assert order is not None
    return (order.status, order.fill_volume, order.size, order.limit_price, order.custom_tag)


def test_in_order_delivery_matches_exchange() -> None:
    """Applying the exchange's events in order reproduces its final orders."""
    events, truth = real_sequence()
    tracker = OrderTracker()
    for event in events:
        _apply(tracker, event)
    assert [_essence(tracker.get(o.id)) for o in truth] == [_essence(o) for o in truth]


@st.composite
def deliveries(draw: st.DrawFn) -> list[BrokerEvent]:
    events = list(real_sequence()[0])
    extra = draw(st.lists(st.sampled_from(events), max_size=15))
    return draw(st.permutations([*events, *extra]))


@settings(max_examples=300, deadline=None)
@given(deliveries())
def test_any_delivery_order_converges_to_exchange_truth(events: list[BrokerEvent]) -> None:
    """Shuffled and duplicated real events converge to the exchange's final orders."""
    _, truth = real_sequence()
    tracker = OrderTracker()
    fills: dict[int, int] = {}
    for event in events:
        _apply(tracker, event)
        for order in tracker.orders():
            assert order.fill_volume >= fills.get(order.id, 0)  # never backwards
            fills[order.id] = order.fill_volume
    assert [_essence(tracker.get(o.id)) for o in truth] == [_essence(o) for o in truth]
