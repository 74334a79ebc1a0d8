"""The pure parts of ``orderguard status``: coverage per position, and the journal's open
operations with the age of each obligation (read-only)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from orderguard.cli.status_command import open_operations, position_statuses
from orderguard.journal.base import OperationRecord
from orderguard.journal.sqlite import SqliteJournal
from orderguard.models import Order, OrderSide, OrderStatus, OrderType, Position, PositionType

MNQ = "CON.F.US.MNQ.Z26"
T0 = datetime(2026, 12, 7, 14, 30, tzinfo=UTC)


def _position(size: int) -> Position:
    kind = PositionType.LONG if size > 0 else PositionType.SHORT
    return Position(1, 1, MNQ, T0, kind, abs(size), Decimal("21000"))


def _order(side: OrderSide, kind: OrderType, size: int, oid: int = 1) -> Order:
    return Order(oid, 1, MNQ, T0, None, OrderStatus.OPEN, kind, side, size,
                 stop_price=Decimal("20900"))  # fmt: skip


def test_coverage_flags_naked_protected_and_over_covered() -> None:
    """Stops on the reducing side count; a buy stop does not protect a long."""
    naked = position_statuses([_position(2)], [_order(OrderSide.BUY, OrderType.STOP, 2)])
    assert naked[0].coverage == "naked" and naked[0].stops == 0
    exact = position_statuses([_position(-2)], [_order(OrderSide.BUY, OrderType.STOP, 2)])
    assert exact[0].coverage == "protected"
    over = position_statuses(
        [_position(1)],
        [_order(OrderSide.SELL, OrderType.STOP, 1), _order(OrderSide.SELL, OrderType.STOP, 1, 2)],
    )
    assert over[0].coverage == "over_covered" and over[0].stops == 2
    assert position_statuses([], [_order(OrderSide.SELL, OrderType.STOP, 1)]) == []


async def test_obligations_are_dated_from_entering_rolling_back(tmp_path: Path) -> None:
    """A rolling_back operation is an obligation aged from its state change, not its creation;
    finished operations are not listed."""
    path = tmp_path / "j.db"
    async with SqliteJournal(path) as journal:
        for op_id, state in (("aaaaaaaaaaaa", "in_progress"), ("bbbbbbbbbbbb", "completed")):
            await journal.start_operation(
                OperationRecord(op_id, "bracket_order", "pending", T0, T0, 1, MNQ)
            )
            await journal.update_operation(op_id, state, reason="x", at=T0)
        await journal.update_operation(
            "aaaaaaaaaaaa", "rolling_back", reason="forced", at=T0 + timedelta(seconds=30)
        )
    ops = await open_operations(path, T0 + timedelta(seconds=90))
    assert [(o.operation_id, o.obligation) for o in ops] == [("aaaaaaaaaaaa", True)]
    assert ops[0].since == T0 + timedelta(seconds=30) and ops[0].age_seconds == 60.0
