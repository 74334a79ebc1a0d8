"""The seed's calls as the seed shows them (issue 10.7): one test per reported break.

Each places its legs the way the seed's bracket does (the recovery manager tracks them, the
OrderManager sends them) on the simulated exchange with a memory journal and a virtual clock, and
asserts from the exchange.
"""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from orderguard import errors
from orderguard.broker.faults import FaultKind, FaultPlan
from orderguard.journal import MemoryJournal
from orderguard.models import OrderRequest, OrderSide, OrderStatus, OrderType
from orderguard.orders import OrderManager
from orderguard.recovery.manager import (
    OperationRecoveryManager,
    OrderReference,
    RecoveryOperation,
)
from orderguard.recovery.operations import OperationState, OperationType

from .conftest import RigFactory
from .rig import ACCOUNT, FAST, MNQ, PRICE, Rig

BRACKET = OperationType.BRACKET_ORDER
STOP_PRICE = PRICE - Decimal(10)
TARGET_PRICE = PRICE + Decimal(10)
QUIET = FAST.model_copy(update={"silence_threshold": 600.0, "position_check_interval": 600.0})


async def restart(rig: Rig, seed: int = 11) -> OrderManager:
    """The next process: a new manager on the same journal and exchange (the old one is gone)."""
    await rig.manager.cleanup()
    manager = OrderManager(
        rig.broker, clock=rig.clock, config=QUIET, rng=random.Random(seed), journal=rig.journal
    )
    await rig.clock.run(manager.start())
    rig.manager = manager
    return manager


async def send(rig: Rig, op: RecoveryOperation, ref: OrderReference) -> int:
    """Send a tracked leg under its own tag and record the acknowledgement (the seed's
    ``record_order_success(operation, ref, response)``)."""
    kind = {"market": OrderType.MARKET, "stop": OrderType.STOP, "limit": OrderType.LIMIT}
    order_type = kind[ref.order_type]
    request = OrderRequest(
        account_id=ref.account_id,
        contract_id=ref.contract_id,
        type=order_type,
        side=OrderSide(ref.side),
        size=ref.size,
        limit_price=ref.price if order_type is OrderType.LIMIT else None,
        stop_price=ref.price if order_type is OrderType.STOP else None,
        custom_tag=ref.custom_tag,
    )
    placed = await rig.clock.run(rig.manager.submit(request, respect_latch=False))
    await rig.manager.recovery.record_order_success(op, ref, placed)
    await rig.settle()
    return placed.order_id


async def seed_bracket(
    rig: Rig, *, account: int | None = None
) -> tuple[RecoveryOperation, OrderReference, OrderReference, OrderReference]:
    """The seed's bracket: a market entry, then stop and target, tracked (with no account named,
    as in the seed, unless ``account``), the exits OCO-paired. The caller completes it.

    Tests of other breaks than the account name it, so each fails on its own break only."""
    rec = rig.manager.recovery
    op = await rec.start_operation(BRACKET, max_retries=3, retry_delay=1.0, account_id=account)
    entry = await rec.add_order_to_operation(op, MNQ, OrderSide.BUY, 1, "market")
    await send(rig, op, entry)
    stop = await rec.add_order_to_operation(op, MNQ, OrderSide.SELL, 1, "stop", STOP_PRICE)
    target = await rec.add_order_to_operation(op, MNQ, OrderSide.SELL, 1, "limit", TARGET_PRICE)
    await send(rig, op, stop)
    await send(rig, op, target)
    await rec.add_oco_pair(op, stop, target)
    return op, entry, stop, target


def working(rig: Rig) -> list[int]:
    return [o.id for o in rig.orders() if o.is_working]


# -- 1. no account named: the manager's -----------------------------------------------------------
async def test_an_operation_without_account_puts_its_legs_on_the_managers_account(
    make_rig: RigFactory,
) -> None:
    """start_operation without an account: the legs and the intents are on account 1, never 0."""
    rig = await make_rig(config=QUIET)
    op, entry, stop, target = await seed_bracket(rig)
    assert op.account_id == ACCOUNT
    assert {r.account_id for r in (entry, stop, target)} == {ACCOUNT}
    intents = await rig.journal.intents_for(op.operation_id)
    assert intents and {i.account_id for i in intents} == {ACCOUNT}


async def test_reconciler_passes_and_a_restart_work_after_an_unnamed_account_operation(
    make_rig: RigFactory,
) -> None:
    """The operation left unfinished: reconciler passes do not fail, and after a restart new
    orders are accepted (a leg on account 0 made every read of the broker fail)."""
    rig = await make_rig(config=QUIET)
    rec = rig.manager.recovery
    op = await rec.start_operation(BRACKET, max_retries=3, retry_delay=1.0)
    ref = await rec.add_order_to_operation(op, MNQ, OrderSide.BUY, 1, "limit", PRICE - 100)
    await send(rig, op, ref)
    await rig.settle(3 * (QUIET.reconcile_threshold + QUIET.reconcile_interval))
    assert rig.manager.reconciler.stats["pass_errors"] == 0
    manager = await restart(rig)
    assert manager.last_recovery is not None and manager.last_recovery.error is None
    placed = await rig.clock.run(manager.place_limit_order(MNQ, OrderSide.BUY, 1, PRICE - 50))
    assert placed.order_id in working(rig)


async def test_a_leg_with_no_resolvable_account_is_refused_before_anything_is_written() -> None:
    """A bare recovery manager knows no account: UnknownAccountError, no intent journaled."""
    journal = MemoryJournal()
    await journal.open()
    rec = OperationRecoveryManager(journal, journal._clock)
    op = await rec.start_operation(BRACKET)
    with pytest.raises(errors.UnknownAccountError):
        await rec.add_order_to_operation(op, MNQ, OrderSide.BUY, 1, "market")
    assert await journal.intents_for(op.operation_id) == []
    assert op.orders == {}


async def test_a_leg_sent_under_its_own_tag_is_recovered_after_a_restart(
    make_rig: RigFactory,
) -> None:
    """The seed's flow sends a leg with place_market_order (its own customTag) and records the
    response; the process dies before the stop: at restart the fill is found by the order's
    tag and flattened, not taken for another intent's order and left naked."""
    rig = await make_rig(config=QUIET)
    rec = rig.manager.recovery
    op = await rec.start_operation(BRACKET, account_id=ACCOUNT)
    entry_ref = await rec.add_order_to_operation(op, MNQ, OrderSide.BUY, 1, "market")
    entry = await rig.clock.run(rig.manager.place_market_order(MNQ, OrderSide.BUY, 1))
    await rec.record_order_success(op, entry_ref, entry)
    await rig.settle()
    assert rig.position() == 1
    manager = await restart(rig)
    await rig.settle(1.0)
    assert rig.position() == 0 and working(rig) == []
    status = await manager.get_operation_status(op.operation_id)
    assert status is not None and status["state"] == "rolled_back"


# -- 2. max_retries / retry_delay drive the operation's recovery ---------------------------------
async def _long_with_live_stop(rig: Rig, **schedule: float) -> tuple[RecoveryOperation, int]:
    """An operation (nobody drives it) that owns a filled long 1 and a working stop."""
    rec = rig.manager.recovery
    op = await rec.start_operation(BRACKET, account_id=ACCOUNT, **schedule)  # type: ignore[arg-type]
    entry = await rec.add_order_to_operation(op, MNQ, OrderSide.BUY, 1, "market", leg="entry")
    await send(rig, op, entry)
    view = rig.manager.tracker.get(entry.order_id or 0)
    assert view is not None
    await rec.record_order_state(op, entry, view)
    stop = await rec.add_order_to_operation(
        op, MNQ, OrderSide.SELL, 1, "stop", STOP_PRICE, leg="stop"
    )
    stop_id = await send(rig, op, stop)
    assert rig.position() == 1 and stop_id in working(rig)
    return op, stop_id


async def test_max_retries_sets_the_cancels_of_one_rollback_run(make_rig: RigFactory) -> None:
    """max_retries=5: a cancel refused four times still ends the rollback flat in one run."""
    rig = await make_rig(config=QUIET)
    op, _ = await _long_with_live_stop(rig, max_retries=5)
    rig.broker.fail_next("cancel_order", FaultKind.REJECT, repeat=4)
    assert await rig.clock.run(rig.manager.recovery.force_rollback_operation(op.operation_id))
    assert op.state is OperationState.ROLLED_BACK
    assert rig.position() == 0 and working(rig) == []


async def test_retry_delay_paces_the_retries_of_one_rollback_run(make_rig: RigFactory) -> None:
    """retry_delay=1.0: two refused cancels cost 1 s + 2 s of (virtual) pauses before the third."""
    rig = await make_rig(config=QUIET)
    op, _ = await _long_with_live_stop(rig, max_retries=3, retry_delay=1.0)
    rig.broker.fail_next("cancel_order", FaultKind.REJECT, repeat=2)
    began = rig.clock.monotonic()
    assert await rig.clock.run(rig.manager.recovery.force_rollback_operation(op.operation_id))
    assert rig.clock.monotonic() - began >= 3.0
    assert rig.position() == 0 and working(rig) == []


async def test_retry_delay_paces_the_protection_executor_and_survives_a_restart(
    make_rig: RigFactory,
) -> None:
    """retry_delay=0.5: the protection executor paces the refused cancels by it (0.5 s, 1 s),
    never waiting for the reconciler's threshold, and the budget spent (max_retries=2) is noted
    without stopping the retries; the schedule is journaled and survives a restart."""
    rig = await make_rig(config=QUIET)
    op, _ = await _long_with_live_stop(rig, max_retries=2, retry_delay=0.5)
    rig.broker.fail_next("cancel_order", FaultKind.REJECT, repeat=2)
    began = rig.clock.monotonic()
    assert await rig.clock.run(rig.manager.recovery.force_rollback_operation(op.operation_id))
    assert 1.5 <= rig.clock.monotonic() - began < QUIET.reconcile_threshold
    assert rig.position() == 0 and working(rig) == []
    assert op.state is OperationState.ROLLED_BACK
    assert any("retry budget of 2 spent" in e for e in op.errors)
    manager = await restart(rig)
    status = await manager.get_operation_status(op.operation_id)
    assert status is not None
    assert (status["max_retries"], status["retry_delay"]) == (2, 0.5)


# -- 3. add_oco_pair + complete_operation links the pair ------------------------------------------
async def test_complete_operation_links_its_oco_pair(make_rig: RigFactory) -> None:
    """The target fills: the stop does not outlive it (cancelled, confirmed at the exchange)."""
    rig = await make_rig(config=QUIET)
    op, _, stop, target = await seed_bracket(rig, account=ACCOUNT)
    assert await rig.manager.recovery.complete_operation(op)
    assert rig.manager.get_oco_linked_order(stop.order_id or 0) == target.order_id
    rig.exchange.set_price(MNQ, TARGET_PRICE + Decimal("0.25"))
    await rig.settle(2.0)
    assert rig.exchange.order(ACCOUNT, target.order_id or 0).status is OrderStatus.FILLED  # type: ignore[union-attr]
    assert rig.exchange.order(ACCOUNT, stop.order_id or 0).status is OrderStatus.CANCELLED  # type: ignore[union-attr]
    assert rig.position() == 0 and working(rig) == []


async def test_the_oco_link_of_a_completed_operation_survives_a_restart(
    make_rig: RigFactory,
) -> None:
    """Completed, then the process restarts: the target's fill still cancels the stop."""
    rig = await make_rig(config=QUIET)
    op, _, stop, target = await seed_bracket(rig, account=ACCOUNT)
    assert await rig.manager.recovery.complete_operation(op)
    manager = await restart(rig)
    assert manager.get_oco_linked_order(stop.order_id or 0) == target.order_id
    rig.exchange.set_price(MNQ, TARGET_PRICE + Decimal("0.25"))
    await rig.settle(2.0)
    assert rig.exchange.order(ACCOUNT, stop.order_id or 0).status is OrderStatus.CANCELLED  # type: ignore[union-attr]
    assert rig.position() == 0 and working(rig) == []


async def test_a_target_filled_while_down_cancels_the_stop_at_restart(
    make_rig: RigFactory,
) -> None:
    """The target fills while no process runs: start-up recovery cancels the stop."""
    rig = await make_rig(config=QUIET)
    op, _, stop, _ = await seed_bracket(rig, account=ACCOUNT)
    assert await rig.manager.recovery.complete_operation(op)
    await rig.manager.cleanup()
    rig.exchange.set_price(MNQ, TARGET_PRICE + Decimal("0.25"))
    await rig.settle(1.0)
    await restart(rig)
    await rig.settle(1.0)
    assert rig.exchange.order(ACCOUNT, stop.order_id or 0).status is OrderStatus.CANCELLED  # type: ignore[union-attr]
    assert rig.position() == 0 and working(rig) == []


async def test_a_leg_filled_before_completion_still_cancels_its_sibling(
    make_rig: RigFactory,
) -> None:
    """The target filled before complete_operation ran: the hand-off cancels the stop."""
    rig = await make_rig(config=QUIET)
    op, _, stop, target = await seed_bracket(rig, account=ACCOUNT)
    rig.exchange.set_price(MNQ, TARGET_PRICE + Decimal("0.25"))
    await rig.settle()
    assert rig.exchange.order(ACCOUNT, target.order_id or 0).status is OrderStatus.FILLED  # type: ignore[union-attr]
    assert await rig.manager.recovery.complete_operation(op)
    await rig.settle(2.0)
    assert rig.exchange.order(ACCOUNT, stop.order_id or 0).status is OrderStatus.CANCELLED  # type: ignore[union-attr]
    assert rig.position() == 0 and working(rig) == []


# -- 4. the facade's seed methods -----------------------------------------------------------------
async def test_get_operation_status_is_awaitable_on_the_order_manager(
    make_rig: RigFactory,
) -> None:
    """``await orders.get_operation_status(id)`` as in the seed; the recovery manager's is sync."""
    rig = await make_rig(config=QUIET)
    op = await rig.manager.recovery.start_operation(BRACKET)
    status = await rig.manager.get_operation_status(op.operation_id)
    assert status == rig.manager.recovery.get_operation_status(op.operation_id)
    assert status is not None and status["state"] == "pending"


async def test_circuit_breaker_status_has_the_seeds_top_level_keys(make_rig: RigFactory) -> None:
    """state/failure_count/is_healthy/retry_config summarise the families (worst state wins)."""
    rig = await make_rig(
        config=QUIET.model_copy(update={"status_check_circuit_breaker_threshold": 1})
    )
    status = rig.manager.get_circuit_breaker_status()
    assert status["state"] == "closed" and status["is_healthy"] and status["failure_count"] == 0
    assert set(status["retry_config"]) == {
        "max_attempts",
        "initial_delay",
        "backoff_factor",
        "max_delay",
    }
    assert set(status["families"]) == {"orders", "positions", "queries"}
    rig.broker.fail_next("place_order", FaultKind.AMBIGUOUS)  # one timeout after send
    await rig.clock.run(rig.manager.place_limit_order(MNQ, OrderSide.BUY, 1, PRICE - 100))
    status = rig.manager.get_circuit_breaker_status()
    assert status["families"]["orders"]["state"] == "open"
    assert status["state"] == "open" and not status["is_healthy"]
    assert status["failure_count"] >= 1


async def test_cancel_position_orders_with_no_kinds_cancels_every_kind(
    make_rig: RigFactory,
) -> None:
    """order_types=None (the seed's default) means entry, stop and target."""
    rig = await make_rig(config=QUIET)
    await rig.clock.run(rig.manager.place_market_order(MNQ, OrderSide.BUY, 1))
    await rig.settle()
    await rig.clock.run(rig.manager.place_stop_order(MNQ, OrderSide.SELL, 1, STOP_PRICE))
    await rig.clock.run(rig.manager.place_limit_order(MNQ, OrderSide.SELL, 1, TARGET_PRICE))
    await rig.clock.run(rig.manager.place_limit_order(MNQ, OrderSide.BUY, 1, PRICE - 100))
    result = await rig.clock.run(rig.manager.cancel_position_orders(MNQ, order_types=None))
    assert (result["entry"], result["stop"], result["target"]) == (1, 1, 1)
    assert working(rig) == []


async def test_force_rollback_of_an_unknown_operation_returns_false(make_rig: RigFactory) -> None:
    """An id no record knows: False, as the seed returns, not an exception."""
    rig = await make_rig(config=QUIET)
    assert await rig.clock.run(rig.manager.force_rollback_operation("no-such-op")) is False
    assert await rig.manager.recovery.force_rollback_operation("no-such-op") is False


async def test_a_plain_dict_config_is_accepted_and_unknown_keys_refused(
    make_rig: RigFactory,
) -> None:
    """OrderManager(broker, config={...}) takes the seed's keys; a typo is ConfigurationError."""
    rig = await make_rig(config=QUIET)
    manager = OrderManager(
        rig.broker,
        clock=rig.clock,
        config={"status_check_max_attempts": 7, "status_check_circuit_breaker_threshold": 4},
    )
    assert manager.config.status_check_max_attempts == 7
    assert manager.get_circuit_breaker_status()["retry_config"]["max_attempts"] == 7
    with pytest.raises(errors.ConfigurationError, match="status_check_max_attempt"):
        OrderManager(rig.broker, clock=rig.clock, config={"status_check_max_attempt": 7})
    with pytest.raises(errors.ConfigurationError, match="status_check_initial_delay"):
        OrderManager(rig.broker, clock=rig.clock, config={"status_check_initial_delay": -1})


# -- 5. every recovery is counted -----------------------------------------------------------------
async def test_recovery_statistics_count_every_kind_of_recovery(make_rig: RigFactory) -> None:
    """An OCO sibling cancel, a rollback and start-up recovery all count in recovery_attempts
    and recovery_success_rate, per kind too, and the counts survive a restart."""
    rig = await make_rig(config=QUIET)
    op, _, _, _ = await seed_bracket(rig, account=ACCOUNT)
    assert await rig.manager.recovery.complete_operation(op)
    rig.exchange.set_price(MNQ, TARGET_PRICE + Decimal("0.25"))  # the OCO engine cancels the stop
    await rig.settle(2.0)
    other, _ = await _long_with_live_stop(rig)
    assert await rig.clock.run(rig.manager.force_rollback_operation(other.operation_id))
    rec = rig.manager.recovery
    left = await rec.start_operation(BRACKET, account_id=ACCOUNT)  # unfinished at the restart
    await rec.add_order_to_operation(left, MNQ, OrderSide.BUY, 1, "market")
    stats = rig.manager.get_recovery_statistics()
    kinds = stats["recovery_by_kind"]
    assert kinds["oco_sibling_cancel"] == {"attempts": 1, "succeeded": 1}
    assert kinds["rollback"] == {"attempts": 1, "succeeded": 1}
    assert stats["recovery_attempts"] == 2 and stats["recovery_success_rate"] == 1.0
    manager = await restart(rig)
    after = manager.get_recovery_statistics()
    assert after["recovery_by_kind"]["startup"]["attempts"] == 1
    assert after["recovery_by_kind"]["rollback"] == {"attempts": 1, "succeeded": 1}
    assert after["recovery_attempts"] == 3


@pytest.mark.parametrize(
    ("fault", "kind"),
    [("lost", "bracket_forward"), ("reject", "bracket_flatten")],
)
async def test_bracket_recoveries_are_counted(make_rig: RigFactory, fault: str, kind: str) -> None:
    """The stop's placement lost (sent again under its tag: a forward recovery) or rejected
    (the bracket goes flat: a flatten) counts one recovery of that kind."""
    rig = await make_rig(config=QUIET, plan=FaultPlan.none().script(f"place_order#2={fault}"))
    result = await rig.clock.run(
        rig.manager.place_bracket_order(
            MNQ, OrderSide.BUY, 1, None, STOP_PRICE, TARGET_PRICE, "market", native=False
        )
    )
    await rig.clock.run(rig.manager.wait_for_protection(result.operation_id))
    stats = rig.manager.get_recovery_statistics()
    assert stats["recovery_by_kind"][kind] == {"attempts": 1, "succeeded": 1}
    assert stats["recovery_attempts"] == 1 and stats["recovery_success_rate"] == 1.0
