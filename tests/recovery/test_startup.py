"""Start-up recovery after a crash at each reachable step; the exchange ends safe and truthful."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal

from orderguard.chaos.workload import Step, StepKind
from orderguard.models import OrderRequest, OrderSide, OrderStatus, OrderType
from orderguard.orders import OrderManager
from orderguard.recovery.operations import OperationState, OperationType
from orderguard.recovery.startup import (
    RecoveryReport,
    ResumeContext,
    Resumer,
    resumer_for,
)
from orderguard.testing.builders import operation

from .startup_world import MNQ, World, die_during

ENTRY = Step(0, StepKind.PROTECTED_ENTRY, size=2, ticks=20)


async def crash_then_recover(
    world: World,
    crash: dict[str, object],
    work: Callable[[OrderManager], Awaitable[object]],
    resumers: Mapping[str, Resumer] | None = None,
) -> RecoveryReport:
    """Run ``work`` in a process that dies at ``crash``; recover in a new one."""

    async def scenario() -> RecoveryReport:
        doomed, scope = world.process(**crash)  # type: ignore[arg-type]
        await doomed.start()
        # The crash point may be reached by the call itself or by background work it started
        # (a rollback runs in the protection executor's task).
        await die_during(world, scope, doomed, work(doomed), steps=600)
        survivor, _ = world.process(resumers=resumers)
        await survivor.start()  # runs start-up recovery before it accepts anything
        report = survivor.last_recovery
        assert report is not None
        await survivor.cleanup()
        return report

    return await world.clock.run(scenario())


def entry(manager: OrderManager, world: World) -> Awaitable[object]:
    return world.actor(manager).perform(ENTRY)


async def test_crash_before_the_entry_is_acknowledged_rolls_back_the_fill() -> None:
    """The entry executed but its answer died with the process: recovery flattens it."""
    world = World()
    report = await crash_then_recover(
        world, {"crash_on": "place_order", "crash_at": 1, "crash_after": True},
        lambda m: entry(m, world),
    )  # fmt: skip
    assert report.ok and [o.state_after for o in report.operations] == ["rolled_back"]
    assert world.exchange.positions(1) == [] and world.exchange.open_orders(1) == []
    assert await world.violations() == []


async def test_crash_before_the_entry_is_sent_leaves_nothing() -> None:
    """An entry that never left is resolved as absent; nothing is sent by recovery."""
    world = World()
    report = await crash_then_recover(
        world, {"crash_on": "place_order", "crash_at": 1}, lambda m: entry(m, world)
    )
    assert report.ok and world.exchange.orders(1) == []
    assert await world.violations() == []


async def test_crash_after_the_fill_before_protection_flattens() -> None:
    """Filled, stop not yet sent: the naked position is flattened exactly."""
    world = World()
    report = await crash_then_recover(
        world, {"crash_on": "place_order", "crash_at": 2}, lambda m: entry(m, world)
    )
    assert report.ok
    flattens = [o for o in world.exchange.orders(1) if "flatten" in (o.custom_tag or "")]
    assert [(f.side, f.size) for f in flattens] == [(OrderSide.SELL, 2)]
    assert world.exchange.positions(1) == []
    assert await world.violations() == []


async def test_crash_after_the_stop_executed_cancels_it_and_flattens() -> None:
    """The stop's answer was lost: recovery finds it by tag, cancels it, flattens the entry."""
    world = World()
    report = await crash_then_recover(
        world, {"crash_on": "place_order", "crash_at": 2, "crash_after": True},
        lambda m: entry(m, world),
    )  # fmt: skip
    assert report.ok
    stop = next(o for o in world.exchange.orders(1) if o.type is OrderType.STOP)
    assert stop.status is OrderStatus.CANCELLED
    assert world.exchange.positions(1) == []
    assert await world.violations() == []


async def test_crash_between_intent_and_record_adopts_the_journaled_leg() -> None:
    """The stop's intent was durable but the operation never listed it: it is adopted."""
    world = World()
    report = await crash_then_recover(
        world, {"crash_on": "journal.record_intent", "crash_at": 2, "crash_after": True},
        lambda m: entry(m, world),
    )  # fmt: skip
    assert report.ok
    # Adopted, and (its request being possibly still in flight) left in doubt until the grace.
    assert any(a.startswith("stop in doubt") for a in report.operations[0].actions)
    assert world.exchange.positions(1) == []
    assert await world.violations() == []


async def test_crash_mid_flatten_never_flattens_twice() -> None:
    """A close died after its flatten executed: recovery finds it and sends no second one."""
    world = World()

    async def protected() -> str:
        manager, _ = world.process()
        await manager.start()
        await world.actor(manager).perform(ENTRY)
        (op_id,) = [o.operation_id for o in await world.operations()]
        await manager.cleanup()
        return op_id

    op_id = await world.clock.run(protected())
    report = await crash_then_recover(
        world, {"crash_on": "place_order", "crash_at": 1, "crash_after": True},
        lambda m: m.force_rollback_operation(op_id),
    )  # fmt: skip
    assert report.ok and report.operations[0].state_after == "rolled_back"
    flattens = [o for o in world.exchange.orders(1) if "flatten" in (o.custom_tag or "")]
    assert len(flattens) == 1
    assert world.exchange.positions(1) == [] and world.exchange.open_orders(1) == []
    assert await world.violations() == []


async def test_crash_during_an_oco_sibling_cancel_finishes_the_cancel() -> None:
    """The target filled and the process died cancelling the stop: recovery cancels it."""
    world = World()

    async def oco(manager: OrderManager) -> None:
        await manager.place_market_order(MNQ, OrderSide.BUY, 1)
        rec = manager.recovery
        op = await rec.start_operation(OperationType.OCO_PAIR, account_id=1, contract_id=MNQ)
        legs = {
            "stop": (OrderType.STOP, {"stop_price": Decimal("20990.00")}),
            "target": (OrderType.LIMIT, {"limit_price": Decimal("20999.00")}),  # marketable
        }
        refs = {}
        for leg, (kind, price) in legs.items():
            refs[leg] = await rec.add_order_to_operation(
                op, MNQ, OrderSide.SELL, 1, leg, leg=leg, account_id=1
            )
            request = OrderRequest(
                1, MNQ, kind, OrderSide.SELL, 1, custom_tag=refs[leg].custom_tag, **price
            )
            await rec.record_order_success(op, refs[leg], await manager.submit(request))
        await rec.add_oco_pair(op, refs["stop"], refs["target"])
        stop_id = refs["stop"].order_id
        assert stop_id is not None
        await manager.cancel_order(stop_id)  # the sibling cancel the process dies in

    report = await crash_then_recover(world, {"crash_on": "cancel_order", "crash_at": 1}, oco)
    assert report.ok and report.operations[0].resumer == "settle"
    stop = next(o for o in world.exchange.orders(1) if o.type is OrderType.STOP)
    assert stop.status is OrderStatus.CANCELLED
    assert world.exchange.positions(1) == []
    assert [v for v in await world.violations(strict=False) if v.invariant in ("I2", "I4")] == []


async def test_a_given_resumer_handles_its_operation_type() -> None:
    """A resumer given to the manager for a type takes that type's operations (over the
    bracket engine's own)."""
    seen: list[bool] = []

    async def resume(ctx: ResumeContext) -> None:
        seen.append(ctx.plan.pivot_passed)
        await ctx.roll_back("test resumer")

    world = World()

    async def bare_bracket(manager: OrderManager) -> None:
        rec = manager.recovery
        op = await rec.start_operation(OperationType.BRACKET_ORDER, account_id=1)
        await rec.add_order_to_operation(op, MNQ, OrderSide.BUY, 1, "market", account_id=1)
        await manager.cancel_order(1)  # dies here: the entry never left

    report = await crash_then_recover(
        world,
        {"crash_on": "cancel_order", "crash_at": 1},
        bare_bracket,
        resumers={OperationType.BRACKET_ORDER.value: resume},
    )
    assert seen == [False] and report.operations[0].resumer == "bracket_order"


def test_without_resumers_the_default_handles_brackets() -> None:
    """Nothing is registered process-wide: without a given resumer a bracket rolls back."""
    op = operation("op1", state=OperationState.IN_PROGRESS)
    assert resumer_for(op)[0] == "rollback"


def test_an_operation_can_name_its_resumer() -> None:
    """``extra["resumer"]`` wins over the type's registration."""

    async def resume(ctx: ResumeContext) -> None:
        return None

    op = operation("op1", state=OperationState.IN_PROGRESS)
    op.extra["resumer"] = "settle"
    assert resumer_for(op, {OperationType.BRACKET_ORDER.value: resume})[0] == "settle"
