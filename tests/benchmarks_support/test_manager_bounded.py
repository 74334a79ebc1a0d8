"""One OrderManager through many operations: its bookkeeping stays bounded (issue 5).

Speed and the megabytes live in benchmarks/bench_memory.py; these check the structures only.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TypeVar

from orderguard.broker.sim import SimBroker
from orderguard.clock import VirtualClock
from orderguard.config import OrderManagerConfig
from orderguard.models import OrderSide, OrderStatus
from orderguard.orders import OrderManager
from orderguard.orders.bracket.values import BracketOutcome

T = TypeVar("T")
MNQ = "CON.F.US.MNQ.Z26"
D = Decimal
MID = D("21000.00")


def world(max_finished: int) -> tuple[VirtualClock, SimBroker, OrderManager]:
    clock = VirtualClock()
    sim = SimBroker.create(clock, prices={MNQ: MID}, max_order_size=None)
    config = OrderManagerConfig(rate_limit_requests=10**6)
    manager = OrderManager(sim, clock=clock, config=config, rng=random.Random(3))
    manager.tracker.max_finished = max_finished
    return clock, sim, manager


def run(clock: VirtualClock, main: Callable[[], Awaitable[T]]) -> T:
    async def body() -> T:
        return await main()

    return clock.run_sync(body)


async def limit_round_trip(manager: OrderManager) -> None:
    placed = await manager.place_limit_order(MNQ, OrderSide.BUY, 1, D("20900"))
    assert (await manager.cancel_order(placed.order_id)).cancelled


async def bracket_round_trip(manager: OrderManager) -> None:
    r = await manager.place_bracket_order(
        MNQ, OrderSide.BUY, 1, None, D("20990"), D("21010"), entry_type="market"
    )
    assert (await manager.wait_for_protection(r.operation_id)).protected_size == 1
    await manager.close_bracket(r.operation_id)
    assert (await manager.wait_for_completion(r.operation_id)).finished


def test_two_thousand_operations_leave_bounded_bookkeeping() -> None:
    """After 2,000 operations the tracker holds at most its bound; nothing per finished bracket."""
    clock, sim, manager = world(max_finished=200)

    async def main() -> dict[str, int]:
        await manager.start()
        await bracket_round_trip(manager)
        await clock.sleep(1)
        listeners = len(manager.feed._listeners)
        for i in range(2_000):
            await (bracket_round_trip if i % 10 == 0 else limit_round_trip)(manager)
        await clock.sleep(1)
        sizes = {
            "tracked": len(manager.tracker),
            "listeners_added": len(manager.feed._listeners) - listeners,
            "tasks": manager.background_tasks,
            "active": len(manager.recovery.active_operations),
            "history": len(manager.recovery.operation_history),
            "sagas": len(manager.brackets._sagas),
            "saga_maps": len(manager.brackets._by_order),
            "oco_maps": len(manager.oco._by_order),
            "latch": len(manager.latch),
        }
        await manager.cleanup()
        return sizes

    sizes = run(clock, main)
    assert len(sim.exchange.orders(1)) > 2_500  # the work really happened
    assert 200 <= sizes.pop("tracked") <= 220
    assert sizes.pop("history") <= manager.recovery.max_history
    assert sizes == dict.fromkeys(sizes, 0)


def test_an_open_brackets_entry_outlives_the_bound() -> None:
    """A protected bracket's long-finished entry stays tracked, so it still owns and flattens 1."""
    clock, sim, manager = world(max_finished=5)

    async def main() -> tuple[int | None, BracketOutcome, int]:
        await manager.start()
        r = await manager.place_bracket_order(
            MNQ, OrderSide.BUY, 1, None, D("20990"), D("21010"), entry_type="market"
        )
        await manager.wait_for_protection(r.operation_id)
        for _ in range(100):  # far more finished orders than the bound, after the entry's fill
            await limit_round_trip(manager)
        assert r.entry_order_id is not None
        entry = manager.tracker.get(r.entry_order_id)
        status = manager.get_bracket_status(r.operation_id)
        assert status is not None
        await manager.close_bracket(r.operation_id)
        await manager.wait_for_completion(r.operation_id)
        await manager.cleanup()
        return (None if entry is None else entry.fill_volume), status.outcome, status.owned_size

    entry_fill, outcome, owned = run(clock, main)
    assert (entry_fill, outcome, owned) == (1, BracketOutcome.PROTECTED, 1)
    assert sim.exchange.position_size(1, MNQ) == 0
    assert not sim.exchange.open_orders(1)


def test_a_dropped_order_is_read_from_the_broker() -> None:
    """get_order_by_id of an order the tracker dropped asks the broker and finds it final."""
    clock, _, manager = world(max_finished=5)

    async def main() -> tuple[bool, OrderStatus | None]:
        await manager.start()
        first = await manager.place_limit_order(MNQ, OrderSide.BUY, 1, D("20900"))
        await manager.cancel_order(first.order_id)
        for _ in range(20):
            await limit_round_trip(manager)
        dropped = manager.tracker.get(first.order_id) is None
        found = await manager.get_order_by_id(first.order_id)
        await manager.cleanup()
        return dropped, None if found is None else found.status

    assert run(clock, main) == (True, OrderStatus.CANCELLED)
