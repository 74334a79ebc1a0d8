"""A simulated exchange and journal that outlive the processes started on them (crash tests)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from orderguard.broker.base import Broker
from orderguard.broker.sim import SimBroker
from orderguard.chaos.invariants import BrokerTruth, Violation, check_all
from orderguard.chaos.process import ProcessKilled, ProcessScope, ScopedBroker, scoped_journal
from orderguard.chaos.workload import POSITION_CONTRACT, WorkloadActor, WorkloadState
from orderguard.clock import VirtualClock
from orderguard.journal.memory import MemoryJournal
from orderguard.orders import OrderManager
from orderguard.recovery.manager import RecoveryOperation
from orderguard.recovery.startup import Resumer
from orderguard.testing import kill

MNQ = POSITION_CONTRACT
PRICE = Decimal("21000.00")


@dataclass
class World:
    clock: VirtualClock = field(default_factory=VirtualClock)
    journal: MemoryJournal = field(init=False)
    sim: SimBroker = field(init=False)
    generation: int = 0
    wrapped: object = None  # the last ``wrap(broker)`` made by ``process``

    def __post_init__(self) -> None:
        self.journal = MemoryJournal(self.clock)
        self.sim = SimBroker.create(self.clock, prices={MNQ: PRICE})

    @property
    def exchange(self):  # type: ignore[no-untyped-def]
        return self.sim.exchange

    def process(
        self,
        *,
        crash_on: str | None = None,
        crash_at: int | None = None,
        crash_after: bool = False,
        wrap: type | None = None,
        resumers: Mapping[str, Resumer] | None = None,
    ) -> tuple[OrderManager, ProcessScope]:
        """A new process (an OrderManager) on the surviving exchange and journal."""
        self.generation += 1
        scope = ProcessScope(
            f"proc{self.generation}", crash_at=crash_at, crash_on=crash_on, crash_after=crash_after
        )
        broker: Broker = ScopedBroker(self.sim, scope)
        if wrap is not None:
            broker = self.wrapped = wrap(broker)
        manager = OrderManager(
            broker,
            clock=self.clock,
            journal=scoped_journal(self.journal, scope),
            rng=random.Random(self.generation),
            account_id=1,
            resumers=resumers,
        )
        return manager, scope

    def actor(self, manager: OrderManager) -> WorkloadActor:
        return WorkloadActor(
            manager, self.clock, lambda c: self.exchange.last_price(c) or PRICE, WorkloadState(), 1
        )

    async def operations(self) -> list[RecoveryOperation]:
        records = await self.journal.operations(limit=1000)
        return [RecoveryOperation.from_record(r) for r in reversed(records)]

    async def violations(self, *, strict: bool = True) -> list[Violation]:
        truth = BrokerTruth(tuple(self.exchange.orders(1)), tuple(self.exchange.positions(1)))
        return check_all(truth, await self.operations(), strict_ownership=strict)


def bury(manager: OrderManager) -> None:
    """What dies with a process: its background tasks and its subscription."""
    kill(manager)


async def die_during(
    world: World, scope: ProcessScope, doomed: OrderManager, work: Awaitable[object], steps: int
) -> None:
    """Run ``work`` on the doomed process until its crash point kills it (checked every 50 ms of
    virtual time, at most ``steps`` times), then bury the process and reap ``work``."""
    task = asyncio.ensure_future(work)
    for _ in range(steps):
        if not scope.alive or task.done():
            break
        await world.clock.sleep(0.05)
    assert not scope.alive, "the crash point was never reached"
    bury(doomed)
    task.cancel()
    with contextlib.suppress(ProcessKilled, asyncio.CancelledError, Exception):
        await task
