"""The bracket saga's decisions, as pure functions of what is known (no I/O, no clock).

The saga is *level-triggered*: whatever happened (a fill, a lost event, a rejected leg, a restart),
it rebuilds :class:`BracketFacts` from broker truth and asks :func:`plan` what to do next. So
there is no event sequence to get wrong: the same facts always give the same actions, and an
action that did not take effect is simply planned again (bounded by ``max_attempts``).

Quantities are in *entry-direction contracts*: ``owned`` is what the entry's fills added minus
what the exits, flattening and outside closes took away. ``owned < 0`` means more was closed than
was owned (both OCO exits filled).

The rules, in order of precedence:

1. Go flat — hand the bracket to the protection executor
   (:mod:`~orderguard.recovery.protection`), the one place every rollback runs: after the pivot
   when a leg is definitively refused, a leg could not be confirmed after ``max_attempts``
   sends, or a fill stayed unprotected past the flatten point; and when the exits closed more
   than the bracket owned (an incident: the executor buys the excess back). From then on the
   saga plans nothing: the executor cancels the entry first, keeps the stop until the owned
   quantity is flattened, never gives up, and ends the operation rolled back.
2. Forward: each exit (stop, target) must cover exactly ``owned`` — place it, resize it, or cancel
   it when nothing is owned. Server-side (native) legs are grown by the server, never by us, and
   a native bracket's children are looked up over REST before a client-side leg is placed in
   their stead. Working orders of ours that no slot holds (strays) are cancelled.
3. The entry's unfilled rest is cancelled on the entry timeout, or once the exits closed
   everything (later fills would arrive unprotected for a trade that is over).
4. Finished when the entry is final, nothing is owned and nothing of ours works or is in doubt.
   Cancels are never given up on (they back off): a bracket that ended with an order working
   would leave it unwatched.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from orderguard.errors import InvalidPriceError
from orderguard.models import Contract, OrderSide
from orderguard.orders.bracket.values import BracketOutcome
from orderguard.recovery.operations import OperationState


class LegKind(StrEnum):
    STOP = "stop"
    TARGET = "target"


class LegPhase(StrEnum):
    NONE = "none"  # nothing in this slot (yet)
    LIVE = "live"  # acknowledged and working (or a Suspended native child)
    RETRY = "retry"  # provably never left: send again with the SAME tag when due
    UNKNOWN = "unknown"  # sent, outcome unknown: look the tag up, re-send the SAME tag if absent
    FAILED = "failed"  # definitively refused; protection can only come from flattening
    DONE = "done"  # final at the broker (filled or cancelled); its fills stay counted


class EntryPhase(StrEnum):
    WORKING = "working"  # acknowledged (or found) and able to fill
    UNKNOWN = "unknown"  # placement outcome not known yet
    DONE = "done"  # filled, cancelled or expired
    REJECTED = "rejected"  # never existed


@dataclass(frozen=True, slots=True)
class LegFacts:
    kind: LegKind
    phase: LegPhase = LegPhase.NONE
    order_id: int | None = None
    size: int = 0
    filled: int = 0
    native: bool = False
    active: bool = True
    """False for a Suspended native child: it exists but does not protect anything yet."""
    due: bool = True
    """A RETRY/UNKNOWN leg may be acted on now (its retry delay has passed)."""
    attempts: int = 0
    error: str | None = None

    @property
    def remaining(self) -> int:
        """Contracts this leg can still close (0 unless live)."""
        return max(0, self.size - self.filled) if self.phase is LegPhase.LIVE else 0

    @property
    def covering(self) -> int:
        """Contracts this leg protects right now (a Suspended child protects nothing)."""
        return self.remaining if self.active else 0


@dataclass(frozen=True, slots=True)
class BracketFacts:
    entry: EntryPhase
    entry_filled: int
    owned: int
    exits_filled: int
    stop: LegFacts
    target: LegFacts
    max_attempts: int
    entry_cancel_reason: str | None = None
    """Set when the entry's unfilled rest is due to be cancelled (entry timeout)."""
    entry_cancel_due: bool = True
    """A cancel of the entry may be sent now (a failed one waits for its retry delay)."""
    deadline_passed: bool = False
    """A fill has been unprotected past the flatten point."""
    going_flat: str | None = None
    """Set once the bracket was handed to the protection executor (it drives from then on)."""
    released: str | None = None
    """Set when the caller removed the bracket's stop (``cancel_position_orders``): it stops
    protecting, cancels its working entry, and ends saying so."""
    released_legs: frozenset[LegKind] = frozenset()
    """Exits the caller removed: never placed again (a removed target alone leaves the stop
    protecting)."""
    closed_outside: bool = False
    strays: tuple[int, ...] = ()
    """Working orders of this bracket that no slot holds: a native child that showed up after
    a client-side leg was placed for its kind, or an earlier generation of a leg. They are
    cancelled; their fills still count in ``owned``."""
    strays_due: tuple[int, ...] = ()
    """The strays whose cancel may be sent now (a failed one waits for its retry delay)."""
    children_unknown: bool = False
    """Native mode: the entry's server-side children have not been seen yet (their events may
    be late or lost). Look for them over REST before placing a client-side leg in their place,
    or both would cover the same contracts."""
    children_search_failures: int = 0
    """Failed REST look-ups for the native children. Until ``max_attempts`` of them failed, the
    protection deadline does not send the saga flat while the children are unknown: the server
    attached them when it accepted the entry, so they protect the fill already, and a flatten
    sent under them would leave them working on a flat contract (I2)."""

    @property
    def legs(self) -> tuple[LegFacts, LegFacts]:
        return (self.stop, self.target)

    @property
    def protected(self) -> bool:
        """Something is owned and the stop covers exactly that (I1)."""
        return self.owned > 0 and self.stop.covering == self.owned


# ---------------------------------------------------------------------------------------------
# Actions (commands: verbs)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlaceLeg:
    kind: LegKind
    size: int


@dataclass(frozen=True, slots=True)
class RetryLeg:
    """Re-send (same tag) or resolve a leg; ``resend=False`` only looks the tag up."""

    kind: LegKind
    resend: bool = True


@dataclass(frozen=True, slots=True)
class ResizeLeg:
    kind: LegKind
    order_id: int
    size: int
    """The order's new total size (already-filled contracts included)."""


@dataclass(frozen=True, slots=True)
class CancelLeg:
    kind: LegKind
    order_id: int


@dataclass(frozen=True, slots=True)
class CancelStray:
    order_id: int


@dataclass(frozen=True, slots=True)
class FindChildren:
    """Native mode: look the entry's children up over REST (adopting them into their slots)."""


@dataclass(frozen=True, slots=True)
class CancelEntry:
    reason: str


@dataclass(frozen=True, slots=True)
class GoFlat:
    reason: str


@dataclass(frozen=True, slots=True)
class Finish:
    state: OperationState
    outcome: BracketOutcome
    reason: str


Action = (
    PlaceLeg | RetryLeg | ResizeLeg | CancelLeg | CancelStray | FindChildren | CancelEntry | GoFlat
)
Plan = list[Action] | Finish


def plan(f: BracketFacts) -> Plan:
    """What to do next (an empty list: wait for news). See the module docstring for the rules."""
    if f.going_flat is not None:
        return []  # the protection executor drives the bracket now
    if f.released is not None:
        return _plan_release(f, f.released)
    reason = flat_reason(f)
    if reason is not None:
        return [GoFlat(reason)]
    return _plan_forward(f)


def flat_reason(f: BracketFacts) -> str | None:
    """Why forward recovery is over and the bracket goes to the protection executor, if it is."""
    if f.owned < 0:
        return f"both exits filled: over-closed by {-f.owned}; the excess is bought back"
    if f.owned == 0:
        return None
    for leg in f.legs:
        if leg.phase is LegPhase.FAILED:
            return f"{leg.kind.value} could not be placed: {leg.error or 'rejected'}"
        if leg.phase in (LegPhase.RETRY, LegPhase.UNKNOWN) and leg.attempts >= f.max_attempts:
            return f"{leg.kind.value} not confirmed after {leg.attempts} attempts"
    if f.deadline_passed:
        if f.children_unknown and f.children_search_failures < f.max_attempts:
            return None  # find the native children first (see children_search_failures)
        return "protection not confirmed before the protection deadline"
    return None


def _plan_release(f: BracketFacts, why: str) -> Plan:
    """The caller removed the stop: the bracket protects no more, its entry must not fill with
    no stop, and the position it owns is the caller's now. An exit the caller did not name is
    left working (the holdings follower sizes it to the position from then on)."""
    actions: list[Action] = _cancel_strays(f)
    if f.entry is EntryPhase.WORKING and f.entry_cancel_due:
        actions.append(CancelEntry(f"the exits were removed on request ({why})"))
    if actions:
        return actions
    if f.entry in (EntryPhase.WORKING, EntryPhase.UNKNOWN):
        return []
    outcome = BracketOutcome.NAKED if f.owned > 0 else BracketOutcome.FLAT
    return Finish(
        OperationState.COMPLETED,
        outcome,
        f"exits removed on request ({why}); the position of {f.owned:+d} is the caller's",
    )


def _cancel_strays(f: BracketFacts) -> list[Action]:
    return [CancelStray(order_id) for order_id in f.strays_due]


def _plan_forward(f: BracketFacts) -> Plan:
    owned = f.owned
    actions: list[Action] = _cancel_strays(f)
    if f.entry is EntryPhase.WORKING and f.entry_cancel_due:
        if f.entry_cancel_reason is not None:
            actions.append(CancelEntry(f.entry_cancel_reason))
        elif owned == 0 and (f.exits_filled > 0 or f.closed_outside):
            actions.append(CancelEntry("the position was closed; the unfilled rest is not wanted"))
    for leg in f.legs:
        if leg.kind not in f.released_legs:
            actions += _plan_leg(f, leg, owned)
    if actions:
        return actions
    if f.entry in (EntryPhase.DONE, EntryPhase.REJECTED) and owned == 0 and not _any_pending(f):
        return _finish(f)
    return []


def _plan_leg(f: BracketFacts, leg: LegFacts, owned: int) -> list[Action]:
    phase = leg.phase
    if owned > 0:
        if phase is LegPhase.NONE and f.children_unknown:
            return [FindChildren()]
        if phase is LegPhase.NONE or (phase is LegPhase.DONE and leg.due):
            return [PlaceLeg(leg.kind, owned)]
        if phase in (LegPhase.RETRY, LegPhase.UNKNOWN):
            return [RetryLeg(leg.kind)] if leg.due else []
        if phase is LegPhase.LIVE and leg.order_id is not None and leg.due:
            if leg.remaining == owned or not leg.active:
                return []
            if leg.native and leg.remaining < owned and f.entry is EntryPhase.WORKING:
                return []  # the server grows native legs with each entry fill
            return [ResizeLeg(leg.kind, leg.order_id, leg.filled + owned)]
        return []
    # Nothing owned: an exit must not outlive its position (I2) ...
    if phase is LegPhase.LIVE and leg.order_id is not None and leg.due:
        waiting_native = (
            leg.native
            and f.entry is EntryPhase.WORKING
            and f.exits_filled == 0
            and not f.closed_outside
        )
        # ... except a Suspended native child of a still-working entry: it IS its protection.
        if not waiting_native:
            return [CancelLeg(leg.kind, leg.order_id)]
    if phase is LegPhase.UNKNOWN and leg.due and leg.attempts < f.max_attempts:
        return [RetryLeg(leg.kind, resend=False)]
    return []


def _any_pending(f: BracketFacts) -> bool:
    return bool(f.strays) or any(
        leg.phase is LegPhase.LIVE
        or (leg.phase is LegPhase.UNKNOWN and leg.attempts < f.max_attempts)
        for leg in f.legs
    )


def _finish(f: BracketFacts) -> Finish:
    if f.entry_filled == 0:
        if f.entry is EntryPhase.REJECTED:
            return Finish(OperationState.FAILED, BracketOutcome.FLAT, "the entry was rejected")
        return Finish(
            OperationState.ROLLED_BACK,
            BracketOutcome.FLAT,
            f.entry_cancel_reason or "the entry ended without a fill",
        )
    if f.closed_outside and f.exits_filled == 0:
        why = "the position was closed outside the bracket"
    elif f.stop.filled and not f.target.filled:
        why = "closed by the stop"
    elif f.target.filled and not f.stop.filled:
        why = "closed by the target"
    else:
        why = "closed by the exits"
    return Finish(OperationState.COMPLETED, BracketOutcome.FLAT, why)


def outcome_of(f: BracketFacts) -> BracketOutcome:
    """The outcome a caller is told for these facts (while the saga is still running)."""
    if f.entry is EntryPhase.UNKNOWN and f.entry_filled == 0:
        return BracketOutcome.UNKNOWN
    if f.owned > 0:
        return BracketOutcome.PROTECTED if f.protected else BracketOutcome.NAKED
    if f.owned < 0:
        return BracketOutcome.NAKED
    if f.entry is EntryPhase.WORKING and f.going_flat is None:
        return BracketOutcome.PENDING_ENTRY
    return BracketOutcome.FLAT


# ---------------------------------------------------------------------------------------------
# Input checks and native tick offsets
# ---------------------------------------------------------------------------------------------


def check_bracket_prices(
    side: OrderSide, reference: Decimal, stop: Decimal, target: Decimal, *, what: str
) -> None:
    """Stop and target on the correct sides of ``reference`` (the entry, or the market).

    A long's stop is below and its target above; a short's the mirror. ``what`` names the
    reference in the error ("entry price 21000" or "last price 21000").
    """
    if side is OrderSide.BUY:
        if not stop < reference:
            raise InvalidPriceError(f"a long bracket's stop {stop} must be below the {what}")
        if not target > reference:
            raise InvalidPriceError(f"a long bracket's target {target} must be above the {what}")
    else:
        if not stop > reference:
            raise InvalidPriceError(f"a short bracket's stop {stop} must be above the {what}")
        if not target < reference:
            raise InvalidPriceError(f"a short bracket's target {target} must be below the {what}")


def native_ticks(contract: Contract, anchor: Decimal, price: Decimal) -> int:
    """Signed tick offset of ``price`` from ``anchor`` (negative below), as ProjectX wants it.

    Native legs are re-anchored at the actual fill, so the absolute price drifts by the slippage.
    """
    return contract.ticks_between(anchor, price)


__all__ = [
    "Action",
    "BracketFacts",
    "CancelEntry",
    "CancelLeg",
    "CancelStray",
    "EntryPhase",
    "FindChildren",
    "Finish",
    "GoFlat",
    "LegFacts",
    "LegKind",
    "LegPhase",
    "PlaceLeg",
    "Plan",
    "ResizeLeg",
    "RetryLeg",
    "check_bracket_prices",
    "flat_reason",
    "native_ticks",
    "outcome_of",
    "plan",
]
