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
from orderguard.models import STOP_TYPES, Order, OrderSide, OrderType


class ExitKind(StrEnum):
    """The role of a working order relative to the position on its contract."""

    ENTRY = "entry"
    STOP = "stop"
    TARGET = "target"


ORDER_KINDS: tuple[str, ...] = (ExitKind.ENTRY.value, ExitKind.STOP.value, ExitKind.TARGET.value)

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
    if order_type in STOP_TYPES:
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
    """An exit on the position as the planner needs it: broker truth plus what it may become.

    ``cover`` is None for an exit that covers the whole position (it follows it up and down), or
    the fixed quantity the caller asked for (it then covers ``min(cover, position)``).
    ``grows=False`` marks an exit orderguard follows but did not size (a plain stop, an OCO
    leg): it only ever shrinks. ``working=False`` with ``replace=True`` is a stop that left the
    broker without orderguard cancelling it (the platform did): while it is still wanted, it is
    placed again.
    """

    order_id: int
    side: OrderSide
    size: int
    fill_volume: int
    working: bool
    cover: int | None = None
    kind: ExitKind = ExitKind.STOP
    grows: bool = True
    replace: bool = False

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


@dataclass(frozen=True, slots=True)
class Replace:
    """Place the exit that was ``order_id`` again, for ``size`` (it left the broker without us)."""

    order_id: int
    size: int


FollowAction = Resize | Cancel | Replace

COVERED = "nothing left to cover"
"""The reason of a :class:`Cancel` for an exit the others already cover."""


def plan_follow(
    signed_position: int,
    exits: Iterable[ExitView],
    *,
    max_size: int | None = None,
    incoming: int = 0,
) -> list[FollowAction]:
    """What makes the exits on the (unowned) position match ``signed_position``.

    ``incoming`` is what working market orders are still adding to the position (an entry
    filling one contract at a time): exits sized to the whole entry are not cut down to the
    part filled so far, only to be short of it a moment later.

    * flat: cancel every working exit (FAILURES I2: no exit outlives its position);
    * an exit on the wrong side (the position flipped through zero): cancel it, since it would
      now add exposure instead of removing it;
    * otherwise the exits of one kind share the position: together the stops never cover more
      than it (nor the targets), so a stop that would over-cover is shrunk or cancelled (I1:
      never over-covered). Shares are taken in this order, each group in the order given
      (oldest first): exits that only shrink (``grows=False``: orders the caller sized
      themselves, and placements still in flight), then exits of a fixed ``cover``, then the
      whole-position ones (``cover`` None), which cover whatever the others leave — so the
      exits orderguard sizes are the ones that give way, and a whole-position stop never
      grows into the share of a stop placed after it. Exits still working take their shares
      before those that are gone;
    * each exit is resized so its *remaining* quantity equals its share. A modify sets the
      total size, so the new size is ``fill_volume + share``. ``max_size`` caps one order (the
      account's limit); a larger position is covered as far as it allows;
    * a stop gone without orderguard cancelling it (``replace``) is placed again for its share.
    """
    side = reducing_side(signed_position)
    magnitude = abs(signed_position) + (max(incoming, 0) if side is not None else 0)
    budget = {ExitKind.STOP: magnitude, ExitKind.TARGET: magnitude}
    actions: list[FollowAction] = []
    ordered = sorted(exits, key=_share_rank)  # stable: the order given is kept per group
    for view in ordered:
        if not view.working and not view.replace:
            continue
        if side is None or view.side is not side:
            if view.working:
                flat = side is None
                reason = "position is flat" if flat else "position flipped to the other side"
                actions.append(Cancel(view.order_id, reason))
            continue
        left = budget.get(view.kind, magnitude)
        if not view.grows:
            wanted = min(view.remaining, left)
        else:
            wanted = left if view.cover is None else min(view.cover, left)
        if max_size is not None:
            wanted = min(wanted, max_size - (view.fill_volume if view.working else 0))
        budget[view.kind] = left - max(wanted, 0)
        if not view.working:
            if wanted > 0:
                actions.append(Replace(view.order_id, wanted))
        elif wanted <= 0:
            actions.append(Cancel(view.order_id, COVERED))
        elif wanted != view.remaining:
            actions.append(Resize(view.order_id, view.fill_volume + wanted, wanted))
    return actions


def _share_rank(view: ExitView) -> tuple[int, int]:
    # Working exits first: one gone (cancelled outside, or made dormant) is placed again only
    # for what the working ones leave. Ranked among them by age, the oldest dormant stops took
    # the share of working ones, which were cancelled as covered, went dormant, and took it back
    # the next round: a new order per stop every round, for as long as the position lasted.
    rank = 0 if not view.grows else (1 if view.cover is not None else 2)
    return (0 if view.working else 1, rank)


__all__ = [
    "COVERED",
    "ORDER_KINDS",
    "Cancel",
    "ExitKind",
    "ExitView",
    "FollowAction",
    "Replace",
    "Resize",
    "check_protective_stop",
    "check_protective_target",
    "classify_order",
    "kind_of_type",
    "plan_follow",
    "reducing_side",
]
