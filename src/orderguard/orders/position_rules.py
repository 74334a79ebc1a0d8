"""Position-order rules: pure decisions, no I/O.

Three questions are answered here, from plain values, so they can be tested exhaustively and reused
by the CLI and the chaos invariants:

* **What is this order to the position?** (:func:`classify_order`) The rule, in order:

  1. a *known* role wins: an exit this library placed or was told about (``known_role``), or a
     native bracket child (``parent_order_id`` set: its stop/trailing-stop leg is a "stop", its
     limit leg a "target");
  2. otherwise, with a non-zero position, an order on the *reducing* side (sell for a long, buy
     for a short) is an exit: STOP, TRAILING_STOP and STOP_LIMIT are "stop", LIMIT is "target";
  3. everything else is an "entry" — on a flat contract every order of unknown role could only
     open a position, so it is an entry there.

* **Is this protective price sane?** (:func:`check_protective_stop`,
  :func:`check_protective_target`) A stop must sit on the losing side of the market (below it
  for a long), a target on the winning side (above it for a long); otherwise the "protective"
  order executes at once and is really a market exit.

* **What must change so managed exits match the position?** (:func:`plan_follow`)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from orderguard.errors import InvalidPriceError
from orderguard.models import Order, OrderSide, OrderType


class ExitKind(StrEnum):
    """The role of a working order relative to the position on its contract."""

    ENTRY = "entry"
    STOP = "stop"
    TARGET = "target"


ORDER_KINDS: tuple[str, ...] = (ExitKind.ENTRY.value, ExitKind.STOP.value, ExitKind.TARGET.value)

_STOP_TYPES = frozenset({OrderType.STOP, OrderType.TRAILING_STOP, OrderType.STOP_LIMIT})
_TARGET_TYPES = frozenset({OrderType.LIMIT})


def reducing_side(signed_position: int) -> OrderSide | None:
    """The side that reduces a position: sell for a long, buy for a short, None when flat."""
    if signed_position > 0:
        return OrderSide.SELL
    if signed_position < 0:
        return OrderSide.BUY
    return None


def kind_of_type(order_type: OrderType) -> ExitKind:
    """The exit kind an order type has when it sits on the reducing side."""
    if order_type in _STOP_TYPES:
        return ExitKind.STOP
    if order_type in _TARGET_TYPES:
        return ExitKind.TARGET
    return ExitKind.ENTRY


def classify_order(
    order: Order, signed_position: int, known_role: ExitKind | None = None
) -> ExitKind:
    """The order's role ("entry", "stop" or "target"); see the module docstring for the rule."""
    if known_role is not None:
        return known_role
    if order.parent_order_id is not None:
        # A native bracket leg exits the position its parent opens, even before it is filled.
        role = kind_of_type(order.type)
        if role is not ExitKind.ENTRY:
            return role
    if order.side is reducing_side(signed_position):
        return kind_of_type(order.type)
    return ExitKind.ENTRY


def check_protective_stop(side: OrderSide, stop_price: Decimal, last_price: Decimal) -> None:
    """A sell stop (protecting a long) below the market, a buy stop (short) above it."""
    if side is OrderSide.SELL and stop_price >= last_price:
        raise InvalidPriceError(
            f"a stop protecting a long must be below the market {last_price}, got {stop_price}"
        )
    if side is OrderSide.BUY and stop_price <= last_price:
        raise InvalidPriceError(
            f"a stop protecting a short must be above the market {last_price}, got {stop_price}"
        )


def check_protective_target(side: OrderSide, limit_price: Decimal, last_price: Decimal) -> None:
    """A sell target (long) above the market, a buy target (short) below it (not marketable)."""
    if side is OrderSide.SELL and limit_price <= last_price:
        raise InvalidPriceError(
            f"a target for a long must be above the market {last_price}, got {limit_price}"
        )
    if side is OrderSide.BUY and limit_price >= last_price:
        raise InvalidPriceError(
            f"a target for a short must be below the market {last_price}, got {limit_price}"
        )


# ---------------------------------------------------------------------------------------------
# following the position
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExitView:
    """A managed exit as the planner needs it: broker truth plus what the caller asked for.

    ``cover`` is None for an exit that covers the whole position (it follows it up and down), or
    the fixed quantity the caller asked for (it then covers ``min(cover, position)``).
    """

    order_id: int
    side: OrderSide
    size: int
    fill_volume: int
    working: bool
    cover: int | None = None
    kind: ExitKind = ExitKind.STOP

    @property
    def remaining(self) -> int:
        return self.size - self.fill_volume


@dataclass(frozen=True, slots=True)
class Resize:
    """Modify ``order_id`` to total ``size`` (so its remaining quantity is ``remaining``)."""

    order_id: int
    size: int
    remaining: int


@dataclass(frozen=True, slots=True)
class Cancel:
    """Cancel ``order_id``; ``reason`` goes to the log and the operation record."""

    order_id: int
    reason: str


FollowAction = Resize | Cancel


def plan_follow(
    signed_position: int, exits: Iterable[ExitView], *, max_size: int | None = None
) -> list[FollowAction]:
    """What makes the working managed exits match ``signed_position`` (the unowned position).

    * flat: cancel every working exit (FAILURES I2: no exit outlives its position);
    * an exit on the wrong side (the position flipped through zero): cancel it, since it would
      now add exposure instead of removing it;
    * otherwise resize each exit so its *remaining* quantity equals what it should cover. A
      modify sets the total size, so the new size is ``fill_volume + wanted``. ``max_size``
      caps one order (the account's limit); a larger position is covered as far as it allows.
    * the exits of one kind share the position, oldest first: together the stops never cover
      more than it (nor the targets), so a second stop on a covered position is cancelled
      rather than doubling the cover (I1: never over-covered).
    """
    side = reducing_side(signed_position)
    magnitude = abs(signed_position)
    budget = {ExitKind.STOP: magnitude, ExitKind.TARGET: magnitude}
    actions: list[FollowAction] = []
    for view in exits:
        if not view.working:
            continue
        if side is None:
            actions.append(Cancel(view.order_id, "position is flat"))
            continue
        if view.side is not side:
            actions.append(Cancel(view.order_id, "position flipped to the other side"))
            continue
        left = budget.get(view.kind, magnitude)
        wanted = left if view.cover is None else min(view.cover, left)
        if max_size is not None:
            wanted = min(wanted, max_size - view.fill_volume)
        budget[view.kind] = left - max(wanted, 0)
        if wanted <= 0:
            actions.append(Cancel(view.order_id, "nothing left to cover"))
        elif wanted != view.remaining:
            actions.append(Resize(view.order_id, view.fill_volume + wanted, wanted))
    return actions


__all__ = [
    "ORDER_KINDS",
    "Cancel",
    "ExitKind",
    "ExitView",
    "FollowAction",
    "Resize",
    "check_protective_stop",
    "check_protective_target",
    "classify_order",
    "kind_of_type",
    "plan_follow",
    "reducing_side",
]
