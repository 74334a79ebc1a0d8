"""A started manager on the embedded exchange and a virtual clock, for the operator tests."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from orderguard.broker.base import Broker
from orderguard.broker.sim import SimBroker
from orderguard.clock import VirtualClock
from orderguard.journal.base import Journal
from orderguard.models import Order, OrderSide, OrderStatus, OrderType
from orderguard.orders import OrderManager
from orderguard.orders.bracket.values import BracketSettings

MNQ = "CON.F.US.MNQ.Z26"
D = Decimal
BUY = OrderSide.BUY


@dataclass
class Rig:
    clock: VirtualClock
    sim: SimBroker
    manager: OrderManager

    def position(self) -> int:
        return self.sim.exchange.position_size(1, MNQ)

    def stops(self) -> list[Order]:
        return [
            o
            for o in self.sim.exchange.orders(1)
            if o.status is OrderStatus.OPEN and o.type is OrderType.STOP
        ]

    async def run(self, aw: Any, seconds: float = 120.0) -> Any:
        return await self.clock.run(aw, max_seconds=seconds)


async def make_rig(
    *,
    wrap: Callable[[SimBroker, VirtualClock], Broker] | None = None,
    settings: BracketSettings | None = None,
    journal: Callable[[VirtualClock], Journal] | None = None,
) -> Rig:
    clock = VirtualClock()
    sim = SimBroker.create(clock, prices={MNQ: D("21000")}, native_brackets=False)
    broker: Broker = sim if wrap is None else wrap(sim, clock)
    manager = OrderManager(
        broker,
        clock=clock,
        rng=random.Random(3),
        journal=None if journal is None else journal(clock),
    )
    await clock.run(manager.start())
    if settings is not None:
        manager.brackets.settings = settings
    return Rig(clock, sim, manager)


async def market_bracket(rig: Rig, size: int = 1) -> Any:
    return await rig.run(
        rig.manager.place_bracket_order(
            MNQ, BUY, size, None, D("20990"), D("21010"), entry_type="market"
        )
    )
