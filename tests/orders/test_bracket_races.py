"""Races the bracket state machine found (issue 4), each pinned by a deterministic scenario.

Asserted from the exchange's truth: positions, working orders, fills.
"""

from __future__ import annotations

from orderguard.broker.base import BrokerEvent, EventHandler, OrderEvent, Subscription
from orderguard.broker.sim import SimBroker
from orderguard.models import OrderStatus, OrderType
from orderguard.orders.bracket.values import BracketOutcome, BracketSettings

from .bracket_helpers import BUY, MNQ, D, Rig, make_rig


class _NoChildEvents:
    """Wraps a SimBroker; drops the order events of native bracket children (late or lost)."""

    def __init__(self, inner: SimBroker) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def subscribe(self, handler: EventHandler) -> Subscription:
        def without_children(event: BrokerEvent) -> None:
            if isinstance(event, OrderEvent) and event.order.parent_order_id is not None:
                return
            handler(event)

        return self._inner.subscribe(without_children)


def _covering_stops(rig: Rig) -> int:
    return sum(o.size - o.fill_volume for o in rig.stops())


async def test_native_children_unseen_are_found_not_doubled() -> None:
    """Native mode, the children's events never arrive: the saga finds them over REST and
    places no client-side leg beside them (it did, and the stops covered twice the position)."""
    rig = await make_rig(native=True, wrap=_NoChildEvents)  # type: ignore[arg-type]
    r = await rig.run(
        rig.manager.place_bracket_order(
            MNQ, BUY, 2, None, D("20990"), D("21010"), entry_type="market"
        )
    )
    await rig.settle(5.0)
    assert r.native and rig.position() == 2
    assert _covering_stops(rig) == 2
    assert all(o.parent_order_id is not None for o in rig.working())  # only the children
    assert not [o for o in rig.ex.orders(1) if o.custom_tag and "-stop" in o.custom_tag]
    status = rig.manager.get_bracket_status(r.operation_id)
    assert status is not None and status.outcome is BracketOutcome.PROTECTED
    await rig.manager.cleanup()


async def test_flatten_in_a_thin_book_never_overcloses() -> None:
    """A flatten that fills one contract per matching run: its unfilled rest is cancelled and
    sent again, never doubled while it works (a second flatten beside it sold the same
    contracts twice, and the excess was bought back as an incident)."""
    rig = await make_rig(liquidity=1, settings=BracketSettings(protection_deadline=10.0))
    r = await rig.run(
        rig.manager.place_bracket_order(
            MNQ, BUY, 5, None, D("20990"), D("21010"), entry_type="market"
        )
    )
    for _ in range(4):
        rig.price("21000")  # each matching run fills one more contract of the entry
        await rig.settle(1.0)
    assert rig.position() == 5 and _covering_stops(rig) == 5
    assert await rig.manager.close_bracket(r.operation_id)
    done = await rig.run(rig.manager.wait_for_completion(r.operation_id), seconds=60)
    assert done.finished and done.outcome is BracketOutcome.FLAT
    assert rig.position() == 0 and rig.working() == []
    flattened = [o for o in rig.ex.orders(1) if o.custom_tag and "-flatten" in o.custom_tag]
    assert sum(o.fill_volume for o in flattened) == 5  # exactly what it owned, no more
    # One contract per placement in this book: more placements than max_attempts, none of
    # them a failure (each took a contract).
    assert len(flattened) == 5
    assert rig.manager.get_recovery_statistics()["oco_incidents"] == 0
    await rig.manager.cleanup()


async def test_stop_keeps_working_until_the_flatten_has_filled() -> None:
    """Going flat does not cancel the stop first: while the flatten's rest waits for the book,
    the stop still covers what is owned (cancelling first left the position naked)."""
    rig = await make_rig(liquidity=1, settings=BracketSettings(protection_deadline=10.0))
    r = await rig.run(
        rig.manager.place_bracket_order(
            MNQ, BUY, 2, None, D("20990"), D("21010"), entry_type="market"
        )
    )
    rig.price("21000")
    await rig.settle(1.0)
    assert rig.position() == 2 and _covering_stops(rig) == 2
    await rig.manager.close_bracket(r.operation_id)
    await rig.settle(0.1)  # the first flatten took one contract; one is still owned
    assert rig.position() == 1
    stops = rig.stops()
    assert stops and all(o.status is OrderStatus.OPEN for o in stops)
    assert [o.type for o in rig.working(OrderType.LIMIT)] == []  # the target went at once
    await rig.run(rig.manager.wait_for_completion(r.operation_id), seconds=60)
    assert rig.position() == 0 and rig.working() == []
    await rig.manager.cleanup()


async def test_force_rollback_of_a_running_bracket_goes_through_its_saga() -> None:
    """force_rollback_operation on a running bracket is the saga's own close: one actor, the
    position flattened exactly once, nothing left working, the operation ROLLED_BACK."""
    rig = await make_rig()
    r = await rig.run(
        rig.manager.place_bracket_order(
            MNQ, BUY, 2, None, D("20990"), D("21010"), entry_type="market"
        )
    )
    assert r.outcome is BracketOutcome.PROTECTED and rig.position() == 2
    assert await rig.run(rig.manager.force_rollback_operation(r.operation_id))
    assert rig.position() == 0 and rig.working() == []
    flattened = [o for o in rig.ex.orders(1) if o.custom_tag and "-flatten" in o.custom_tag]
    assert [o.fill_volume for o in flattened] == [2]  # the saga's flatten, and only it
    status = rig.manager.recovery.get_operation_status(r.operation_id)
    assert status is not None and status["state"] == "rolled_back"
    assert rig.manager.brackets.active() == []
    await rig.manager.cleanup()
