"""A world as a new user meets it: the embedded exchange with 40 ms latency each way and 20 ms
per event, a started OrderManager, and truth read from the exchange (never the manager)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from orderguard.broker.base import Broker, Outcome
from orderguard.broker.sim import LatencyModel, SimBroker, SimExchange
from orderguard.broker.sim.rules import ExchangeRules
from orderguard.clock import VirtualClock
from orderguard.config import OrderManagerConfig
from orderguard.errors import RateLimitedError
from orderguard.journal.base import Journal
from orderguard.journal.memory import MemoryJournal
from orderguard.models import Order, OrderRequest, OrderSide, OrderStatus, OrderType
from orderguard.orders import OrderManager
from orderguard.testing import kill

MNQ = "CON.F.US.MNQ.Z26"
D = Decimal
BUY, SELL = OrderSide.BUY, OrderSide.SELL
LATENCY = LatencyModel(request=0.04, response=0.04, event=0.02, jitter=0.005, seed=11)
DEADLINE = 5.0  # the bracket protection deadline (BracketSettings default)
INTERVAL = 2.0  # the recovery interval (reconcile_interval default)


class Passthrough:
    """Forwards every Broker call to ``inner`` (a fake, not a mock: the calls really happen)."""

    def __init__(self, inner: Broker) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class PlacementStorm(Passthrough):
    """Answers every ``place_order`` with HTTP 429 (never executed) while the storm lasts."""

    def __init__(self, inner: Broker, clock: VirtualClock) -> None:
        super().__init__(inner)
        self.clock = clock
        self.until = float("-inf")
        self.refused = 0

    def start(self, seconds: float) -> None:
        self.until = self.clock.monotonic() + seconds

    async def place_order(self, request: OrderRequest) -> Outcome:
        if self.clock.monotonic() < self.until:
            self.refused += 1
            raise RateLimitedError("429 Too Many Requests", retry_after=1.0, sent=False)
        outcome: Outcome = await self.inner.place_order(request)
        return outcome


@dataclass
class World:
    clock: VirtualClock
    sim: SimBroker
    broker: Broker
    journal: Journal
    manager: OrderManager
    managers: list[OrderManager] = field(default_factory=list)

    @property
    def ex(self) -> SimExchange:
        return self.sim.exchange

    def price(self, value: str) -> None:
        self.ex.set_price(MNQ, D(value))

    def position(self) -> int:
        return self.ex.position_size(1, MNQ)

    def working(self, kind: OrderType | None = None) -> list[Order]:
        return [
            o
            for o in self.ex.orders(1)
            if o.status in (OrderStatus.OPEN, OrderStatus.SUSPENDED)
            and o.contract_id == MNQ
            and (kind is None or o.type is kind)
        ]

    def stop_cover(self) -> int:
        """Contracts of working (Open) reduce-side stops."""
        pos = self.position()
        return sum(
            o.size - o.fill_volume
            for o in self.working(OrderType.STOP)
            if o.status is OrderStatus.OPEN and pos and o.side.sign != (1 if pos > 0 else -1)
        )

    def target_cover(self) -> int:
        pos = self.position()
        return sum(
            o.size - o.fill_volume
            for o in self.working(OrderType.LIMIT)
            if o.status is OrderStatus.OPEN and pos and o.side.sign != (1 if pos > 0 else -1)
        )

    async def run(self, aw: Any, seconds: float = 300.0) -> Any:
        return await self.clock.run(aw, max_seconds=seconds)

    async def settle(self, seconds: float = 0.0) -> None:
        await self.clock.advance(seconds)

    async def restart(self, *, config: OrderManagerConfig | None = None) -> OrderManager:
        """The process dies like ``kill -9`` and a new one starts on the same journal."""
        kill(self.manager)
        self.manager = OrderManager(
            self.broker, clock=self.clock, journal=self.journal, rng=random.Random(99),
            config=config,
        )  # fmt: skip
        self.managers.append(self.manager)
        await self.run(self.manager.start())
        return self.manager

    async def close(self) -> None:
        for manager in self.managers:
            if manager.started:
                await manager.cleanup()


async def make_world(
    *,
    native: bool = False,
    wrap: Callable[[SimBroker, VirtualClock], Broker] | None = None,
    journal: Journal | None = None,
    config: OrderManagerConfig | None = None,
    latency: LatencyModel = LATENCY,
    rules: ExchangeRules | None = None,
    liquidity: int | None = None,
) -> World:
    clock = VirtualClock()
    sim = SimBroker.create(
        clock,
        prices={MNQ: D("21000")},
        native_brackets=native,
        latency=latency,
        rules=rules,
        liquidity=liquidity,
    )
    broker: Broker = sim if wrap is None else wrap(sim, clock)
    journal = journal if journal is not None else MemoryJournal(clock)
    manager = OrderManager(
        broker, clock=clock, journal=journal, rng=random.Random(3), config=config
    )
    world = World(clock, sim, broker, journal, manager, [manager])
    await world.run(manager.start())
    return world


async def market_bracket(world: World, size: int, *, native: bool | None = None) -> Any:
    return await world.run(
        world.manager.place_bracket_order(
            MNQ, BUY, size, None, D("20990"), D("21010"), entry_type="market", native=native
        )
    )


__all__ = [
    "BUY",
    "DEADLINE",
    "INTERVAL",
    "LATENCY",
    "MNQ",
    "SELL",
    "D",
    "Passthrough",
    "PlacementStorm",
    "World",
    "kill",
    "make_world",
    "market_bracket",
]
