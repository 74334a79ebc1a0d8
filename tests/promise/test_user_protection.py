"""User-level protection (chaos contract NQ): positions a user opened with plain market orders and
protected with add_stop_loss, place_stop_order or an OCO exit pair stay covered — never bare past
the bound, never over-covered, no exit outliving its position — whoever changes the position.

On the embedded exchange with 40 ms latency each way and 20 ms per event; truth is the exchange's,
judged by the chaos runner's own bound checker (I6: bare at most deadline + interval; I1:
over-covered at most one interval, or deadline + interval right after a position change).
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from orderguard.broker.base import BrokerEvent, OrderEvent, Outcome, PositionEvent, TradeEvent
from orderguard.broker.faults import FaultKind, FaultPlan, FaultyBroker
from orderguard.broker.sim import SimBroker
from orderguard.chaos.bounds import BoundChecker, Bounds
from orderguard.clock import VirtualClock
from orderguard.errors import CircuitOpenError
from orderguard.journal.memory import MemoryJournal
from orderguard.models import Order, OrderRequest, OrderStatus, OrderType
from orderguard.orders import OrderManager
from orderguard.orders.gateway import Family
from orderguard.orders.oco.engine import OcoLeg

from .helpers import (
    BUY,
    DEADLINE,
    INTERVAL,
    LATENCY,
    MNQ,
    SELL,
    D,
    Passthrough,
    World,
    kill,
    make_world,
)

STOP = D("20990")
TARGET = D("21010")


class Judge:
    """The chaos runner's continuous bounds, fed by every exchange event of the test."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.bounds = BoundChecker(Bounds(DEADLINE, INTERVAL))
        world.ex.listen(self._observe)

    def _observe(self, event: BrokerEvent) -> None:
        ex = self.world.ex
        self.bounds.observe(self.world.clock.monotonic(), ex.positions(1), ex.open_orders(1))

    def violations(self) -> list[str]:
        self.bounds.finish(self.world.clock.monotonic())
        return [v.detail for v in self.bounds.violations()]


def stops(w: World) -> dict[int, int]:
    return {o.id: o.remaining for o in w.working(OrderType.STOP) if o.status is OrderStatus.OPEN}


async def long_with_oco_exits(w: World, size: int) -> tuple[int, int]:
    await w.run(w.manager.place_market_order(MNQ, BUY, size))
    oco = await w.run(
        w.manager.place_oco_order(
            MNQ, OcoLeg(SELL, size, STOP, "stop"), OcoLeg(SELL, size, TARGET, "limit")
        )
    )
    assert oco.success and oco.order1_id is not None and oco.order2_id is not None
    await w.settle(0.5)
    return oco.order1_id, oco.order2_id


async def test_a_partial_close_shrinks_every_kind_of_exit_together() -> None:
    """OCO exit pair, plain stop and managed stop on +5; the platform closes 3: stops total 2."""
    w = await make_world()
    judge = Judge(w)
    await long_with_oco_exits(w, 2)
    await w.run(w.manager.place_market_order(MNQ, BUY, 3))
    await w.run(w.manager.place_stop_order(MNQ, SELL, 1, STOP))
    await w.run(w.manager.add_stop_loss(MNQ, STOP - 2))
    await w.settle(0.5)
    assert w.position() == 5 and w.stop_cover() == 5
    w.ex.partial_close(1, MNQ, 3)
    await w.settle(DEADLINE + INTERVAL)
    assert w.position() == 2
    assert sum(stops(w).values()) == 2
    assert w.target_cover() <= 2
    assert judge.violations() == []
    await w.close()


async def test_a_platform_close_cancels_an_oco_exit_pair_and_a_plain_stop() -> None:
    """Exits orderguard placed without sizing them (OCO legs, place_stop_order) follow to flat."""
    w = await make_world()
    judge = Judge(w)
    await long_with_oco_exits(w, 2)
    await w.run(w.manager.place_market_order(MNQ, BUY, 1))
    await w.run(w.manager.place_stop_order(MNQ, SELL, 1, STOP))
    await w.settle(0.5)
    w.ex.close_position(1, MNQ)
    await w.settle(INTERVAL)
    assert w.position() == 0
    assert w.working() == [], "exits outlived their position"
    assert judge.violations() == []
    await w.close()


async def test_an_oco_exit_pair_placed_just_before_a_crash_follows_the_position() -> None:
    """The pair's legs are followed from before they are sent: a new process cancels them when
    the platform closes the position, though it never saw them placed."""
    w = await make_world()
    await long_with_oco_exits(w, 2)
    await w.restart()
    await w.settle(1.0)
    w.ex.close_position(1, MNQ)
    await w.settle(INTERVAL)
    assert w.working() == []
    await w.close()


async def test_a_lost_cancel_of_an_exit_is_sent_again_at_once() -> None:
    """The watcher's cancel is lost on the way: it is re-sent within an interval, not after the
    next event or the periodic re-check."""
    faults: list[FaultyBroker] = []

    def wrap(sim: SimBroker, clock: VirtualClock) -> FaultyBroker:
        faults.append(FaultyBroker(sim, clock, FaultPlan.none(), seed=5))
        return faults[0]

    w = await make_world(wrap=wrap)
    judge = Judge(w)
    await w.run(w.manager.place_market_order(MNQ, BUY, 2))
    await w.run(w.manager.add_stop_loss(MNQ, STOP))
    await w.settle(0.5)
    faults[0].fail_next("cancel_order", FaultKind.LOST, repeat=1)
    w.ex.close_position(1, MNQ)
    await w.settle(INTERVAL)
    assert faults[0].fault_counts.get(FaultKind.LOST)
    assert w.working() == []
    assert judge.violations() == []
    await w.close()


async def test_add_stop_loss_protects_through_an_open_query_breaker() -> None:
    """After a storm the query breaker stays open for minutes: ordinary reads are refused, but
    the reads add_stop_loss needs go in the protective lane and the stop is placed."""
    w = await make_world()
    await w.run(w.manager.place_market_order(MNQ, BUY, 2))
    breaker = w.manager.gateway.breakers.get(Family.QUERIES)
    for _ in range(w.manager.config.status_check_circuit_breaker_threshold):
        breaker.record_failure("http 503 (a storm)")
    with pytest.raises(CircuitOpenError):
        await w.run(w.manager.search_open_orders(MNQ))
    result = await w.run(w.manager.add_stop_loss(MNQ, STOP))
    await w.settle(0.2)
    assert result.size == 2 and w.stop_cover() == 2
    await w.close()


async def test_a_stop_the_platform_cancels_is_placed_again() -> None:
    """The registry says the stop protects the position: cancelled outside orderguard, it is
    placed again (same price, same size) within the bound."""
    w = await make_world()
    judge = Judge(w)
    await w.run(w.manager.place_market_order(MNQ, BUY, 2))
    first = await w.run(w.manager.add_stop_loss(MNQ, STOP))
    await w.settle(0.5)
    w.ex.cancel(1, first.order_id)
    await w.settle(DEADLINE)
    [stop] = w.working(OrderType.STOP)
    assert stop.id != first.order_id and stop.size == 2 and stop.stop_price == STOP
    assert judge.violations() == []
    # It is followed like the first: flat cancels it.
    w.ex.close_position(1, MNQ)
    await w.settle(INTERVAL)
    assert w.working() == []
    await w.close()


async def test_a_stop_cancelled_through_orderguard_stays_cancelled() -> None:
    """cancel_order is the user's word: the watcher forgets the stop instead of replacing it."""
    w = await make_world()
    await w.run(w.manager.place_market_order(MNQ, BUY, 2))
    stop = await w.run(w.manager.add_stop_loss(MNQ, STOP))
    await w.settle(0.5)
    await w.run(w.manager.cancel_order(stop.order_id))
    await w.settle(DEADLINE + INTERVAL)
    assert w.working(OrderType.STOP) == []
    assert w.manager.position_orders.managed_exits() == []
    await w.close()


async def test_cancelling_the_target_of_an_oco_exit_pair_keeps_its_stop() -> None:
    """cancel_position_orders(("target",)) (or the platform) ends the target: the pair's stop
    goes on protecting the position instead of being cancelled as its OCO sibling."""
    w = await make_world()
    judge = Judge(w)
    stop_id, _ = await long_with_oco_exits(w, 2)
    result = await w.run(w.manager.cancel_position_orders(MNQ, ("target",)))
    assert result["target"] == 1
    await w.settle(DEADLINE + INTERVAL)
    assert stops(w) == {stop_id: 2}
    assert judge.violations() == []
    await w.close()


async def test_a_platform_cancel_of_an_oco_exit_target_keeps_its_stop() -> None:
    """The same when the platform cancels the target."""
    w = await make_world()
    stop_id, target_id = await long_with_oco_exits(w, 2)
    w.ex.cancel(1, target_id)
    await w.settle(DEADLINE + INTERVAL)
    assert stops(w) == {stop_id: 2}
    await w.close()


class NoFillNews(Passthrough):
    """Every event telling of a market order's fill is lost: positions, trades, order updates."""

    def subscribe(self, handler):  # type: ignore[no-untyped-def]
        def filtered(event: BrokerEvent) -> None:
            if isinstance(event, PositionEvent | TradeEvent):
                return
            if isinstance(event, OrderEvent) and event.order.type is OrderType.MARKET:
                return
            handler(event)

        return self.inner.subscribe(filtered)


async def test_a_close_learned_from_a_read_shrinks_the_exits_at_once() -> None:
    """No event tells of the close, but close_position read the position: that read is news,
    and the exits shrink within the bound instead of at the next periodic re-check."""
    w = await make_world(wrap=lambda sim, clock: NoFillNews(sim))  # type: ignore[arg-type,return-value]
    judge = Judge(w)
    await w.run(w.manager.place_market_order(MNQ, BUY, 3))
    await w.run(w.manager.add_stop_loss(MNQ, STOP))
    await w.settle(0.5)
    assert w.stop_cover() == 3
    await w.run(w.manager.close_position(MNQ, size=2))
    await w.settle(INTERVAL)
    assert w.position() == 1 and sum(stops(w).values()) == 1
    assert judge.violations() == []
    await w.close()


class SlowStops(NoFillNews):
    """And every stop placement takes a second to reach the exchange."""

    def __init__(self, inner: SimBroker, clock: VirtualClock) -> None:
        super().__init__(inner)
        self.clock = clock

    async def place_order(self, request: OrderRequest) -> Outcome:
        if request.type is OrderType.STOP:
            await self.clock.sleep(1.0)
        outcome: Outcome = await self.inner.place_order(request)
        return outcome


async def test_a_stop_in_flight_keeps_its_share_of_the_position() -> None:
    """A whole-position stop does not grow into the part a stop being placed will cover: the
    watcher, woken while the second stop is in flight, leaves that share to it."""
    w = await make_world(wrap=SlowStops)  # type: ignore[arg-type]
    judge = Judge(w)
    await w.run(w.manager.place_market_order(MNQ, BUY, 2))
    whole = await w.run(w.manager.add_stop_loss(MNQ, STOP))
    await w.settle(0.5)
    await w.run(w.manager.place_market_order(MNQ, BUY, 1))
    extra = await w.run(w.manager.add_stop_loss(MNQ, STOP - 1, size=1))
    await w.settle(DEADLINE)
    assert stops(w) == {whole.order_id: 2, extra.order_id: 1}
    assert judge.violations() == []
    await w.close()


class SlowCancels(Passthrough):
    """Every cancel takes a second to reach the exchange."""

    def __init__(self, inner: SimBroker, clock: VirtualClock) -> None:
        super().__init__(inner)
        self.clock = clock

    async def cancel_order(self, account_id: int, order_id: int) -> Outcome:
        await self.clock.sleep(1.0)
        outcome: Outcome = await self.inner.cancel_order(account_id, order_id)
        return outcome


async def test_an_oco_target_fill_leaves_the_other_stops_in_place() -> None:
    """The OCO stop whose target filled is on its way out (its cancel is slow): the watcher
    gives it no share of the smaller position, so the stop that stays is not cancelled for it
    and the position stays covered."""
    w = await make_world(wrap=SlowCancels)  # type: ignore[arg-type]
    judge = Judge(w)
    await w.run(w.manager.place_market_order(MNQ, BUY, 2))
    managed = await w.run(w.manager.add_stop_loss(MNQ, STOP, size=2))
    await long_with_oco_exits(w, 2)
    assert w.position() == 4 and w.stop_cover() == 4
    w.price("21010.25")  # the OCO target trades
    await w.settle(DEADLINE + INTERVAL)
    assert w.position() == 2
    assert stops(w) == {managed.order_id: 2}
    assert judge.violations() == []
    await w.close()


async def test_exits_follow_the_position_while_the_journal_fails() -> None:
    """A full disk must not keep an exit over-covering: the watcher's records wait, not it."""
    w = await make_world()
    judge = Judge(w)
    await w.run(w.manager.place_market_order(MNQ, BUY, 3))
    stop = await w.run(w.manager.add_stop_loss(MNQ, STOP))
    await w.settle(0.5)
    journal = w.journal
    assert isinstance(journal, MemoryJournal)
    plain = await w.run(w.manager.place_stop_order(MNQ, SELL, 1, STOP - 1))
    await w.settle(0.5)
    journal.fail_writes = True
    w.ex.partial_close(1, MNQ, 1)
    await w.settle(INTERVAL)
    assert stops(w) == {plain.order_id: 1, stop.order_id: 1}
    w.ex.close_position(1, MNQ)
    await w.settle(INTERVAL)
    assert w.working() == []
    assert judge.violations() == []
    # Nothing failed for it: the records wait for the journal, the exits did not.
    assert w.manager.position_orders.watcher.stats["reconcile_errors"] == 0
    journal.fail_writes = False
    await w.close()


async def walk_up(w: World, steps: int) -> None:
    """The price rises a tick every half second (one partial fill per move)."""
    for step in range(1, steps + 1):
        await w.clock.sleep(0.5)
        w.price(str(21000 + step * D("0.25")))


async def partial_fill_world() -> World:
    """Every order fills one contract per price move (the chaos runner's partial fills)."""
    clock = VirtualClock()
    sim = SimBroker.create(clock, prices={MNQ: D("21000")}, latency=LATENCY, liquidity=1)
    journal = MemoryJournal(clock)
    manager = OrderManager(sim, clock=clock, journal=journal, rng=random.Random(3))
    world = World(clock, sim, sim, journal, manager, [manager])
    await world.run(manager.start())
    return world


async def test_exits_placed_for_an_entry_still_filling_cover_the_whole_entry() -> None:
    """A stop asked for right after a market entry of 3 that has filled 1 is accepted for 3, and
    the watcher does not cut it (or an OCO exit pair) down to the part filled so far: a moment
    later it would be short of the position."""
    w = await partial_fill_world()
    judge = Judge(w)

    walker = asyncio.ensure_future(walk_up(w, 11))
    await w.run(w.manager.place_market_order(MNQ, BUY, 3))
    assert 0 < w.position() < 3
    stop = await w.run(w.manager.add_stop_loss(MNQ, STOP, size=3))
    await w.run(w.manager.place_market_order(MNQ, BUY, 2))
    oco = await w.run(
        w.manager.place_oco_order(
            MNQ, OcoLeg(SELL, 2, STOP, "stop"), OcoLeg(SELL, 2, TARGET, "limit")
        )
    )
    await w.run(walker)
    await w.settle(INTERVAL)
    assert w.position() == 5
    assert stops(w) == {stop.order_id: 3, oco.order1_id: 2}
    assert judge.violations() == []
    await w.close()


async def test_a_stop_the_others_covered_is_placed_again_when_the_position_needs_it() -> None:
    """A managed stop cancelled because a plain stop covered a smaller position is not lost: the
    position grows again, and the watcher places it again for its share."""
    w = await make_world()
    judge = Judge(w)
    await w.run(w.manager.place_market_order(MNQ, BUY, 2))
    plain = await w.run(w.manager.place_stop_order(MNQ, SELL, 1, STOP))
    managed = await w.run(w.manager.add_stop_loss(MNQ, STOP - 1))
    await w.settle(0.5)
    assert stops(w) == {plain.order_id: 1, managed.order_id: 1}
    w.ex.partial_close(1, MNQ, 1)
    await w.settle(INTERVAL)
    assert stops(w) == {plain.order_id: 1}
    # The position grows back outside any call that would protect it.
    w.ex.place(OrderRequest(1, MNQ, OrderType.MARKET, BUY, 1))
    await w.settle(DEADLINE)
    assert w.position() == 2 and w.stop_cover() == 2
    [again] = [o for o in w.working(OrderType.STOP) if o.id != plain.order_id]
    assert again.stop_price == STOP - 1
    assert judge.violations() == []
    await w.close()


class SlowTruth(Passthrough):
    """Order searches take three seconds (start-up recovery reads broker truth with them)."""

    def __init__(self, inner: SimBroker, clock: VirtualClock) -> None:
        super().__init__(inner)
        self.clock = clock

    async def search_orders(self, account_id: int, start: Any, end: Any = None) -> list[Order]:
        await self.clock.sleep(3.0)
        found: list[Order] = await self.inner.search_orders(account_id, start, end)
        return found


async def test_exits_follow_the_position_while_start_up_recovery_reads() -> None:
    """The platform closes the position while the process is down: the next process cancels
    the exits as soon as it is up, not after its start-up recovery's slow reads."""
    w = await make_world(wrap=SlowTruth)  # type: ignore[arg-type]
    judge = Judge(w)
    await long_with_oco_exits(w, 2)  # an unfinished operation: start-up recovery reads truth
    kill(w.manager)
    w.ex.close_position(1, MNQ)
    manager = OrderManager(w.broker, clock=w.clock, journal=w.journal, rng=random.Random(9))
    w.manager = manager
    w.managers.append(manager)
    starting = asyncio.ensure_future(manager.start())
    await w.settle(DEADLINE)
    assert w.working() == [], "exits outlived the position while start-up recovery read"
    await w.run(starting)
    assert judge.violations() == []
    await w.close()


async def test_an_oco_exit_pair_asked_for_while_its_entry_fills_follows_the_position() -> None:
    """OCO exits for 3 asked for right after a market entry of 3 that has filled 1: the pair
    is the position's exits (a moment later it is the whole position), so the watcher follows
    it — a close from the platform cancels both legs. Taken for resting entries instead, the
    pair outlived the close and over-covered the next position."""
    w = await partial_fill_world()
    judge = Judge(w)

    walker = asyncio.ensure_future(walk_up(w, 7))
    await w.run(w.manager.place_market_order(MNQ, BUY, 3))
    assert 0 < w.position() < 3
    oco = await w.run(
        w.manager.place_oco_order(
            MNQ, OcoLeg(SELL, 3, STOP, "stop"), OcoLeg(SELL, 3, TARGET, "limit")
        )
    )
    assert oco.success
    await w.run(walker)
    await w.settle(INTERVAL)
    assert w.position() == 3 and stops(w) == {oco.order1_id: 3}
    w.ex.close_position(1, MNQ)
    await w.settle(INTERVAL)
    assert w.position() == 0
    assert w.working() == [], "the OCO exit pair outlived its position"
    assert judge.violations() == []
    await w.close()


class SlowOrderReads(Passthrough):
    """Open orders read 1.5 s after they are asked for (positions at once): two reads
    asked together describe two moments."""

    def __init__(self, inner: Any, clock: VirtualClock) -> None:
        super().__init__(inner)
        self.clock = clock

    async def search_open_orders(self, *args: Any, **kwargs: Any) -> Any:
        await self.clock.sleep(1.5)
        return await self.inner.search_open_orders(*args, **kwargs)


async def test_a_slow_read_does_not_cut_exits_below_a_grown_position() -> None:
    """The watcher read +1 while the entry of 3 was filling; by the time the open orders came
    (showing the entry done) the position events said +3. It sizes the exits by
    those events, not by the old answer: a stop cut to 1 left 2 of 3 contracts bare."""
    w = await make_world(wrap=SlowOrderReads, liquidity=1)
    judge = Judge(w)

    walker = asyncio.ensure_future(walk_up(w, 9))
    await w.run(w.manager.place_market_order(MNQ, BUY, 3))
    assert 0 < w.position() < 3
    oco = await w.run(
        w.manager.place_oco_order(
            MNQ, OcoLeg(SELL, 3, STOP, "stop"), OcoLeg(SELL, 3, TARGET, "limit")
        )
    )
    await w.run(walker)
    await w.settle(INTERVAL)
    assert w.position() == 3
    assert stops(w) == {oco.order1_id: 3}
    assert judge.violations() == []
    await w.close()
