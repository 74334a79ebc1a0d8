"""``orderguard dashboard --demo``: the embedded exchange and a small strategy loop, so the
dashboard has something live to show without an account.

The market is a seeded random walk on MNQ moved every ``tick_every`` seconds; the strategy
places a market-entry bracket every ``every`` seconds (the side turns only when none is open),
with stop and target ``distance`` ticks away and client-side OCO so each leg is visible. It keeps
at most ``max_open`` of them open, closing the oldest to make room; the rest end on their own
when the walk reaches a stop or a target. Everything runs on the clock given (the wall clock for
a person watching).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal

from orderguard.broker.sim import (
    LatencyModel,
    MarketDriver,
    RandomWalkPrices,
    SimBroker,
    SimExchange,
)
from orderguard.clock import Clock, SystemClock
from orderguard.errors import OrderGuardError
from orderguard.models import OrderSide
from orderguard.ops.alerts import AlertPolicy
from orderguard.orders import OrderManager

log = logging.getLogger("orderguard.dashboard.demo")

CONTRACT = "CON.F.US.MNQ.Z26"
START = Decimal("21000.00")
TICK = Decimal("0.25")


@dataclass(slots=True)
class DemoStrategy:
    manager: OrderManager
    exchange: SimExchange
    every: float = 2.0
    distance: int = 12
    max_open: int = 3
    seed: int = 1
    placed: list[str] = field(default_factory=list)
    errors: int = 0

    async def run(self) -> None:
        rng = random.Random(self.seed)
        clock = self.manager.clock
        side = OrderSide.BUY
        while True:
            await self._make_room()
            if not self.manager.brackets.active():
                # Brackets on one contract share one netted position: a bracket the other way
                # would close the others' contracts, so the side only turns when none is open.
                side = side.opposite
            await self._place(side, rng.randint(1, 2))
            await clock.sleep(self.every)

    async def _make_room(self) -> None:
        active = self.manager.brackets.active()
        for operation_id in active[: max(0, len(active) - self.max_open + 1)]:
            with contextlib.suppress(OrderGuardError):
                await self.manager.close_bracket(operation_id)

    async def _place(self, side: OrderSide, size: int) -> None:
        m = self.manager
        price = self.exchange.last_price(CONTRACT)
        if price is None:
            return
        away = TICK * self.distance
        stop, target = (
            (price - away, price + away)
            if side is OrderSide.BUY
            else (
                price + away,
                price - away,
            )
        )
        try:
            result = await m.place_bracket_order(
                CONTRACT, int(side), size, None, stop, target, entry_type="market", native=False
            )
        except OrderGuardError as exc:
            self.errors += 1
            log.warning("demo bracket refused: %s", exc)
            return
        self.placed.append(result.operation_id)


@dataclass(slots=True)
class DemoSession:
    broker: SimBroker
    manager: OrderManager
    driver: MarketDriver
    strategy: DemoStrategy
    task: asyncio.Task[None] | None = None


@contextlib.asynccontextmanager
async def demo_session(
    *,
    clock: Clock | None = None,
    seed: int = 1,
    every: float = 2.0,
    tick_every: float = 0.25,
    max_open: int = 3,
    distance: int = 12,
) -> AsyncIterator[DemoSession]:
    """A running exchange, manager (alerts on) and strategy loop; all stopped on exit."""
    clock = clock or SystemClock()
    broker = SimBroker.create(
        clock,
        account_id=1,
        prices={CONTRACT: START},
        latency=LatencyModel(request=0.02, response=0.02, event=0.01, seed=seed),
    )
    manager = OrderManager(broker, clock=clock, account_id=1, rng=random.Random(seed))
    driver = MarketDriver(
        broker.exchange,
        clock,
        CONTRACT,
        RandomWalkPrices(seed=seed, start=START, tick=TICK, max_ticks_per_step=2),
        interval=tick_every,
    )
    strategy = DemoStrategy(
        manager, broker.exchange, every=every, distance=distance, max_open=max_open, seed=seed
    )
    session = DemoSession(broker, manager, driver, strategy)
    await manager.start()
    manager.enable_alerts(policy=AlertPolicy(unprotected_after=2.0))
    await driver.start()
    session.task = asyncio.create_task(strategy.run(), name="dashboard-demo-strategy")
    try:
        yield session
    finally:
        session.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await session.task
        await driver.stop()
        await manager.cleanup()


__all__ = ["CONTRACT", "DemoSession", "DemoStrategy", "demo_session"]
