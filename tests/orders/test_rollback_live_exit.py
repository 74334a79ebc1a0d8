"""A rollback whose exit cancel is refused keeps the exit and does not flatten under it.

Chaos seeds 1624 and 1665 (all faults): ``force_rollback_operation`` on a protected entry had its
stop's cancel rejected once, flattened anyway, and left the stop working on a flat contract (I2);
in 1665 the stop then filled and opened a position the other way (I1 over-coverage, I2 targets
exceed the position). The cancel is now re-sent, and while an exit is still live the position is
kept protected and the rollback left for the reconciler.
"""

from __future__ import annotations

from decimal import Decimal

from orderguard.broker.faults import FaultKind, FaultPlan
from orderguard.models import OrderRequest, OrderSide, OrderStatus, OrderType
from orderguard.recovery.operations import OperationState, OperationType

from .bracket_helpers import MNQ, Rig, make_rig


async def _protected_long(rig: Rig) -> tuple[str, int]:
    """A journaled market entry of 2 with a stop of 2 (the chaos workload's protected entry)."""
    m = rig.manager
    rec = m.recovery
    op = await rec.start_operation(OperationType.BRACKET_ORDER, account_id=1, contract_id=MNQ)
    entry = await rec.add_order_to_operation(op, MNQ, OrderSide.BUY, 2, "market", leg="entry")
    placed = await rig.run(
        m.submit(
            OrderRequest(1, MNQ, OrderType.MARKET, OrderSide.BUY, 2, custom_tag=entry.custom_tag)
        )
    )
    await rig.settle(0.5)
    await rec.record_order_success(op, entry, placed)
    view = m.tracker.get(placed.order_id)
    assert view is not None
    await rec.record_order_state(op, entry, view)
    stop = await rec.add_order_to_operation(
        op, MNQ, OrderSide.SELL, 2, "stop", Decimal("20990"), leg="stop"
    )
    await rec.add_position_tracking(op, MNQ, stop, "protective")
    request = OrderRequest(
        1, MNQ, OrderType.STOP, OrderSide.SELL, 2,
        stop_price=Decimal("20990"), custom_tag=stop.custom_tag,
    )  # fmt: skip
    stop_placed = await rig.run(m.submit(request))
    await rec.record_order_success(op, stop, stop_placed)
    await rec.complete_operation(op)
    await rig.settle(0.5)
    assert rig.position() == 2 and [o.id for o in rig.stops()] == [stop_placed.order_id]
    return op.operation_id, stop_placed.order_id


async def test_a_rejected_exit_cancel_is_sent_again_before_flattening() -> None:
    """One rejection (seed 1624's fault): the cancel goes through the second time; flat, safe."""
    rig = await make_rig(plan=FaultPlan.none())
    op_id, stop_id = await _protected_long(rig)
    rig.faulty.fail_next("cancel_order", FaultKind.REJECT, code=3)
    assert await rig.run(rig.manager.force_rollback_operation(op_id))
    await rig.settle(1.0)
    assert rig.position() == 0
    stop = rig.ex.order(1, stop_id)
    assert stop is not None and stop.status is OrderStatus.CANCELLED
    assert rig.working() == []
    await rig.manager.cleanup()


async def test_an_exit_whose_cancel_is_refused_is_retried_until_it_is_gone() -> None:
    """Every cancel refused for a while: exposure first — the position is flattened under the
    live stop (which keeps protecting it until the flatten filled) — then the stop's cancel is
    retried, never given up, until it is gone; the operation is rolling_back until then."""
    rig = await make_rig(plan=FaultPlan.none())
    op_id, stop_id = await _protected_long(rig)
    rig.faulty.fail_next("cancel_order", FaultKind.REJECT, code=3, repeat=10)
    assert not await rig.run(rig.manager.force_rollback_operation(op_id))
    await rig.settle(1.0)
    assert rig.position() == 0
    flattens = [o for o in rig.ex.orders(1) if "flatten" in (o.custom_tag or "")]
    assert [(o.side, o.fill_volume) for o in flattens] == [(OrderSide.SELL, 2)]  # once, exactly
    op = rig.manager.recovery.get_operation(op_id)
    assert op is not None
    await rig.settle(30.0)  # the executor keeps re-sending the cancel; the rejections run out
    assert rig.position() == 0 and rig.working() == []
    stop = rig.ex.order(1, stop_id)
    assert stop is not None and stop.status is OrderStatus.CANCELLED
    assert op.state is OperationState.ROLLED_BACK
    await rig.manager.cleanup()
