"""The continuous reconciler: lost fills, unconfirmed rollbacks, reconnects, silence, lifecycle."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orderguard.broker.faults import FaultKind
from orderguard.errors import OutcomeUnknownError
from orderguard.models import Order, OrderSide, OrderStatus
from orderguard.recovery.operations import OperationState, OperationType

from .conftest import RigFactory
from .rig import FAST, MNQ, PRICE, Rig, limit_request, market_request

QUIET = FAST.model_copy(update={"silence_threshold": 600.0, "position_check_interval": 600.0})
"""Only the in-flight checker: no silence resync or position check inside a test's horizon."""
THROUGH = PRICE - Decimal(101)  # trades through the resting buy limit at PRICE - 100


async def _operation_limit(rig: Rig) -> tuple[str, int]:
    """An operation (driven by nobody once placed) with one resting buy limit leg."""
    rec = rig.manager.recovery
    op = await rec.start_operation(OperationType.OCO_PAIR, account_id=1, contract_id=MNQ)
    ref = await rec.add_order_to_operation(op, MNQ, OrderSide.BUY, 1, "limit", leg="a")
    request = limit_request(ref.custom_tag)
    placed = await rig.clock.run(rig.manager.submit(request))
    await rec.record_order_success(op, ref, placed)
    return op.operation_id, placed.order_id


async def test_a_lost_fill_is_found_within_interval_plus_threshold(make_rig: RigFactory) -> None:
    """Every event lost: the leg's fill is in the tracker by threshold + interval, not before."""
    rig = await make_rig(config=QUIET)
    _, order_id = await _operation_limit(rig)
    filled: list[Order] = []
    rig.manager.add_callback("order_filled", filled.append)
    rig.broker.go_silent(3600.0)  # no event reaches the manager from now on
    rig.exchange.set_price(MNQ, THROUGH)  # the limit fills at the exchange
    await rig.settle(1.0)
    view = rig.manager.tracker.get(order_id)
    assert view is not None and view.status is OrderStatus.OPEN  # nobody told us yet
    cfg = rig.manager.config
    await rig.settle(cfg.reconcile_threshold + cfg.reconcile_interval)
    view = rig.manager.tracker.get(order_id)
    assert view is not None and view.status is OrderStatus.FILLED
    assert [o.id for o in filled] == [order_id]
    assert rig.manager.reconciler.stats["missed_fills"] == 1


async def test_reconcile_threshold_sets_when_a_stuck_operation_is_reread(
    make_rig: RigFactory,
) -> None:
    """With a 30 s threshold the same lost fill is still unknown after 8 s."""
    rig = await make_rig(config=QUIET.model_copy(update={"reconcile_threshold": 30.0}))
    _, order_id = await _operation_limit(rig)
    rig.broker.go_silent(3600.0)
    rig.exchange.set_price(MNQ, THROUGH)
    await rig.settle(8.0)
    view = rig.manager.tracker.get(order_id)
    assert view is not None and view.status is OrderStatus.OPEN
    await rig.settle(25.0)
    view = rig.manager.tracker.get(order_id)
    assert view is not None and view.status is OrderStatus.FILLED


async def test_reconcile_interval_sets_the_pass_period(make_rig: RigFactory) -> None:
    """A 20 s interval: the lost fill is found only at the first pass after the threshold."""
    rig = await make_rig(
        config=QUIET.model_copy(update={"reconcile_interval": 20.0, "reconcile_threshold": 0.0})
    )
    _, order_id = await _operation_limit(rig)
    rig.broker.go_silent(3600.0)
    rig.exchange.set_price(MNQ, THROUGH)
    await rig.settle(10.0)
    view = rig.manager.tracker.get(order_id)
    assert view is not None and view.status is OrderStatus.OPEN
    await rig.settle(15.0)
    view = rig.manager.tracker.get(order_id)
    assert view is not None and view.status is OrderStatus.FILLED


async def _owned_long(rig: Rig) -> str:
    """A BRACKET_ORDER-typed operation with a filled market entry and no saga driving it."""
    rec = rig.manager.recovery
    op = await rec.start_operation(OperationType.BRACKET_ORDER, account_id=1, contract_id=MNQ)
    ref = await rec.add_order_to_operation(op, MNQ, OrderSide.BUY, 2, "market", leg="entry")
    placed = await rig.clock.run(rig.manager.submit(market_request(ref.custom_tag, size=2)))
    await rig.settle(0.5)
    await rec.record_order_success(op, ref, placed)
    view = rig.manager.tracker.get(placed.order_id)
    assert view is not None
    await rec.record_order_state(op, ref, view)
    assert op.net_filled == 2 and rig.position() == 2
    return op.operation_id


async def test_a_rollback_whose_flatten_failed_is_retried_until_flat(
    make_rig: RigFactory,
) -> None:
    """The flatten is rejected twice: the protection executor keeps the obligation (the
    operation stays rolling_back) and retries on its capped backoff until flat."""
    rig = await make_rig(config=QUIET)
    op_id = await _owned_long(rig)
    rig.broker.fail_next("place_order", FaultKind.REJECT, repeat=2)
    assert not await rig.clock.run(
        rig.manager.recovery.protection.roll_back(  # type: ignore[union-attr]
            rig.manager.recovery.active_operations[op_id], "test", wait=0.1
        )
    )
    op = rig.manager.recovery.active_operations[op_id]
    assert op.state is OperationState.ROLLING_BACK and rig.position() == 2
    await rig.settle(5.0)
    assert rig.position() == 0
    status = rig.manager.recovery.get_operation_status(op_id)
    assert status is not None and status["state"] == "rolled_back"
    flattens = [o for o in rig.orders() if "flatten" in (o.custom_tag or "")]
    assert [(o.side, o.size, o.status) for o in flattens] == [
        (OrderSide.SELL, 2, OrderStatus.FILLED)
    ]


async def test_a_refused_flatten_is_retried_without_waiting_for_the_reconciler(
    make_rig: RigFactory,
) -> None:
    """One policy for protection: a refused flatten is sent again within the capped backoff,
    not after the reconciler's threshold (60 s here)."""
    rig = await make_rig(config=QUIET.model_copy(update={"reconcile_threshold": 60.0}))
    op_id = await _owned_long(rig)
    rig.broker.fail_next("place_order", FaultKind.REJECT)
    await rig.clock.run(rig.manager.force_rollback_operation(op_id))
    await rig.settle(3.0)
    assert rig.position() == 0


async def test_a_reconnect_triggers_a_full_resync(make_rig: RigFactory) -> None:
    """Orders and positions changed during a disconnect are read back right after it."""
    rig = await make_rig(config=QUIET)
    placed = await rig.clock.run(rig.manager.submit(limit_request("og-plain-x-0")))
    await rig.settle()
    reads = rig.manager.reconciler.stats["position_reads"]
    rig.broker.disconnect(4.0)
    rig.exchange.set_price(MNQ, THROUGH)  # fills inside the gap
    await rig.settle(3.9)
    view = rig.manager.tracker.get(placed.order_id)
    assert view is not None and view.status is OrderStatus.OPEN
    await rig.settle(0.2)  # RECONNECTED arrives at 4.0 s
    view = rig.manager.tracker.get(placed.order_id)
    assert view is not None and view.status is OrderStatus.FILLED
    assert rig.manager.reconciler.stats["full_resyncs"] == 1
    assert rig.manager.reconciler.stats["position_reads"] == reads + 1


async def test_a_silent_stream_triggers_a_resync_after_silence_threshold(
    make_rig: RigFactory,
) -> None:
    """No event for silence_threshold (40 s here) seconds: a plain order's lost fill is read
    back then, and not before (the default 15 s would have found it by 30 s)."""
    rig = await make_rig(config=QUIET.model_copy(update={"silence_threshold": 40.0}))
    placed = await rig.clock.run(rig.manager.submit(limit_request("og-plain-y-0")))
    await rig.settle()
    rig.broker.go_silent(3600.0)
    rig.exchange.set_price(MNQ, THROUGH)
    await rig.settle(30.0)
    view = rig.manager.tracker.get(placed.order_id)
    assert view is not None and view.status is OrderStatus.OPEN
    await rig.settle(10.0 + FAST.reconcile_interval)
    view = rig.manager.tracker.get(placed.order_id)
    assert view is not None and view.status is OrderStatus.FILLED
    assert rig.manager.reconciler.stats["full_resyncs"] == 1  # once per silence
    await rig.settle(100.0)
    assert rig.manager.reconciler.stats["full_resyncs"] == 1


async def test_position_check_interval_reads_positions_periodically(
    make_rig: RigFactory,
) -> None:
    """With something to watch, positions are read every position_check_interval seconds."""
    rig = await make_rig(config=QUIET.model_copy(update={"position_check_interval": 10.0}))
    await rig.clock.run(rig.manager.submit(limit_request("og-plain-z-0")))
    await rig.settle(35.0)
    assert rig.manager.reconciler.stats["position_reads"] == 3


async def test_nothing_in_flight_costs_no_queries(make_rig: RigFactory) -> None:
    """An idle manager makes no reconciliation reads, however long it stays quiet."""
    rig = await make_rig(config=FAST)
    await rig.settle(300.0)
    assert rig.manager.reconciler.stats["passes"] == 0


async def test_cleanup_leaves_no_background_task(make_rig: RigFactory) -> None:
    """cleanup() stops the reconciler and every task it or the manager spawned."""
    rig = await make_rig(config=QUIET)
    await _operation_limit(rig)
    await rig.settle(10.0)
    assert rig.manager.reconciler.running
    await rig.manager.cleanup()
    assert not rig.manager.reconciler.running
    assert rig.manager._tasks == set() and rig.manager.background_tasks == 0
    passes = rig.manager.reconciler.stats["passes"]
    await rig.settle(60.0)
    assert rig.manager.reconciler.stats["passes"] == passes


async def test_an_unknown_placement_is_resolved_by_the_reconciler(make_rig: RigFactory) -> None:
    """A placement answered Unknown that executes late is found (and unlatched) by the
    reconciler within threshold + interval, long before the 120 s background re-check."""
    rig = await make_rig(config=QUIET.model_copy(update={"status_check_max_delay": 120.0}))
    rig.broker.fail_next("place_order", FaultKind.LATE, seconds=2.0)
    with pytest.raises(OutcomeUnknownError):
        await rig.clock.run(rig.manager.submit(limit_request("og-late-x-0")))
    assert rig.manager.latch.is_latched(1, MNQ)
    await rig.settle(FAST.reconcile_threshold + FAST.reconcile_interval + 2.0)
    assert not rig.manager.latch.is_latched(1, MNQ)
    assert rig.manager.tracker.by_tag(1, "og-late-x-0") is not None


@pytest.mark.parametrize("operations", [1, 20])
async def test_a_pass_reads_once_per_account_whatever_the_count(
    make_rig: RigFactory, operations: int
) -> None:
    """One or twenty stuck operations: the pass costs one Order/search, no more."""
    rig = await make_rig(config=QUIET)
    for _ in range(operations):
        await _operation_limit(rig)
    await rig.settle(FAST.reconcile_threshold + FAST.reconcile_interval)
    stats = rig.manager.reconciler.stats
    assert (stats["passes"], stats["order_reads"], stats["position_reads"]) == (1, 1, 0)
