"""ExchangeRules: each switch shown under both readings, same scenario, observable difference.

Market: MNQ last 21000.00 (bid 21000.00, ask 21000.25) unless a test moves it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from decimal import Decimal

import pytest

from orderguard.broker.base import AccountEvent, BrokerEvent, OrderEvent, PositionEvent, TradeEvent
from orderguard.broker.sim import ExchangeRules, SimBroker, SimExchange
from orderguard.broker.sim.rules import (
    CloseFill,
    EntryAfterExit,
    Fees,
    FlipTrades,
    LegAnchor,
    LimitAggression,
    MarketableStop,
    ResizedLegFill,
    SizeLimit,
    SizeRejection,
    StopTrigger,
    TriggeredStopModify,
)
from orderguard.clock import VirtualClock
from orderguard.models import BracketSpec, Order, OrderRequest, OrderStatus, OrderType

D = Decimal
MNQ = "CON.F.US.MNQ.Z26"
ES = "CON.F.US.EP.Z26"
RequestFactory = Callable[..., OrderRequest]
MarketFactory = Callable[..., SimExchange]
SL = BracketSpec(-8, OrderType.STOP)  # 2.00 points below the fill
TP = BracketSpec(16, OrderType.LIMIT)  # 4.00 points above the fill


def get(ex: SimExchange, order_id: int | None) -> Order:
    order = ex.order(1, order_id or 0)
    assert order is not None
    return order


def legs(ex: SimExchange, entry_id: int | None) -> tuple[Order, Order]:
    """The stop loss and take profit of a native bracket entry."""
    stop, target = (o for o in ex.orders(1) if o.parent_order_id == entry_id)
    return stop, target


# -- A: minimum stop-loss distance of native brackets (§9.1) -------------------------------------


@pytest.mark.parametrize(
    ("side", "ticks", "leg"),
    [
        ("buy", -3, OrderType.STOP),
        ("sell", 3, OrderType.STOP),
        ("buy", -1, OrderType.TRAILING_STOP),
    ],
)
def test_stop_loss_closer_than_four_ticks_is_rejected(
    market: SimExchange, req: RequestFactory, side: str, ticks: int, leg: OrderType
) -> None:
    """A stop-loss bracket under 4 ticks is errorCode 2 with the field-reported text, no record."""
    result = market.place(req(OrderType.MARKET, side, stop_loss_bracket=BracketSpec(ticks, leg)))
    assert (result.error_code, result.error_message) == (
        2,
        f"Invalid stop loss ticks ({ticks}). Stop loss tick value should be at least 4 ticks.",
    )
    assert market.orders(1) == []


def test_stop_loss_of_exactly_four_ticks_is_accepted(
    market: SimExchange, req: RequestFactory
) -> None:
    """Four ticks is the minimum, not below it."""
    result = market.place(
        req(OrderType.MARKET, "buy", stop_loss_bracket=BracketSpec(-4, OrderType.STOP))
    )
    assert result.success


def test_wrong_sign_is_reported_before_the_distance(
    market: SimExchange, req: RequestFactory
) -> None:
    """A long's stop loss of +2 ticks gets the sign message, not the distance one."""
    result = market.place(
        req(OrderType.MARKET, "buy", stop_loss_bracket=BracketSpec(2, OrderType.STOP))
    )
    assert "less than zero when longing" in (result.error_message or "")


def test_minimum_stop_loss_distance_is_configurable(
    make_market: MarketFactory, req: RequestFactory
) -> None:
    """min_stop_loss_ticks=0 lifts the check; 8 raises it."""
    close = req(OrderType.MARKET, "buy", stop_loss_bracket=BracketSpec(-1, OrderType.STOP))
    assert make_market(ExchangeRules(min_stop_loss_ticks=0)).place(close).success
    six = req(OrderType.MARKET, "buy", stop_loss_bracket=BracketSpec(-6, OrderType.STOP))
    result = make_market(ExchangeRules(min_stop_loss_ticks=8)).place(six)
    assert result.error_message == (
        "Invalid stop loss ticks (-6). Stop loss tick value should be at least 8 ticks."
    )


def test_take_profit_has_no_minimum_distance(market: SimExchange, req: RequestFactory) -> None:
    """Only the stop loss has a reported minimum: a one-tick target is accepted."""
    result = market.place(
        req(OrderType.MARKET, "buy", take_profit_bracket=BracketSpec(1, OrderType.LIMIT))
    )
    assert result.success


# -- 1: a stop at or through the market ----------------------------------------------------------


def test_marketable_stop_placement_rejected_or_triggered(
    make_market: MarketFactory, req: RequestFactory
) -> None:
    """A sell stop at 21010 (above last): REJECT answers 2 "Invalid stop price"; TRIGGER fills."""
    stop = req(OrderType.STOP, "sell", stop_price=D("21010"))
    rejecting = make_market(ExchangeRules(marketable_stops=MarketableStop.REJECT))
    result = rejecting.place(stop)
    assert (result.error_code, result.error_message, result.order_id) == (
        2, "Invalid stop price", None,
    )  # fmt: skip
    assert rejecting.orders(1) == []
    triggering = make_market(ExchangeRules(marketable_stops=MarketableStop.TRIGGER))
    filled = get(triggering, triggering.place(stop).order_id)
    assert (filled.status, filled.filled_price) == (OrderStatus.FILLED, D("21000"))


def test_stop_exactly_at_the_market_counts_as_marketable(
    market: SimExchange, req: RequestFactory
) -> None:
    """A sell stop at the last price would trigger at once, so the default rejects it too."""
    assert market.place(req(OrderType.STOP, "sell", stop_price=D("21000"))).error_code == 2
    assert market.place(req(OrderType.STOP, "sell", stop_price=D("20999.75"))).success


def test_marketable_stop_modify_rejected_or_triggered(
    make_market: MarketFactory, req: RequestFactory
) -> None:
    """A resting sell stop moved to 21005: REJECT answers 3 and keeps it; TRIGGER fills it."""
    outcomes = {}
    for reading in MarketableStop:
        ex = make_market(ExchangeRules(marketable_stops=reading))
        order_id = ex.place(req(OrderType.STOP, "sell", stop_price=D("20990"))).order_id
        result = ex.modify(1, order_id or 0, stop_price=D("21005"))
        order = get(ex, order_id)
        outcomes[reading] = (
            result.error_code,
            result.error_message,
            order.status,
            order.stop_price,
        )
    assert outcomes[MarketableStop.REJECT] == (
        3, "Invalid stop price", OrderStatus.OPEN, D("20990"),
    )  # fmt: skip
    assert outcomes[MarketableStop.TRIGGER] == (0, None, OrderStatus.FILLED, D("21005"))


def test_suspended_stop_leg_may_be_moved_through_the_market(
    market: SimExchange, req: RequestFactory
) -> None:
    """A Suspended leg is not on the book: its stop price is not checked against the market."""
    entry = market.place(
        req(OrderType.LIMIT, "buy", limit_price=D("20990"),
            stop_loss_bracket=BracketSpec(-8, OrderType.STOP))
    )  # fmt: skip
    [leg] = [o for o in market.orders(1) if o.parent_order_id == entry.order_id]
    assert market.modify(1, leg.id, stop_price=D("21005")).success


# -- 2: the price that elects a stop -------------------------------------------------------------


def test_buy_stop_elected_by_last_or_by_the_ask(
    make_market: MarketFactory, req: RequestFactory
) -> None:
    """Buy stop at 21005, market moves to last 21004.75 (ask 21005): only TOUCH triggers it."""
    statuses = {}
    for reading in StopTrigger:
        ex = make_market(ExchangeRules(stop_trigger=reading))
        order_id = ex.place(req(OrderType.STOP, "buy", stop_price=D("21005"))).order_id
        ex.set_price(MNQ, D("21004.75"))
        statuses[reading] = (get(ex, order_id).status, get(ex, order_id).filled_price)
    assert statuses[StopTrigger.LAST] == (OrderStatus.OPEN, None)
    assert statuses[StopTrigger.TOUCH] == (OrderStatus.FILLED, D("21005"))


def test_marketable_check_follows_the_trigger_price(
    make_market: MarketFactory, req: RequestFactory
) -> None:
    """A buy stop at the ask (21000.25) is away from the last but at the touch."""
    stop = req(OrderType.STOP, "buy", stop_price=D("21000.25"))
    assert make_market(ExchangeRules(stop_trigger=StopTrigger.LAST)).place(stop).success
    result = make_market(ExchangeRules(stop_trigger=StopTrigger.TOUCH)).place(stop)
    assert result.error_message == "Invalid stop price"


def test_sell_stops_are_elected_alike_on_a_one_tick_book(
    make_market: MarketFactory, req: RequestFactory
) -> None:
    """The bid is the last on this book, so a sell stop triggers at the same move either way."""
    for reading in StopTrigger:
        ex = make_market(ExchangeRules(stop_trigger=reading))
        order_id = ex.place(req(OrderType.STOP, "sell", stop_price=D("20995"))).order_id
        ex.set_price(MNQ, D("20995.25"))
        assert get(ex, order_id).status is OrderStatus.OPEN
        ex.set_price(MNQ, D("20995"))
        assert get(ex, order_id).status is OrderStatus.FILLED


# -- 3: the entry's rest once the legs exited everything filled ---------------------------------


def test_exhausted_bracket_cancels_or_keeps_the_entry_rest(
    make_market: MarketFactory, req: RequestFactory
) -> None:
    """The target exits 1 of 3: the entry's rest is cancelled, or fills later with no leg."""
    seen = {}
    for reading in EntryAfterExit:
        ex = make_market(ExchangeRules(entry_after_exit=reading), liquidity=1)
        entry = ex.place(
            req(OrderType.LIMIT, "buy", 3, limit_price=D("21002"), stop_loss_bracket=SL,
                take_profit_bracket=TP)
        ).order_id  # fmt: skip
        ex.set_price(MNQ, D("21004.25"))  # the target sells the one contract bought
        stop, target = legs(ex, entry)
        assert (target.status, stop.status) == (OrderStatus.FILLED, OrderStatus.CANCELLED)
        ex.set_price(MNQ, D("20990"))  # the entry's limit is reached again
        seen[reading] = (get(ex, entry).status, ex.position_size(1, MNQ), ex.open_orders(1))
    assert seen[EntryAfterExit.CANCEL_REST] == (OrderStatus.CANCELLED, 0, [])
    status, held, working = seen[EntryAfterExit.KEEP_WORKING]
    assert (status, held) == (OrderStatus.OPEN, 1)
    assert [o.parent_order_id for o in working] == [None]  # only the entry works: no leg


# -- 4: a fill of a leg the client resized -------------------------------------------------------


def test_resized_leg_fill_shrinks_or_cancels_the_sibling(
    make_market: MarketFactory, req: RequestFactory
) -> None:
    """Long 2, target cut to 1 fills: the stop shrinks to 1, or is cancelled (1 held, no leg)."""
    seen = {}
    for reading in ResizedLegFill:
        ex = make_market(ExchangeRules(resized_leg_fill=reading))
        entry = ex.place(
            req(OrderType.MARKET, "buy", 2, stop_loss_bracket=SL, take_profit_bracket=TP)
        ).order_id
        _, target = legs(ex, entry)
        assert ex.modify(1, target.id, size=1).success
        ex.set_price(MNQ, D("21004.25"))
        stop, target = legs(ex, entry)
        seen[reading] = (target.status, stop.status, stop.size, ex.position_size(1, MNQ))
    assert seen[ResizedLegFill.SHRINK_SIBLING] == (OrderStatus.FILLED, OrderStatus.OPEN, 1, 1)
    assert seen[ResizedLegFill.CANCEL_SIBLING] == (
        OrderStatus.FILLED, OrderStatus.CANCELLED, 2, 1,
    )  # fmt: skip


def test_unresized_leg_fill_shrinks_the_sibling_under_either_reading(
    make_market: MarketFactory, req: RequestFactory
) -> None:
    """CANCEL_SIBLING applies only to legs the client resized; exchange resizes do not count."""
    ex = make_market(ExchangeRules(resized_leg_fill=ResizedLegFill.CANCEL_SIBLING), liquidity=1)
    entry = ex.place(
        req(OrderType.MARKET, "buy", 2, stop_loss_bracket=SL, take_profit_bracket=TP)
    ).order_id
    ex.set_price(MNQ, D("21000"))  # second entry contract: the exchange grows both legs to 2
    ex.set_price(MNQ, D("21010"))  # the target fills one contract (liquidity 1)
    stop, _ = legs(ex, entry)
    assert (stop.status, stop.size) == (OrderStatus.OPEN, 1)


# -- 5: a new stop price for a stop that triggered and partly filled ----------------------------


def test_triggered_stop_modify_rearms_or_fills_the_rest(
    make_market: MarketFactory, req: RequestFactory
) -> None:
    """A sell stop 3 triggered at 20995 (1 filled) moved to 20990: it waits, or fills on at once."""
    seen = {}
    for reading in TriggeredStopModify:
        ex = make_market(ExchangeRules(triggered_stop_modify=reading), liquidity=1)
        order_id = ex.place(req(OrderType.STOP, "sell", 3, stop_price=D("20995"))).order_id
        ex.set_price(MNQ, D("20995"))  # triggers; one contract fills
        assert ex.modify(1, order_id or 0, stop_price=D("20990")).success
        after_modify = get(ex, order_id).fill_volume
        ex.set_price(MNQ, D("20995"))  # the market stays above the new stop
        seen[reading] = (after_modify, get(ex, order_id).fill_volume, get(ex, order_id).status)
    assert seen[TriggeredStopModify.REARM] == (1, 1, OrderStatus.OPEN)
    assert seen[TriggeredStopModify.FILL_REST] == (2, 3, OrderStatus.FILLED)


# -- 6: whether a position close is bound by the liquidity model --------------------------------


def test_close_fills_at_once_or_over_several_steps(
    make_market: MarketFactory, req: RequestFactory
) -> None:
    """Long 3 with one contract per step: IMMEDIATE is flat at once; LIQUIDITY_LIMITED after 3."""
    held = {}
    for reading in CloseFill:
        ex = make_market(ExchangeRules(close_fill=reading), liquidity=1)
        for _ in range(3):
            ex.place(req(OrderType.MARKET, "buy"))
        close = ex.close_position(1, MNQ)
        assert close.success
        sizes = [ex.position_size(1, MNQ)]
        for _ in range(2):
            ex.set_price(MNQ, D("21000"))
            sizes.append(ex.position_size(1, MNQ))
        held[reading] = (sizes, get(ex, close.order_id).status)
    assert held[CloseFill.IMMEDIATE] == ([0, 0, 0], OrderStatus.FILLED)
    assert held[CloseFill.LIQUIDITY_LIMITED] == ([2, 1, 0], OrderStatus.FILLED)


def test_partial_close_is_bound_by_liquidity_when_limited(
    make_market: MarketFactory, req: RequestFactory
) -> None:
    """partialCloseContract of 2 from a long 3 leaves 2 held until the next step (1 per step)."""
    ex = make_market(ExchangeRules(close_fill=CloseFill.LIQUIDITY_LIMITED), liquidity=1)
    for _ in range(3):
        ex.place(req(OrderType.MARKET, "buy"))
    assert ex.partial_close(1, MNQ, 2).success
    assert ex.position_size(1, MNQ) == 2
    ex.set_price(MNQ, D("21000"))
    assert ex.position_size(1, MNQ) == 1


# -- 7: how long a marketable limit takes the touch; when a modify re-matches --------------------


def test_marketable_limit_keeps_the_touch_or_rests_at_its_limit(
    make_market: MarketFactory, req: RequestFactory
) -> None:
    """Buy 2 @ 21010 fills 1 on arrival at the ask; the second fills at the ask, or at 21010."""
    prices = {}
    for reading in LimitAggression:
        ex = make_market(ExchangeRules(limit_aggression=reading), liquidity=1)
        ex.place(req(OrderType.LIMIT, "buy", 2, limit_price=D("21010")))
        ex.set_price(MNQ, D("21000"))
        prices[reading] = [t.price for t in ex.trades(1)]
    assert prices[LimitAggression.SWEEP] == [D("21000.25"), D("21000.25")]
    assert prices[LimitAggression.ARRIVAL_ONLY] == [D("21000.25"), D("21010")]


def test_size_modify_rematches_under_sweep_only(
    make_market: MarketFactory, req: RequestFactory
) -> None:
    """Growing a part-filled marketable limit fills more at once (SWEEP) or not until a move."""
    volumes = {}
    for reading in LimitAggression:
        ex = make_market(ExchangeRules(limit_aggression=reading), liquidity=1)
        order_id = ex.place(req(OrderType.LIMIT, "buy", 2, limit_price=D("21010"))).order_id
        assert ex.modify(1, order_id or 0, size=3).success
        volumes[reading] = get(ex, order_id).fill_volume
    assert volumes == {LimitAggression.SWEEP: 2, LimitAggression.ARRIVAL_ONLY: 1}


def test_price_modify_that_makes_a_limit_marketable_fills_at_the_touch_either_way(
    make_market: MarketFactory, req: RequestFactory
) -> None:
    """A resting buy @ 20990 raised to 21005 is made marketable: both readings fill at the ask."""
    for reading in LimitAggression:
        ex = make_market(ExchangeRules(limit_aggression=reading))
        order_id = ex.place(req(OrderType.LIMIT, "buy", limit_price=D("20990"))).order_id
        assert ex.modify(1, order_id or 0, limit_price=D("21005")).success
        assert get(ex, order_id).filled_price == D("21000.25")


# -- 8: where legs are anchored when the entry fills in parts ------------------------------------


def test_legs_reanchor_at_the_average_or_stay_at_the_first_fill(
    make_market: MarketFactory, req: RequestFactory
) -> None:
    """Fills at 21000.25 and 21001.25: legs move to the 21000.75 average, or stay at 21000.25."""
    seen = {}
    for reading in LegAnchor:
        ex = make_market(ExchangeRules(leg_anchor=reading), liquidity=1)
        entry = ex.place(
            req(OrderType.MARKET, "buy", 2, stop_loss_bracket=SL, take_profit_bracket=TP)
        ).order_id
        ex.set_price(MNQ, D("21001"))
        stop, target = legs(ex, entry)
        seen[reading] = (stop.stop_price, target.limit_price, stop.size, target.size)
    assert seen[LegAnchor.AVERAGE_FILL] == (D("20998.75"), D("21004.75"), 2, 2)
    assert seen[LegAnchor.FIRST_FILL] == (D("20998.25"), D("21004.25"), 2, 2)


# -- 9: size limits, their rejections, fees -----------------------------------------------------


def test_size_limit_applies_to_the_order_or_to_the_position(
    make_market: MarketFactory, req: RequestFactory
) -> None:
    """Limit 5, long 4: buy 2 passes ORDER but not POSITION; sell 8 (to short 4) the other way."""
    codes = {}
    for reading in SizeLimit:
        ex = make_market(ExchangeRules(size_limit=reading))
        ex.set_max_order_size(1, 5)
        ex.place(req(OrderType.MARKET, "buy", 4))
        add = ex.place(req(OrderType.LIMIT, "buy", 2, limit_price=D("20990")))
        flip = ex.place(req(OrderType.LIMIT, "sell", 8, limit_price=D("21010")))
        codes[reading] = (add.error_code, flip.error_code)
    assert codes[SizeLimit.ORDER] == (0, 2)
    assert codes[SizeLimit.POSITION] == (2, 0)


def test_position_limit_checks_a_modify_on_its_unfilled_rest(
    make_market: MarketFactory, req: RequestFactory
) -> None:
    """Limit 5, long 4, a resting buy 1 grown to 2: ORDER accepts it; POSITION answers 3."""
    codes = {}
    for reading in SizeLimit:
        ex = make_market(ExchangeRules(size_limit=reading))
        ex.set_max_order_size(1, 5)
        ex.place(req(OrderType.MARKET, "buy", 4))
        order_id = ex.place(req(OrderType.LIMIT, "buy", 1, limit_price=D("20990"))).order_id
        codes[reading] = ex.modify(1, order_id or 0, size=2).error_code
    assert codes == {SizeLimit.ORDER: 0, SizeLimit.POSITION: 3}


def test_position_limit_lets_a_reducing_order_through_from_beyond_the_limit(
    make_market: MarketFactory, req: RequestFactory
) -> None:
    """Long 8 after the limit fell to 5: selling 1 reduces the position and is accepted."""
    ex = make_market(ExchangeRules(size_limit=SizeLimit.POSITION))
    ex.place(req(OrderType.MARKET, "buy", 8))
    ex.set_max_order_size(1, 5)
    assert ex.place(req(OrderType.MARKET, "sell", 1)).success
    assert ex.place(req(OrderType.MARKET, "buy", 1)).error_code == 2


def test_size_rejection_leaves_nothing_or_a_rejected_order_with_an_id(
    make_market: MarketFactory, req: RequestFactory
) -> None:
    """Buy 6 over a limit of 5: no record, or a Rejected order 1 whose tag is then taken."""
    seen = {}
    for reading in SizeRejection:
        ex = make_market(ExchangeRules(size_rejection=reading))
        events: list[BrokerEvent] = []
        ex.listen(events.append)
        ex.set_max_order_size(1, 5)
        refused = ex.place(req(OrderType.MARKET, "buy", 6, custom_tag="t1"))
        retry = ex.place(req(OrderType.MARKET, "buy", 5, custom_tag="t1"))
        orders = [
            (e.order.id, e.order.status, e.order.size) for e in events if isinstance(e, OrderEvent)
        ]
        seen[reading] = (refused.error_code, refused.order_id, retry.error_code, orders[:1])
    assert seen[SizeRejection.NO_RECORD] == (2, None, 0, [(1, OrderStatus.OPEN, 5)])
    assert seen[SizeRejection.REJECTED_ORDER] == (2, 1, 2, [(1, OrderStatus.REJECTED, 6)])


def test_rejected_order_record_is_searchable_and_off_the_book(
    make_market: MarketFactory, req: RequestFactory
) -> None:
    """The Rejected record is in orders() (Order/search) but not in open_orders()."""
    ex = make_market(ExchangeRules(size_rejection=SizeRejection.REJECTED_ORDER))
    ex.set_max_order_size(1, 5)
    result = ex.place(req(OrderType.LIMIT, "buy", 6, limit_price=D("20990"), custom_tag="x"))
    order = get(ex, result.order_id)
    assert (order.status, order.limit_price, order.custom_tag) == (
        OrderStatus.REJECTED, D("20990"), "x",
    )  # fmt: skip
    assert ex.open_orders(1) == []
    ex.set_price(MNQ, D("20980"))
    assert ex.trades(1) == []


def test_fees_are_flat_or_by_product(make_market: MarketFactory, req: RequestFactory) -> None:
    """One ES and one MNQ contract: 0.37 each (FLAT), or 1.40 and 0.37 (BY_PRODUCT)."""
    fees = {}
    for reading in Fees:
        ex = make_market(ExchangeRules(fees=reading))
        ex.set_price(ES, D("6000"))
        ex.place(req(OrderType.MARKET, "buy", contract_id=ES))
        ex.place(req(OrderType.MARKET, "buy", contract_id=MNQ))
        fees[reading] = [t.fees for t in ex.trades(1)]
    assert fees[Fees.FLAT] == [D("0.37"), D("0.37")]
    assert fees[Fees.BY_PRODUCT] == [D("1.40"), D("0.37")]


# -- 10: a fill through zero ---------------------------------------------------------------------


def test_flip_is_booked_as_one_trade_or_as_closing_and_opening_halves(
    make_market: MarketFactory, req: RequestFactory
) -> None:
    """Long 1, sell 3 @ 21010: one trade, or a closing 1 (with P&L) and an opening 2 (null)."""
    trades = {}
    for reading in FlipTrades:
        ex = make_market(ExchangeRules(flip_trades=reading))
        ex.place(req(OrderType.MARKET, "buy", 1))
        ex.set_price(MNQ, D("21010"))
        order_id = ex.place(req(OrderType.MARKET, "sell", 3)).order_id
        flip = [t for t in ex.trades(1) if t.order_id == order_id]
        trades[reading] = [(t.size, t.price, t.profit_and_loss, t.fees) for t in flip]
        assert ex.position_size(1, MNQ) == -2
        assert ex.account(1).balance == D("50000") + D("19.50") - D("0.37") * 4
    assert trades[FlipTrades.ONE] == [(3, D("21010"), D("19.50"), D("1.11"))]
    assert trades[FlipTrades.SPLIT] == [
        (1, D("21010"), D("19.50"), D("0.37")),
        (2, D("21010"), None, D("0.74")),
    ]


def test_split_flip_reports_each_half_with_its_position(
    make_market: MarketFactory, req: RequestFactory
) -> None:
    """SPLIT events: trade, old position flat, account; trade, new short, account."""
    ex = make_market(ExchangeRules(flip_trades=FlipTrades.SPLIT))
    ex.place(req(OrderType.MARKET, "buy", 1))
    events: list[BrokerEvent] = []
    ex.listen(events.append)
    ex.place(req(OrderType.MARKET, "sell", 3))
    kinds = [type(e) for e in events if not isinstance(e, OrderEvent)]
    assert kinds == [TradeEvent, PositionEvent, AccountEvent] * 2
    flat, short = (e.position for e in events if isinstance(e, PositionEvent))
    assert (flat.size, short.signed_size) == (0, -2)
    assert short.id != flat.id


# -- the older constructor keywords --------------------------------------------------------------


def test_older_keywords_override_the_rules(clock: VirtualClock) -> None:
    """close_cancels_brackets= and friends still work and win over the rules given."""
    ex = SimExchange(
        clock,
        rules=ExchangeRules(close_cancels_brackets=False),
        close_cancels_brackets=True,
        reject_duplicate_tags=False,
        duplicate_tag_message="dup",
    )
    assert (ex.close_cancels_brackets, ex.reject_duplicate_tags, ex.duplicate_tag_message) == (
        True, False, "dup",
    )  # fmt: skip
    assert ex.rules.overrides() == {
        "close_cancels_brackets": True,
        "reject_duplicate_tags": False,
        "duplicate_tag_message": "dup",
    }


# -- profiles ------------------------------------------------------------------------------------

# Why each harsh reading makes the client work harder than the other one.
HARSHER: dict[str, tuple[object, str]] = {
    "marketable_stops": (MarketableStop.REJECT, "a protective stop sent after a move is refused"),
    "stop_trigger": (StopTrigger.TOUCH, "buy stops fire, and are refused as marketable, sooner"),
    "close_cancels_brackets": (False, "legs outlive the close as orphans to cancel"),
    "entry_after_exit": (EntryAfterExit.KEEP_WORKING, "entry fills arrive after the exit, no leg"),
    "resized_leg_fill": (ResizedLegFill.CANCEL_SIBLING, "the rest of the position loses its leg"),
    "leg_anchor": (LegAnchor.FIRST_FILL, "later fills are protected off a stale anchor"),
    "triggered_stop_modify": (TriggeredStopModify.FILL_REST, "a modify is answered by fills"),
    "limit_aggression": (LimitAggression.ARRIVAL_ONLY, "the rest fills later, at the limit"),
    "close_fill": (CloseFill.LIQUIDITY_LIMITED, "a successful close leaves a position for a while"),
    "size_limit": (SizeLimit.POSITION, "refusals depend on what the account holds"),
    "size_rejection": (SizeRejection.REJECTED_ORDER, "a failure carries an id and spends the tag"),
    "fees": (Fees.BY_PRODUCT, "no single fee to assume"),
    "flip_trades": (FlipTrades.SPLIT, "two trades for one fill, one with null P&L"),
}


def test_harsh_picks_the_harder_reading_of_every_switch() -> None:
    """Field by field, harsh() picks the reading that makes the client work hardest."""
    harsh = ExchangeRules.harsh()
    assert set(HARSHER) == set(ExchangeRules.switches())
    for name, (reading, reason) in HARSHER.items():
        assert getattr(harsh, name) == reading, f"{name}: {reason}"


def test_every_profile_keeps_the_spec_rules() -> None:
    """The 4-tick minimum and tag uniqueness are the spec's, never drawn or relaxed."""
    for rules in (ExchangeRules.harsh(), *(ExchangeRules.named(f"mixed:{n}") for n in range(20))):
        assert (rules.min_stop_loss_ticks, rules.reject_duplicate_tags) == (4, True)


def test_default_profile_is_the_field_defaults() -> None:
    """default() is ExchangeRules() and overrides nothing."""
    assert ExchangeRules.default() == ExchangeRules()
    assert ExchangeRules.default().overrides() == {}


def test_random_mix_is_deterministic_per_seed() -> None:
    """The same seed gives the same rules; mixed:<seed> names that mix."""
    assert ExchangeRules.random_mix(random.Random(7)) == ExchangeRules.random_mix(random.Random(7))
    assert ExchangeRules.named("mixed:7") == ExchangeRules.random_mix(random.Random(7))


def test_random_mix_varies_across_seeds_and_reaches_every_reading() -> None:
    """Over 40 seeds the mixes differ, and every reading of every switch is drawn at least once."""
    mixes = [ExchangeRules.random_mix(random.Random(seed)) for seed in range(40)]
    assert len(set(mixes)) > 30
    for name in ExchangeRules.switches():
        assert len({getattr(mix, name) for mix in mixes}) == 2, name  # each has two readings


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("default", ExchangeRules()),
        ("harsh", ExchangeRules.harsh()),
        (" Harsh ", ExchangeRules.harsh()),
    ],
)
def test_profiles_are_named_for_command_lines(name: str, expected: ExchangeRules) -> None:
    """named() accepts default, harsh and mixed:<seed>, case- and space-insensitively."""
    assert ExchangeRules.named(name) == expected


@pytest.mark.parametrize("name", ["", "mixed", "mixed:", "mixed:x", "mixed:-1", "gentle"])
def test_unknown_profile_names_are_refused(name: str) -> None:
    """Anything else is a ValueError that names the accepted forms."""
    with pytest.raises(ValueError, match="default, harsh or mixed:<seed>"):
        ExchangeRules.named(name)


def test_sim_broker_create_passes_the_rules_to_its_exchange(clock: VirtualClock) -> None:
    """SimBroker.create(rules=...) builds its exchange under those rules."""
    broker = SimBroker.create(clock, rules=ExchangeRules.harsh())
    assert broker.exchange.rules == ExchangeRules.harsh()
    assert SimBroker.create(clock).exchange.rules == ExchangeRules.default()
