"""Pure planning: native bracket exits found without a tag, and the reconciler's pass plan."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from orderguard.models import OrderStatus, OrderType
from orderguard.recovery.manager import RefStatus
from orderguard.recovery.operations import OperationState
from orderguard.recovery.reconcile import AccountSnapshot, LegAction, plan_pass, plan_recovery
from orderguard.testing.builders import BUY, SELL, T0, operation, order, position, ref


def _short_bracket() -> tuple[object, ...]:
    op = operation(
        "op1",
        ref("entry", "op1-entry", SELL, 2, order_id=7, filled=2, status=RefStatus.FILLED),
        ref("target0", "op1-target0", BUY, 2, status=RefStatus.INTENDED),
        state=OperationState.IN_PROGRESS,
    )
    entry = order(7, "op1-entry", SELL, 2)
    return op, entry


def test_a_filled_native_target_without_a_tag_is_found_as_the_leg() -> None:
    """The untagged child of our entry is the target leg: its fill closes what the op owns."""
    op, entry = _short_bracket()
    target = order(9, None, BUY, 2, kind=OrderType.LIMIT, parent=7)
    stop = order(8, None, BUY, 2, kind=OrderType.STOP, status=OrderStatus.CANCELLED, parent=7)
    snap = AccountSnapshot(1, (entry, stop, target), ())
    (plan,) = plan_recovery([op], {1: snap})  # type: ignore[list-item]
    finding = plan.finding("target0")
    assert finding is not None and finding.action is LegAction.RESOLVE
    assert finding.order is not None and finding.order.id == 9
    assert (plan.owned, plan.flattenable) == (0, 0)
    assert plan.children == ()  # nothing left working to cancel


def test_a_working_native_stop_is_a_child_to_cancel() -> None:
    """A working untagged stop no leg names stays a child for the rollback to cancel."""
    op, entry = _short_bracket()
    stop = order(8, None, BUY, 2, kind=OrderType.STOP, status=OrderStatus.OPEN, parent=7)
    snap = AccountSnapshot(1, (entry, stop), (position(-2),))
    (plan,) = plan_recovery([op], {1: snap})  # type: ignore[list-item]
    assert [c.id for c in plan.children] == [8]
    assert (plan.owned, plan.flattenable) == (-2, -2)


def test_a_quiet_manager_plans_no_reads() -> None:
    """Nothing in flight, no resync, no position check: nothing is read."""
    plan = plan_pass(
        now=T0, threshold=timedelta(seconds=5), last_read=None, operations=[],
        driven=frozenset(), leftover=frozenset(), unresolved=[], working=[],
        default_account=1, full_resync=False, positions_due=False,
    )  # fmt: skip
    assert plan.accounts == ()


def test_a_stale_rolling_back_operation_is_retried_and_a_driven_one_is_not() -> None:
    """rolling_back older than the threshold is retried, unless a saga or rollback drives it."""
    stuck = operation("op1", ref("entry", "t1", BUY, 1), state=OperationState.ROLLING_BACK)
    later = T0 + timedelta(seconds=6)
    args = {
        "now": later, "threshold": timedelta(seconds=5), "last_read": None, "operations": [stuck],
        "leftover": frozenset(), "unresolved": [], "working": [], "default_account": 1,
        "full_resync": False, "positions_due": False,
    }  # fmt: skip
    plan = plan_pass(driven=frozenset(), **args)  # type: ignore[arg-type]
    assert plan.retry_rollback == ("op1",) and plan.read_positions and plan.accounts == (1,)
    driven = plan_pass(driven=frozenset({"op1"}), **args)  # type: ignore[arg-type]
    assert driven.retry_rollback == () and driven.accounts == (1,)  # re-read, not acted on
    fresh = plan_pass(driven=frozenset(), **{**args, "now": T0 + timedelta(seconds=2)})  # type: ignore[arg-type]
    assert fresh.accounts == ()


def test_suspects_are_reread_at_most_once_per_threshold() -> None:
    """An unknown outcome 10 s old is read, but not again 2 s after the last read."""
    args = {
        "now": T0 + timedelta(seconds=10), "threshold": timedelta(seconds=5), "operations": [],
        "driven": frozenset(), "leftover": frozenset(), "unresolved": [(1, T0)], "working": [],
        "default_account": 1, "full_resync": False, "positions_due": False,
    }  # fmt: skip
    assert plan_pass(last_read=None, **args).accounts == (1,)  # type: ignore[arg-type]
    recent = T0 + timedelta(seconds=8)
    assert plan_pass(last_read=recent, **args).accounts == ()  # type: ignore[arg-type]


def test_a_leg_recorded_with_another_intents_order_is_rebound_by_its_tag() -> None:
    """stop1 recorded as stop0's order: the tag decides (absent), and it owns nothing."""
    op = operation(
        "op1",
        ref("entry", "op1-entry", BUY, 1, order_id=5, filled=1, status=RefStatus.FILLED),
        ref("stop0", "op1-stop0", SELL, 1, order_id=6),
        ref("stop1", "op1-stop1", SELL, 1, order_id=6, filled=1, status=RefStatus.FILLED),
        state=OperationState.IN_PROGRESS,
    )
    stop0 = order(6, "op1-stop0", SELL, 1, kind=OrderType.STOP)  # it filled
    snap = AccountSnapshot(1, (order(5, "op1-entry", BUY, 1), stop0), ())
    (plan,) = plan_recovery([op], {1: snap})
    rebound = plan.finding("stop1")
    assert rebound is not None and rebound.action is LegAction.REBIND and rebound.order is None
    assert plan.owned == 0  # entry +1, stop0 -1; stop1's borrowed fill is not counted


def test_an_unsettled_leg_waits_for_the_in_flight_grace() -> None:
    """A rollback with an unknown flatten is retried only once the grace has passed."""
    stuck = operation(
        "op1",
        ref("entry", "t1", BUY, 1, order_id=5, filled=1, status=RefStatus.FILLED),
        ref("flatten0", "t2", SELL, 1, status=RefStatus.UNKNOWN),
        state=OperationState.ROLLING_BACK,
    )
    args = {
        "threshold": timedelta(seconds=5), "last_read": None, "operations": [stuck],
        "driven": frozenset(), "leftover": frozenset(), "unresolved": [], "working": [],
        "default_account": 1, "full_resync": False, "positions_due": False,
        "grace": timedelta(seconds=10),
    }  # fmt: skip
    early = plan_pass(now=T0 + timedelta(seconds=6), **args)  # type: ignore[arg-type]
    assert early.retry_rollback == () and early.accounts == (1,)
    late = plan_pass(now=T0 + timedelta(seconds=11), **args)  # type: ignore[arg-type]
    assert late.retry_rollback == ("op1",)


_STATES = [s for s in OperationState if not s.is_terminal]


@settings(max_examples=150, deadline=None)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(_STATES),
            st.integers(min_value=0, max_value=30),  # seconds since the last update
            st.booleans(),  # driven by a saga or rollback
            st.booleans(),  # left over by start-up recovery
            st.sampled_from([RefStatus.CONFIRMED, RefStatus.UNKNOWN, RefStatus.FILLED]),
        ),
        max_size=12,
    ),
    full=st.booleans(),
)
def test_a_pass_never_acts_on_driven_fresh_or_in_flight_operations(
    ops: list[tuple[OperationState, int, bool, bool, str]], full: bool
) -> None:
    """Whatever the mix: one read per account at most, and actions only on operations that
    nobody drives, older than the threshold, and (with an unsettled leg) past the grace."""
    now = T0 + timedelta(seconds=60)
    built = []
    driven: set[str] = set()
    leftover: set[str] = set()
    for i, (state, age, is_driven, is_left, leg_status) in enumerate(ops):
        op = operation(f"op{i}", ref("entry", f"t{i}", BUY, 1, status=leg_status), state=state)
        op.updated_at = now - timedelta(seconds=age)
        built.append(op)
        if is_driven:
            driven.add(op.operation_id)
        if is_left:
            leftover.add(op.operation_id)
    plan = plan_pass(
        now=now, threshold=timedelta(seconds=5), last_read=None, operations=built,
        driven=frozenset(driven), leftover=frozenset(leftover), unresolved=[], working=[],
        default_account=1, full_resync=full, positions_due=False,
        grace=timedelta(seconds=10),
    )  # fmt: skip
    assert plan.accounts in ((), (1,))
    by_id = {op.operation_id: op for op in built}
    for op_id in (*plan.retry_rollback, *plan.resume):
        op = by_id[op_id]
        age = now - (op.updated_at or T0)
        assert op_id not in driven and age >= timedelta(seconds=5)
        unsettled = any(r.status == RefStatus.UNKNOWN for r in op.orders.values())
        assert not unsettled or age >= timedelta(seconds=10)
    assert all(by_id[i].state is OperationState.ROLLING_BACK for i in plan.retry_rollback)
    assert not set(plan.retry_rollback) & set(plan.resume)


def test_a_callers_bracket_untouched_past_the_protection_deadline_is_checked() -> None:
    """The seed's calls: the caller's bracket has its entry at the broker and has not been
    updated for longer than the protection deadline. The pass reads truth in the flattening
    lane to see whether it owns bare exposure (``unguarded``); not when a saga drives it, not
    while the caller is still at work, not without the deadline."""
    op = operation(
        "op1",
        ref("entry", "og-op1-entry-0", BUY, 2, order_id=5),
        state=OperationState.IN_PROGRESS,
    )
    args = {
        "now": T0 + timedelta(seconds=6), "threshold": timedelta(seconds=5), "last_read": None,
        "operations": [op], "leftover": frozenset(), "unresolved": [], "working": [],
        "default_account": 1, "full_resync": False, "positions_due": False,
        "driven": frozenset(), "protection_deadline": timedelta(seconds=5),
    }  # fmt: skip
    plan = plan_pass(**args)  # type: ignore[arg-type]
    assert plan.unguarded == ("op1",) and plan.read_positions
    assert plan_pass(**{**args, "driven": frozenset({"op1"})}).unguarded == ()  # type: ignore[arg-type]
    assert plan_pass(**{**args, "now": T0 + timedelta(seconds=3)}).unguarded == ()  # type: ignore[arg-type]
    assert plan_pass(**{**args, "protection_deadline": None}).unguarded == ()  # type: ignore[arg-type]
