"""The exchange's synchronous event stream: content, order, re-entrancy and listener isolation."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from orderguard.broker.base import (
    AccountEvent,
    BrokerEvent,
    OrderEvent,
    PositionEvent,
    QuoteEvent,
    TradeEvent,
)
from orderguard.broker.sim import SimExchange
from orderguard.clock import VirtualClock
from orderguard.models import OrderRequest, OrderStatus, OrderType

D = Decimal
MNQ = "CON.F.US.MNQ.Z26"
RequestFactory = Callable[..., OrderRequest]


def test_set_price_publishes_a_quote(exchange: SimExchange, events: list[BrokerEvent]) -> None:
    """Moving the market emits a QuoteEvent with last, bid and ask."""
    exchange.set_price(MNQ, D("21000"))
    [quote] = events
    assert isinstance(quote, QuoteEvent)
    assert (quote.contract_id, quote.last_price, quote.best_bid, quote.best_ask) == (
        MNQ, D("21000"), D("21000"), D("21000.25"),
    )  # fmt: skip


def test_a_fill_publishes_order_trade_position_account_in_that_order(
    market: SimExchange, events: list[BrokerEvent], req: RequestFactory
) -> None:
    """A market order is reported Open, then Filled, then its trade, position and balance."""
    market.place(req(OrderType.MARKET, "buy"))
    assert [type(e) for e in events] == [
        OrderEvent, OrderEvent, TradeEvent, PositionEvent, AccountEvent,
    ]  # fmt: skip
    opened, filled = events[0], events[1]
    assert isinstance(opened, OrderEvent) and isinstance(filled, OrderEvent)
    assert (opened.order.status, filled.order.status) == (OrderStatus.OPEN, OrderStatus.FILLED)


def test_rejected_requests_publish_nothing(
    market: SimExchange, events: list[BrokerEvent], req: RequestFactory
) -> None:
    """A validation rejection changes nothing and emits no event."""
    market.place(req(OrderType.MARKET, "buy", 0))
    assert events == []


def test_reentrant_listener_events_follow_the_current_ones(
    market: SimExchange, req: RequestFactory
) -> None:
    """A listener that places an order from a callback sees that order's events after the rest."""
    seen: list[BrokerEvent] = []

    def react(event: BrokerEvent) -> None:
        seen.append(event)
        if isinstance(event, TradeEvent) and event.trade.side.name == "BUY":
            market.place(req(OrderType.MARKET, "sell"))

    market.listen(react)
    market.place(req(OrderType.MARKET, "buy"))
    kinds = [type(e).__name__ for e in seen]
    assert kinds == [
        "OrderEvent", "OrderEvent", "TradeEvent", "PositionEvent", "AccountEvent",
        "OrderEvent", "OrderEvent", "TradeEvent", "PositionEvent", "AccountEvent",
    ]  # fmt: skip
    assert market.position_size(1, MNQ) == 0


def test_raising_listener_is_counted_and_others_still_hear(
    market: SimExchange, req: RequestFactory
) -> None:
    """A listener exception is logged and counted; the next listener gets every event."""
    seen: list[BrokerEvent] = []

    def broken(event: BrokerEvent) -> None:
        raise ValueError("listener bug")

    market.listen(broken)
    market.listen(seen.append)
    market.place(req(OrderType.MARKET, "buy"))
    assert market.listener_errors == len(seen) == 5


def test_closed_listener_hears_nothing_more(market: SimExchange, req: RequestFactory) -> None:
    """listen() returns a handle whose close() stops delivery."""
    seen: list[BrokerEvent] = []
    handle = market.listen(seen.append)
    handle.close()
    market.place(req(OrderType.MARKET, "buy"))
    assert seen == []


def test_timestamps_come_from_the_injected_clock(
    market: SimExchange, req: RequestFactory, clock: VirtualClock
) -> None:
    """Orders and trades are stamped with the virtual clock's time."""
    market.place(req(OrderType.MARKET, "buy"))
    [order] = market.orders(1)
    [trade] = market.trades(1)
    assert order.creation_timestamp == trade.creation_timestamp == clock.now()
