"""Every placeable order type, matched at last 21000.00 (bid 21000.00, ask 21000.25)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from orderguard.broker.base import BrokerEvent, OrderEvent
from orderguard.broker.sim import ExchangeRules, SimExchange
from orderguard.broker.sim.rules import MarketableStop
from orderguard.models import OrderRequest, OrderStatus, OrderType

RequestFactory = Callable[..., OrderRequest]
MarketFactory = Callable[..., SimExchange]

D = Decimal
MNQ = "CON.F.US.MNQ.Z26"


def status_of(ex: SimExchange, order_id: int | None) -> tuple[OrderStatus, int, Decimal | None]:
    assert order_id is not None
    order = ex.order(1, order_id)
    assert order is not None
    return order.status, order.fill_volume, order.filled_price


def test_market_buy_fills_at_the_ask(market: SimExchange, req: RequestFactory) -> None:
    """A market buy fills completely at last + one tick."""
    result = market.place(req(OrderType.MARKET, "buy", 2))
    assert status_of(market, result.order_id) == (OrderStatus.FILLED, 2, D("21000.25"))


def test_market_sell_fills_at_the_bid(market: SimExchange, req: RequestFactory) -> None:
    """A market sell fills at the last price (the bid)."""
    result = market.place(req(OrderType.MARKET, "sell", 1))
    assert status_of(market, result.order_id) == (OrderStatus.FILLED, 1, D("21000.00"))


def test_market_order_before_any_price_is_rejected(
    exchange: SimExchange, req: RequestFactory
) -> None:
    """Without a market price a market order is OrderRejected (2) and leaves no record."""
    result = exchange.place(req(OrderType.MARKET, "buy"))
    assert (result.error_code, result.order_id) == (2, None)
    assert exchange.orders(1) == []


def test_stop_order_before_any_price_is_rejected(
    exchange: SimExchange, req: RequestFactory
) -> None:
    """A stop cannot be placed on a contract that has no price yet."""
    assert exchange.place(req(OrderType.STOP, "sell", stop_price=D("20990"))).error_code == 2


def test_limit_may_rest_before_any_price(exchange: SimExchange, req: RequestFactory) -> None:
    """A limit order needs no market to rest, and fills at its limit once the market crosses."""
    result = exchange.place(req(OrderType.LIMIT, "buy", limit_price=D("21000")))
    assert status_of(exchange, result.order_id) == (OrderStatus.OPEN, 0, None)
    exchange.set_price(MNQ, D("20999.50"))
    assert status_of(exchange, result.order_id) == (OrderStatus.FILLED, 1, D("21000"))


def test_marketable_buy_limit_fills_at_the_touch(market: SimExchange, req: RequestFactory) -> None:
    """A buy limit above the ask on arrival fills at the ask (price improvement to the taker)."""
    result = market.place(req(OrderType.LIMIT, "buy", limit_price=D("21010")))
    assert status_of(market, result.order_id) == (OrderStatus.FILLED, 1, D("21000.25"))


def test_buy_limit_at_last_rests_because_the_ask_is_higher(
    market: SimExchange, req: RequestFactory
) -> None:
    """A buy limit at the last price is below the ask, so it rests Open."""
    result = market.place(req(OrderType.LIMIT, "buy", limit_price=D("21000")))
    assert status_of(market, result.order_id) == (OrderStatus.OPEN, 0, None)


def test_resting_buy_limit_fills_at_its_limit_on_a_gap(
    market: SimExchange, req: RequestFactory
) -> None:
    """When the market gaps below a resting buy limit, the fill is at the limit."""
    result = market.place(req(OrderType.LIMIT, "buy", limit_price=D("20990")))
    market.set_price(MNQ, D("20980"))
    assert status_of(market, result.order_id) == (OrderStatus.FILLED, 1, D("20990"))


def test_resting_sell_limit_fills_when_the_bid_reaches_it(
    market: SimExchange, req: RequestFactory
) -> None:
    """A sell limit above the market fills at its limit once the bid (= last) reaches it."""
    result = market.place(req(OrderType.LIMIT, "sell", limit_price=D("21005")))
    market.set_price(MNQ, D("21004.75"))
    assert status_of(market, result.order_id)[0] is OrderStatus.OPEN
    market.set_price(MNQ, D("21005"))
    assert status_of(market, result.order_id) == (OrderStatus.FILLED, 1, D("21005"))


def test_buy_stop_triggers_when_last_reaches_the_stop(
    market: SimExchange, req: RequestFactory
) -> None:
    """A buy stop waits below its price and fills at the ask once last >= stop."""
    result = market.place(req(OrderType.STOP, "buy", stop_price=D("21005")))
    market.set_price(MNQ, D("21004.75"))
    assert status_of(market, result.order_id)[0] is OrderStatus.OPEN
    market.set_price(MNQ, D("21006"))
    assert status_of(market, result.order_id) == (OrderStatus.FILLED, 1, D("21006.25"))


def test_sell_stop_triggers_when_last_falls_to_the_stop(
    market: SimExchange, req: RequestFactory
) -> None:
    """A sell stop fills at the bid once last <= stop."""
    result = market.place(req(OrderType.STOP, "sell", stop_price=D("20995")))
    market.set_price(MNQ, D("20995"))
    assert status_of(market, result.order_id) == (OrderStatus.FILLED, 1, D("20995"))


def test_stop_placed_through_the_market_triggers_at_once_where_accepted(
    make_market: MarketFactory, req: RequestFactory
) -> None:
    """Under marketable_stops=TRIGGER a sell stop above the last fills at once as a market order."""
    market = make_market(ExchangeRules(marketable_stops=MarketableStop.TRIGGER))
    result = market.place(req(OrderType.STOP, "sell", stop_price=D("21010")))
    assert status_of(market, result.order_id) == (OrderStatus.FILLED, 1, D("21000"))


def test_join_bid_rests_at_the_best_bid(market: SimExchange, req: RequestFactory) -> None:
    """A JoinBid buy becomes a limit at the bid and fills when the ask comes down to it."""
    result = market.place(req(OrderType.JOIN_BID, "buy"))
    order = market.order(1, result.order_id or 0)
    assert order is not None
    assert (order.status, order.limit_price) == (OrderStatus.OPEN, D("21000"))
    market.set_price(MNQ, D("20999.75"))
    assert status_of(market, result.order_id) == (OrderStatus.FILLED, 1, D("21000"))


def test_join_ask_rests_at_the_best_ask(market: SimExchange, req: RequestFactory) -> None:
    """A JoinAsk sell becomes a limit at the ask and fills when the bid rises to it."""
    result = market.place(req(OrderType.JOIN_ASK, "sell"))
    order = market.order(1, result.order_id or 0)
    assert order is not None
    assert order.limit_price == D("21000.25")
    market.set_price(MNQ, D("21000.25"))
    assert status_of(market, result.order_id) == (OrderStatus.FILLED, 1, D("21000.25"))


def test_join_price_does_not_follow_the_market(market: SimExchange, req: RequestFactory) -> None:
    """A JoinBid is priced once, on arrival; later quotes do not move it."""
    result = market.place(req(OrderType.JOIN_BID, "buy"))
    market.set_price(MNQ, D("21010"))
    order = market.order(1, result.order_id or 0)
    assert order is not None
    assert order.limit_price == D("21000")


def test_stop_limit_is_refused(market: SimExchange, req: RequestFactory) -> None:
    """Type 3 (StopLimit) is refused with OrderRejected (2)."""
    result = market.place(
        req(OrderType.STOP_LIMIT, "buy", limit_price=D("21001"), stop_price=D("21001"))
    )
    assert result.error_code == 2
    assert "StopLimit" in (result.error_message or "")


def test_trailing_sell_stop_starts_the_distance_below_last(
    market: SimExchange, req: RequestFactory
) -> None:
    """trail_price is a distance: a sell trailing stop of 5.00 starts at last - 5.00."""
    result = market.place(req(OrderType.TRAILING_STOP, "sell", trail_price=D("5")))
    order = market.order(1, result.order_id or 0)
    assert order is not None
    assert (order.stop_price, order.trail_price) == (D("20995"), D("5"))


def test_trailing_stop_follows_the_market_and_never_loosens(
    market: SimExchange, req: RequestFactory
) -> None:
    """The stop rises with the market and stays put when the market falls back."""
    result = market.place(req(OrderType.TRAILING_STOP, "sell", trail_price=D("5")))
    market.set_price(MNQ, D("21010"))
    market.set_price(MNQ, D("21007"))
    order = market.order(1, result.order_id or 0)
    assert order is not None
    assert (order.status, order.stop_price) == (OrderStatus.OPEN, D("21005"))


def test_trailing_stop_triggers_on_the_trailed_level(
    market: SimExchange, req: RequestFactory
) -> None:
    """After trailing up to 21005, a fall to 21005 triggers a fill at the bid."""
    result = market.place(req(OrderType.TRAILING_STOP, "sell", trail_price=D("5")))
    market.set_price(MNQ, D("21010"))
    market.set_price(MNQ, D("21004.50"))
    assert status_of(market, result.order_id) == (OrderStatus.FILLED, 1, D("21004.50"))


def test_buy_trailing_stop_trails_down_and_triggers_up(
    market: SimExchange, req: RequestFactory
) -> None:
    """A buy trailing stop follows the market down and triggers when it rises by the distance."""
    result = market.place(req(OrderType.TRAILING_STOP, "buy", trail_price=D("2")))
    market.set_price(MNQ, D("20990"))
    order = market.order(1, result.order_id or 0)
    assert order is not None
    assert order.stop_price == D("20992")
    market.set_price(MNQ, D("20992"))
    assert status_of(market, result.order_id) == (OrderStatus.FILLED, 1, D("20992.25"))


def test_trailing_stop_moves_are_reported_as_order_events(
    market: SimExchange, events: list[BrokerEvent], req: RequestFactory
) -> None:
    """Each ratchet of the stop is published with the new stop price."""
    market.place(req(OrderType.TRAILING_STOP, "sell", trail_price=D("5")))
    market.set_price(MNQ, D("21001"))
    stops = [e.order.stop_price for e in events if isinstance(e, OrderEvent)]
    assert stops == [D("20995"), D("20996")]
