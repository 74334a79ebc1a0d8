"""Start-up planning (pure): legs resolved by tag, flattening clamped by the account position."""

from __future__ import annotations

from datetime import timedelta

from orderguard.models import OrderStatus, OrderType
from orderguard.recovery.manager import RefStatus
from orderguard.recovery.operations import OperationState
from orderguard.recovery.reconcile import (
    AccountSnapshot,
    LegAction,
    plan_recovery,
    search_windows,
)
from orderguard.testing.builders import BUY, SELL, T0, operation, order, position, ref


def test_unknown_leg_is_resolved_by_its_tag() -> None:
    """An unknown entry found among all orders is resolved with that order."""
    op = operation(
        "op1", ref("entry", "op1-entry", BUY, 2, status=RefStatus.UNKNOWN),
        state=OperationState.IN_PROGRESS,
    )  # fmt: skip
    snap = AccountSnapshot(1, (order(5, "op1-entry", BUY, 2),), (position(2),))
    (plan,) = plan_recovery([op], {1: snap})
    finding = plan.finding("entry")
    assert finding is not None
    assert finding.action is LegAction.RESOLVE
    assert finding.order is not None and finding.order.id == 5
    assert (plan.owned, plan.flattenable, plan.pivot_passed) == (2, 2, True)


def test_intended_leg_absent_at_the_broker_owns_nothing() -> None:
    """A leg the broker never saw resolves to absence and owns nothing."""
    op = operation(
        "op1", ref("entry", "op1-entry", BUY, 2, status=RefStatus.INTENDED, filled=2),
        state=OperationState.IN_PROGRESS,
    )  # fmt: skip
    (plan,) = plan_recovery([op], {1: AccountSnapshot(1, (), ())})
    finding = plan.finding("entry")
    assert finding is not None and finding.order is None
    assert (plan.owned, plan.pivot_passed) == (0, False)


def test_flatten_is_clamped_by_what_the_account_holds() -> None:
    """Owning +3 while the account holds +1 allows flattening only +1."""
    op = operation(
        "op1", ref("entry", "op1-entry", BUY, 3, order_id=5, status=RefStatus.FILLED, filled=3)
    )
    snap = AccountSnapshot(1, (order(5, "op1-entry", BUY, 3),), (position(1),))
    (plan,) = plan_recovery([op], {1: snap})
    assert (plan.owned, plan.flattenable) == (3, 1)


def test_flatten_never_goes_against_the_account_position() -> None:
    """An operation owning a short while the account is long may flatten nothing."""
    op = operation("op1", ref("entry", "op1-entry", SELL, 1, order_id=5, filled=1))
    snap = AccountSnapshot(1, (order(5, "op1-entry", SELL, 1),), (position(2),))
    (plan,) = plan_recovery([op], {1: snap})
    assert plan.flattenable == 0


def test_account_position_is_allocated_oldest_operation_first() -> None:
    """Two operations owning +2 each share an account position of +3: 2 then 1."""
    first = operation("a", ref("entry", "a-entry", BUY, 2, order_id=1))
    second = operation("b", ref("entry", "b-entry", BUY, 2, order_id=2))
    snap = AccountSnapshot(
        1, (order(1, "a-entry", BUY, 2), order(2, "b-entry", BUY, 2)), (position(3),)
    )
    plans = plan_recovery([first, second], {1: snap})
    assert [p.flattenable for p in plans] == [2, 1]


def test_working_native_children_belong_to_their_operation() -> None:
    """Untagged bracket children of the entry are found even if the journal lacks them."""
    op = operation("op1", ref("entry", "op1-entry", BUY, 1, order_id=5))
    child = order(6, None, SELL, 1, kind=OrderType.STOP, status=OrderStatus.OPEN, parent=5)
    snap = AccountSnapshot(1, (order(5, "op1-entry", BUY, 1), child), (position(1),))
    (plan,) = plan_recovery([op], {1: snap})
    assert [c.id for c in plan.children] == [6]


def test_one_search_window_per_account_covers_the_oldest_operation() -> None:
    """The window starts at the oldest operation's start minus the margin."""
    old = operation("a", ref("entry", "a-entry", BUY, 1))
    new = operation("b", ref("entry", "b-entry", BUY, 1))
    new.started_at = T0 + timedelta(hours=1)
    windows = search_windows([new, old], margin=timedelta(minutes=5))
    assert windows == {1: T0 - timedelta(minutes=5)}


def test_legs_sent_while_the_journal_was_down_are_known_by_their_tag() -> None:
    """A stop and a flatten sent while the journal could not record them (then a crash): no
    leg holds their tags, yet the tags name the operation. The working stop is its exit (kept
    while it protects, cancelled after — left alone it over-covered the position after the
    flatten), and the flatten's fill closed part of what it owns."""
    op = operation(
        "a1b2",
        ref("entry", "og-a1b2-entry-0", BUY, 2, order_id=5, status=RefStatus.FILLED, filled=2),
        state=OperationState.IN_PROGRESS,
    )
    stray_stop = order(7, "og-a1b2-stop1-0", SELL, 2, kind=OrderType.STOP, status=OrderStatus.OPEN)
    stray_flatten = order(8, "og-a1b2-flatten0-0", SELL, 1)
    others = order(9, "og-c3d4-stop0-0", SELL, 1, kind=OrderType.STOP, status=OrderStatus.OPEN)
    snap = AccountSnapshot(
        1,
        (order(5, "og-a1b2-entry-0", BUY, 2), stray_stop, stray_flatten, others),
        (position(1),),
    )
    (plan,) = plan_recovery([op], {1: snap})
    assert [o.id for o in plan.children] == [7]
    assert (plan.owned, plan.flattenable) == (1, 1)
    assert plan.adoptable == ()  # not journaled as a native child: its tag says which leg
