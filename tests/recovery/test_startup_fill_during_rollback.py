"""Start-up rollback when a cancel loses to a fill: the fill is owned too, and is flattened."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from orderguard.broker.base import Outcome
from orderguard.models import OrderRequest, OrderSide, OrderType
from orderguard.recovery.operations import OperationType

from .startup_world import MNQ, PRICE, World

LIMIT = PRICE - Decimal("5.00")


class FillsBeforeCancel:
    """The market trades through the resting entry just before recovery's cancel arrives."""

    def __init__(self, inner: Any, world: World) -> None:
        self._inner = inner
        self._world = world

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def cancel_order(self, account_id: int, order_id: int) -> Outcome:
        self._world.exchange.set_price(MNQ, LIMIT - Decimal("1.00"))
        outcome: Outcome = await self._inner.cancel_order(account_id, order_id)
        return outcome


async def test_an_entry_filling_while_rollback_cancels_it_is_flattened() -> None:
    world = World()

    async def resting_entry() -> None:
        manager, _ = world.process()
        await manager.start()
        rec = manager.recovery
        op = await rec.start_operation(OperationType.BRACKET_ORDER, account_id=1, contract_id=MNQ)
        op.extra["resumer"] = "rollback"  # this test is about the roll-back path itself
        ref = await rec.add_order_to_operation(
            op, MNQ, OrderSide.BUY, 2, "limit", LIMIT, leg="entry", account_id=1
        )
        request = OrderRequest(
            1, MNQ, OrderType.LIMIT, OrderSide.BUY, 2, limit_price=LIMIT, custom_tag=ref.custom_tag
        )
        await rec.record_order_success(op, ref, await manager.submit(request))
        await manager.cleanup()  # the process ends with the operation unfinished

    await world.clock.run(resting_entry())
    assert world.exchange.positions(1) == []  # the snapshot recovery reads: nothing filled yet

    async def restart() -> Any:
        survivor, _ = world.process(wrap=lambda broker: FillsBeforeCancel(broker, world))
        await survivor.start()  # start-up recovery runs inside start()
        report = survivor.last_recovery
        await survivor.cleanup()
        return report

    report = await world.clock.run(restart())
    (op,) = report.operations
    assert op.state_after == "rolled_back", op.actions
    entry = [o for o in world.exchange.orders(1) if "-entry" in (o.custom_tag or "")]
    assert [o.status.name for o in entry] == ["FILLED"]  # the cancel lost to the fill
    flattens = [o for o in world.exchange.orders(1) if "flatten" in (o.custom_tag or "")]
    assert [(f.side, f.size) for f in flattens] == [(OrderSide.SELL, 2)]
    assert world.exchange.positions(1) == []
    assert await world.violations() == []
