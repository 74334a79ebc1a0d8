"""Managed exits follow their position outside brackets; none outlives it (I2)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orderguard.broker.base import BrokerEvent, OrderEvent, PositionEvent, TradeEvent
from orderguard.config import OrderManagerConfig
from orderguard.errors import ValidationError
from orderguard.journal.base import IntentKind
from orderguard.models import BracketSpec, OrderRequest, OrderSide, OrderStatus, OrderType
from orderguard.recovery.operations import OperationType

from .conftest import MNQ, Harness, HarnessFactory
from .fakes import EventFilterBroker
from .position_helpers import exits, open_position, position, quiet, working

STOP = Decimal("20990.00")
TARGET = Decimal("21010.00")


async def _protected_long(h: Harness, size: int = 2) -> tuple[int, int]:
    await open_position(h, size)
    stop = await h.manager.add_stop_loss(MNQ, STOP)
    target = await h.manager.add_take_profit(MNQ, TARGET)
    await quiet(h)
    return stop.order_id, target.order_id


def _no_fill_news(event: BrokerEvent) -> list[BrokerEvent]:
    """Every event that tells of a market order's fill is lost (position, trade, order)."""
    if isinstance(event, PositionEvent | TradeEvent):
        return []
    if isinstance(event, OrderEvent) and event.order.type is OrderType.MARKET:
        return []
    return [event]


def _sizes(h: Harness) -> dict[int, int]:
    return {o.id: o.remaining for o in exits(h)}


async def test_exits_grow_with_the_position(h: Harness) -> None:
    """Buying more outside any bracket resizes the stop and the target to the new position."""
    stop, target = await _protected_long(h)
    await open_position(h, 3)
    assert _sizes(h) == {stop: 5, target: 5}


async def test_exits_shrink_with_a_partial_close(h: Harness) -> None:
    """A partial close resizes the exits down to what is left."""
    stop, target = await _protected_long(h, 3)
    await h.manager.broker.partial_close_position(1, MNQ, 2)
    await quiet(h)
    assert _sizes(h) == {stop: 1, target: 1}


async def test_exits_are_cancelled_when_the_position_goes_flat(h: Harness) -> None:
    """Selling the whole position cancels both exits at the exchange."""
    stop, target = await _protected_long(h)
    await open_position(h, -2)
    assert position(h) == 0
    assert working(h) == []
    for order_id in (stop, target):
        assert h.exchange.order(1, order_id).status is OrderStatus.CANCELLED  # type: ignore[union-attr]


async def test_exits_are_cancelled_after_close_contract(h: Harness) -> None:
    """Position/closeContract leaves exits at the broker; the watcher cancels them."""
    assert not h.exchange.close_cancels_brackets
    await _protected_long(h)
    await h.manager.broker.close_position(1, MNQ)
    await quiet(h)
    assert position(h) == 0 and working(h) == []


async def test_exits_are_cancelled_when_the_position_flips(h: Harness) -> None:
    """Long 2 to short 1: the sell exits would add exposure now, so they are cancelled."""
    await _protected_long(h)
    await open_position(h, -3)
    assert position(h) == -1
    assert working(h) == []


async def test_target_fill_cancels_the_stop(h: Harness) -> None:
    """When the target takes the position flat, the stop is cancelled (no orphaned exit)."""
    stop, target = await _protected_long(h)
    h.exchange.set_price(MNQ, Decimal("21015.00"))
    await quiet(h)
    assert h.exchange.order(1, target).status is OrderStatus.FILLED  # type: ignore[union-attr]
    assert h.exchange.order(1, stop).status is OrderStatus.CANCELLED  # type: ignore[union-attr]
    assert position(h) == 0


async def test_fixed_size_exit_keeps_its_size_while_covered(h: Harness) -> None:
    """A stop for 1 of 3 stays at 1 as the position grows, and shrinks only below it."""
    await open_position(h, 3)
    stop = await h.manager.add_stop_loss(MNQ, STOP, size=1)
    await open_position(h, 2)
    assert _sizes(h) == {stop.order_id: 1}
    await open_position(h, -5)
    assert working(h) == []


async def test_following_can_be_switched_off(make_harness: HarnessFactory) -> None:
    """With follow_position_orders=False the exits are left as placed."""
    h: Harness = await make_harness(config=OrderManagerConfig(follow_position_orders=False))
    stop, target = await _protected_long(h)
    await open_position(h, 1)
    await quiet(h, 60)
    assert _sizes(h) == {stop: 2, target: 2}


async def test_lost_position_events_are_caught_by_the_recheck(
    make_harness: HarnessFactory,
) -> None:
    """With every event of a fill lost, the periodic REST re-check still resizes the stop."""

    h: Harness = await make_harness(wrapper=lambda sim: EventFilterBroker(sim, _no_fill_news))
    stop, target = await _protected_long(h)
    await open_position(h, 1)
    assert _sizes(h) == {stop: 2, target: 2}  # nothing told the watcher yet
    await quiet(h, h.manager.config.position_recheck_interval)
    assert _sizes(h) == {stop: 3, target: 3}


async def test_native_bracket_legs_are_never_touched(h: Harness) -> None:
    """Resizing follows only managed exits; a native bracket's legs keep their size."""
    await open_position(h, 1)
    stop = await h.manager.add_stop_loss(MNQ, STOP)
    await h.sim.place_order(
        OrderRequest(
            account_id=1,
            contract_id=MNQ,
            type=OrderType.MARKET,
            side=OrderSide.BUY,
            size=1,
            custom_tag="native-1",
            stop_loss_bracket=BracketSpec(-40, OrderType.STOP),
            take_profit_bracket=BracketSpec(40, OrderType.LIMIT),
        )
    )
    await quiet(h)
    legs = [o for o in working(h) if o.parent_order_id is not None]
    assert [o.size for o in legs] == [1, 1]
    assert not any(kind == "modify" and oid in {o.id for o in legs} for kind, oid in h.broker.calls)
    assert _sizes(h)[stop.order_id] == 2


async def test_quantity_owned_by_a_bracket_operation_is_not_covered(h: Harness) -> None:
    """Managed exits cover the position outside brackets: a bracket's fill is its own."""
    stop, _ = await _protected_long(h)
    recovery = h.manager.recovery
    op = await recovery.start_operation(OperationType.BRACKET_ORDER, account_id=1, contract_id=MNQ)
    ref = await recovery.add_order_to_operation(op, MNQ, OrderSide.BUY, 1, "market", leg="entry")
    placed = await h.manager.submit(
        OrderRequest(1, MNQ, OrderType.MARKET, OrderSide.BUY, 1, custom_tag=ref.custom_tag)
    )
    await recovery.record_order_success(op, ref, placed)
    await recovery.record_order_state(op, ref, h.exchange.order(1, placed.order_id))  # type: ignore[arg-type]
    await quiet(h)
    assert position(h) == 3
    assert _sizes(h)[stop] == 2


async def test_registered_order_follows_the_position(h: Harness) -> None:
    """A hand-placed stop, once registered, is resized like one placed by add_stop_loss."""
    await open_position(h, 1)
    placed = await h.manager.place_stop_order(MNQ, OrderSide.SELL, 1, STOP)
    await h.manager.position_orders.register_exit(placed.order_id)
    await open_position(h, 2)
    assert _sizes(h) == {placed.order_id: 3}


async def test_registering_a_bracket_leg_is_refused(h: Harness) -> None:
    """A native bracket leg belongs to its bracket: registering it is a ValidationError."""
    await h.sim.place_order(
        OrderRequest(
            account_id=1,
            contract_id=MNQ,
            type=OrderType.MARKET,
            side=OrderSide.BUY,
            size=1,
            custom_tag="native-2",
            stop_loss_bracket=BracketSpec(-40, OrderType.STOP),
        )
    )
    await quiet(h)
    [leg] = [o for o in working(h) if o.parent_order_id is not None]
    with pytest.raises(ValidationError):
        await h.manager.position_orders.register_exit(leg.id)


async def test_resize_is_recorded_on_the_operation(h: Harness) -> None:
    """The operation of a followed stop shows its current size and, at the end, why it ended."""
    await open_position(h, 2)
    result = await h.manager.add_stop_loss(MNQ, STOP)
    await open_position(h, 1)
    status = h.manager.recovery.get_operation_status(result.operation_id)
    assert status is not None and status["orders"]["stop"]["size"] == 3
    await open_position(h, -3)
    status = h.manager.recovery.get_operation_status(result.operation_id)
    assert status is not None
    assert status["orders"]["stop"]["status"] == "cancelled"
    assert status["extra"]["ended"].startswith("cancelled: position is flat")


async def test_recheck_interval_sets_how_soon_lost_events_are_caught(
    make_harness: HarnessFactory,
) -> None:
    """position_recheck_interval=5: a change nobody reported is followed within 5 s, not before."""

    h: Harness = await make_harness(
        wrapper=lambda sim: EventFilterBroker(sim, _no_fill_news),
        config=OrderManagerConfig(position_recheck_interval=5.0),
    )
    stop, _ = await _protected_long(h)
    await open_position(h, 1)
    await quiet(h, 4.0)
    assert _sizes(h)[stop] == 2
    await quiet(h, 1.0)
    assert _sizes(h)[stop] == 3


async def test_exits_grow_while_new_exposure_is_held_and_the_resize_is_journaled(
    h: Harness,
) -> None:
    """Growing an exit removes exposure: while new exposure is held (start-up recovery could
    not read the broker, say) the watcher still resizes it, and each resize is journal-first —
    its MODIFY intent is in the journal (through the modification operation, or, were it
    refused as exposure, the watcher's own journaled fallback)."""
    stop, target = await _protected_long(h)
    h.manager.latch.hold("test: broker truth unread")
    request = OrderRequest(
        account_id=1, contract_id=MNQ, type=OrderType.MARKET, side=OrderSide.BUY, size=3
    )
    await h.manager.raw_broker.place_order(request)  # bought outside orderguard
    await quiet(h)
    assert _sizes(h) == {stop: 5, target: 5}
    tags = h.manager.tags
    keys = [f"{tags.prefix}-{tags.session}-m{n}" for n in range(1, 10)]
    resized = {
        rec.request["order_id"]
        for rec in [await h.manager.journal.intent_by_tag(key, 1) for key in keys]
        if rec is not None
        and rec.kind is IntentKind.MODIFY
        and rec.request["changes"].get("size") == 5
    }
    assert resized == {stop, target}
