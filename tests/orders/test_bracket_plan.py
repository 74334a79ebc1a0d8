"""Properties of the pure bracket planner (no I/O): what it may and may never decide."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from orderguard.orders.bracket_plan import (
    BracketFacts,
    CancelEntry,
    CancelLeg,
    EntryPhase,
    Finish,
    Flatten,
    GoFlat,
    LegFacts,
    LegKind,
    LegPhase,
    PlaceLeg,
    ResizeLeg,
    plan,
)
from orderguard.recovery.operations import OperationState


def legs(kind: LegKind) -> st.SearchStrategy[LegFacts]:
    return st.builds(
        LegFacts,
        kind=st.just(kind),
        phase=st.sampled_from(list(LegPhase)),
        order_id=st.integers(1, 99),
        size=st.integers(0, 6),
        filled=st.integers(0, 6),
        native=st.booleans(),
        active=st.booleans(),
        due=st.booleans(),
        attempts=st.integers(0, 5),
        stuck=st.booleans(),
    )


facts_st = st.builds(
    BracketFacts,
    entry=st.sampled_from(list(EntryPhase)),
    entry_filled=st.integers(0, 6),
    owned=st.integers(-3, 6),
    exits_filled=st.integers(0, 6),
    stop=legs(LegKind.STOP),
    target=legs(LegKind.TARGET),
    max_attempts=st.just(4),
    entry_cancel_reason=st.none() | st.just("timeout"),
    entry_cancel_stuck=st.booleans(),
    entry_cancel_due=st.booleans(),
    deadline_passed=st.booleans(),
    going_flat=st.none() | st.just("why"),
    flatten_pending=st.booleans(),
    flatten_attempts=st.integers(0, 5),
    closed_outside=st.booleans(),
)


def live(f: BracketFacts) -> bool:
    return (f.entry is EntryPhase.WORKING and not f.entry_cancel_stuck) or any(
        leg.phase is LegPhase.LIVE and not leg.stuck for leg in f.legs
    )


@given(facts_st)
def test_flattens_while_live_only_to_end_exposure(f: BracketFacts) -> None:
    """A flatten alongside live orders only removes owned exposure; an over-close waits."""
    decision = plan(f)
    flattens = isinstance(decision, list) and any(isinstance(a, Flatten) for a in decision)
    if flattens and live(f):
        assert f.owned > 0 and (f.going_flat is not None or f.deadline_passed)


@given(facts_st)
def test_flatten_is_exactly_the_owned_quantity(f: BracketFacts) -> None:
    """A planned flatten removes exactly what the bracket owns, never more."""
    decision = plan(f)
    if isinstance(decision, list):
        for action in decision:
            if isinstance(action, Flatten):
                assert action.owned == f.owned != 0


@given(facts_st)
def test_exits_are_sized_to_the_owned_quantity(f: BracketFacts) -> None:
    """Places cover exactly ``owned``; resizes set remaining to exactly ``owned``."""
    decision = plan(f)
    if isinstance(decision, list):
        for action in decision:
            if isinstance(action, PlaceLeg):
                assert action.size == f.owned > 0 and f.going_flat is None
            if isinstance(action, ResizeLeg):
                leg = f.stop if action.kind is LegKind.STOP else f.target
                assert action.size - leg.filled == f.owned > 0


@given(facts_st)
def test_finishes_only_when_nothing_is_owned_or_live(f: BracketFacts) -> None:
    """Finish (other than a truthful FAILED) needs nothing owned and nothing working."""
    decision = plan(f)
    if isinstance(decision, Finish) and decision.state is not OperationState.FAILED:
        assert f.owned == 0 and not live(f) and not f.flatten_pending


@given(facts_st)
def test_going_flat_never_places_exits(f: BracketFacts) -> None:
    """Once flattening is decided, no new exit is placed or grown."""
    decision = plan(f)
    if f.going_flat is not None and isinstance(decision, list):
        assert not any(isinstance(a, PlaceLeg | ResizeLeg) for a in decision)


@given(facts_st)
def test_cancels_only_cancellable_orders(f: BracketFacts) -> None:
    """CancelLeg targets a live exit; CancelEntry a working entry."""
    decision = plan(f)
    if isinstance(decision, list):
        for action in decision:
            if isinstance(action, CancelLeg):
                leg = f.stop if action.kind is LegKind.STOP else f.target
                assert leg.phase is LegPhase.LIVE and leg.order_id == action.order_id
            if isinstance(action, CancelEntry):
                assert f.entry is EntryPhase.WORKING


def test_rejected_leg_after_fill_goes_flat() -> None:
    """A definitively refused stop with a position owned decides to go flat."""
    f = BracketFacts(
        entry=EntryPhase.DONE,
        entry_filled=1,
        owned=1,
        exits_filled=0,
        stop=LegFacts(LegKind.STOP, LegPhase.FAILED, error="rejected"),
        target=LegFacts(LegKind.TARGET, LegPhase.LIVE, 5, 1, 0),
        max_attempts=4,
    )
    assert plan(f) == [GoFlat("stop could not be placed: rejected")]
