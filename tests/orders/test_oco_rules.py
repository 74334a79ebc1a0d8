"""Properties of the pure OCO reaction."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from orderguard.models import OrderSide
from orderguard.orders.oco.rules import OcoLegState, oco_reaction

leg_a = st.builds(
    OcoLegState, st.just(1), st.sampled_from(list(OrderSide)), st.integers(0, 4), st.booleans()
)
leg_b = st.builds(
    OcoLegState, st.just(2), st.sampled_from(list(OrderSide)), st.integers(0, 4), st.booleans()
)


@given(leg_a, leg_b, st.sampled_from([None, 1, 2]), st.integers(0, 4))
def test_only_working_legs_are_cancelled(
    a: OcoLegState, b: OcoLegState, w: int | None, done: int
) -> None:
    """The reaction never cancels a leg that is already final."""
    decision = oco_reaction(a, b, winner=w, flattened=done)
    working = {leg.order_id for leg in (a, b) if leg.working}
    assert set(decision.cancel) <= working


@given(leg_a, leg_b, st.sampled_from([None, 1, 2]), st.integers(0, 4))
def test_flatten_waits_for_the_final_state(
    a: OcoLegState, b: OcoLegState, w: int | None, done: int
) -> None:
    """Excess is flattened only once the losing leg is final, and only what is not yet flattened."""
    decision = oco_reaction(a, b, winner=w, flattened=done)
    if decision.flatten_qty:
        loser = b if decision.winner == 1 else a
        assert not loser.working
        assert decision.flatten_qty == loser.filled - done > 0
        assert decision.flatten_side is loser.side.opposite and decision.incident


@given(leg_a, leg_b)
def test_done_only_when_the_losing_leg_is_final(a: OcoLegState, b: OcoLegState) -> None:
    """A pair is over once no leg that could still cause a double fill is working."""
    decision = oco_reaction(a, b)
    if decision.done:
        losers = [leg for leg in (a, b) if leg.order_id != decision.winner]
        assert not any(leg.working for leg in losers)


def test_first_fill_cancels_the_sibling() -> None:
    """One leg filled, the other working: cancel it."""
    a = OcoLegState(1, OrderSide.SELL, 1, False)
    b = OcoLegState(2, OrderSide.SELL, 0, True)
    assert oco_reaction(a, b).cancel == (2,)


def test_cancelled_then_filled_sibling_is_flattened() -> None:
    """Cancelled -> Filled: the late fill is the excess, flattened in the opposite direction."""
    a = OcoLegState(1, OrderSide.SELL, 1, False)
    b = OcoLegState(2, OrderSide.SELL, 1, False)
    decision = oco_reaction(a, b, winner=1)
    assert (decision.flatten_side, decision.flatten_qty) == (OrderSide.BUY, 1)
