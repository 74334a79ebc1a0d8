"""Domain model with ProjectX wire values.

Enums carry the exact integers of the ProjectX Gateway so the adapter maps them one to one. Records
are frozen, slotted dataclasses: cheap to build, safe to share between tasks, updated with
``dataclasses.replace``. Prices are ``Decimal`` and sit on the contract's tick grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from enum import IntEnum


class OrderType(IntEnum):
    """ProjectX order types. 3 (StopLimit) exists on the wire but is refused for placement."""

    LIMIT = 1
    MARKET = 2
    STOP_LIMIT = 3
    STOP = 4
    TRAILING_STOP = 5
    JOIN_BID = 6
    JOIN_ASK = 7


STOP_TYPES = frozenset({OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TRAILING_STOP})
"""Order types that protect a position by stopping out (what invariant I6 counts as cover)."""

PLACEABLE_ORDER_TYPES = frozenset(
    {
        OrderType.LIMIT,
        OrderType.MARKET,
        OrderType.STOP,
        OrderType.TRAILING_STOP,
        OrderType.JOIN_BID,
        OrderType.JOIN_ASK,
    }
)


class OrderSide(IntEnum):
    """0 is Bid (buy), 1 is Ask (sell)."""

    BUY = 0
    SELL = 1

    BID = 0
    ASK = 1

    @property
    def opposite(self) -> OrderSide:
        return OrderSide.SELL if self is OrderSide.BUY else OrderSide.BUY

    @property
    def sign(self) -> int:
        """+1 for buys, -1 for sells: the sign a fill of this side adds to a net position."""
        return 1 if self is OrderSide.BUY else -1


class OrderStatus(IntEnum):
    NONE = 0
    OPEN = 1
    FILLED = 2
    CANCELLED = 3
    EXPIRED = 4
    REJECTED = 5
    PENDING = 6
    PENDING_CANCELLATION = 7
    SUSPENDED = 8

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @property
    def is_working(self) -> bool:
        """Can still fill (or become able to fill, for Suspended bracket children)."""
        return self in WORKING_STATUSES


TERMINAL_STATUSES = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.EXPIRED, OrderStatus.REJECTED}
)
WORKING_STATUSES = frozenset(
    {
        OrderStatus.OPEN,
        OrderStatus.PENDING,
        OrderStatus.PENDING_CANCELLATION,
        OrderStatus.SUSPENDED,
    }
)


class PositionType(IntEnum):
    UNDEFINED = 0
    LONG = 1
    SHORT = 2


@dataclass(frozen=True, slots=True)
class Contract:
    """A futures contract. ``id`` is ProjectX's (``CON.F.US.MNQ.Z26``); never parse ``name``."""

    id: str
    name: str
    description: str
    tick_size: Decimal
    tick_value: Decimal
    symbol_id: str
    active: bool = True

    def is_aligned(self, price: Decimal) -> bool:
        return price % self.tick_size == 0

    def align(self, price: Decimal) -> Decimal:
        """The nearest price on the tick grid (half up), with the tick's exponent."""
        ticks = (price / self.tick_size).quantize(Decimal(1), rounding=ROUND_HALF_UP)
        return (ticks * self.tick_size).quantize(self.tick_size)

    def ticks_between(self, a: Decimal, b: Decimal) -> int:
        """Signed number of ticks from ``a`` to ``b``; both must be on the grid."""
        return int((b - a) / self.tick_size)

    def value_of(self, price_delta: Decimal, size: int) -> Decimal:
        """Money value of a price move over ``size`` contracts."""
        return price_delta / self.tick_size * self.tick_value * size


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    name: str
    balance: Decimal
    can_trade: bool = True
    is_visible: bool = True
    simulated: bool = True


@dataclass(frozen=True, slots=True)
class BracketSpec:
    """A native bracket leg: signed tick offset from the entry fill and the leg's order type."""

    ticks: int
    type: OrderType


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """Everything ``Order/place`` takes. ``custom_tag`` must be unique per account."""

    account_id: int
    contract_id: str
    type: OrderType
    side: OrderSide
    size: int
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_price: Decimal | None = None
    custom_tag: str | None = None
    stop_loss_bracket: BracketSpec | None = None
    take_profit_bracket: BracketSpec | None = None


@dataclass(frozen=True, slots=True)
class Order:
    id: int
    account_id: int
    contract_id: str
    creation_timestamp: datetime
    update_timestamp: datetime | None
    status: OrderStatus
    type: OrderType
    side: OrderSide
    size: int
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    fill_volume: int = 0
    filled_price: Decimal | None = None
    custom_tag: str | None = None
    trail_price: Decimal | None = None
    parent_order_id: int | None = None

    @property
    def remaining(self) -> int:
        return self.size - self.fill_volume

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    @property
    def is_working(self) -> bool:
        return self.status.is_working


@dataclass(frozen=True, slots=True)
class Position:
    """A net position. A flat position is reported with ``size == 0``."""

    id: int
    account_id: int
    contract_id: str
    creation_timestamp: datetime
    type: PositionType
    size: int
    average_price: Decimal

    @property
    def signed_size(self) -> int:
        return -self.size if self.type is PositionType.SHORT else self.size


@dataclass(frozen=True, slots=True)
class Trade:
    """One fill. ``profit_and_loss`` is None for a fill that only opens or adds (half-turn)."""

    id: int
    account_id: int
    contract_id: str
    creation_timestamp: datetime
    price: Decimal
    profit_and_loss: Decimal | None
    fees: Decimal
    side: OrderSide
    size: int
    voided: bool
    order_id: int


__all__ = [
    "PLACEABLE_ORDER_TYPES",
    "STOP_TYPES",
    "TERMINAL_STATUSES",
    "WORKING_STATUSES",
    "Account",
    "BracketSpec",
    "Contract",
    "Order",
    "OrderRequest",
    "OrderSide",
    "OrderStatus",
    "OrderType",
    "Position",
    "PositionType",
    "Trade",
]
