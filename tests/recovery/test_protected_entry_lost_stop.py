"""The workload's protected entry with its stop lost on the wire (chaos seeds 650, 798, 928 ...).

The stop's outcome is Unknown; the manager's look-ups find nothing and the saga must decide. It
used to search by tag for another full minute before rolling back, so the filled entry sat
naked past the 60 s protection window (I1) whenever a stop placement was lost. Past the in-flight
grace, absence at the broker is evidence (F1); the rollback then flattens in time (F3).
"""

from __future__ import annotations

from orderguard.broker.base import Broker
from orderguard.broker.faults import FaultPlan, FaultyBroker
from orderguard.chaos.workload import Step, StepKind

from .startup_world import MNQ, World

WINDOW = 60.0  # the chaos runner's protection window (ChaosConfig.protection_window)


async def test_a_lost_stop_is_flattened_within_the_protection_window() -> None:
    world = World()

    def faulty(inner: Broker) -> FaultyBroker:
        # place_order #1 is the market entry (fills), #2 its stop: lost, it never arrives.
        return FaultyBroker(inner, world.clock, FaultPlan().script("place_order#2=lost"), seed=1)

    async def scenario() -> None:
        manager, _ = world.process(wrap=faulty)  # type: ignore[arg-type]
        await manager.start()
        began = world.clock.monotonic()
        result = await world.actor(manager).perform(Step(0, StepKind.PROTECTED_ENTRY, size=2))
        assert "stop failed, rolled back" in result.outcome, result
        assert world.exchange.position_size(1, MNQ) == 0
        assert world.clock.monotonic() - began < WINDOW
        assert not [o for o in world.exchange.orders(1) if o.is_working]
        await manager.cleanup()

    await world.clock.run(scenario())


async def test_a_stop_that_never_left_rolls_the_entry_back() -> None:
    """HTTP 429 before send on the stop, again on both of the manager's re-sends (seed 1564):
    the saga rolls back at once instead of leaving a filled entry in progress with no driver."""
    world = World()
    plan = FaultPlan().script("place_order#2x3=rate_limited")

    def faulty(inner: Broker) -> FaultyBroker:
        return FaultyBroker(inner, world.clock, plan, seed=1)

    async def scenario() -> None:
        manager, _ = world.process(wrap=faulty)  # type: ignore[arg-type]
        await manager.start()
        result = await world.actor(manager).perform(Step(0, StepKind.PROTECTED_ENTRY, size=2))
        assert result.error is None and "stop failed, rolled back" in result.outcome, result
        assert world.exchange.position_size(1, MNQ) == 0
        (op,) = await world.operations()
        assert op.state.is_terminal, op.state
        await manager.cleanup()

    await world.clock.run(scenario())
