"""Properties of the pure bracket planner (no I/O): what it may and may never decide."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from orderguard.orders.bracket.plan import (
    BracketFacts,
    CancelEntry,
    CancelLeg,
    CancelStray,
    EntryPhase,
    Finish,
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
    strays=st.lists(st.integers(100, 105), unique=True, max_size=2).map(tuple),
    children_unknown=st.booleans(),
    entry_cancel_due=st.booleans(),
    deadline_passed=st.booleans(),
    going_flat=st.none() | st.just("why"),
    closed_outside=st.booleans(),
)


def live(f: BracketFacts) -> bool:
    return (
        f.entry is EntryPhase.WORKING
        or bool(f.strays)
        or any(leg.phase is LegPhase.LIVE for leg in f.legs)
    )


@given(facts_st)
def test_exposure_it_cannot_carry_goes_to_the_executor(f: BracketFacts) -> None:
    """GoFlat (the hand-over to the protection executor) only for exposure: something owned
    (or over-closed), never for a flat bracket."""
    decision = plan(f)
    if isinstance(decision, list) and any(isinstance(a, GoFlat) for a in decision):
        assert f.owned != 0 and decision == [a for a in decision if isinstance(a, GoFlat)]


@given(facts_st)
def test_an_over_close_is_handed_over_at_once(f: BracketFacts) -> None:
    """Both exits filled (owned < 0): the excess is bought back by the executor."""
    if f.owned < 0 and f.going_flat is None:
        decision = plan(f)
        assert isinstance(decision, list) and isinstance(decision[0], GoFlat)


@given(facts_st)
def test_a_handed_over_bracket_plans_nothing(f: BracketFacts) -> None:
    """One actor per operation: once the executor drives it, the saga acts no more."""
    if f.going_flat is not None:
        assert plan(f) == []


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
        assert f.owned == 0 and not live(f)


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


@given(facts_st)
def test_never_places_a_leg_while_native_children_may_exist(f: BracketFacts) -> None:
    """Unseen native children are looked for first: a client-side leg beside them would cover
    the same contracts twice (I1 over-coverage)."""
    decision = plan(f)
    if f.children_unknown and isinstance(decision, list):
        assert not any(
            isinstance(a, PlaceLeg)
            and (f.stop if a.kind is LegKind.STOP else f.target).phase is LegPhase.NONE
            for a in decision
        )


@given(facts_st, st.data())
def test_strays_are_cancelled_and_never_left_behind(f: BracketFacts, data: st.DataObject) -> None:
    """A working stray blocks a successful finish; a due one is cancelled unless the bracket is
    handed over (the executor cancels it then)."""
    due = tuple(data.draw(st.lists(st.sampled_from(f.strays), unique=True)) if f.strays else ())
    f = replace(f, strays_due=due)
    decision = plan(f)
    if f.strays and isinstance(decision, Finish):
        assert decision.state is OperationState.FAILED
    if isinstance(decision, list):
        for action in decision:
            if isinstance(action, CancelStray):
                assert action.order_id in f.strays_due


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
