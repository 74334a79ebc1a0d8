"""OrderTracker: monotonic, idempotent, order-independent merge of order snapshots and trades."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from orderguard.models import Order, OrderSide, OrderStatus, OrderType, Trade
from orderguard.orders.feed.tracking import OrderTracker

T0 = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
CID = "CON.F.US.MNQ.Z26"


def order(
    status: OrderStatus = OrderStatus.OPEN,
    *,
    order_id: int = 1,
    t: float = 0.0,
    fill: int = 0,
    size: int = 2,
    limit: str = "21000.00",
    filled_price: str | None = None,
) -> Order:
    return Order(
        id=order_id,
        account_id=1,
        contract_id=CID,
        creation_timestamp=T0,
        update_timestamp=T0 + timedelta(seconds=t),
        status=status,
        type=OrderType.LIMIT,
        side=OrderSide.BUY,
        size=size,
        limit_price=Decimal(limit),
        fill_volume=fill,
        filled_price=None if filled_price is None else Decimal(filled_price),
        custom_tag=f"og-test-{order_id}",
    )


def trade(trade_id: int, *, order_id: int = 1, size: int = 1, price: str = "21000.00") -> Trade:
    return Trade(
        id=trade_id,
        account_id=1,
        contract_id=CID,
        creation_timestamp=T0,
        price=Decimal(price),
        profit_and_loss=None,
        fees=Decimal("0.37"),
        side=OrderSide.BUY,
        size=size,
        voided=False,
        order_id=order_id,
    )


Event = Order | Trade

# A real lifecycle: placed, modified, partially filled, filled (each fill also as a trade).
FILL_SEQUENCE: list[Event] = [
    order(OrderStatus.OPEN, t=0),
    order(OrderStatus.OPEN, t=1, limit="21000.25"),
    order(OrderStatus.OPEN, t=2, limit="21000.25", fill=1, filled_price="21000.25"),
    trade(10, price="21000.25"),
    order(OrderStatus.FILLED, t=3, limit="21000.25", fill=2, filled_price="21000.25"),
    trade(11, price="21000.25"),
]
# A cancel that raced a fill: the fill arrives after the cancel confirmation (F4).
CANCEL_RACE_SEQUENCE: list[Event] = [
    order(OrderStatus.OPEN, t=0, size=1),
    order(OrderStatus.PENDING_CANCELLATION, t=1, size=1),
    order(OrderStatus.CANCELLED, t=2, size=1),
    order(OrderStatus.FILLED, t=3, size=1, fill=1, filled_price="21000.00"),
    trade(20, size=1),
]
# A refused cancel: PendingCancellation -> Open is forward in time, then a cancel succeeds.
REFUSED_CANCEL_SEQUENCE: list[Event] = [
    order(OrderStatus.OPEN, t=0),
    order(OrderStatus.PENDING_CANCELLATION, t=1),
    order(OrderStatus.OPEN, t=2),
    order(OrderStatus.CANCELLED, t=3),
]


def feed(tracker: OrderTracker, events: list[Event]) -> None:
    for event in events:
        if isinstance(event, Order):
            tracker.apply_order(event)
        else:
            tracker.apply_trade(event)


def final(events: list[Event]) -> Order | None:
    tracker = OrderTracker()
    feed(tracker, events)
    return tracker.get(1)


def shuffled_with_duplicates(events: list[Event]) -> st.SearchStrategy[list[Event]]:
    # Every event at least once (lost events are a reconciliation matter, not a merge one).
    return st.lists(st.sampled_from(events), max_size=12).flatmap(
        lambda extra: st.permutations([*events, *extra])
    )


def test_in_order_fill_sequence_ends_filled() -> None:
    """Applying a fill lifecycle in order yields a filled order with the modified price."""
    view = final(FILL_SEQUENCE)
    assert view is not None
    assert view.status is OrderStatus.FILLED
    assert view.fill_volume == 2
    assert view.limit_price == Decimal("21000.25")


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([FILL_SEQUENCE, CANCEL_RACE_SEQUENCE, REFUSED_CANCEL_SEQUENCE]).flatmap(
        lambda seq: st.tuples(st.just(seq), shuffled_with_duplicates(seq))
    )
)
def test_any_permutation_with_duplicates_converges(case: tuple[list[Event], list[Event]]) -> None:
    """Any permutation/duplication of a real event sequence converges to the in-order state."""
    truth, events = case
    assert final(events) == final(truth)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([FILL_SEQUENCE, CANCEL_RACE_SEQUENCE, REFUSED_CANCEL_SEQUENCE]).flatmap(
        shuffled_with_duplicates
    )
)
def test_state_never_moves_backwards(events: list[Event]) -> None:
    """Along any delivery order, fill volume never drops and a final order never works again."""
    tracker = OrderTracker()
    seen_terminal = False
    last_fill = 0
    for event in events:
        feed(tracker, [event])
        view = tracker.get(1)
        if view is None:
            continue
        assert view.fill_volume >= last_fill
        last_fill = view.fill_volume
        if seen_terminal:
            assert view.is_terminal
        seen_terminal = seen_terminal or view.is_terminal


def test_cancelled_then_filled_is_accepted() -> None:
    """Cancelled -> Filled is the one legal late transition (F4)."""
    view = final(CANCEL_RACE_SEQUENCE[:4])
    assert view is not None
    assert (view.status, view.fill_volume) == (OrderStatus.FILLED, 1)


def test_filled_then_cancelled_is_ignored() -> None:
    """A Cancelled snapshot after Filled is stale and changes nothing."""
    tracker = OrderTracker()
    tracker.apply_order(order(OrderStatus.FILLED, t=1, fill=2, filled_price="21000.00"))
    assert tracker.apply_order(order(OrderStatus.CANCELLED, t=2)) is None
    view = tracker.get(1)
    assert view is not None and view.status is OrderStatus.FILLED


def test_terminal_never_becomes_working() -> None:
    """A late Open snapshot does not reopen a cancelled order."""
    tracker = OrderTracker()
    tracker.apply_order(order(OrderStatus.CANCELLED, t=1))
    tracker.apply_order(order(OrderStatus.OPEN, t=5))
    view = tracker.get(1)
    assert view is not None and view.status is OrderStatus.CANCELLED


def test_higher_fill_volume_wins_over_terminal() -> None:
    """A late partial fill raises the fill volume of a cancelled order, which stays cancelled."""
    tracker = OrderTracker()
    tracker.apply_order(order(OrderStatus.CANCELLED, t=2))
    tracker.apply_order(order(OrderStatus.OPEN, t=1, fill=1, filled_price="21000.00"))
    view = tracker.get(1)
    assert view is not None
    assert (view.status, view.fill_volume) == (OrderStatus.CANCELLED, 1)


def test_duplicate_snapshot_reports_no_change() -> None:
    """Applying the same snapshot twice changes nothing the second time."""
    tracker = OrderTracker()
    assert tracker.apply_order(order()) is not None
    assert tracker.apply_order(order()) is None


def test_duplicate_trade_is_counted_once() -> None:
    """A repeated trade id adds nothing."""
    tracker = OrderTracker()
    assert tracker.apply_trade(trade(1))[0] is True
    assert tracker.apply_trade(trade(1))[0] is False
    assert tracker.traded_volume(1) == 1


def test_trade_before_order_counts_as_fill() -> None:
    """A trade seen before any order update still counts once the stale order snapshot arrives."""
    tracker = OrderTracker()
    is_new, change = tracker.apply_trade(trade(1, size=2))
    assert is_new and change is None
    assert tracker.filled_volume(1) == 2
    tracker.apply_order(order(OrderStatus.OPEN, t=0))  # stale: sent before the fill
    view = tracker.get(1)
    assert view is not None
    assert (view.status, view.fill_volume, view.filled_price) == (
        OrderStatus.FILLED,
        2,
        Decimal("21000.00"),
    )


def test_voided_trade_stops_counting() -> None:
    """A trade that becomes voided no longer counts toward fills; it never un-voids."""
    tracker = OrderTracker()
    tracker.apply_trade(trade(1))
    tracker.apply_trade(replace(trade(1), voided=True))
    assert tracker.apply_trade(trade(1)) == (False, None)
    assert tracker.traded_volume(1) == 0


def test_lookup_by_tag_is_per_account() -> None:
    """Tags index orders per account."""
    tracker = OrderTracker()
    tracker.apply_order(order())
    assert tracker.by_tag(1, "og-test-1") is not None
    assert tracker.by_tag(2, "og-test-1") is None


def test_rest_snapshot_merges_like_an_event() -> None:
    """A REST snapshot without update stamp does not regress a newer event state."""
    tracker = OrderTracker()
    tracker.apply_order(order(OrderStatus.PENDING_CANCELLATION, t=3))
    tracker.apply_order(replace(order(OrderStatus.OPEN), update_timestamp=None))
    view = tracker.get(1)
    assert view is not None and view.status is OrderStatus.PENDING_CANCELLATION
