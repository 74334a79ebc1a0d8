"""Results of the position-order API: what is true at the broker after the call.

:class:`CancelPositionOrdersResult` keeps the seed's dictionary shape — ``result["entry"]``,
``result["stop"]``, ``result["target"]`` (orders cancelled per type), ``result["failed"]`` and
``result["errors"]`` — and adds one :class:`PositionOrderOutcome` per order with the state it was
re-read in after the cancel, so an order that filled before its cancel is reported as filled
(FAILURES F11) instead of disappearing into a count.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from orderguard.models import OrderStatus
from orderguard.orders.positions.rules import ORDER_KINDS
from orderguard.orders.results import OrderPlaceResponse


@dataclass(frozen=True, slots=True)
class ProtectiveOrderResponse(OrderPlaceResponse):
    """An acknowledged stop loss or take profit, with the operation that journals it."""

    operation_id: str = ""
    kind: str = ""
    """``"stop"`` or ``"target"``."""
    size: int = 0
    position_size: int = 0
    """The signed position the order was sized against."""


@dataclass(frozen=True, slots=True)
class PositionOrderOutcome:
    """One order that ``cancel_position_orders`` acted on, in its final (re-read) state."""

    order_id: int
    kind: str
    status: OrderStatus | None
    """None when no state could be read back (the order is then counted as failed)."""
    fill_volume: int = 0
    error: str | None = None

    @property
    def cancelled(self) -> bool:
        return self.status in (OrderStatus.CANCELLED, OrderStatus.EXPIRED)

    @property
    def filled(self) -> bool:
        """Filled before the cancel took effect: a state, not an error (F11)."""
        return self.status is OrderStatus.FILLED

    @property
    def done(self) -> bool:
        """No longer working: the goal of the cancel is met whatever the reason."""
        return self.status is not None and self.status.is_terminal

    def as_dict(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "kind": self.kind,
            "status": None if self.status is None else self.status.name.lower(),
            "fill_volume": self.fill_volume,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class CancelPositionOrdersResult(Mapping[str, Any]):
    """The seed's detailed result, readable as a mapping, plus each order's final state.

    * ``entry``/``stop``/``target``: orders of that type that ended cancelled;
    * ``filled``: orders that filled before their cancel took effect (not failures: they are no
      longer working, but the position moved — read ``orders`` to see which);
    * ``failed``: orders still working, or whose state could not be read back, after the call;
    * ``errors``: one message per failed order.
    """

    contract_id: str
    orders: tuple[PositionOrderOutcome, ...]

    def _count(self, kind: str) -> int:
        return sum(1 for o in self.orders if o.kind == kind and o.cancelled)

    @property
    def counts(self) -> dict[str, int]:
        return {kind: self._count(kind) for kind in ORDER_KINDS}

    @property
    def cancelled(self) -> int:
        return sum(1 for o in self.orders if o.cancelled)

    @property
    def filled(self) -> int:
        return sum(1 for o in self.orders if o.filled)

    @property
    def failed(self) -> int:
        return sum(1 for o in self.orders if not o.done)

    @property
    def errors(self) -> list[str]:
        return [
            f"order {o.order_id}: {o.error or 'still working'}" for o in self.orders if not o.done
        ]

    @property
    def success(self) -> bool:
        """True when none of the orders is still working."""
        return self.failed == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.counts,
            "filled": self.filled,
            "failed": self.failed,
            "errors": self.errors,
            "orders": [o.as_dict() for o in self.orders],
        }

    # Mapping protocol: the seed's ``result["stop"]`` keeps working.
    def __getitem__(self, key: str) -> Any:
        return self.as_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter((*ORDER_KINDS, "filled", "failed", "errors", "orders"))

    def __len__(self) -> int:
        return len(ORDER_KINDS) + 4

    def __bool__(self) -> bool:
        return self.success


__all__ = ["CancelPositionOrdersResult", "PositionOrderOutcome", "ProtectiveOrderResponse"]
