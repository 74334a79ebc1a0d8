"""The pure position-order rules: classification, price sides, follow planning."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from orderguard.errors import InvalidPriceError
from orderguard.models import Order, OrderSide, OrderStatus, OrderType
from orderguard.orders.positions.rules import (
    Cancel,
    ExitKind,
    ExitView,
    Replace,
    Resize,
    check_protective_stop,
    check_protective_target,
    classify_order,
    plan_follow,
)

BUY, SELL = OrderSide.BUY, OrderSide.SELL


def _order(kind: OrderType, side: OrderSide, parent: int | None = None) -> Order:
    stamp = datetime(2026, 1, 5, tzinfo=UTC)
    return Order(1, 1, "C", stamp, None, OrderStatus.OPEN, kind, side, 1, parent_order_id=parent)


@pytest.mark.parametrize(
    ("kind", "side", "position", "expected"),
    [
        (OrderType.STOP, SELL, 2, ExitKind.STOP),
        (OrderType.TRAILING_STOP, SELL, 2, ExitKind.STOP),
        (OrderType.LIMIT, SELL, 2, ExitKind.TARGET),
        (OrderType.LIMIT, BUY, 2, ExitKind.ENTRY),
        (OrderType.STOP, BUY, 2, ExitKind.ENTRY),
        (OrderType.STOP, BUY, -1, ExitKind.STOP),
        (OrderType.LIMIT, BUY, -1, ExitKind.TARGET),
        (OrderType.MARKET, SELL, 2, ExitKind.ENTRY),
        (OrderType.STOP, SELL, 0, ExitKind.ENTRY),
        (OrderType.LIMIT, SELL, 0, ExitKind.ENTRY),
    ],
)
def test_classification_by_side_and_type(
    kind: OrderType, side: OrderSide, position: int, expected: ExitKind
) -> None:
    """Reducing-side stops are stops, reducing-side limits targets, all else entries."""
    assert classify_order(_order(kind, side), position) is expected


def test_known_role_and_bracket_children_win() -> None:
    """A known exit or a native bracket leg keeps its role even on a flat contract."""
    assert classify_order(_order(OrderType.LIMIT, SELL), 0, ExitKind.TARGET) is ExitKind.TARGET
    assert classify_order(_order(OrderType.STOP, SELL, parent=9), 0) is ExitKind.STOP


@pytest.mark.parametrize(
    ("side", "price"), [(SELL, "100"), (SELL, "101"), (BUY, "100"), (BUY, "99")]
)
def test_stop_on_the_wrong_side_is_refused(side: OrderSide, price: str) -> None:
    """A sell stop at/above the market and a buy stop at/below it are refused."""
    with pytest.raises(InvalidPriceError):
        check_protective_stop(side, Decimal(price), Decimal("100"))


@pytest.mark.parametrize(
    ("side", "price"), [(SELL, "100"), (SELL, "99"), (BUY, "100"), (BUY, "101")]
)
def test_marketable_target_is_refused(side: OrderSide, price: str) -> None:
    """A target at or through the market is refused."""
    with pytest.raises(InvalidPriceError):
        check_protective_target(side, Decimal(price), Decimal("100"))


def _view(
    order_id: int, side: OrderSide, size: int, filled: int = 0, cover: int | None = None
) -> ExitView:
    return ExitView(order_id, side, size, filled, True, cover)


def test_plan_flat_cancels_every_exit() -> None:
    """Flat: every working exit is cancelled."""
    actions = plan_follow(0, [_view(1, SELL, 2), _view(2, SELL, 2)])
    assert [type(a) for a in actions] == [Cancel, Cancel]


def test_plan_resizes_remaining_to_the_position() -> None:
    """A partly filled exit gets fill_volume + position as its new total size."""
    assert plan_follow(3, [_view(1, SELL, 4, filled=2)]) == [Resize(1, 5, 3)]


def test_plan_leaves_matching_exits_alone() -> None:
    """Nothing to do when the remaining quantity already equals the position."""
    assert plan_follow(-2, [_view(1, BUY, 2)]) == []


def test_plan_cancels_exits_of_a_flipped_position() -> None:
    """An exit on the now-increasing side is cancelled."""
    assert plan_follow(-1, [_view(1, SELL, 2)]) == [Cancel(1, "position flipped to the other side")]


def test_plan_fixed_cover_is_capped_by_the_position() -> None:
    """A fixed-size exit keeps its size while covered and shrinks below it."""
    assert plan_follow(5, [_view(1, SELL, 2, cover=2)]) == []
    assert plan_follow(1, [_view(1, SELL, 2, cover=2)]) == [Resize(1, 1, 1)]


def test_plan_caps_at_the_order_size_limit() -> None:
    """A position above the account's order limit is covered as far as the limit allows."""
    assert plan_follow(80, [_view(1, SELL, 10)], max_size=50) == [Resize(1, 50, 50)]


def test_plan_keeps_working_stops_before_placing_dormant_ones_again() -> None:
    """Working stops cover -9 (3 + 3 + 3 of fixed cover); three older fixed-cover stops are
    dormant. Nothing to do: the dormant ones are placed again only for what the working ones
    leave. Ranked by age, the dormant ones took the working ones' share, which were cancelled,
    went dormant and took it back the next round (chaos seed 457: a new order per stop every
    round)."""
    dormant = [ExitView(n, BUY, 1, 0, False, 1, replace=True) for n in (36, 37, 38)]
    working = [_view(n, BUY, 3, cover=3) for n in (14, 32, 47)]
    assert plan_follow(-9, [*dormant, *working]) == []
    # What the working ones leave goes to the dormant ones, oldest first.
    assert plan_follow(-10, [*dormant, *working]) == [Replace(36, 1)]
