"""OperationRecoveryManager: table-driven states, journal-true statistics, restart, cleanup."""

from __future__ import annotations

import pytest

from orderguard.broker.base import Rejected, Unknown, UnknownOrigin
from orderguard.errors import OperationError
from orderguard.journal import MemoryJournal
from orderguard.models import OrderSide, OrderStatus
from orderguard.recovery.manager import OperationRecoveryManager
from orderguard.recovery.operations import OperationState, OperationType
from orderguard.testing import builders

from .conftest import RigFactory
from .rig import (
    MNQ,
    PRICE,
    Rig,
    assert_stats_match_journal,
    assert_transitions_follow_table,
    market_request,
    stop_request,
)

BRACKET = OperationType.BRACKET_ORDER


async def test_statistics_survive_a_restart(rig: Rig) -> None:
    """A new manager over the same journal recounts the same statistics."""
    rec = rig.manager.recovery
    op = await rec.start_operation(BRACKET, account_id=1, contract_id=MNQ)
    ref = await rec.add_order_to_operation(op, MNQ, OrderSide.BUY, 1, "limit", leg="entry")
    await rec.record_order_failure(op, ref, Unknown(UnknownOrigin.TIMEOUT_AFTER_SEND))
    await rec.record_resolution(op, ref, None)
    await rec.complete_operation(op)
    await rec.force_rollback_operation((await rec.start_operation(BRACKET)).operation_id)
    await assert_stats_match_journal(rig)
    fresh = OperationRecoveryManager(rig.journal, rig.clock)
    await fresh.load()
    before = rec.get_recovery_statistics()
    after = fresh.get_recovery_statistics()
    keys = (
        "operations_started",
        "operations_failed",
        "operations_rolled_back",
        "unknown_outcomes_seen",
        "unknown_outcomes_resolved",
        "recovery_attempts",
    )
    for key in keys:
        assert after[key] == before[key], key


async def test_illegal_transition_is_refused_and_not_journaled(rig: Rig) -> None:
    """pending -> partially_completed is not a row: OperationError, nothing recorded."""
    rec = rig.manager.recovery
    op = await rec.start_operation(BRACKET)
    with pytest.raises(OperationError):
        await rec._set_state(op, OperationState.PARTIALLY_COMPLETED, "bad")
    assert op.state is OperationState.PENDING
    assert len(await rig.journal.state_changes(op.operation_id)) == 1


async def test_rejected_legs_fail_the_operation_via_the_table(rig: Rig) -> None:
    """All legs rejected: in_progress -> failed, every change a table row."""
    rec = rig.manager.recovery
    op = await rec.start_operation(BRACKET, account_id=1, contract_id=MNQ)
    ref = await rec.add_order_to_operation(op, MNQ, OrderSide.BUY, 1, "limit", leg="entry")
    await rec.record_order_failure(op, ref, Rejected(2, "no"))
    assert not await rec.complete_operation(op)
    assert op.state.value == "failed"
    await assert_transitions_follow_table(rig)
    await assert_stats_match_journal(rig)


async def test_history_is_bounded(make_rig: RigFactory) -> None:
    """Only max_history finished operations stay in memory; all are in the journal."""
    rig = await make_rig()
    rec = OperationRecoveryManager(rig.journal, rig.clock, max_history=100)
    for _ in range(120):
        await rec.force_rollback_operation((await rec.start_operation(BRACKET)).operation_id)
    assert len(rec.operation_history) == 100
    assert (await rig.journal.counts()).operations_by_state["rolled_back"] == 120
    assert rec.get_recovery_statistics()["operations_rolled_back"] == 120


async def test_stale_cleanup_keeps_protection_of_a_live_position(rig: Rig) -> None:
    """A stuck operation owning a filled entry keeps its working stop."""
    m, rec = rig.manager, rig.manager.recovery
    op = await rec.start_operation(BRACKET, account_id=1, contract_id=MNQ)
    entry = await rec.add_order_to_operation(op, MNQ, OrderSide.BUY, 2, "market", leg="entry")
    await m.submit(market_request(entry.custom_tag, size=2))
    stop = await rec.add_order_to_operation(
        op, MNQ, OrderSide.SELL, 2, "stop", PRICE - 100, leg="stop"
    )
    placed = await m.submit(stop_request(stop.custom_tag, OrderSide.SELL, 2), respect_latch=False)
    await rig.settle(25 * 3600)
    await rig.clock.run(rec.cleanup_stale_operations(24.0))
    order = rig.exchange.order(1, placed.order_id)
    assert order is not None and order.status is OrderStatus.OPEN
    assert rig.position() == 2 and op.operation_id in rec.active_operations


async def test_stale_cleanup_flattens_an_unprotected_owned_position(rig: Rig) -> None:
    """A stuck operation with a fill and no protection is flattened by exactly its quantity."""
    m, rec = rig.manager, rig.manager.recovery
    await m.submit(market_request("og-other-entry-0", size=3))  # someone else's 3 lots
    op = await rec.start_operation(BRACKET, account_id=1, contract_id=MNQ)
    entry = await rec.add_order_to_operation(op, MNQ, OrderSide.BUY, 2, "market", leg="entry")
    await m.submit(market_request(entry.custom_tag, size=2))
    await rig.settle(25 * 3600)
    # Bare past the protection deadline, the reconciler handed it to the protection executor
    # long before the stale cleanup runs; either way exactly its 2 lots are flattened.
    assert await rig.clock.run(rec.cleanup_stale_operations(24.0)) in (0, 1)
    await rig.settle()
    assert rig.position() == 3
    assert op.state.value == "rolled_back"
    await assert_transitions_follow_table(rig)


async def test_rollback_never_flattens_what_the_broker_no_longer_holds(rig: Rig) -> None:
    """If the position was closed elsewhere, rollback does not open an opposite one."""
    m, rec = rig.manager, rig.manager.recovery
    op = await rec.start_operation(BRACKET, account_id=1, contract_id=MNQ)
    entry = await rec.add_order_to_operation(op, MNQ, OrderSide.BUY, 2, "market", leg="entry")
    await m.submit(market_request(entry.custom_tag, size=2))
    await m.submit(market_request("og-manual-exit-0", OrderSide.SELL, 2))
    await rig.settle()
    await rig.clock.run(rec.force_rollback_operation(op.operation_id))
    await rig.settle()
    assert rig.position() == 0


async def test_load_restores_active_operations_and_their_tags(make_rig: RigFactory) -> None:
    """After a restart an unfinished operation is active again and its legs are indexed."""
    journal = MemoryJournal()
    rig = await make_rig(journal=journal)
    rec = rig.manager.recovery
    op = await rec.start_operation(BRACKET, account_id=1, contract_id=MNQ)
    ref = await rec.add_order_to_operation(op, MNQ, OrderSide.BUY, 1, "limit", leg="entry")
    fresh = OperationRecoveryManager(journal, rig.clock)
    [again] = await fresh.load()
    assert again.operation_id == op.operation_id
    assert fresh.leg_for_tag(1, ref.custom_tag) is not None


async def test_finished_operations_that_still_own_a_position_are_known_past_the_history(
    make_rig: RigFactory,
) -> None:
    """A finished bracket whose entry filled is a holder (its exits protect the position)
    however many operations finished after it; once its position is closed it is not; a new
    manager over the journal knows the same."""
    rig = await make_rig()
    rec = OperationRecoveryManager(rig.journal, rig.clock, max_history=10)
    held = await rec.start_operation(BRACKET, account_id=1, contract_id=MNQ)
    ref = await rec.add_order_to_operation(held, MNQ, OrderSide.BUY, 2, "market", leg="entry")
    await rec.record_order_state(held, ref, builders.order(7, ref.custom_tag, OrderSide.BUY, 2))
    await rec.complete_operation(held)
    for _ in range(15):
        await rec.force_rollback_operation((await rec.start_operation(BRACKET)).operation_id)
    assert held not in rec.operation_history
    assert rec.finished_holders() == [held]
    fresh = OperationRecoveryManager(rig.journal, rig.clock, max_history=20)
    await fresh.load()
    assert [op.operation_id for op in fresh.finished_holders()] == [held.operation_id]
    await rec.record_external_close(held, -2, by="close-1")
    assert rec.finished_holders() == []


async def test_a_refused_re_send_leaves_a_leg_in_doubt_in_doubt(rig: Rig) -> None:
    """A leg whose first send is in doubt, sent again under its tag and refused: the refusal is
    most likely the duplicate of a first send that did arrive, so the record keeps the leg in
    doubt (read as rejected, a flatten was placed again under a new tag and both filled). A
    first send that is refused is a rejection as always."""
    rec = rig.manager.recovery
    op = await rec.start_operation(BRACKET, account_id=1, contract_id=MNQ)
    doubt = await rec.add_order_to_operation(op, MNQ, OrderSide.BUY, 2, "market", leg="flatten0")
    await rec.record_order_failure(op, doubt, Unknown(UnknownOrigin.TIMEOUT_AFTER_SEND))
    await rec.record_order_failure(op, doubt, Rejected(2, "duplicate customTag"))
    assert doubt.status == "unknown" and "re-send was refused" in (doubt.error_message or "")
    fresh = await rec.add_order_to_operation(op, MNQ, OrderSide.BUY, 2, "market", leg="flatten1")
    await rec.record_order_failure(op, fresh, Rejected(2, "market closed"))
    assert fresh.status == "rejected"
