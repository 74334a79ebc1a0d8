"""Shared fixtures: a simulated exchange on a virtual clock, and a started OrderManager over it."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from orderguard.broker.sim import LatencyModel, SimBroker, SimExchange, default_contracts
from orderguard.clock import VirtualClock
from orderguard.config import OrderManagerConfig
from orderguard.orders import OrderManager

from .fakes import DelegatingBroker

MNQ = "CON.F.US.MNQ.Z26"
MES = "CON.F.US.MES.Z26"  # no price set: the market is unknown
ES = "CON.F.US.EP.Z26"


@dataclass
class Harness:
    clock: VirtualClock
    exchange: SimExchange
    sim: SimBroker
    broker: DelegatingBroker
    manager: OrderManager

    def snapshot(self) -> list[Any]:
        """Everything a test asserts is unchanged when nothing may be sent."""
        return [self.exchange.orders(1), list(self.broker.calls)]

    async def settle(self) -> None:
        """Deliver pending events (they come from the loop, never inside the awaited call)."""
        await self.clock.advance(0)


def make_sim() -> tuple[VirtualClock, SimExchange, SimBroker]:
    clock = VirtualClock()
    exchange = SimExchange(clock, contracts=default_contracts(), liquidity=None)
    exchange.open_account(
        account_id=1, name="SIM-1", balance=Decimal("50000"), native_brackets=True,
        max_order_size=50,
    )  # fmt: skip
    exchange.set_price(MNQ, Decimal("21000.00"))
    exchange.set_price(ES, Decimal("6000.00"))
    broker = SimBroker(exchange, clock, latency=LatencyModel(request=0.0, response=0.0, event=0.0))
    return clock, exchange, broker


HarnessFactory = Callable[..., Any]


@pytest.fixture
async def make_harness() -> AsyncIterator[HarnessFactory]:
    """Build a harness with an optional wrapper class and config; cleans every manager up."""
    managers: list[OrderManager] = []

    async def build(
        wrapper: Callable[[SimBroker], DelegatingBroker] = DelegatingBroker,
        config: OrderManagerConfig | None = None,
        seed: int = 7,
    ) -> Harness:
        clock, exchange, sim = make_sim()
        broker = wrapper(sim)
        manager = OrderManager(broker, clock=clock, config=config, rng=random.Random(seed))
        await manager.start()
        managers.append(manager)
        return Harness(clock, exchange, sim, broker, manager)

    yield build
    for manager in managers:
        await manager.cleanup()


@pytest.fixture
async def h(make_harness: HarnessFactory) -> Harness:
    """The default harness: a started manager over a recording SimBroker."""
    harness: Harness = await make_harness()
    return harness
