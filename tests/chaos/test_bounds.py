"""The continuous bounds: I6 episodes, over-coverage, storms as recorded causes, and I7."""

from __future__ import annotations

import pytest

from orderguard.broker.faults import FaultKind, FaultPlan, FaultyBroker, Storm, StormKind
from orderguard.broker.sim import SimBroker
from orderguard.chaos.bounds import BoundChecker, Bounds, check_i7
from orderguard.chaos.invariants import BrokerTruth
from orderguard.chaos.journals import ChaosJournal
from orderguard.clock import VirtualClock
from orderguard.errors import JournalError, RateLimitedError
from orderguard.journal.memory import MemoryJournal
from orderguard.models import OrderRequest, OrderSide, OrderStatus, OrderType
from orderguard.recovery.manager import RefStatus
from orderguard.recovery.operations import OperationState
from orderguard.testing.builders import BUY, MNQ, SELL, operation, order, position, ref

STOP2 = order(2, "s", SELL, 2, kind=OrderType.STOP, status=OrderStatus.OPEN, filled=0)
STOP3 = order(3, "t", SELL, 1, kind=OrderType.STOP, status=OrderStatus.OPEN, filled=0)


def test_an_unprotected_episode_within_the_bound_passes() -> None:
    """Naked for 6 s of a 7 s bound is no violation."""
    checker = BoundChecker(Bounds(5.0, 2.0))
    checker.observe(10.0, [position(2)], [])
    checker.observe(16.0, [position(2)], [STOP2])
    assert checker.violations() == []


def test_an_unprotected_episode_past_the_bound_is_i6() -> None:
    """Naked for 8 s is an I6 violation with its start, length and allowance."""
    checker = BoundChecker(Bounds(5.0, 2.0))
    checker.observe(10.0, [position(2)], [])
    checker.observe(18.0, [position(2)], [STOP2])
    [v] = checker.violations()
    assert v.invariant == "I6" and "8.000s, allowed 7.000s" in v.detail


def test_an_episode_still_open_at_the_end_is_judged() -> None:
    """finish() cuts open episodes at the end of the seed."""
    checker = BoundChecker(Bounds(5.0, 2.0))
    checker.observe(10.0, [position(2)], [])
    checker.finish(30.0)
    assert [v.invariant for v in checker.violations()] == ["I6"]


def test_a_storm_stretches_the_bound_and_is_recorded_as_the_cause() -> None:
    """During a storm nothing can be protected: storm end + bound is allowed, cause recorded."""
    storms = [Storm(StormKind.HTTP_429, 11.0, 71.0)]
    checker = BoundChecker(Bounds(5.0, 2.0), storms)
    checker.observe(10.0, [position(2)], [])
    checker.observe(75.0, [position(2)], [STOP2])
    assert checker.violations() == []
    assert checker.storm_causes() and "http_429" in checker.storm_causes()[0]
    late = BoundChecker(Bounds(5.0, 2.0), storms)
    late.observe(10.0, [position(2)], [])
    late.observe(80.0, [position(2)], [STOP2])
    [v] = late.violations()
    assert "storm http_429" in v.detail


def test_over_coverage_without_a_fill_gets_one_recovery_interval() -> None:
    """A second stop on an unchanged position (add_stop_loss twice) may live 2 s, not 7."""
    checker = BoundChecker(Bounds(5.0, 2.0))
    checker.observe(10.0, [position(2)], [STOP2])
    checker.observe(11.0, [position(2)], [STOP2, STOP3])
    checker.observe(14.0, [position(2)], [STOP2])
    [v] = checker.violations()
    assert v.invariant == "I1" and "over-covered" in v.detail and "allowed 2.000s" in v.detail


def test_over_coverage_after_a_fill_gets_the_protection_window() -> None:
    """A partial close shrinks the position: the stop may be resized within the 7 s window."""
    checker = BoundChecker(Bounds(5.0, 2.0))
    checker.observe(10.0, [position(2)], [STOP2])
    checker.observe(11.0, [position(1)], [STOP2])
    checker.observe(16.0, [position(1)], [STOP3])
    assert checker.violations() == []


def test_a_stop_on_a_flat_contract_is_over_coverage() -> None:
    """Any working stop on a flat contract is over-coverage (and must go within the bound)."""
    checker = BoundChecker(Bounds(5.0, 2.0))
    checker.observe(10.0, [], [STOP2])
    checker.finish(20.0)
    assert [v.invariant for v in checker.violations()] == ["I1"]


def test_i7_flags_a_failed_operation_leaving_its_exposure_bare() -> None:
    """An operation that ends owning an unprotected position, with no heir, breaks I7."""
    truth = BrokerTruth((order(1, "op1-entry", BUY, 2),), (position(2),))
    op = operation(
        "op1",
        ref("entry", "op1-entry", BUY, 2, status=RefStatus.FILLED, order_id=1, filled=2),
        state=OperationState.FAILED,
    )
    [v] = check_i7("op1", [op], truth)
    assert v.invariant == "I7" and v.operation_id == "op1" and v.contract_id == MNQ


def test_i7_accepts_an_unfinished_heir_on_the_contract() -> None:
    """Another unfinished operation on the contract has taken the obligation over."""
    truth = BrokerTruth((order(1, "op1-entry", BUY, 2),), (position(2),))
    ended = operation(
        "op1",
        ref("entry", "op1-entry", BUY, 2, status=RefStatus.FILLED, order_id=1, filled=2),
        state=OperationState.FAILED,
    )
    heir = operation("op2", ref("flatten0", "op2-f", SELL, 2), state=OperationState.IN_PROGRESS)
    assert check_i7("op1", [ended, heir], truth) == []


def test_i7_accepts_a_protected_position() -> None:
    """A completed operation whose position is covered by stops is fine."""
    truth = BrokerTruth((order(1, "op1-entry", BUY, 2), STOP2), (position(2),))
    op = operation(
        "op1", ref("entry", "op1-entry", BUY, 2, status=RefStatus.FILLED, order_id=1, filled=2)
    )
    assert check_i7("op1", [op], truth) == []


async def test_a_storm_refuses_every_mutation_and_executes_nothing() -> None:
    """An HTTP 429 storm: placements raise before send, nothing reaches the exchange."""
    clock = VirtualClock()
    sim = SimBroker.create(clock)
    faulty = FaultyBroker(sim, clock, FaultPlan.none(), seed=1)
    faulty.storm(StormKind.HTTP_429, 30.0)
    assert faulty.pending_effects == 1
    request = OrderRequest(1, MNQ, OrderType.MARKET, OrderSide.BUY, 1)
    with pytest.raises(RateLimitedError):
        await faulty.place_order(request)
    assert sim.exchange.orders(1) == [] and faulty.fault_counts[FaultKind.STORM] == 2
    await clock.advance(31.0)
    assert faulty.storm_now() is None and faulty.pending_effects == 0


async def test_the_chaos_journal_refuses_writes_while_the_disk_is_full() -> None:
    """A disk-full period: durable writes raise a retryable JournalError, deferred ones are lost."""
    clock = VirtualClock()
    journal = ChaosJournal(MemoryJournal(clock), clock)
    await journal.open()
    journal.disk_full(5.0)
    with pytest.raises(JournalError) as raised:
        await journal.set_watermark("k", "v")
    assert raised.value.retryable
    await clock.advance(6.0)
    await journal.set_watermark("k", "v")
    assert await journal.get_watermark("k") == "v"
