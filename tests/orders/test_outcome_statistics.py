"""The unknown-outcome statistics tell the truth: resolved counts only what was unknown."""

from __future__ import annotations

from orderguard.broker.faults import FaultPlan
from orderguard.broker.sim import LatencyModel
from orderguard.orders.bracket.values import BracketOutcome

from .bracket_helpers import BUY, MNQ, D, Rig, make_rig

# Events outrun responses: the entry's order event arrives before its placement answer, so the
# saga finds the entry by event first (an answer that is late, not unknown).
EVENTS_FIRST = LatencyModel(request=0.02, response=0.05, event=0.001)


async def protected_market_bracket(rig: Rig) -> None:
    r = await rig.run(
        rig.manager.place_bracket_order(
            MNQ, BUY, 1, None, D("20990"), D("21010"), entry_type="market"
        )
    )
    done = await rig.run(rig.manager.wait_for_protection(r.operation_id))
    assert done.outcome is BracketOutcome.PROTECTED


async def test_an_entry_seen_by_event_before_its_answer_is_not_an_unknown_resolved() -> None:
    rig = await make_rig(latency=EVENTS_FIRST)
    await protected_market_bracket(rig)
    stats = rig.manager.get_recovery_statistics()
    assert (stats["unknown_outcomes_seen"], stats["unknown_outcomes_resolved"]) == (0, 0)
    await rig.manager.cleanup()


async def test_a_lost_answer_is_seen_once_and_resolved_once() -> None:
    rig = await make_rig(plan=FaultPlan.none().script("place_order#1=ambiguous"))
    await protected_market_bracket(rig)
    stats = rig.manager.get_recovery_statistics()
    assert (stats["unknown_outcomes_seen"], stats["unknown_outcomes_resolved"]) == (1, 1)
    await rig.manager.cleanup()
