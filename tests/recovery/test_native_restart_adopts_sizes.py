"""A restarted native bracket confirms its working children from broker truth (chaos seed 5995).

The process died right after journaling the native stop child's intent and before saving the
operation: recovery adopted that orphan intent as leg ``stop0`` — with the size, side and type
the intent did not record (0, BUY, ""), and without the operation's ``native_legs`` note. The
restarted saga took that journal size for the stop's cover: it believed a protected position
naked, "resized" the working stop to the size it already had, and when that modify was slow
(faults) the protection deadline, counted from the restart, sent it flat — under a stop and
target that had protected the fill all along. The flatten's exits then outlived the position
(I2). (For a long bracket the 0 = BUY side did not even match its SELL child: the leg was
journaled "absent" while the child worked.) A client-side leg resized before a crash had the
same trap: the journal keeps the size it was placed at.

Now a restarted saga takes its live legs' sizes (and native-ness) from the broker's orders it
reads before its first plan, and every intent records what the order is.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from orderguard.broker.base import Broker, Outcome
from orderguard.broker.sim import SimBroker
from orderguard.clock import VirtualClock
from orderguard.models import OrderSide, OrderStatus, OrderType
from orderguard.orders.bracket.values import BracketOutcome

from .startup_world import MNQ, PRICE, World, bury, die_during

PRICES = {  # side -> (stop, target)
    OrderSide.SELL: (PRICE + Decimal(10), PRICE - Decimal(10)),  # the seed's short
    OrderSide.BUY: (PRICE - Decimal(10), PRICE + Decimal(10)),
}
SLOW_MODIFY = 4.0  # seconds per modify: past the flatten point (2.5 s by default)


class SlowModify:
    """The survivor's broker: every modify takes ``SLOW_MODIFY`` (a delayed request)."""

    def __init__(self, inner: Broker, clock: VirtualClock) -> None:
        self._inner = inner
        self._clock = clock
        self.modifies = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    async def modify_order(self, account_id: int, order_id: int, **changes: Any) -> Outcome:
        self.modifies += 1
        await self._clock.sleep(SLOW_MODIFY)
        return await self._inner.modify_order(account_id, order_id, **changes)


@pytest.mark.parametrize("side", [OrderSide.SELL, OrderSide.BUY], ids=["short", "long"])
async def test_a_restarted_native_bracket_keeps_its_working_children(side: OrderSide) -> None:
    world = World()
    stop, target = PRICES[side]

    async def scenario() -> None:
        # Intents: the entry (1), then the stop child's (2); the process dies right after the
        # second is durable, before the operation that lists it is saved.
        doomed, scope = world.process(
            crash_on="journal.record_intent", crash_at=2, crash_after=True
        )
        await doomed.start()
        await die_during(
            world,
            scope,
            doomed,
            doomed.place_bracket_order(
                MNQ, side, 1, None, stop, target, entry_type="market", native=True
            ),
            steps=200,
        )
        assert world.exchange.position_size(1, MNQ) == side.sign
        children = [o for o in world.exchange.orders(1) if o.parent_order_id is not None]
        assert {o.status for o in children} == {OrderStatus.OPEN} and len(children) == 2

        survivor, _ = world.process(wrap=lambda inner: SlowModify(inner, world.clock))
        broker = world.wrapped
        assert isinstance(broker, SlowModify)
        await survivor.start()
        report = survivor.last_recovery
        assert report is not None and report.ok, report and report.as_dict()
        (op,) = await world.operations()
        stop_leg = op.orders["stop0"]
        assert stop_leg.order_id is not None
        # What the intent recorded (it used to record only the parent id): found by side.
        assert (stop_leg.size, stop_leg.side, stop_leg.order_type) == (
            1,
            int(side.opposite),
            "stop",
        )

        await world.clock.sleep(15.0)  # well past the flatten point, counted from the restart
        flattens = [o for o in world.exchange.orders(1) if "-flatten" in (o.custom_tag or "")]
        assert flattens == []
        assert broker.modifies == 0  # the stop already had the owned size: nothing to resize
        assert world.exchange.position_size(1, MNQ) == side.sign
        working = [o for o in world.exchange.orders(1) if o.status is OrderStatus.OPEN]
        assert sorted((o.type, o.size) for o in working) == [
            (OrderType.LIMIT, 1),
            (OrderType.STOP, 1),
        ]
        assert all(o.parent_order_id is not None for o in working)  # no client-side leg
        status = survivor.get_bracket_status(op.operation_id)
        assert status is not None and status.outcome is BracketOutcome.PROTECTED
        assert await world.violations() == []
        await survivor.cleanup()

    await world.clock.run(scenario())


async def test_a_restarted_bracket_takes_a_resized_stop_at_its_broker_size() -> None:
    """The same trap without native legs: the stop grew with a second partial fill (1 -> 2),
    the process died after the resize, and the journal still says 1 (a resize changes the
    order, not the leg's record). The restarted saga must read the stop's cover from the
    broker, not "resize" it to the size it already has and go flat while that modify waits."""
    world = World()
    world.sim = SimBroker.create(world.clock, prices={MNQ: PRICE}, liquidity=1)
    entry = PRICE - Decimal(5)

    async def scenario() -> None:
        # Modifies: the stop's, then the target's resize to 2; death right after the second.
        doomed, scope = world.process(crash_on="modify_order", crash_at=2, crash_after=True)
        await doomed.start()
        await doomed.place_bracket_order(
            MNQ, OrderSide.BUY, 2, entry, PRICE - 15, PRICE + 10, entry_type="limit", native=False
        )
        world.exchange.set_price(MNQ, entry - Decimal("0.25"))  # one contract per run
        await world.clock.sleep(2.0)
        world.exchange.set_price(MNQ, entry - Decimal("0.50"))  # the second
        for _ in range(200):
            if not scope.alive:
                break
            await world.clock.sleep(0.05)
        assert not scope.alive, "the crash point was never reached"
        bury(doomed)
        assert world.exchange.position_size(1, MNQ) == 2
        stops = [o for o in world.exchange.open_orders(1) if o.type is OrderType.STOP]
        assert [o.size for o in stops] == [2]
        (op,) = [o for o in await world.operations() if o.orders.get("stop0")]
        assert op.orders["stop0"].size == 1  # the journal's size: the one placed

        survivor, _ = world.process(wrap=lambda inner: SlowModify(inner, world.clock))
        broker = world.wrapped
        assert isinstance(broker, SlowModify)
        await survivor.start()
        await world.clock.sleep(15.0)
        flattens = [o for o in world.exchange.orders(1) if "-flatten" in (o.custom_tag or "")]
        assert flattens == []
        assert broker.modifies == 0
        assert world.exchange.position_size(1, MNQ) == 2
        working = world.exchange.open_orders(1)
        assert sorted((o.type, o.size) for o in working) == [
            (OrderType.LIMIT, 2),
            (OrderType.STOP, 2),
        ]
        status = survivor.get_bracket_status(op.operation_id)
        assert status is not None and status.outcome is BracketOutcome.PROTECTED
        assert await world.violations() == []
        await survivor.cleanup()

    await world.clock.run(scenario())
