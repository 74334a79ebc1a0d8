"""Start-up recovery reads the broker per account, never per operation."""

from __future__ import annotations

from collections import Counter

from orderguard.models import OrderSide
from orderguard.recovery.operations import OperationType
from orderguard.recovery.startup import RecoveryReport
from orderguard.testing.counting import CountingBroker

from .startup_world import MNQ, World, bury


async def calls_to_recover(operations: int) -> tuple[Counter[str], RecoveryReport]:
    """Leave ``operations`` unfinished brackets (intents journaled, nothing sent); recover."""
    world = World()

    async def scenario() -> tuple[Counter[str], RecoveryReport]:
        dead, _ = world.process()
        await dead.start()
        for _ in range(operations):
            op = await dead.recovery.start_operation(OperationType.BRACKET_ORDER, account_id=1)
            await dead.recovery.add_order_to_operation(
                op, MNQ, OrderSide.BUY, 1, "market", leg="entry", account_id=1
            )
        bury(dead)
        survivor, _ = world.process(wrap=CountingBroker)
        await survivor.start()  # start-up recovery runs inside start()
        counting = world.wrapped
        assert isinstance(counting, CountingBroker)
        report = survivor.last_recovery
        assert report is not None
        reads = ("search_orders", "search_positions")
        calls = Counter({k: n for k, n in counting.calls.items() if k in reads})
        await survivor.cleanup()
        return calls, report

    return await world.clock.run(scenario())


async def test_broker_calls_do_not_grow_with_the_number_of_operations() -> None:
    """Two or forty unfinished operations cost the same three truth reads (orders on both sides
    of the position read, which prove no fill fell between them); the rollbacks that follow
    (the protection executor's passes) read per account too, never per operation."""
    few, few_report = await calls_to_recover(2)
    many, many_report = await calls_to_recover(40)
    assert few_report.queries == many_report.queries == 3
    assert few == many
    assert len(many_report.operations) == 40 and many_report.ok
