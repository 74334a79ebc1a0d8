"""orderguard.testing.kill: a crash as ``kill -9`` makes one, for users' own crash tests."""

from __future__ import annotations

import random
from decimal import Decimal

from orderguard import OrderManager, OrderSide, OrderStatus
from orderguard.testing import MemoryJournal, SimBroker, VirtualClock, kill

MNQ = "CON.F.US.MNQ.Z26"
PRICE = Decimal("21000.00")


async def test_a_killed_manager_does_nothing_more_and_the_next_one_recovers_its_work() -> None:
    clock = VirtualClock()
    sim = SimBroker.create(clock, prices={MNQ: PRICE})
    journal = MemoryJournal(clock)
    first = OrderManager(sim, clock=clock, journal=journal, rng=random.Random(1))
    await clock.run(first.start())
    # A client-side bracket whose entry rests below the market: its saga is a task of this process.
    bracket = await clock.run(
        first.place_bracket_order(
            MNQ, OrderSide.BUY, 1, PRICE - 10, PRICE - 20, PRICE + 10, "limit", native=False
        )
    )
    await clock.advance(0)
    assert first.subscribed and first.background_tasks > 0

    kill(first)
    kill(first)  # idempotent
    await clock.advance(0)
    assert not first.subscribed
    written = [op.updated_at for op in await journal.operations()]

    # The entry fills while nobody is alive: the dead process neither hears of it nor writes.
    sim.exchange.set_price(MNQ, PRICE - 12)
    await clock.advance(5)
    entry = sim.exchange.order(1, bracket.entry_order_id or 0)
    assert entry is not None and entry.status is OrderStatus.FILLED
    assert [op.updated_at for op in await journal.operations()] == written
    assert not [o for o in sim.exchange.orders(1) if o.is_working]  # no exit was placed

    # The next process, on the same journal and broker, finds the filled bracket and protects it.
    second = OrderManager(sim, clock=clock, journal=journal, rng=random.Random(2))
    await clock.run(second.start())
    report = second.last_recovery
    assert report is not None
    assert bracket.operation_id in [op.operation_id for op in report.operations]
    protected = await clock.run(second.wait_for_protection(bracket.operation_id, 10.0))
    assert protected.protected_size == 1
    await second.cleanup()
