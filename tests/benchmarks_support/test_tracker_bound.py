"""OrderTracker keeps finished orders for a bounded count, never dropping pinned ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orderguard.models import Order, OrderSide, OrderStatus, OrderType, Trade
from orderguard.orders.feed.tracking import OrderTracker

T0 = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
CID = "CON.F.US.MNQ.Z26"


def order(order_id: int, status: OrderStatus, *, t: float = 0.0, fill: int = 0) -> Order:
    return Order(
        id=order_id, account_id=1, contract_id=CID, creation_timestamp=T0,
        update_timestamp=T0 + timedelta(seconds=t), status=status, type=OrderType.LIMIT,
        side=OrderSide.BUY, size=1, limit_price=Decimal("21000.00"), fill_volume=fill,
        custom_tag=f"tag-{order_id}",
    )  # fmt: skip


def finish(tracker: OrderTracker, order_id: int) -> None:
    tracker.apply_order(order(order_id, OrderStatus.OPEN))
    tracker.apply_order(order(order_id, OrderStatus.CANCELLED, t=1))


def test_finished_orders_stay_within_the_bound() -> None:
    """2,000 finished orders leave at most the bound plus one pruning batch."""
    tracker = OrderTracker(max_finished=100)
    for i in range(1, 2001):
        finish(tracker, i)
    assert 100 <= len(tracker) <= 110
    assert tracker.finished_count == len(tracker)
    assert tracker.get(2000) is not None and tracker.get(1) is None
    assert tracker.by_tag(1, "tag-1") is None and tracker.by_tag(1, "tag-2000") is not None


def test_working_orders_are_never_dropped() -> None:
    """Only finished orders count against the bound; working ones all stay."""
    tracker = OrderTracker(max_finished=10)
    for i in range(1, 501):
        tracker.apply_order(order(i, OrderStatus.OPEN))
    for i in range(1001, 1501):
        finish(tracker, i)
    assert all(tracker.get(i) is not None for i in range(1, 501))
    assert tracker.finished_count <= 11


def test_pinned_orders_survive_pruning() -> None:
    """An order the owner says is in use is kept however old its finish."""
    pinned = {1, 2}
    tracker = OrderTracker(max_finished=5, pinned=lambda: pinned)
    for i in range(1, 200):
        finish(tracker, i)
    assert tracker.get(1) is not None and tracker.get(2) is not None
    pinned.clear()
    for i in range(200, 210):
        finish(tracker, i)
    assert tracker.get(1) is None and tracker.get(2) is None


def test_late_working_snapshot_of_a_dropped_order_is_ignored() -> None:
    """A dropped order's state never goes backwards: a stale Open snapshot is not news."""
    tracker = OrderTracker(max_finished=1)
    for i in range(1, 10):
        finish(tracker, i)
    assert tracker.get(1) is None
    assert tracker.apply_order(order(1, OrderStatus.OPEN, t=0.5)) is None
    assert tracker.get(1) is None


def test_late_fill_of_a_dropped_order_is_taken() -> None:
    """Cancelled -> Filled stays legal after the drop: the fill is tracked afresh."""
    tracker = OrderTracker(max_finished=1)
    for i in range(1, 10):
        finish(tracker, i)
    change = tracker.apply_order(order(1, OrderStatus.FILLED, t=2, fill=1))
    assert change is not None and change.current.status is OrderStatus.FILLED
    assert tracker.get(1) is not None


def test_late_duplicate_trade_of_a_dropped_order_is_not_new() -> None:
    """A trade replayed after the drop neither counts as new nor recreates a record."""
    tracker = OrderTracker(max_finished=1)
    tracker.apply_order(order(1, OrderStatus.FILLED, fill=1))
    for i in range(2, 10):
        finish(tracker, i)
    trade = Trade(7, 1, CID, T0, Decimal("21000.00"), None, Decimal(0), OrderSide.BUY, 1, False, 1)
    assert tracker.apply_trade(trade) == (False, None)
    assert tracker.traded_volume(1) == 0 and tracker.get(1) is None


def test_no_bound_keeps_everything() -> None:
    """max_finished=None is the unbounded tracker."""
    tracker = OrderTracker(max_finished=None)
    for i in range(1, 301):
        finish(tracker, i)
    assert len(tracker) == 300


def test_negative_bound_is_refused() -> None:
    """A negative bound is a typed error at construction."""
    with pytest.raises(ValueError, match="max_finished"):
        OrderTracker(max_finished=-1)


snapshots = st.lists(
    st.tuples(
        st.integers(1, 12),
        st.sampled_from([OrderStatus.OPEN, OrderStatus.CANCELLED, OrderStatus.FILLED]),
        st.integers(0, 5),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(snapshots, st.integers(0, 4))
def test_bounding_never_changes_what_is_kept(
    events: list[tuple[int, OrderStatus, int]], bound: int
) -> None:
    """Kept orders read exactly as without a bound; dropped ones never come back working."""
    pinned = {1, 2}
    bounded = OrderTracker(max_finished=bound, pinned=lambda: pinned)
    full = OrderTracker(max_finished=None)
    ever_dropped: set[int] = set()
    for order_id, status, t in events:
        snap = order(order_id, status, t=t, fill=1 if status is OrderStatus.FILLED else 0)
        full.apply_order(snap)
        bounded.apply_order(snap)
        ever_dropped.update(i for i in range(1, 13) if full.get(i) and not bounded.get(i))
        assert bounded.finished_count <= bound + max(1, bound // 10) + len(pinned)
        for i in pinned:
            assert (bounded.get(i) is None) == (full.get(i) is None)
    for i in range(1, 13):
        kept = bounded.get(i)
        if i not in ever_dropped:
            assert kept == full.get(i)
        elif kept is not None:
            assert kept.is_terminal
