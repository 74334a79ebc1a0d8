"""The pure matching rules: quote, touch, limits, stops, trailing stops, position arithmetic."""

from __future__ import annotations

import random
from decimal import Decimal
from fractions import Fraction

from orderguard.broker.sim.matching import (
    FLAT,
    MAX_DENOMINATOR,
    Exact,
    MatchState,
    apply_fill,
    average,
    execution_price,
    money_of,
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


def test_average_of_a_repeating_quotient_is_rounded_even_when_it_multiplies_back() -> None:
    """126002.5 / 6 has 28 significant digits that multiply back to the notional; still 9 places."""
    assert str(average(D("126002.50"), 6)) == "21000.416666667"


def test_apply_fill_opens_adds_and_reaverages() -> None:
    """Adding to a long re-averages its price."""
    opened = apply_fill(0, FLAT, 1, D("100"))
    added = apply_fill(opened.size, opened.average, 1, D("101"))
    assert (added.size, added.average.rounded(), added.closed) == (2, D("100.5"), 0)


def test_apply_fill_reduces_at_unchanged_average_and_realises_points() -> None:
    """Selling part of a long realises (price - average) x closed points, keeping the average."""
    change = apply_fill(3, Exact.of(D("100")), -2, D("102"))
    assert (change.size, change.average.rounded(), change.closed) == (1, D("100"), 2)
    assert change.points.fraction() == 4


def test_apply_fill_flips_through_zero_at_the_fill_price() -> None:
    """A sell larger than the long closes it and opens a short at the fill price."""
    change = apply_fill(2, Exact.of(D("100")), -5, D("99"))
    assert (change.size, change.average.rounded(), change.closed, change.flipped) == (
        -3, D("99"), 2, True,
    )  # fmt: skip
    assert change.points.fraction() == -2


def test_apply_fill_short_profit_is_positive_when_price_falls() -> None:
    """Buying back a short below its average realises a profit."""
    change = apply_fill(-2, Exact.of(D("100")), 2, D("98"))
    assert change.size == 0
    assert change.points.fraction() == 4


def test_reaveraging_keeps_the_exact_cost() -> None:
    """2 @ 21000, +1 @ 21000.25, +3 @ 21000.75: exactly 21000.41666…, sent as 21000.416666667.

    Re-averaging from the rounded 21000.083333333 gave 21000.4166666665 (drift, and 10 places).
    """
    change = apply_fill(0, FLAT, 2, D("21000"))
    change = apply_fill(change.size, change.average, 1, D("21000.25"))
    change = apply_fill(change.size, change.average, 3, D("21000.75"))
    cost = 2 * D("21000") + D("21000.25") + 3 * D("21000.75")
    assert change.average.fraction() == Fraction(cost) / 6
    assert str(change.average.rounded()) == "21000.416666667"


def test_reaveraging_after_a_reduction_stays_exact() -> None:
    """Reducing keeps the exact average; a later add averages from it, not from a rounded one."""
    change = apply_fill(0, FLAT, 3, D("21001"))
    change = apply_fill(change.size, change.average, 4, D("21002"))  # 7 @ 21001.571428571…
    change = apply_fill(change.size, change.average, -4, D("21010"))  # 3 left, same average
    change = apply_fill(change.size, change.average, 2, D("21000.25"))
    held = (3 * Fraction(21001) + 4 * Fraction(21002)) / 7
    expected = (3 * held + 2 * Fraction("21000.25")) / 5
    assert change.average.fraction() == expected
    assert change.average.rounded() == D(round(expected * 10**9)).scaleb(-9)


def test_long_lived_average_stays_bounded_and_within_1e18_of_the_truth() -> None:
    """3000 random adds and reductions never flat: the denominator stays bounded, the error tiny."""
    rng = random.Random(0)
    size, average, truth = 0, FLAT, Fraction(0)
    for _ in range(3000):
        qty = rng.choice([-3, -2, -1, 1, 2, 3])
        if size + qty == 0:
            qty = -qty
        price = D("21000") + TICK * rng.randint(-40, 40)
        if size == 0 or (size > 0) == (qty > 0):
            truth = (truth * abs(size) + Fraction(price) * abs(qty)) / abs(size + qty)
        elif (size + qty > 0) != (size > 0):
            truth = Fraction(price)  # flipped: opened at the fill price
        change = apply_fill(size, average, qty, price)
        size, average = change.size, change.average
        assert average.den <= MAX_DENOMINATOR
    assert abs(average.fraction() - truth) < Fraction(1, 10**15)


def test_money_of_points_rounds_exactly_to_cents_half_to_even() -> None:
    """1.75 points at $2 are $3.50; half a cent rounds to the even cent."""
    assert money_of(Exact.of(D("1.75")), Fraction(2)) == D("3.50")
    assert money_of(Exact.of(D("0.005")), Fraction(1)) == D("0.00")
    assert money_of(Exact.of(D("0.015")), Fraction(1)) == D("0.02")
    assert money_of(Exact.of(D("-0.015")), Fraction(1)) == D("-0.02")
