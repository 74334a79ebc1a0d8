"""Native brackets (§9): Suspended legs, activation on fill, re-anchoring, sizing, OCO."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from orderguard.broker.sim import SimExchange
from orderguard.clock import VirtualClock
from orderguard.models import BracketSpec, Order, OrderRequest, OrderStatus, OrderType

D = Decimal
MNQ = "CON.F.US.MNQ.Z26"
RequestFactory = Callable[..., OrderRequest]
SL = BracketSpec(-8, OrderType.STOP)  # 2.00 points below the fill
TP = BracketSpec(16, OrderType.LIMIT)  # 4.00 points above the fill


def legs(ex: SimExchange, parent: int | None) -> tuple[Order, Order]:
    found = [o for o in ex.orders(1) if o.parent_order_id == parent]
    assert len(found) == 2
    stop, target = found
    return stop, target


def get(ex: SimExchange, order_id: int | None) -> Order:
    order = ex.order(1, order_id or 0)
    assert order is not None
    return order


@pytest.fixture
def thin(clock: VirtualClock) -> SimExchange:
    ex = SimExchange(clock, liquidity=1)
    ex.open_account()
    ex.set_price(MNQ, D("21000"))
    return ex


def test_legs_are_suspended_children_until_the_entry_fills(
    market: SimExchange, req: RequestFactory
) -> None:
    """A resting bracketed entry has two Suspended children pointing at it."""
    entry = market.place(
        req(OrderType.LIMIT, "buy", 2, limit_price=D("20990"), stop_loss_bracket=SL,
            take_profit_bracket=TP)
    )  # fmt: skip
    stop, target = legs(market, entry.order_id)
    assert (stop.status, target.status) == (OrderStatus.SUSPENDED, OrderStatus.SUSPENDED)
    assert (stop.type, target.type) == (OrderType.STOP, OrderType.LIMIT)
    assert stop.side is target.side is get(market, entry.order_id).side.opposite


def test_suspended_legs_are_hidden_from_open_orders(
    market: SimExchange, req: RequestFactory
) -> None:
    """open_orders (Order/searchOpen) lists the entry but not its Suspended legs."""
    entry = market.place(req(OrderType.LIMIT, "buy", limit_price=D("20990"), stop_loss_bracket=SL))
    assert [o.id for o in market.open_orders(1)] == [entry.order_id]
    assert len(market.orders(1)) == 2


def test_legs_open_on_fill_anchored_at_the_actual_fill_price(
    market: SimExchange, req: RequestFactory
) -> None:
    """A marketable limit fills at 21000.25; legs anchor there, not at the limit price."""
    entry = market.place(
        req(OrderType.LIMIT, "buy", 1, limit_price=D("21002"), stop_loss_bracket=SL,
            take_profit_bracket=TP)
    )  # fmt: skip
    stop, target = legs(market, entry.order_id)
    assert (stop.status, stop.stop_price) == (OrderStatus.OPEN, D("20998.25"))
    assert (target.status, target.limit_price) == (OrderStatus.OPEN, D("21004.25"))


def test_short_entry_legs_mirror_the_long(market: SimExchange, req: RequestFactory) -> None:
    """A short's stop sits above and its target below the fill (at the bid, 21000)."""
    entry = market.place(
        req(OrderType.MARKET, "sell", 1, stop_loss_bracket=BracketSpec(8, OrderType.STOP),
            take_profit_bracket=BracketSpec(-16, OrderType.LIMIT))
    )  # fmt: skip
    stop, target = legs(market, entry.order_id)
    assert (stop.stop_price, target.limit_price) == (D("21002"), D("20996"))


def test_legs_are_sized_and_reanchored_as_partial_fills_grow(
    thin: SimExchange, req: RequestFactory
) -> None:
    """With one contract per step, legs grow 1 -> 2 and move to the new average fill price."""
    entry = thin.place(
        req(OrderType.MARKET, "buy", 2, stop_loss_bracket=SL, take_profit_bracket=TP)
    )
    stop, _ = legs(thin, entry.order_id)
    assert (stop.size, stop.stop_price) == (1, D("20998.25"))
    thin.set_price(MNQ, D("21001"))  # second contract at 21001.25: average 21000.75
    stop, target = legs(thin, entry.order_id)
    assert (stop.size, stop.stop_price) == (2, D("20998.75"))
    assert (target.size, target.limit_price) == (2, D("21004.75"))


def test_target_fill_cancels_the_stop(market: SimExchange, req: RequestFactory) -> None:
    """Server-side OCO: when the take profit fills, the stop loss is cancelled and we are flat."""
    entry = market.place(
        req(OrderType.MARKET, "buy", 2, stop_loss_bracket=SL, take_profit_bracket=TP)
    )
    market.set_price(MNQ, D("21004.25"))
    stop, target = legs(market, entry.order_id)
    assert (target.status, stop.status) == (OrderStatus.FILLED, OrderStatus.CANCELLED)
    assert market.position_size(1, MNQ) == 0


def test_stop_fill_cancels_the_target(market: SimExchange, req: RequestFactory) -> None:
    """When the stop loss triggers and fills, the take profit is cancelled."""
    entry = market.place(
        req(OrderType.MARKET, "buy", 1, stop_loss_bracket=SL, take_profit_bracket=TP)
    )
    market.set_price(MNQ, D("20998"))
    stop, target = legs(market, entry.order_id)
    assert (stop.status, target.status) == (OrderStatus.FILLED, OrderStatus.CANCELLED)
    assert stop.filled_price == D("20998")


def test_partial_leg_fill_reduces_the_sibling(thin: SimExchange, req: RequestFactory) -> None:
    """One of two target contracts filling shrinks the stop to the one contract still held."""
    entry = thin.place(
        req(OrderType.MARKET, "buy", 2, stop_loss_bracket=SL, take_profit_bracket=TP)
    )
    thin.set_price(MNQ, D("21000"))  # second entry contract
    thin.set_price(MNQ, D("21010"))  # target fills one contract
    stop, target = legs(thin, entry.order_id)
    assert (target.status, target.fill_volume) == (OrderStatus.OPEN, 1)
    assert (stop.status, stop.size, stop.remaining) == (OrderStatus.OPEN, 1, 1)
    assert thin.position_size(1, MNQ) == 1


def test_leg_exhausting_cover_cancels_the_entry_remainder(
    thin: SimExchange, req: RequestFactory
) -> None:
    """A leg exiting everything filled while the entry still works cancels the entry's rest."""
    entry = thin.place(
        req(OrderType.LIMIT, "buy", 3, limit_price=D("21002"), stop_loss_bracket=SL,
            take_profit_bracket=TP)
    )  # fmt: skip
    thin.set_price(MNQ, D("21004.25"))  # above the entry limit; the target fills its 1 contract
    stop, target = legs(thin, entry.order_id)
    assert (target.status, stop.status) == (OrderStatus.FILLED, OrderStatus.CANCELLED)
    order = get(thin, entry.order_id)
    assert (order.status, order.fill_volume) == (OrderStatus.CANCELLED, 1)
    thin.set_price(MNQ, D("20990"))
    assert thin.position_size(1, MNQ) == 0


def test_entry_cancelled_unfilled_cancels_its_legs(
    market: SimExchange, req: RequestFactory
) -> None:
    """Cancelling a bracketed entry with no fill cancels both Suspended legs."""
    entry = market.place(
        req(OrderType.LIMIT, "buy", limit_price=D("20990"), stop_loss_bracket=SL,
            take_profit_bracket=TP)
    )  # fmt: skip
    market.cancel(1, entry.order_id or 0)
    assert {o.status for o in legs(market, entry.order_id)} == {OrderStatus.CANCELLED}


def test_entry_cancelled_after_a_partial_fill_keeps_its_legs(
    thin: SimExchange, req: RequestFactory
) -> None:
    """Cancelling the rest of a partly filled entry leaves the legs protecting the fill."""
    entry = thin.place(
        req(OrderType.MARKET, "buy", 3, stop_loss_bracket=SL, take_profit_bracket=TP)
    )
    thin.cancel(1, entry.order_id or 0)
    stop, target = legs(thin, entry.order_id)
    assert (stop.status, stop.size, target.status, target.size) == (
        OrderStatus.OPEN, 1, OrderStatus.OPEN, 1,
    )  # fmt: skip


def test_position_brackets_account_rejects_bracket_orders(
    market: SimExchange, req: RequestFactory
) -> None:
    """An account in Position Brackets mode refuses native brackets with the reported text."""
    market.set_native_brackets(1, False)
    result = market.place(req(OrderType.MARKET, "buy", stop_loss_bracket=SL))
    assert result.error_code == 2
    assert result.error_message == (
        "Brackets cannot be used with Position Brackets. You must enable Auto OCO Brackets."
    )
    assert market.orders(1) == []


@pytest.mark.parametrize(
    ("side", "stop_loss", "take_profit", "message"),
    [
        ("buy", 8, 16, "Invalid stop loss ticks (8). Ticks should be less than zero when longing."),
        ("buy", -8, -16,
         "Invalid take profit ticks (-16). Ticks should be greater than zero when longing."),
        ("sell", -8, -16,
         "Invalid stop loss ticks (-8). Ticks should be greater than zero when going short."),
        ("sell", 8, 16,
         "Invalid take profit ticks (16). Ticks should be less than zero when going short."),
    ],
)  # fmt: skip
def test_bracket_tick_signs_are_validated(
    market: SimExchange,
    req: RequestFactory,
    side: str,
    stop_loss: int,
    take_profit: int,
    message: str,
) -> None:
    """Unsigned or wrongly signed bracket ticks are rejected with the field-reported message."""
    result = market.place(
        req(OrderType.MARKET, side, stop_loss_bracket=BracketSpec(stop_loss, OrderType.STOP),
            take_profit_bracket=BracketSpec(take_profit, OrderType.LIMIT))
    )  # fmt: skip
    assert (result.error_code, result.error_message) == (2, message)


def test_limit_stop_loss_type_is_rejected(market: SimExchange, req: RequestFactory) -> None:
    """A stop loss leg must be a Stop or TrailingStop: "Invalid stop loss type (Limit)."."""
    result = market.place(
        req(OrderType.MARKET, "buy", stop_loss_bracket=BracketSpec(-8, OrderType.LIMIT))
    )
    assert result.error_message == "Invalid stop loss type (Limit)."


def test_close_position_leaves_bracket_legs_as_orphans(
    market: SimExchange, req: RequestFactory
) -> None:
    """By default closeContract does not cancel the legs (field reports): they stay Open."""
    entry = market.place(req(OrderType.MARKET, "buy", stop_loss_bracket=SL, take_profit_bracket=TP))
    market.close_position(1, MNQ)
    assert {o.status for o in legs(market, entry.order_id)} == {OrderStatus.OPEN}


def test_close_can_be_configured_to_cancel_bracket_legs(
    clock: VirtualClock, req: RequestFactory
) -> None:
    """With close_cancels_brackets=True the close also cancels the legs."""
    ex = SimExchange(clock, close_cancels_brackets=True)
    ex.open_account()
    ex.set_price(MNQ, D("21000"))
    entry = ex.place(req(OrderType.MARKET, "buy", stop_loss_bracket=SL, take_profit_bracket=TP))
    ex.close_position(1, MNQ)
    assert {o.status for o in legs(ex, entry.order_id)} == {OrderStatus.CANCELLED}


def test_trailing_stop_loss_leg_follows_the_market(
    market: SimExchange, req: RequestFactory
) -> None:
    """A TrailingStop leg starts at the fill minus its ticks and trails the market up."""
    entry = market.place(
        req(OrderType.MARKET, "buy", stop_loss_bracket=BracketSpec(-8, OrderType.TRAILING_STOP))
    )
    market.set_price(MNQ, D("21010"))
    [stop] = [o for o in market.orders(1) if o.parent_order_id == entry.order_id]
    assert (stop.stop_price, stop.trail_price) == (D("21008"), D("2"))


def test_modified_leg_price_is_not_reanchored(thin: SimExchange, req: RequestFactory) -> None:
    """A stop the client moved keeps its price when later entry fills re-anchor the other leg."""
    entry = thin.place(
        req(OrderType.MARKET, "buy", 2, stop_loss_bracket=SL, take_profit_bracket=TP)
    )
    stop, _ = legs(thin, entry.order_id)
    assert thin.modify(1, stop.id, stop_price=D("20990")).success
    thin.set_price(MNQ, D("21001"))
    stop, target = legs(thin, entry.order_id)
    assert (stop.stop_price, stop.size) == (D("20990"), 2)
    assert target.limit_price == D("21004.75")
