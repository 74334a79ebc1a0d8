"""Protection coverage per position (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from orderguard.models import Order, OrderSide, OrderStatus, OrderType, Position, PositionType
from orderguard.ops.coverage import Coverage, coverage

T = datetime(2026, 1, 5, tzinfo=UTC)
C = "CON.F.US.MNQ.Z26"


def pos(size: int) -> Position:
    kind = PositionType.LONG if size > 0 else PositionType.SHORT
    return Position(1, 1, C, T, kind, abs(size), Decimal("21000"))


def order(
    oid: int,
    side: OrderSide,
    size: int,
    kind: OrderType = OrderType.STOP,
    status: OrderStatus = OrderStatus.OPEN,
) -> Order:
    return Order(oid, 1, C, T, None, status, kind, side, size, stop_price=Decimal("20990"))


def test_statuses() -> None:
    """Naked, partial, protected and over, judged on the closing side's working stops."""
    sell = OrderSide.SELL
    assert coverage([pos(2)], [])[0].status is Coverage.NAKED
    assert coverage([pos(2)], [order(1, sell, 1)])[0].status is Coverage.PARTIAL
    assert coverage([pos(2)], [order(1, sell, 2)])[0].status is Coverage.PROTECTED
    assert coverage([pos(2)], [order(1, sell, 2), order(2, sell, 1)])[0].status is Coverage.OVER


def test_a_stop_on_the_wrong_side_or_suspended_protects_nothing() -> None:
    """A buy stop does not cover a long; a Suspended bracket child does not cover yet."""
    rows = coverage(
        [pos(1)],
        [
            order(1, OrderSide.BUY, 1),
            order(2, OrderSide.SELL, 1, status=OrderStatus.SUSPENDED),
        ],
    )
    assert rows[0].status is Coverage.NAKED and rows[0].uncovered == 1


def test_a_stop_on_a_flat_contract_is_an_orphan() -> None:
    [row] = coverage([], [order(1, OrderSide.SELL, 1)])
    assert row.status is Coverage.ORPHAN and row.flagged


def test_targets_are_counted_apart_from_stops() -> None:
    [row] = coverage([pos(-1)], [order(1, OrderSide.BUY, 1, kind=OrderType.LIMIT)])
    assert row.status is Coverage.NAKED and row.target_cover == 1
