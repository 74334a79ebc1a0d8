"""What the OrderManager returns: results that say what is true at the broker.

:class:`OrderPlaceResponse` keeps project-x-py's field names (``orderId``, ``success``,
``errorCode``, ``errorMessage``) as read-only aliases of the snake_case fields, so code written
against project-x-py keeps working.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from orderguard.models import Order, OrderStatus


class Resolution(StrEnum):
    """How a mutation's result was established."""

    CONFIRMED = "confirmed"  # the broker answered
    TAG_LOOKUP = "tag_lookup"  # the answer was lost; the order was found by its customTag
    RESENT = "resent"  # lost on the way (absent by its tag): sent again under the same tag
    STATE_READ = "state_read"  # the answer was lost or negative; the order's state was re-read
    ALREADY_FINAL = "already_final"  # the order was known to be final; nothing was sent


@dataclass(frozen=True, slots=True)
class OrderPlaceResponse:
    """Result of a placement. Failures raise; a returned response is an order that exists."""

    order_id: int
    custom_tag: str
    success: bool = True
    error_code: int = 0
    error_message: str | None = None
    status: OrderStatus | None = None
    """Status when known at return time (always set after a tag look-up)."""
    resolution: Resolution = Resolution.CONFIRMED

    # project-x-py names
    @property
    def orderId(self) -> int:  # project-x-py name
        return self.order_id

    @property
    def errorCode(self) -> int:  # project-x-py name
        return self.error_code

    @property
    def errorMessage(self) -> str | None:  # project-x-py name
        return self.error_message

    @property
    def customTag(self) -> str:  # project-x-py name
        return self.custom_tag


@dataclass(frozen=True, slots=True)
class CancelResult:
    """Final state of an order after a cancel request. Truthy only when the order is cancelled.

    "Not found" and "already filled" are states (FAILURES F11), reported here rather than raised.
    """

    order_id: int
    status: OrderStatus | None
    """The order's status after the request; None when no order with that id was found."""
    found: bool
    fill_volume: int = 0
    accepted: bool = False
    """The broker accepted the cancel request (the order may still have filled first)."""
    resolution: Resolution = Resolution.CONFIRMED
    error_code: int = 0
    detail: str = ""

    @property
    def cancelled(self) -> bool:
        return self.status is OrderStatus.CANCELLED

    @property
    def filled(self) -> bool:
        return self.status is OrderStatus.FILLED

    def __bool__(self) -> bool:
        return self.cancelled


@dataclass(frozen=True, slots=True)
class CancelAllResult:
    """One :class:`CancelResult` per order that was working when the call started."""

    results: tuple[CancelResult, ...]
    operation_id: str | None = None
    """The BULK_CANCEL operation that journaled this call (None if the journal was down)."""

    @property
    def total(self) -> int:
        return len(self.results)

    @property
    def cancelled(self) -> int:
        return sum(1 for r in self.results if r.cancelled)

    @property
    def failed(self) -> int:
        """Orders not cancelled (filled first, unreadable, refused)."""
        return self.total - self.cancelled

    def __iter__(self) -> Iterator[CancelResult]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __bool__(self) -> bool:
        return all(r.cancelled for r in self.results)


@dataclass(frozen=True, slots=True)
class ModifyResult:
    """Outcome of a modify, with the order as it is live at the broker when that is known."""

    order_id: int
    success: bool
    order: Order | None
    resolution: Resolution = Resolution.CONFIRMED
    error_code: int = 0
    error_message: str | None = None
    operation_id: str | None = None
    """The ORDER_MODIFICATION operation that journaled this call (None if nothing was sent)."""
    previous: Order | None = None
    """The order as it was before the modification was sent."""

    def __bool__(self) -> bool:
        return self.success


class CloseOutcome(StrEnum):
    """How a position close ended."""

    CLOSED = "closed"  # the requested quantity was flattened
    PARTIAL = "partial"  # only part of it was flattened (the rest is still held)
    NOTHING_TO_CLOSE = "nothing_to_close"  # the caller owns nothing the account still holds
    REJECTED = "rejected"  # the close order was definitively refused; nothing changed
    UNKNOWN = "unknown"  # the close order's outcome could not be established; reconcile


@dataclass(frozen=True, slots=True)
class ClosePositionResult:
    """What a ``close_position`` did, from broker truth. Sizes are unsigned, positions signed."""

    operation_id: str | None
    contract_id: str
    requested_size: int
    """What was to be flattened: the caller's quantity, capped at the position."""
    closed_size: int
    """What was actually flattened (the close order's filled volume)."""
    position_before: int
    final_position: int | None
    """The account's net position after the close (None if it could not be read)."""
    outcome: CloseOutcome
    order_id: int | None = None
    detail: str = ""

    def __bool__(self) -> bool:
        return self.outcome in (CloseOutcome.CLOSED, CloseOutcome.NOTHING_TO_CLOSE)


__all__ = [
    "CancelAllResult",
    "CancelResult",
    "CloseOutcome",
    "ClosePositionResult",
    "ModifyResult",
    "OrderPlaceResponse",
    "Resolution",
]
