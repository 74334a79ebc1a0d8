"""Start-up recovery reads a consistent snapshot: a fill between its broker reads (chaos seed 30).

Ownership is counted from the orders and clamped by the position, which come from two queries.
A native stop filling between them used to leave its bracket owning what it no longer held, and
the oldest-first allocation then told a later operation the account held nothing of its own: it
ended ``failed`` with its quantity naked "for an operator" (I1).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from orderguard.broker.base import Broker
from orderguard.chaos.process import ProcessKilled
from orderguard.chaos.workload import Step, StepKind
from orderguard.models import Order, OrderSide
from orderguard.recovery.reconcile import PassPlan, consistent
from orderguard.testing.builders import order as build_order

from .startup_world import MNQ, PRICE, World, bury

STOP, TARGET = PRICE - Decimal(10), PRICE + Decimal(10)
ENTRY = Step(0, StepKind.PROTECTED_ENTRY, size=2, ticks=20)


class FillAfterFirstOrderRead:
    """Forwards to ``inner``; right after the first ``search_orders`` answers, moves the market
    through the native stop so it fills before the position is read (a fake, not a mock)."""

    world: World

    def __init__(self, inner: Broker) -> None:
        self.inner = inner
        self.order_reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def search_orders(
        self, account_id: int, start: datetime, end: datetime | None = None
    ) -> list[Order]:
        found = await self.inner.search_orders(account_id, start, end)
        self.order_reads += 1
        if self.order_reads == 1:
            self.world.exchange.set_price(MNQ, STOP - Decimal(5))
        return found


async def test_a_stop_filling_between_the_reads_does_not_skew_ownership() -> None:
    world = World()
    FillAfterFirstOrderRead.world = world

    async def scenario() -> None:
        # place_order #1: the native bracket (children made by the exchange); #2: the protected
        # entry's market order, which fills; #3 (its stop) never leaves: the process dies.
        doomed, _ = world.process(crash_on="place_order", crash_at=3)
        await doomed.start()
        await doomed.place_bracket_order(
            MNQ, OrderSide.BUY, 2, None, STOP, TARGET, entry_type="market", native=True
        )
        await world.clock.sleep(1.0)  # the bracket is the older operation (allocated first)
        with pytest.raises(ProcessKilled):
            await world.actor(doomed).perform(ENTRY)
        bury(doomed)
        assert world.exchange.position_size(1, MNQ) == 4

        survivor, _ = world.process(wrap=FillAfterFirstOrderRead)
        await survivor.start()  # recovery: the bracket's stop fills between its reads
        report = survivor.last_recovery
        assert report is not None and report.ok, report and report.as_dict()
        states = [o.state_after for o in report.operations]
        # The protected entry is rolled back in full: its +2 is flattened, nothing is left naked.
        assert "failed" not in states, report.as_dict()
        await world.clock.sleep(10.0)  # the bracket's restarted saga finishes
        assert world.exchange.position_size(1, MNQ) == 0
        assert await world.violations() == []
        await survivor.cleanup()

    await world.clock.run(scenario())


def test_consistent_compares_fills_only() -> None:
    a = build_order(1, None, OrderSide.SELL, 2, filled=0)
    b = build_order(1, None, OrderSide.SELL, 2, filled=2)
    assert consistent([a], [a])
    assert not consistent([a], [b])
    assert not consistent([b], [])


async def test_the_reconciler_reads_orders_again_before_it_acts() -> None:
    """The continuous reconciler's acting passes read truth the same way: a fill between its
    order and position reads is in both halves of the snapshot it acts on."""
    world = World()
    FillAfterFirstOrderRead.world = world

    async def scenario() -> None:
        manager, _ = world.process(wrap=FillAfterFirstOrderRead)
        await manager.start()
        wrapper = world.wrapped
        assert isinstance(wrapper, FillAfterFirstOrderRead)
        # A buy limit above the price the wrapper moves to: it fills between the reads.
        placed = await manager.place_limit_order(MNQ, OrderSide.BUY, 1, STOP)
        wrapper.order_reads = 0
        plan = PassPlan(
            accounts=(1,),
            window_start=world.clock.now() - timedelta(minutes=5),
            read_positions=True,
            retry_rollback=("nothing-to-roll-back",),
        )
        snap = (await manager.reconciler._read(plan))[1]
        (order,) = [o for o in snap.orders if o.id == placed.order_id]
        assert snap.net(MNQ) == 1 and order.fill_volume == 1
        await manager.cleanup()

    await world.clock.run(scenario())
