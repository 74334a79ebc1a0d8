"""OrderManager.start() runs start-up recovery before it accepts new operations."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from orderguard.broker.faults import FaultKind, FaultPlan, FaultyBroker
from orderguard.chaos.process import ProcessKilled, ProcessScope, ScopedBroker, scoped_journal
from orderguard.config import OrderManagerConfig
from orderguard.errors import ExposureRefusedError
from orderguard.models import OrderRequest, OrderSide, OrderType
from orderguard.orders import OrderManager
from orderguard.recovery.operations import OperationType

from .startup_world import MNQ, World, bury


async def _dead_with_naked_fill(world: World) -> None:
    """A process fills an entry and dies before it protects it (a crash mid-bracket)."""
    doomed, _ = world.process(crash_on="place_order", crash_at=2)
    await doomed.start()
    rec = doomed.recovery
    op = await rec.start_operation(OperationType.BRACKET_ORDER, account_id=1, contract_id=MNQ)
    ref = await rec.add_order_to_operation(op, MNQ, OrderSide.BUY, 1, "market", leg="entry")
    request = OrderRequest(1, MNQ, OrderType.MARKET, OrderSide.BUY, 1, custom_tag=ref.custom_tag)
    await rec.record_order_success(op, ref, await doomed.submit(request))
    await world.clock.sleep(0.5)
    with pytest.raises(ProcessKilled):  # dies sending the protection
        await doomed.place_stop_order(MNQ, OrderSide.SELL, 1, Decimal("20990.00"))
    bury(doomed)


async def test_start_reconciles_the_journal_before_returning() -> None:
    """The naked fill a dead process left is flattened inside start(); the report says so."""
    world = World()

    async def scenario() -> None:
        await _dead_with_naked_fill(world)
        assert world.exchange.position_size(1, MNQ) == 1
        survivor, _ = world.process()
        await survivor.start()
        report = survivor.last_recovery
        assert report is not None and report.ok
        assert [o.state_after for o in report.operations] == ["rolled_back"]
        assert world.exchange.position_size(1, MNQ) == 0
        await survivor.cleanup()

    await world.clock.run(scenario())


def _process_failing_searches(world: World, failures: int) -> OrderManager:
    """A new process whose first ``failures`` Order/search calls fail (retryable 5xx). The
    breakers are set out of the way, so the failures reach start-up recovery itself."""
    world.generation += 1
    scope = ProcessScope(f"proc{world.generation}")
    faulty = FaultyBroker(ScopedBroker(world.sim, scope), world.clock, FaultPlan.none(), seed=3)
    faulty.fail_next("search_orders", FaultKind.QUERY_ERROR, repeat=failures)
    return OrderManager(
        faulty,
        clock=world.clock,
        journal=scoped_journal(world.journal, scope),
        rng=random.Random(world.generation),
        account_id=1,
        config=OrderManagerConfig(status_check_circuit_breaker_threshold=1000),
    )


async def test_without_broker_truth_new_exposure_waits_for_the_reconciler() -> None:
    """Order/search fails at start: entries are refused (typed), nothing is decided; once the
    reconciler's retry of the recovery reads the broker, the operation is rolled back and
    entries are accepted again."""
    world = World()

    async def scenario() -> None:
        await _dead_with_naked_fill(world)
        survivor = _process_failing_searches(world, failures=40)
        await survivor.start()
        report = survivor.last_recovery
        assert report is not None and report.error is not None
        with pytest.raises(ExposureRefusedError, match="broker truth unavailable"):
            await survivor.place_limit_order(MNQ, OrderSide.BUY, 1, Decimal("20900.00"))
        assert world.exchange.position_size(1, MNQ) == 1  # nothing decided without truth
        await world.clock.sleep(120.0)  # the injected errors run out; the reconciler retries
        report = survivor.last_recovery
        assert report is not None and report.ok
        assert world.exchange.position_size(1, MNQ) == 0
        placed = await survivor.place_limit_order(MNQ, OrderSide.BUY, 1, Decimal("20900.00"))
        assert placed.order_id > 0
        await survivor.cleanup()

    await world.clock.run(scenario())


async def test_a_fresh_journal_needs_no_recovery_queries() -> None:
    """Nothing unfinished: start() reads no orders or positions for recovery."""
    world = World()

    async def scenario() -> OrderManager:
        manager, _ = world.process()
        await manager.start()
        return manager

    manager = await world.clock.run(scenario())
    assert manager.last_recovery is not None and manager.last_recovery.queries == 0
    await manager.cleanup()
