"""Issue 10, items 1-2: exits follow the account's actual position, whoever changed it.

On the embedded exchange with 40 ms latency each way and 20 ms per event; truth is the exchange's.
"""

from __future__ import annotations

from typing import Any

import pytest

from orderguard.broker.sim import SimBroker
from orderguard.clock import VirtualClock
from orderguard.errors import ValidationError
from orderguard.models import OrderRequest, OrderSide, OrderType, Position
from orderguard.orders.bracket.values import BracketOutcome
from orderguard.orders.results import CloseOutcome
from orderguard.recovery.manager import LegIntent
from orderguard.recovery.operations import OperationType

from .helpers import (
    DEADLINE,
    INTERVAL,
    MNQ,
    SELL,
    D,
    Passthrough,
    World,
    make_world,
    market_bracket,
)

BUY = OrderSide.BUY


@pytest.mark.parametrize("native", [False, True])
async def test_whole_contract_close_ends_a_live_bracket_with_its_exits(native: bool) -> None:
    """Item 1: close_position(whole_contract=True) cancels the bracket's exits and ends it FLAT."""
    w = await make_world(native=native)
    r = await market_bracket(w, 2, native=native)
    assert r.outcome is BracketOutcome.PROTECTED
    await w.run(w.manager.close_position(MNQ, whole_contract=True))
    await w.settle(DEADLINE + INTERVAL)
    assert w.position() == 0
    assert w.working() == [], "the stop and target outlived the position"
    status = w.manager.get_bracket_status(r.operation_id)
    assert status is not None and status.finished and status.outcome is BracketOutcome.FLAT
    # Later prices through the old stop never sell the flat account short.
    w.price("20980")
    await w.settle(1.0)
    assert w.position() == 0
    await w.close()


async def test_cancel_position_orders_is_not_undone_by_a_live_bracket() -> None:
    """Item 1: exits cancelled on request stay cancelled; the bracket records the request."""
    w = await make_world()
    r = await market_bracket(w, 2)
    result = await w.run(w.manager.cancel_position_orders(MNQ))
    assert result["stop"] == 1 and result["target"] == 1
    await w.settle(DEADLINE + INTERVAL)
    assert w.working() == [], "the bracket placed its exits again"
    status = w.manager.get_bracket_status(r.operation_id)
    assert status is not None and status.finished
    assert "removed on request" in (status.reason or "")
    await w.close()


async def test_removing_only_the_target_leaves_the_bracket_protecting() -> None:
    """The target removed on request is not placed again; the stop stays and still follows
    the position, and the bracket goes on protecting."""
    w = await make_world()
    r = await market_bracket(w, 2)
    result = await w.run(w.manager.cancel_position_orders(MNQ, order_types=["target"]))
    assert result["target"] == 1 and result["stop"] == 0
    await w.settle(DEADLINE + INTERVAL)
    assert w.target_cover() == 0, "the bracket placed its target again"
    assert w.stop_cover() == 2 and w.position() == 2
    status = w.manager.get_bracket_status(r.operation_id)
    assert status is not None and not status.finished and status.outcome is BracketOutcome.PROTECTED
    w.price("20989.75")  # the stop trades: flat, nothing left working
    await w.settle(DEADLINE)
    assert w.position() == 0 and w.working() == []
    await w.close()


@pytest.mark.parametrize("native", [False, True])
async def test_partial_close_from_the_platform_shrinks_the_exits(native: bool) -> None:
    """Item 2: 1 of 3 closed outside: exits shrink to 2, and the stop's fill leaves us flat."""
    w = await make_world(native=native)
    r = await market_bracket(w, 3, native=native)
    assert r.outcome is BracketOutcome.PROTECTED
    w.ex.partial_close(1, MNQ, 1)  # from the trading platform
    await w.settle(INTERVAL + 1.0)
    assert w.position() == 2
    assert w.stop_cover() == 2 and w.target_cover() == 2
    w.price("20989.75")  # the stop trades
    await w.settle(DEADLINE)
    assert w.position() == 0, "the stop sold more than the position"
    assert w.working() == []
    status = w.manager.get_bracket_status(r.operation_id)
    assert status is not None and status.finished and status.outcome is BracketOutcome.FLAT
    await w.close()


async def test_add_stop_loss_twice_never_over_covers() -> None:
    """Item 2: a second add_stop_loss on a covered position is refused (typed), not doubled."""
    w = await make_world()
    await w.run(w.manager.place_market_order(MNQ, 0, 2))
    await w.settle(0.5)
    await w.run(w.manager.add_stop_loss(MNQ, D("20990")))
    with pytest.raises(ValidationError, match="already"):
        await w.run(w.manager.add_stop_loss(MNQ, D("20980")))
    await w.settle(INTERVAL)
    assert w.stop_cover() == 2
    assert sum(o.size for o in w.working(OrderType.STOP) if o.side is SELL) == 2
    await w.close()


async def test_an_exit_placed_after_its_position_was_closed_outside_is_followed() -> None:
    """Item 3: an operation (through the seed's calls) whose position the platform closed
    before its stop went out ends owning nothing with the stop working. It is still followed:
    the next change of the position cancels that stop, and its record says so."""
    w = await make_world()
    m = w.manager
    rec = m.recovery
    op = await w.run(rec.start_operation(OperationType.BRACKET_ORDER, contract_id=MNQ))
    entry = await w.run(rec.add_order_to_operation(op, MNQ, BUY, 2, "market", leg="entry"))
    placed = await w.run(
        m.submit(OrderRequest(1, MNQ, OrderType.MARKET, BUY, 2, custom_tag=entry.custom_tag))
    )
    await w.run(rec.record_order_success(op, entry, placed))
    await w.settle(0.5)
    filled = await w.run(m.get_order_by_id(placed.order_id))
    assert filled is not None
    await w.run(rec.record_order_state(op, entry, filled))
    w.ex.close_position(1, MNQ)  # from the platform, before the stop goes out
    await w.settle(INTERVAL + 1.0)
    assert op.net_filled == 0  # credited: the operation owns nothing now
    stop = await w.run(rec.add_order_to_operation(op, MNQ, SELL, 2, "stop", D("20990"), leg="stop"))
    sent = await w.run(
        m.submit(
            OrderRequest(
                1, MNQ, OrderType.STOP, SELL, 2, stop_price=D("20990"), custom_tag=stop.custom_tag
            ),
            respect_latch=False,
        )
    )
    await w.run(rec.record_order_success(op, stop, sent))
    assert await w.run(rec.complete_operation(op))
    w.ex.place(OrderRequest(1, MNQ, OrderType.MARKET, BUY, 1))  # the platform buys 1
    await w.settle(INTERVAL + 1.0)
    assert w.position() == 1
    assert w.stop_cover() == 0, "a stop of an operation that owns nothing outlived it"
    assert op.orders["stop"].status == "cancelled"
    await w.close()


class _ClosedRightAfterTheRead(Passthrough):
    """The platform flattens the position just after the next position read was served, and
    that answer is slow: the close's position event arrives before the stale answer does."""

    def __init__(self, inner: SimBroker, clock: VirtualClock) -> None:
        super().__init__(inner)
        self.clock = clock
        self.armed = False

    async def search_positions(self, account_id: int) -> list[Position]:
        found: list[Position] = await self.inner.search_positions(account_id)
        if self.armed:
            self.armed = False
            self.inner.exchange.close_position(account_id, MNQ)
            await self.clock.sleep(0.2)  # a slow answer, overtaken by the event
        return found


async def test_a_close_never_opens_the_other_way_when_someone_flattened_first() -> None:
    """close_position read +2, then the platform flattened (its event arriving before the
    read's answer): the close's SELL 2 would open a short. It is not sent (the stale answer does
    not overwrite the newer event in the position book), and the result says so."""
    w = await make_world(wrap=_ClosedRightAfterTheRead)  # type: ignore[arg-type]
    await w.run(w.manager.place_market_order(MNQ, 0, 2))
    await w.settle(0.5)
    assert w.position() == 2
    broker = w.broker
    assert isinstance(broker, _ClosedRightAfterTheRead)
    broker.armed = True
    result = await w.run(w.manager.close_position(MNQ, size=2))
    await w.settle(INTERVAL)
    assert w.position() == 0, "the close sold a position that was already flat"
    assert result.outcome is CloseOutcome.NOTHING_TO_CLOSE and result.closed_size == 0
    assert result.final_position == 0
    await w.close()


async def _protected_through_the_seed_calls(w: World, size: int) -> tuple[Any, int]:
    """The seed's flow: an operation, its market entry, its stop, completed."""
    m, rec = w.manager, w.manager.recovery
    op = await w.run(rec.start_operation(OperationType.BRACKET_ORDER, contract_id=MNQ))
    entry = await w.run(rec.add_order_to_operation(op, MNQ, BUY, size, "market", leg="entry"))
    placed = await w.run(
        m.submit(OrderRequest(1, MNQ, OrderType.MARKET, BUY, size, custom_tag=entry.custom_tag))
    )
    await w.run(rec.record_order_success(op, entry, placed))
    await w.settle(0.5)
    filled = await w.run(m.get_order_by_id(placed.order_id))
    await w.run(rec.record_order_state(op, entry, filled))
    stop = await w.run(
        rec.add_order_to_operation(op, MNQ, SELL, size, "stop", D("20990"), leg="stop")
    )
    sent = await w.run(
        m.submit(
            OrderRequest(
                1, MNQ, OrderType.STOP, SELL, size, stop_price=D("20990"),
                custom_tag=stop.custom_tag,
            ),
            respect_latch=False,
        )
    )  # fmt: skip
    await w.run(rec.record_order_success(op, stop, sent))
    assert await w.run(rec.complete_operation(op))
    return op, sent.order_id


async def test_a_finished_operations_stop_cancelled_by_the_platform_is_placed_again() -> None:
    """Item 3: a completed operation (the seed's calls) still owns +2 when the trading
    platform cancels its stop. Nothing drives a finished operation; the position sat bare to
    the end of chaos seeds 46, 209 and 213. The stop is placed again at its price, as a new leg
    of the operation, within a recovery interval."""
    w = await make_world()
    op, stop_id = await _protected_through_the_seed_calls(w, 2)
    w.ex.cancel(1, stop_id)  # from the platform
    await w.settle(INTERVAL)
    assert w.position() == 2
    (again,) = w.working(OrderType.STOP)
    assert (again.size, again.stop_price, again.side) == (2, D("20990"), SELL)
    assert again.id != stop_id
    assert op.orders["stop1"].order_id == again.id and op.orders["stop1"].status == "confirmed"
    await w.close()


async def test_a_finished_operations_stop_cancelled_through_orderguard_stays_cancelled() -> None:
    """The caller cancelled it (through orderguard): their decision, not a platform's."""
    w = await make_world()
    _, stop_id = await _protected_through_the_seed_calls(w, 2)
    await w.run(w.manager.cancel_order(stop_id))
    await w.settle(INTERVAL)
    assert w.position() == 2
    assert w.working(OrderType.STOP) == []
    await w.close()


async def test_a_finished_operations_stop_left_intended_by_a_crash_is_settled() -> None:
    """A process journaled the finished operation's new stop and died before sending it: the
    leg stays intended in a finished record (I5), and while it is in doubt nothing is placed
    twice. Its tag settles it (absent), and the next check places the stop."""
    w = await make_world()
    op, stop_id = await _protected_through_the_seed_calls(w, 2)
    rec = w.manager.recovery
    (dead,) = await w.run(
        rec.add_orders_to_operation(
            op,
            [LegIntent(MNQ, SELL, 2, "stop", D("20990"), leg="stop1", account_id=1)],
            finished_holder=True,
        )
    )
    w.ex.cancel(1, stop_id)  # from the platform
    await w.settle(INTERVAL)
    assert w.working(OrderType.STOP) == []  # in doubt: not placed twice
    await w.settle(70.0)
    assert dead.status == "rejected"
    w.ex.place(OrderRequest(1, MNQ, OrderType.MARKET, BUY, 1))  # any change wakes a check
    await w.settle(INTERVAL)
    (again,) = w.working(OrderType.STOP)
    assert (again.size, again.stop_price) == (2, D("20990"))
    await w.close()
