"""Mutable state records of the simulated exchange, and the result values of its endpoints.

The exchange mutates these in place (cheap on the fill path) and hands out frozen
:mod:`orderguard.models` snapshots to everybody else, so no caller can alter exchange state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from orderguard.models import (
    Account,
    Contract,
    Order,
    OrderSide,
    OrderStatus,
    OrderType,
    Position,
    PositionType,
    Trade,
)

from .matching import FLAT, Exact, MatchState


@dataclass(frozen=True, slots=True)
class SimResult:
    """An endpoint's answer: ``error_code`` 0 is success, anything else is that endpoint's code."""

    error_code: int = 0
    error_message: str | None = None

    @property
    def success(self) -> bool:
        return self.error_code == 0


@dataclass(frozen=True, slots=True)
class SimOrderResult(SimResult):
    """``Order/place`` (and closes, which place a market order): the order id when one exists."""

    order_id: int | None = None


class LiveOrder(MatchState):
    """An order as the exchange holds it. ``run`` marks the matching run that last evaluated it."""

    __slots__ = (
        "account_id",
        "bracket",
        "bracket_ticks",
        "contract",
        "created",
        "custom_tag",
        "fill_volume",
        "filled_price",
        "id",
        "notional",
        "parent_order_id",
        "pinned",
        "resized",
        "run",
        "size",
        "status",
        "unlimited",
        "updated",
    )

    def __init__(
        self,
        order_id: int,
        *,
        account_id: int,
        contract: Contract,
        now: datetime,
        status: OrderStatus,
        order_type: OrderType,
        side: OrderSide,
        size: int,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
        trail_price: Decimal | None = None,
        custom_tag: str | None = None,
        parent_order_id: int | None = None,
    ) -> None:
        super().__init__(side, order_type, limit_price, stop_price, trail_price)
        self.id = order_id
        self.account_id = account_id
        self.contract = contract
        self.created = now
        self.updated = now
        self.status = status
        self.size = size
        self.fill_volume = 0
        self.notional = Decimal(0)
        self.filled_price: Decimal | None = None
        self.custom_tag = custom_tag
        self.parent_order_id = parent_order_id
        self.bracket: Bracket | None = None
        self.bracket_ticks: int | None = None  # signed offset of a bracket leg from the fill
        self.pinned = False  # a leg whose price the client modified is no longer re-anchored
        self.resized = False  # a leg whose size the client modified (rules.resized_leg_fill)
        self.unlimited = False  # closes fill at once, whatever the liquidity model says
        self.run = -1

    @property
    def is_working(self) -> bool:
        return self.status is OrderStatus.OPEN or self.status is OrderStatus.SUSPENDED

    def snapshot(self) -> Order:
        return Order(
            id=self.id,
            account_id=self.account_id,
            contract_id=self.contract.id,
            creation_timestamp=self.created,
            update_timestamp=self.updated,
            status=self.status,
            type=self.type,
            side=self.side,
            size=self.size,
            limit_price=self.limit_price,
            stop_price=self.stop_price,
            fill_volume=self.fill_volume,
            filled_price=self.filled_price,
            custom_tag=self.custom_tag,
            trail_price=self.trail_price,
            parent_order_id=self.parent_order_id,
        )


class Bracket:
    """A native bracket: the entry and its legs (stop loss first, then take profit)."""

    __slots__ = ("entry", "legs")

    def __init__(self, entry: LiveOrder) -> None:
        self.entry = entry
        self.legs: list[LiveOrder] = []

    def uncovered(self) -> int:
        """Entry contracts filled and not yet exited by a leg: what each working leg must cover."""
        return self.entry.fill_volume - sum(leg.fill_volume for leg in self.legs)


class NetPosition:
    """One net position per (account, contract); ``size`` is signed (long positive).

    ``average`` is the exact average price; ``average_price`` is its wire value (9 places), kept
    beside it because every snapshot reports it and it changes only when the position adds.
    """

    __slots__ = ("account_id", "average", "average_price", "contract", "created", "id", "size")

    def __init__(
        self, position_id: int, account_id: int, contract: Contract, now: datetime
    ) -> None:
        self.id = position_id
        self.account_id = account_id
        self.contract = contract
        self.created = now
        self.size = 0
        self.average: Exact = FLAT
        self.average_price = Decimal(0)

    def snapshot(self, *, flat_type: PositionType = PositionType.UNDEFINED) -> Position:
        """A flat position reports ``size`` 0 with the direction it had (``flat_type``)."""
        if self.size > 0:
            kind = PositionType.LONG
        elif self.size < 0:
            kind = PositionType.SHORT
        else:
            kind = flat_type
        return Position(
            id=self.id,
            account_id=self.account_id,
            contract_id=self.contract.id,
            creation_timestamp=self.created,
            type=kind,
            size=abs(self.size),
            average_price=self.average_price,
        )


@dataclass(slots=True)
class AccountState:
    """An account and everything it owns. Orders are kept in id (= creation) order."""

    id: int
    name: str
    balance: Decimal
    native_brackets: bool
    max_order_size: int | None
    can_trade: bool = True
    orders: dict[int, LiveOrder] = field(default_factory=dict)
    tags: set[str] = field(default_factory=set)
    trades: list[Trade] = field(default_factory=list)
    positions: dict[str, NetPosition] = field(default_factory=dict)

    def snapshot(self) -> Account:
        return Account(
            id=self.id,
            name=self.name,
            balance=self.balance,
            can_trade=self.can_trade,
            is_visible=True,
            simulated=True,
        )


__all__ = ["AccountState", "Bracket", "LiveOrder", "NetPosition", "SimOrderResult", "SimResult"]
