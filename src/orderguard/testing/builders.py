"""Hand-built broker truth and journal operations, for tests of invariants and recovery plans.

All on account 1 and MNQ, with the virtual clock's epoch as every timestamp.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from orderguard.clock import DEFAULT_EPOCH
from orderguard.models import Order, OrderSide, OrderStatus, OrderType, Position, PositionType
from orderguard.recovery.manager import OrderReference, RecoveryOperation, RefStatus
from orderguard.recovery.operations import OperationState, OperationType

MNQ = "CON.F.US.MNQ.Z26"
T0: datetime = DEFAULT_EPOCH


def order(
    order_id: int,
    tag: str | None,
    side: OrderSide,
    size: int,
    *,
    kind: OrderType = OrderType.MARKET,
    status: OrderStatus = OrderStatus.FILLED,
    filled: int | None = None,
    parent: int | None = None,
) -> Order:
    fill = (size if status is OrderStatus.FILLED else 0) if filled is None else filled
    return Order(
        id=order_id, account_id=1, contract_id=MNQ, creation_timestamp=T0, update_timestamp=T0,
        status=status, type=kind, side=side, size=size,
        stop_price=Decimal("20990") if kind is OrderType.STOP else None,
        limit_price=Decimal("21010") if kind is OrderType.LIMIT else None,
        fill_volume=fill, custom_tag=tag, parent_order_id=parent,
    )  # fmt: skip


def position(signed: int) -> Position:
    kind = PositionType.LONG if signed > 0 else PositionType.SHORT
    return Position(1, 1, MNQ, T0, kind, abs(signed), Decimal("21000"))


def ref(
    leg: str,
    tag: str,
    side: OrderSide,
    size: int,
    *,
    status: str = RefStatus.CONFIRMED,
    order_id: int | None = None,
    filled: int = 0,
) -> OrderReference:
    return OrderReference(
        leg=leg, custom_tag=tag, contract_id=MNQ, side=int(side), size=size,
        order_type="market", account_id=1, order_id=order_id, status=status,
        filled_size=filled, placed_successfully=order_id is not None,
    )  # fmt: skip


def operation(
    op_id: str,
    *refs: OrderReference,
    state: OperationState = OperationState.COMPLETED,
    op_type: OperationType = OperationType.BRACKET_ORDER,
    oco: tuple[tuple[str, str], ...] = (),
) -> RecoveryOperation:
    op = RecoveryOperation(op_id, op_type, state, T0, account_id=1, contract_id=MNQ)
    op.orders = {r.leg: r for r in refs}
    op.oco_pairs = list(oco)
    return op


BUY, SELL = OrderSide.BUY, OrderSide.SELL


__all__ = ["BUY", "MNQ", "SELL", "T0", "operation", "order", "position", "ref"]
