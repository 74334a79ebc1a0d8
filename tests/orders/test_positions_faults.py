"""Faults on cancels and resizes still end with no orphaned exit at a quiet point (I2)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from orderguard.broker.faults import FaultKind, FaultPlan, FaultyBroker
from orderguard.broker.sim import SimBroker

from .conftest import MNQ, Harness, HarnessFactory
from .fakes import DelegatingBroker
from .position_helpers import exits, open_position, position, quiet, working

CANCEL_FAULTS = [
    FaultKind.REJECT,
    FaultKind.FAIL_BEFORE_SEND,
    FaultKind.RATE_LIMITED,
    FaultKind.LOST,
    FaultKind.AMBIGUOUS,
    FaultKind.SERVER_ERROR,
    FaultKind.PENDING,
    FaultKind.LATE,
]


def _faulty(sim: SimBroker) -> DelegatingBroker:
    return DelegatingBroker(FaultyBroker(sim, sim.clock, FaultPlan.none(), seed=3))


def _injector(h: Harness) -> Any:
    return h.broker.inner


async def _settle_long(h: Harness) -> tuple[int, int]:
    await open_position(h, 2)
    stop = await h.manager.add_stop_loss(MNQ, Decimal("20990.00"))
    target = await h.manager.add_take_profit(MNQ, Decimal("21010.00"))
    await quiet(h)
    return stop.order_id, target.order_id


@pytest.mark.parametrize("kind", CANCEL_FAULTS, ids=lambda k: k.value)
async def test_cancel_faults_leave_no_orphaned_exit(
    make_harness: HarnessFactory, kind: Any
) -> None:
    """Whatever the first two cancels suffer, both exits are gone once things are quiet."""
    h: Harness = await make_harness(wrapper=_faulty)
    await _settle_long(h)
    _injector(h).fail_next("cancel_order", kind, repeat=2, seconds=5.0)
    await open_position(h, -2)
    await quiet(h, 3 * h.manager.config.position_recheck_interval)
    assert _injector(h).fault_counts.get(kind)
    assert position(h) == 0
    assert working(h) == []


@pytest.mark.parametrize(
    "kind", [FaultKind.REJECT, FaultKind.LOST, FaultKind.AMBIGUOUS, FaultKind.LATE]
)
async def test_resize_faults_converge_to_the_position(
    make_harness: HarnessFactory, kind: Any
) -> None:
    """A resize that is refused or lost is repeated until the exits match the position."""
    h: Harness = await make_harness(wrapper=_faulty)
    stop, target = await _settle_long(h)
    _injector(h).fail_next("modify_order", kind, repeat=2, seconds=5.0)
    await open_position(h, 1)
    await quiet(h, 3 * h.manager.config.position_recheck_interval)
    assert _injector(h).fault_counts.get(kind)
    assert {o.id: o.remaining for o in exits(h)} == {stop: 3, target: 3}


async def test_cancel_position_orders_reports_a_cancel_that_keeps_failing(
    make_harness: HarnessFactory,
) -> None:
    """Every cancel refused: the order is counted failed with the reason, not reported cancelled."""
    h: Harness = await make_harness(wrapper=_faulty)
    stop, _ = await _settle_long(h)
    _injector(h).fail_next("cancel_order", FaultKind.REJECT, repeat=10)
    result = await h.clock.run(h.manager.cancel_position_orders(MNQ, order_types=("stop",)))
    assert (result["stop"], result["failed"]) == (0, 1)
    assert result.errors and str(stop) in result.errors[0]
    assert stop in {o.id for o in working(h)}


async def test_query_failures_delay_but_do_not_stop_following(
    make_harness: HarnessFactory,
) -> None:
    """A failed position query skips one round; the next round still cancels the exits."""
    h: Harness = await make_harness(wrapper=_faulty)
    await _settle_long(h)
    _injector(h).fail_next("search_positions", FaultKind.QUERY_ERROR, repeat=1)
    await open_position(h, -2)
    await quiet(h, 2 * h.manager.config.position_recheck_interval)
    assert working(h) == []
