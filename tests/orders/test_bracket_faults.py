"""Brackets through the failure catalogue (F2-F5, F11-F13) and the incumbent's known failures.

Every outcome is asserted from the exchange's truth: positions and working orders.
"""

from __future__ import annotations

import dataclasses

from orderguard.broker.base import BrokerEvent, EventHandler, OrderEvent, Outcome, Subscription
from orderguard.broker.faults import EventFaults, FaultPlan
from orderguard.broker.sim import LatencyModel, SimBroker
from orderguard.errors import ConnectionFailedError
from orderguard.models import Order, OrderRequest, OrderType
from orderguard.orders.bracket.values import BracketOutcome, BracketSettings

from .bracket_helpers import BUY, MNQ, D, Rig, make_rig

LAT = LatencyModel(request=0.02, response=0.02, event=0.02)


async def market(rig: Rig, size: int = 1) -> object:
    return await rig.run(
        rig.manager.place_bracket_order(
            MNQ, BUY, size, None, D("20990"), D("21010"), entry_type="market"
        )
    )


def tags(rig: Rig, leg: str) -> list[str]:
    return [o.custom_tag for o in rig.ex.orders(1) if o.custom_tag and f"-{leg}" in o.custom_tag]


# -- F2 partial fills -----------------------------------------------------------------------------
async def test_f2_first_partial_fill_is_protected_at_once() -> None:
    """F2: with one contract of liquidity per run, the first contract is protected at once."""
    rig = await make_rig(liquidity=1)
    r = await market(rig, 3)
    assert r.outcome is BracketOutcome.PROTECTED and r.filled_size == 1
    assert rig.position() == 1 and [s.size for s in rig.stops()] == [1]
    await rig.manager.cleanup()


async def test_f2_legs_resize_toward_the_filled_quantity() -> None:
    """F2: as the entry keeps filling, stop and target grow to the filled quantity."""
    rig = await make_rig(liquidity=1)
    r = await market(rig, 3)
    for _ in range(2):
        rig.price("21000")  # each matching run fills one more contract
        await rig.run(rig.manager.wait_for_protection(r.operation_id))
        await rig.settle(0.1)
    assert rig.position() == 3
    assert [s.size for s in rig.stops()] == [3]
    assert [t.size for t in rig.working(OrderType.LIMIT)] == [3]
    await rig.manager.cleanup()


async def test_f2_entry_timeout_keeps_protecting_the_filled_part() -> None:
    """F2: the timeout cancels the unfilled rest; protection equals the re-read fill."""
    rig = await make_rig(liquidity=1)
    r = await rig.manager.place_bracket_order(
        MNQ, BUY, 3, D("21001"), D("20990"), D("21010"), entry_timeout=2.0
    )
    await rig.settle(3.0)
    assert rig.position() == 1
    assert [o.type for o in rig.working() if o.side is BUY] == []  # entry rest cancelled
    assert [s.size for s in rig.stops()] == [1]
    assert rig.manager.get_bracket_status(r.operation_id).outcome is BracketOutcome.PROTECTED
    await rig.manager.cleanup()


# -- F3 stop/target rejected after the fill -------------------------------------------------------
async def test_f3_rejected_stop_flattens_and_reports_flat() -> None:
    """F3: a definitively rejected stop: cancel the target, flatten exactly the fill, FLAT + why."""
    rig = await make_rig(plan=FaultPlan.none().script("place_order#2=reject"))
    r = await market(rig, 2)
    assert r.outcome is BracketOutcome.FLAT and "stop could not be placed" in (r.reason or "")
    assert rig.position() == 0 and rig.working() == []
    assert rig.manager.recovery.get_operation_status(r.operation_id)["state"] == "rolled_back"
    await rig.manager.cleanup()


async def test_f3_leg_that_never_left_is_resent_with_the_same_tag() -> None:
    """F3: a stop refused before sending is retried with the SAME tag and ends protected."""
    rig = await make_rig(plan=FaultPlan.none().script("place_order#2x3=fail_before_send"))
    r = await market(rig)
    assert r.outcome is BracketOutcome.PROTECTED
    assert len(rig.stops()) == 1 and rig.stops()[0].custom_tag.endswith("-stop0-0")
    await rig.manager.cleanup()


class _StopsNeverLeave:
    """Wraps a SimBroker: every stop placement is refused before it leaves (retryable)."""

    def __init__(self, inner: SimBroker) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    async def place_order(self, request: OrderRequest) -> Outcome:
        if request.type is OrderType.STOP:
            raise ConnectionFailedError("injected: connection refused")
        return await self._inner.place_order(request)


async def test_f3_unconfirmable_protection_flattens_before_the_deadline() -> None:
    """F3: a stop that can never be placed: flattened, the episode ends inside the deadline."""
    rig = await make_rig(wrap=_StopsNeverLeave, settings=BracketSettings(protection_deadline=4.0))  # type: ignore[arg-type]
    r = await market(rig)
    done = await rig.run(rig.manager.wait_for_completion(r.operation_id))
    assert done.outcome is BracketOutcome.FLAT and rig.position() == 0 and rig.working() == []
    assert "stop" in (done.reason or "") or "deadline" in (done.reason or "")
    assert 0 < rig.manager.get_recovery_statistics()["max_unprotected_seconds"] < 4.0
    await rig.manager.cleanup()


async def test_f3_a_lost_stop_is_sent_again_under_its_tag_at_once() -> None:
    """F1/F3: a lost stop send: the first look-up misses its tag, so the stop goes out again
    under the same tag (a duplicate would be refused): protected well inside the deadline,
    one stop, never flattened."""
    plan = FaultPlan.none().script("place_order#2=lost")
    rig = await make_rig(plan=plan, settings=BracketSettings(protection_deadline=4.0))
    r = await market(rig)
    done = await rig.run(rig.manager.wait_for_protection(r.operation_id))
    assert done.outcome is BracketOutcome.PROTECTED
    assert rig.position() == 1 and [s.size for s in rig.stops()] == [1]
    assert len(tags(rig, "stop")) == 1
    assert rig.manager.get_recovery_statistics()["max_unprotected_seconds"] < 1.0
    await rig.manager.cleanup()


# -- F4 / F5 OCO races ----------------------------------------------------------------------------
async def test_f4_leg_fills_while_sibling_cancel_in_flight() -> None:
    """F4: the stop fills while its cancel travels; Cancelled->Filled accepted, flat at the end."""
    rig = await make_rig(latency=LAT)
    r = await market(rig)
    rig.price("21010")  # target fills at the exchange
    await rig.settle(0.03)  # the fill event has arrived; the stop's cancel is on its way
    rig.price("20990")  # the stop triggers before the cancel lands
    done = await rig.run(rig.manager.wait_for_completion(r.operation_id))
    assert done.finished
    assert rig.position() == 0 and rig.working() == []
    await rig.manager.cleanup()


async def test_f5_both_legs_filled_excess_flattened_and_incident_recorded() -> None:
    """F5: both exits filled: the excess is bought back and an incident is recorded."""
    rig = await make_rig(latency=LAT)
    r = await market(rig, 2)
    rig.price("21010")
    await rig.settle(0.03)
    rig.price("20990")
    await rig.run(rig.manager.wait_for_completion(r.operation_id))
    assert rig.position() == 0 and rig.working() == []
    flattens = [o for o in rig.ex.orders(1) if o.custom_tag and "-flatten" in o.custom_tag]
    assert [(o.side, o.size) for o in flattens] == [(BUY, 2)]
    assert rig.manager.get_recovery_statistics()["oco_incidents"] == 1
    assert any("both exits filled" in e for e in rig.manager.recovery.get_operation_status(
        r.operation_id)["errors"])  # fmt: skip
    await rig.manager.cleanup()


# -- F11 cancel of a filled order -----------------------------------------------------------------
async def test_f11_timeout_cancel_that_loses_to_a_fill_goes_forward() -> None:
    """F11: the entry filled just before its timeout cancel: the bracket protects, no error."""
    rig = await make_rig(latency=LAT)
    r = await rig.run(
        rig.manager.place_bracket_order(
            MNQ, BUY, 1, D("20995"), D("20985"), D("21005"), entry_timeout=1.0
        )
    )
    await rig.settle(0.985)  # acknowledged at 0.04 s, so the timeout is due at 1.04 s
    rig.price("20994")  # fills at 1.025 s; the cancel leaves at 1.04 s, before the fill event
    assert rig.position() == 1
    done = await rig.run(rig.manager.wait_for_protection(r.operation_id))
    assert done.outcome is BracketOutcome.PROTECTED
    assert rig.position() == 1 and [s.size for s in rig.stops()] == [1]
    await rig.manager.cleanup()


# -- F12 callback re-entry ---------------------------------------------------------------------
async def test_f12_callback_reentering_the_manager_does_not_deadlock() -> None:
    """F12: an order_filled callback that places another bracket completes without deadlock."""
    rig = await make_rig()
    nested: list[object] = []

    async def on_filled(order: Order) -> None:
        if order.type is OrderType.MARKET and not nested:
            nested.append(await rig.manager.place_bracket_order(
                MNQ, BUY, 1, D("20990"), D("20980"), D("21000.25")))  # fmt: skip

    rig.manager.add_callback("order_filled", on_filled)
    await market(rig)
    await rig.settle(0.1)
    assert nested and nested[0].outcome is BracketOutcome.PENDING_ENTRY
    await rig.manager.cleanup()


# -- F13 close only what the bracket owns ---------------------------------------------------------
async def test_f13_closing_one_bracket_leaves_the_other_protected() -> None:
    """F13: close_bracket flattens only its own quantity; the other bracket stays protected."""
    rig = await make_rig()
    first = await market(rig, 1)
    second = await market(rig, 2)
    assert rig.position() == 3
    await rig.manager.close_bracket(first.operation_id)
    done = await rig.run(rig.manager.wait_for_completion(first.operation_id))
    assert done.outcome is BracketOutcome.FLAT and rig.position() == 2
    assert [s.size for s in rig.stops()] == [2]
    status = rig.manager.get_bracket_status(second.operation_id)
    assert status is not None and status.outcome is BracketOutcome.PROTECTED
    await rig.manager.cleanup()


# -- the incumbent's known failures ---------------------------------------------------------------
async def test_regression_filled_entry_with_lost_answer_is_found_not_missing() -> None:
    """A market entry whose answer is lost is found filled by its tag and protected."""
    rig = await make_rig(plan=FaultPlan.none().script("place_order#1=ambiguous"))
    r = await market(rig)
    assert r.outcome is BracketOutcome.PROTECTED and rig.position() == 1
    assert len(rig.stops()) == 1
    await rig.manager.cleanup()


async def test_regression_polling_mode_protects_without_any_event() -> None:
    """Every event dropped: REST re-reads still find the fill and protect it."""
    plan = dataclasses.replace(FaultPlan.none(), events=EventFaults(drop=1.0))
    rig = await make_rig(plan=plan)
    r = await rig.manager.place_bracket_order(MNQ, BUY, 1, D("20995"), D("20985"), D("21005"))
    rig.price("20994")
    done = await rig.run(rig.manager.wait_for_protection(r.operation_id))
    assert done.outcome is BracketOutcome.PROTECTED
    assert rig.position() == 1 and [s.size for s in rig.stops()] == [1]
    await rig.manager.cleanup()


class _NoOrderEvents:
    """Wraps a SimBroker; drops every OrderEvent (trades and positions still arrive)."""

    def __init__(self, inner: SimBroker) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def subscribe(self, handler: EventHandler) -> Subscription:
        def only_trades(event: BrokerEvent) -> None:
            if not isinstance(event, OrderEvent):
                handler(event)

        return self._inner.subscribe(only_trades)


async def test_regression_trade_event_without_order_event_detects_the_fill() -> None:
    """A fill known only from its trade event is protected at once, before any poll."""
    rig = await make_rig(wrap=_NoOrderEvents)  # type: ignore[arg-type]
    r = await rig.manager.place_bracket_order(MNQ, BUY, 1, D("20995"), D("20985"), D("21005"))
    rig.price("20994")
    await rig.settle(0.0)
    assert rig.position() == 1 and [s.size for s in rig.stops()] == [1]
    assert rig.clock.monotonic() == 0.0  # no poll was needed
    assert rig.manager.get_bracket_status(r.operation_id).outcome is BracketOutcome.PROTECTED
    await rig.manager.cleanup()


async def test_regression_ambiguous_stop_is_never_placed_twice() -> None:
    """An ambiguous stop placement is resolved by tag: exactly one stop exists."""
    rig = await make_rig(plan=FaultPlan.none().script("place_order#2=ambiguous"))
    r = await market(rig)
    assert r.outcome is BracketOutcome.PROTECTED
    assert len(tags(rig, "stop")) == 1 and len(rig.stops()) == 1
    await rig.manager.cleanup()


async def test_regression_no_listener_leak_per_bracket() -> None:
    """After brackets finish, the manager's event listeners are back to the baseline."""
    rig = await make_rig()
    baseline = len(rig.manager.feed._listeners)
    ids = [(await market(rig)).operation_id for _ in range(5)]
    assert len(rig.manager.feed._listeners) == baseline + 1  # one engine listener, not five
    rig.price("21010")
    for op_id in ids:
        await rig.run(rig.manager.wait_for_completion(op_id))
    assert len(rig.manager.feed._listeners) == baseline
    assert rig.manager.brackets.active() == []
    await rig.manager.cleanup()
