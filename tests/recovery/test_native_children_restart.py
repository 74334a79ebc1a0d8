"""A native bracket whose children were never journaled: recovery adopts them as legs (seed 1880).

The process dies before it records the entry's outcome, so the exchange-made children (no tag)
are unknown to the journal; the stop child fills while no process runs. Recovery used to credit
that fill to ``closed_externally`` and the restarted saga, adopting the same child by parent id,
counted it again: it believed it owned the opposite side and "flattened" a flat position into a
new one (and the invariants, reading legs, saw ownership the account did not hold).
"""

from __future__ import annotations

from decimal import Decimal

from orderguard.models import OrderSide, OrderType

from .startup_world import MNQ, PRICE, World, die_during

STOP, TARGET = PRICE - Decimal(10), PRICE + Decimal(10)


async def test_a_native_child_filled_while_down_is_counted_once() -> None:
    world = World()

    async def scenario() -> None:
        doomed, scope = world.process(crash_on="journal.record_outcome", crash_at=1)
        await doomed.start()
        await die_during(
            world,
            scope,
            doomed,
            doomed.place_bracket_order(
                MNQ, OrderSide.BUY, 2, None, STOP, TARGET, entry_type="market", native=True
            ),
            steps=200,
        )
        assert world.exchange.position_size(1, MNQ) == 2
        world.exchange.set_price(MNQ, STOP - Decimal(5))  # the stop child fills: flat
        assert world.exchange.position_size(1, MNQ) == 0

        survivor, _ = world.process()
        await survivor.start()
        report = survivor.last_recovery
        assert report is not None and report.ok, report and report.as_dict()
        (op,) = await world.operations()
        legs = {ref.leg: ref for ref in op.orders.values()}
        assert any(leg.startswith("stop") and ref.filled_size == 2 for leg, ref in legs.items())
        assert op.net_filled == 0
        assert await world.violations() == []  # at once, not only after the saga acted
        await world.clock.sleep(15.0)  # the restarted saga finishes
        assert world.exchange.position_size(1, MNQ) == 0
        flattens = [o for o in world.exchange.orders(1) if o.type is OrderType.MARKET]
        assert len(flattens) == 1, flattens  # the entry only: nothing "flattened" a flat account
        assert await world.violations() == []
        await survivor.cleanup()

    await world.clock.run(scenario())
