"""I1–I5 detect hand-built violations and pass clean states; I6 measures episodes."""

from __future__ import annotations

from orderguard.chaos.invariants import (
    BrokerTruth,
    ExposureTracker,
    WireRecord,
    check_all,
    check_i1,
    check_i2,
    check_i3,
    check_i4,
    check_i5,
    coverage,
    owned_positions,
)
from orderguard.models import OrderStatus, OrderType
from orderguard.recovery.manager import RefStatus
from orderguard.recovery.operations import OperationState
from orderguard.testing.builders import BUY, MNQ, SELL, operation, order, position, ref

WORKING = OrderStatus.OPEN


def protected_long() -> tuple[BrokerTruth, list]:  # type: ignore[type-arg]
    """A long 2 owned by one bracket, covered by a working sell stop of 2."""
    truth = BrokerTruth(
        (
            order(1, "op1-entry", BUY, 2),
            order(2, "op1-stop", SELL, 2, kind=OrderType.STOP, status=WORKING),
        ),
        (position(2),),
    )
    op = operation(
        "op1",
        ref("entry", "op1-entry", BUY, 2, status=RefStatus.FILLED, order_id=1, filled=2),
        ref("stop", "op1-stop", SELL, 2, order_id=2),
    )
    return truth, [op]


def test_clean_protected_position_passes_every_check() -> None:
    """A fully protected, fully owned position breaks nothing."""
    truth, ops = protected_long()
    assert check_all(truth, ops, now=100.0, window=5.0, strict_ownership=True) == []


def test_owned_positions_come_from_broker_fills_by_tag() -> None:
    """Ownership sums side x fill volume of the orders carrying the operation's tags."""
    truth, ops = protected_long()
    assert owned_positions(ops, truth) == {(1, MNQ): 2}


def test_i1_flags_an_unprotected_position_after_the_window() -> None:
    """A position with no working stop, older than the window, is an I1 violation."""
    truth = BrokerTruth((order(1, "op1-entry", BUY, 2),), (position(2),))
    ops = [operation("op1", ref("entry", "op1-entry", BUY, 2, order_id=1))]
    found = check_i1(truth, ops, now=100.0, window=5.0, mismatch_since={(1, MNQ): 90.0})
    assert [v.invariant for v in found] == ["I1"]


def test_i1_allows_a_mismatch_inside_the_protection_window() -> None:
    """Right after a fill the position may be bare for less than the window."""
    truth = BrokerTruth((order(1, "op1-entry", BUY, 2),), (position(2),))
    ops = [operation("op1", ref("entry", "op1-entry", BUY, 2, order_id=1))]
    assert check_i1(truth, ops, now=100.0, window=5.0, mismatch_since={(1, MNQ): 98.0}) == []


def test_i1_flags_over_coverage() -> None:
    """Stops larger than the position would flip it: coverage must be exact."""
    truth = BrokerTruth(
        (
            order(1, "op1-entry", BUY, 2),
            order(2, "op1-stop", SELL, 3, kind=OrderType.STOP, status=WORKING),
        ),
        (position(2),),
    )
    ops = [operation("op1", ref("entry", "op1-entry", BUY, 2, order_id=1))]
    assert [v.invariant for v in check_i1(truth, ops, now=9.0, window=1.0)] == ["I1"]


def test_i1_strict_ownership_flags_exposure_nobody_owns() -> None:
    """With one trader on the account, net position must equal what operations own."""
    truth, ops = protected_long()
    extra = BrokerTruth((*truth.orders, order(9, "stray", BUY, 1)), (position(3),))
    details = [v.detail for v in check_i1(extra, ops, now=9.0, window=1.0, strict_ownership=True)]
    assert any("operations own +2" in d for d in details)


def test_i2_flags_a_stop_left_on_a_flat_contract() -> None:
    """A protective leg still working after the position went flat is an orphan exit."""
    truth = BrokerTruth(
        (
            order(1, "op1-entry", BUY, 2),
            order(2, "op1-stop", SELL, 2, kind=OrderType.STOP, status=WORKING),
            order(3, "op1-flatten0", SELL, 2),
        ),
        (),
    )
    ops = [operation("op1", ref("stop", "op1-stop", SELL, 2, order_id=2))]
    assert [v.invariant for v in check_i2(truth, ops)] == ["I2"]


def test_i2_flags_a_native_bracket_child_on_a_flat_contract() -> None:
    """Activated native children are exits even when the journal does not list them."""
    truth = BrokerTruth(
        (order(7, None, SELL, 1, kind=OrderType.LIMIT, status=WORKING, parent=6),), ()
    )
    assert [v.invariant for v in check_i2(truth, [])] == ["I2"]


def test_i3_flags_two_orders_with_one_tag() -> None:
    """A customTag is unique per account; two orders carrying it is a duplicate."""
    truth = BrokerTruth((order(1, "t", BUY, 1), order(2, "t", BUY, 1)), (position(2),))
    assert [v.invariant for v in check_i3(truth, [])] == ["I3"]


def test_i3_flags_a_leg_recorded_with_an_order_of_another_tag() -> None:
    """The journal naming an order that carries another tag means the intent went out twice."""
    truth = BrokerTruth((order(1, "op1-entry", BUY, 1), order(2, "resent", BUY, 1)), ())
    ops = [operation("op1", ref("entry", "op1-entry", BUY, 1, order_id=2))]
    assert [v.invariant for v in check_i3(truth, ops)] == ["I3"]


def test_i3_flags_one_intent_placed_under_two_tags() -> None:
    """The wire log shows one caller intent leaving with two different tags."""
    wire = [WireRecord("step3", "a"), WireRecord("step3", "a"), WireRecord("step3", "b")]
    assert [v.invariant for v in check_i3(BrokerTruth((), ()), [], wire)] == ["I3"]


def test_i4_flags_a_working_sibling_of_a_filled_oco_leg() -> None:
    """Once the target filled, the stop must not be working."""
    truth = BrokerTruth(
        (
            order(2, "op1-stop", SELL, 1, kind=OrderType.STOP, status=WORKING),
            order(3, "op1-target", SELL, 1, kind=OrderType.LIMIT),
        ),
        (),
    )
    op = operation(
        "op1",
        ref("stop", "op1-stop", SELL, 1, order_id=2),
        ref("target", "op1-target", SELL, 1, order_id=3, status=RefStatus.FILLED, filled=1),
        oco=(("stop", "target"),),
    )
    assert [v.invariant for v in check_i4(truth, [op])] == ["I4"]


def test_i4_accepts_a_double_fill_that_was_flattened() -> None:
    """Both OCO legs filled is allowed only with the excess flattened."""
    truth = BrokerTruth(
        (
            order(2, "op1-stop", SELL, 1, kind=OrderType.STOP),
            order(3, "op1-target", SELL, 1, kind=OrderType.LIMIT),
            order(4, "op1-flatten0", BUY, 1),
        ),
        (),
    )
    legs = (
        ref("stop", "op1-stop", SELL, 1, order_id=2, status=RefStatus.FILLED, filled=1),
        ref("target", "op1-target", SELL, 1, order_id=3, status=RefStatus.FILLED, filled=1),
    )
    bare = operation("op1", *legs, oco=(("stop", "target"),))
    flattened = operation(
        "op1",
        *legs,
        ref("flatten0", "op1-flatten0", BUY, 1, order_id=4, status=RefStatus.FILLED, filled=1),
        oco=(("stop", "target"),),
    )
    assert [v.invariant for v in check_i4(truth, [bare])] == ["I4"]
    assert check_i4(truth, [flattened]) == []


def test_i5_flags_a_finished_operation_with_an_unknown_leg() -> None:
    """A finished operation may not leave a leg's outcome unknown."""
    op = operation(
        "op1", ref("entry", "op1-entry", BUY, 1, status=RefStatus.UNKNOWN),
        state=OperationState.FAILED,
    )  # fmt: skip
    assert [v.invariant for v in check_i5(BrokerTruth((), ()), [op])] == ["I5"]


def test_i5_flags_a_cancel_the_broker_contradicts() -> None:
    """Journal says cancelled, the broker says filled: the record is false."""
    truth = BrokerTruth((order(2, "op1-stop", SELL, 1, kind=OrderType.STOP),), ())
    op = operation(
        "op1", ref("stop", "op1-stop", SELL, 1, order_id=2, status=RefStatus.CANCELLED),
        state=OperationState.ROLLED_BACK,
    )  # fmt: skip
    assert [v.invariant for v in check_i5(truth, [op])] == ["I5"]


def test_i5_accepts_a_stale_but_true_record() -> None:
    """A completed bracket whose stop filled later is stale, not false."""
    truth = BrokerTruth((order(2, "op1-stop", SELL, 1, kind=OrderType.STOP),), ())
    op = operation("op1", ref("stop", "op1-stop", SELL, 1, order_id=2))
    assert check_i5(truth, [op]) == []


def test_exposure_tracker_measures_episodes() -> None:
    """An unprotected stretch is one episode; total and max come from all episodes."""
    naked = coverage([position(2)], [])
    covered = coverage([position(2)], [order(2, "s", SELL, 2, kind=OrderType.STOP, status=WORKING)])
    tracker = ExposureTracker()
    tracker.observe(10.0, naked)
    tracker.observe(10.5, covered)
    tracker.observe(20.0, naked)
    assert tracker.unprotected_since() == {(1, MNQ): 20.0}
    assert tracker.total_seconds(now=22.0) == 2.5
    assert tracker.max_seconds(now=22.0) == 2.0
