"""Shared setup for bracket and OCO tests: a sim exchange, optional faults, a started manager.

Assertions read the exchange's truth (``ex.positions``, ``ex.orders``, ``ex.open_orders``), not
the manager's bookkeeping.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from orderguard.broker.base import Broker
from orderguard.broker.faults import FaultPlan, FaultyBroker
from orderguard.broker.sim import LatencyModel, SimBroker, SimExchange
from orderguard.clock import VirtualClock
from orderguard.config import OrderManagerConfig
from orderguard.journal.base import Journal
from orderguard.models import Order, OrderSide, OrderStatus, OrderType
from orderguard.orders import OrderManager
from orderguard.orders.bracket.values import BracketSettings

MNQ = "CON.F.US.MNQ.Z26"
D = Decimal
BUY, SELL = OrderSide.BUY, OrderSide.SELL


@dataclass
class Rig:
    clock: VirtualClock
    sim: SimBroker
    broker: Broker
    manager: OrderManager

    @property
    def ex(self) -> SimExchange:
        return self.sim.exchange

    @property
    def faulty(self) -> FaultyBroker:
        assert isinstance(self.broker, FaultyBroker)
        return self.broker

    def price(self, value: str) -> None:
        self.ex.set_price(MNQ, D(value))

    def position(self) -> int:
        return self.ex.position_size(1, MNQ)

    def working(self, kind: OrderType | None = None) -> list[Order]:
        """Working orders at the exchange (Open or Suspended), optionally of one type."""
        return [
            o
            for o in self.ex.orders(1)
            if o.status in (OrderStatus.OPEN, OrderStatus.SUSPENDED)
            and (kind is None or o.type is kind)
        ]

    def stops(self) -> list[Order]:
        return [o for o in self.working(OrderType.STOP) if o.status is OrderStatus.OPEN]

    async def run(self, aw: Any, seconds: float = 120.0) -> Any:
        return await self.clock.run(aw, max_seconds=seconds)

    async def settle(self, seconds: float = 0.0) -> None:
        await self.clock.advance(seconds)


async def make_rig(
    *,
    native: bool = False,
    liquidity: int | None = None,
    latency: LatencyModel | None = None,
    plan: FaultPlan | None = None,
    wrap: Callable[[SimBroker], Broker] | None = None,
    settings: BracketSettings | None = None,
    journal: Journal | None = None,
    sim: SimBroker | None = None,
    clock: VirtualClock | None = None,
    seed: int = 3,
    config: OrderManagerConfig | None = None,
) -> Rig:
    clock = clock or VirtualClock()
    if sim is None:
        sim = SimBroker.create(
            clock,
            prices={MNQ: D("21000")},
            native_brackets=native,
            latency=latency,
            liquidity=liquidity,
        )
    broker: Broker = sim
    if plan is not None:
        broker = FaultyBroker(sim, clock, plan, seed=seed)
    elif wrap is not None:
        broker = wrap(sim)
    manager = OrderManager(
        broker,
        clock=clock,
        rng=random.Random(seed),
        journal=journal,
        config=config,
        bracket_settings=settings,
    )
    await clock.run(manager.start())
    return Rig(clock, sim, broker, manager)


__all__ = ["BUY", "MNQ", "SELL", "D", "Rig", "make_rig"]
