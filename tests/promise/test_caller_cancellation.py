"""Issue 10, item 5: a cancelled or timed-out public call is never an outcome (F18)."""

from __future__ import annotations

import asyncio
import contextlib

from orderguard.orders.bracket.values import BracketOutcome

from .helpers import BUY, DEADLINE, MNQ, D, make_world


async def test_a_timed_out_bracket_call_keeps_its_operation_running() -> None:
    """The caller gives up while the entry is in flight; the entry fills; the bracket goes on
    under the manager and protects the fill; the record says what happened."""
    w = await make_world()
    call = w.manager.place_bracket_order(
        MNQ, BUY, 1, None, D("20990"), D("21010"), entry_type="market"
    )
    with contextlib.suppress(TimeoutError):
        await w.run(w.clock.wait_for(call, 0.01))
    await w.settle(DEADLINE)
    assert w.position() == 1
    assert w.stop_cover() == 1, "the filled entry was left without its stop"
    ops = [*w.manager.recovery.active_operations.values(),
                   *w.manager.recovery.operation_history]  # fmt: skip
    assert len(ops) == 1
    op = ops[0]
    assert op.state.value != "failed", op.last_error
    assert "could not be sent" not in (op.last_error or "")
    status = w.manager.get_bracket_status(op.operation_id)
    assert status is not None and status.outcome is BracketOutcome.PROTECTED
    await w.close()


async def test_a_shutdown_mid_entry_leaves_something_to_recover() -> None:
    """The caller is cancelled mid-entry and the process dies as the entry fills: the operation
    is unfinished in the journal and the next process protects the fill."""
    w = await make_world()
    task = asyncio.ensure_future(
        w.manager.place_bracket_order(
            MNQ, BUY, 1, None, D("20990"), D("21010"), entry_type="market"
        )
    )
    await w.settle(0.01)  # validation reads on their way
    task.cancel()  # the caller gives up; the bracket goes on under the manager ...
    while not w.ex.orders(1):
        await w.settle(0.005)
    assert w.position() == 1  # ... until the process dies right as its entry filled
    manager = await w.restart()
    await w.settle(DEADLINE)
    assert w.stop_cover() == 1
    assert [op.operation_id for op in manager.recovery.active_operations.values()]
    await w.close()
