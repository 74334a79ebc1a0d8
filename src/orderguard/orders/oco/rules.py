"""The OCO reaction, as a pure function of the two legs' states (no I/O).

One cancels other: the first leg to fill (or to end without a fill) makes the other unwanted.
The reaction cancels the sibling and waits for its *final* state before declaring anything —
a cancel can lose to a fill, and ``Cancelled -> Filled`` is a legal late event (F4). If the
sibling filled too (F5), its fills are the excess: they are flattened, exactly once, and the
incident is reported.
"""

from __future__ import annotations

from dataclasses import dataclass

from orderguard.models import OrderSide


@dataclass(frozen=True, slots=True)
class OcoLegState:
    order_id: int
    side: OrderSide
    filled: int
    working: bool
    """Can still fill (Open, Pending, Suspended...)."""


@dataclass(frozen=True, slots=True)
class OcoDecision:
    cancel: tuple[int, ...] = ()
    flatten_side: OrderSide | None = None
    flatten_qty: int = 0
    incident: str | None = None
    winner: int | None = None
    done: bool = False


def oco_reaction(
    a: OcoLegState, b: OcoLegState, *, winner: int | None = None, flattened: int = 0
) -> OcoDecision:
    """What to do about the pair now.

    ``winner`` is the leg known to have filled first (None: decide now — the leg with fills, or
    the lower id when both filled and their order is unknown); ``flattened`` is how much of the
    loser's fills was already flattened.
    """
    if a.filled == 0 and b.filled == 0:
        if a.working and b.working:
            return OcoDecision()
        live = tuple(leg.order_id for leg in (a, b) if leg.working)
        # One ended without a fill (cancelled, rejected, expired): it cancels the other.
        return OcoDecision(cancel=live, done=not live)
    if winner not in (a.order_id, b.order_id):
        with_fills = [leg for leg in (a, b) if leg.filled > 0]
        winner = min(leg.order_id for leg in with_fills)
    win, lose = (a, b) if winner == a.order_id else (b, a)
    if lose.working:
        return OcoDecision(cancel=(lose.order_id,), winner=win.order_id)
    excess = lose.filled - flattened
    if excess > 0:
        return OcoDecision(
            flatten_side=lose.side.opposite,
            flatten_qty=excess,
            incident=(
                f"both OCO legs filled: {win.order_id} ({win.filled}) and {lose.order_id} "
                f"({lose.filled}); flattening the excess {excess}"
            ),
            winner=win.order_id,
        )
    return OcoDecision(winner=win.order_id, done=True)


__all__ = ["OcoDecision", "OcoLegState", "oco_reaction"]
