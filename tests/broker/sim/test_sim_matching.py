"""The pure matching rules: quote, touch, limits, stops, trailing stops, position arithmetic."""

from __future__ import annotations

from decimal import Decimal

from orderguard.broker.sim.matching import (
    MatchState,
    apply_fill,
    average,
    execution_price,
    quote_for,
    trail,
)
from orderguard.models import OrderSide, OrderType

D = Decimal
TICK = D("0.25")
BUY, SELL = OrderSide.BUY, OrderSide.SELL


def test_quote_is_one_tick_wide_on_and_above_last() -> None:
    """bid = last and ask = last + one tick."""
    quote = quote_for(D("21000"), TICK)
    assert (quote.bid, quote.ask) == (D("21000"), D("21000.25"))


def test_market_orders_fill_at_the_touch() -> None:
    """A market buy pays the ask, a market sell receives the bid."""
    quote = quote_for(D("100"), TICK)
    assert execution_price(MatchState(BUY, OrderType.MARKET), quote, arriving=True) == D("100.25")
    assert execution_price(MatchState(SELL, OrderType.MARKET), quote, arriving=True) == D("100")


def test_marketable_limit_on_arrival_fills_at_the_touch() -> None:
    """A buy limit above the ask fills at the ask, not at its limit."""
    order = MatchState(BUY, OrderType.LIMIT, limit_price=D("101"))
    assert execution_price(order, quote_for(D("100"), TICK), arriving=True) == D("100.25")


def test_resting_limit_fills_at_its_limit_when_the_market_gaps_through() -> None:
    """Once rested, a buy limit fills at its limit even if the ask drops far below it."""
    order = MatchState(BUY, OrderType.LIMIT, limit_price=D("99"))
    assert execution_price(order, quote_for(D("100"), TICK), arriving=True) is None
    assert execution_price(order, quote_for(D("95"), TICK), arriving=False) == D("99")


def test_buy_limit_needs_the_ask_at_or_below_the_limit() -> None:
    """At last = limit the ask is a tick above, so a resting buy limit does not fill yet."""
    order = MatchState(BUY, OrderType.LIMIT, limit_price=D("100"))
    assert execution_price(order, quote_for(D("100"), TICK), arriving=False) is None
    assert execution_price(order, quote_for(D("99.75"), TICK), arriving=False) == D("100")


def test_stop_triggers_and_stays_triggered() -> None:
    """A buy stop triggers at last >= stop and keeps filling at the touch afterwards."""
    order = MatchState(BUY, OrderType.STOP, stop_price=D("101"))
    assert execution_price(order, quote_for(D("100.75"), TICK), arriving=False) is None
    assert execution_price(order, quote_for(D("101"), TICK), arriving=False) == D("101.25")
    assert execution_price(order, quote_for(D("100"), TICK), arriving=False) == D("100.25")


def test_sell_stop_triggers_at_or_below_the_stop() -> None:
    """A sell stop triggers at last <= stop and fills at the bid."""
    order = MatchState(SELL, OrderType.STOP, stop_price=D("99"))
    assert execution_price(order, quote_for(D("99.25"), TICK), arriving=False) is None
    assert execution_price(order, quote_for(D("98.5"), TICK), arriving=False) == D("98.5")


def test_trailing_sell_stop_ratchets_up_and_never_loosens() -> None:
    """A sell trailing stop follows the market up by its distance and ignores moves down."""
    assert trail(SELL, D("99"), D("102"), D("1")) == D("101")
    assert trail(SELL, D("101"), D("101.5"), D("1")) == D("101")


def test_trailing_buy_stop_ratchets_down() -> None:
    """A buy trailing stop follows the market down and never moves up."""
    assert trail(BUY, D("101"), D("98"), D("1")) == D("99")
    assert trail(BUY, D("99"), D("98.5"), D("1")) == D("99")


def test_average_is_exact_or_rounded_to_nine_places() -> None:
    """Averages stay exact when representable and are rounded to the wire's 9 places otherwise."""
    assert average(D("200.50"), 2) == D("100.25")
    assert average(D("100"), 3) == D("33.333333333")


def test_apply_fill_opens_adds_and_reaverages() -> None:
    """Adding to a long re-averages its price."""
    opened = apply_fill(0, D(0), 1, D("100"))
    added = apply_fill(opened.size, opened.average_price, 1, D("101"))
    assert (added.size, added.average_price, added.closed) == (2, D("100.5"), 0)


def test_apply_fill_reduces_at_unchanged_average_and_realises_points() -> None:
    """Selling part of a long realises (price - average) x closed points, keeping the average."""
    change = apply_fill(3, D("100"), -2, D("102"))
    assert (change.size, change.average_price, change.closed, change.points) == (
        1, D("100"), 2, D("4"),
    )  # fmt: skip


def test_apply_fill_flips_through_zero_at_the_fill_price() -> None:
    """A sell larger than the long closes it and opens a short at the fill price."""
    change = apply_fill(2, D("100"), -5, D("99"))
    assert (change.size, change.average_price, change.closed, change.points, change.flipped) == (
        -3, D("99"), 2, D("-2"), True,
    )  # fmt: skip


def test_apply_fill_short_profit_is_positive_when_price_falls() -> None:
    """Buying back a short below its average realises a profit."""
    change = apply_fill(-2, D("100"), 2, D("98"))
    assert (change.size, change.points) == (0, D("4"))
