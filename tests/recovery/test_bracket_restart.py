"""Start-up recovery of brackets at each step of their life (F6), judged from the exchange.

A "crash" drops the manager without cleanup (its tasks die with it, requests already on the wire
still execute); a new manager starts on the same journal and exchange and runs start-up
recovery, whose bracket resumer rolls forward after the pivot (the bracket's own saga re-protects
exactly the owned quantity with the legs' tags) and back before it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from decimal import Decimal

from orderguard.models import Order, OrderSide, OrderStatus, OrderType
from orderguard.orders import OrderManager
from orderguard.recovery.startup import RecoveryReport

from .startup_world import MNQ, PRICE, World, die_during

STOP, TARGET = PRICE - Decimal(10), PRICE + Decimal(10)
Work = Callable[[OrderManager], Awaitable[object]]


def market_bracket(size: int = 2, *, native: bool = False) -> Work:
    def work(manager: OrderManager) -> Awaitable[object]:
        return manager.place_bracket_order(
            MNQ, OrderSide.BUY, size, None, STOP, TARGET, entry_type="market", native=native
        )

    return work


async def crash_then_restart(
    world: World, crash: dict[str, object], work: Work, *, after: Work | None = None
) -> tuple[OrderManager, RecoveryReport]:
    """Run ``work`` (then ``after``) in a process that dies at ``crash``; start a new one on
    the same journal and exchange, recover, and give its sagas time to act."""

    async def scenario() -> tuple[OrderManager, RecoveryReport]:
        doomed, scope = world.process(**crash)  # type: ignore[arg-type]
        await doomed.start()

        async def run() -> None:
            await work(doomed)
            if after is not None:
                await after(doomed)

        await die_during(world, scope, doomed, run(), steps=600)
        survivor, _ = world.process()
        await survivor.start()  # start-up recovery runs inside start()
        report = survivor.last_recovery
        assert report is not None
        await world.clock.sleep(10.0)  # the resumed sagas re-protect (or finish)
        return survivor, report

    return await world.clock.run(scenario())


def working(world: World, kind: OrderType | None = None) -> list[Order]:
    return [
        o
        for o in world.exchange.orders(1)
        if o.status in (OrderStatus.OPEN, OrderStatus.SUSPENDED)
        and (kind is None or o.type is kind)
    ]


def assert_protected_exactly(world: World, size: int) -> None:
    """I1/I3 from truth: the position is covered by working stops of exactly its size, the
    target matches, and no customTag was placed twice."""
    assert world.exchange.position_size(1, MNQ) == size
    assert sum(o.size - o.fill_volume for o in working(world, OrderType.STOP)) == size
    assert sum(o.size - o.fill_volume for o in working(world, OrderType.LIMIT)) == size
    tags = Counter(o.custom_tag for o in world.exchange.orders(1) if o.custom_tag)
    assert all(n == 1 for n in tags.values()), tags


def entries(world: World) -> list[Order]:
    return [o for o in world.exchange.orders(1) if "-entry" in (o.custom_tag or "")]


async def test_crash_before_the_entry_is_sent_leaves_nothing() -> None:
    """Before the pivot, nothing at the broker: rolled back (once the in-flight grace proved the
    entry's absence), nothing sent by recovery."""
    world = World()
    survivor, report = await crash_then_restart(
        world, {"crash_on": "place_order", "crash_at": 1}, market_bracket()
    )
    assert [o.state_after for o in report.operations] in (["rolled_back"], ["rolling_back"])
    op = survivor.recovery.get_operation(report.operations[0].operation_id)
    assert op is not None and op.state.value == "rolled_back"  # the 10 s after start()
    assert world.exchange.orders(1) == [] and world.exchange.positions(1) == []
    await survivor.cleanup()


async def test_crash_before_the_entry_ack_rolls_forward() -> None:
    """The entry filled but its answer died with the process: the restarted saga finds it by
    tag and protects it (it is not flattened, and not sent again)."""
    world = World()
    survivor, report = await crash_then_restart(
        world, {"crash_on": "place_order", "crash_at": 1, "crash_after": True}, market_bracket()
    )
    assert [o.resumer for o in report.operations] == ["bracket_order"]
    assert len(entries(world)) == 1
    assert_protected_exactly(world, 2)
    op_id = report.operations[0].operation_id
    status = survivor.get_bracket_status(op_id)
    assert status is not None and status.outcome.value == "protected"
    await survivor.cleanup()


async def test_crash_after_the_fill_before_protection_rolls_forward() -> None:
    """Filled, the stop never left: the stop and target go out at once under their journaled
    tags (absent at the broker, so sent again; a duplicate would have been refused)."""
    world = World()
    survivor, _ = await crash_then_restart(
        world, {"crash_on": "place_order", "crash_at": 2}, market_bracket()
    )
    assert_protected_exactly(world, 2)
    stops = [o.custom_tag for o in world.exchange.orders(1) if o.type is OrderType.STOP]
    assert len(stops) == 1 and stops[0] is not None and "-stop0-" in stops[0]
    await survivor.cleanup()


async def test_crash_between_the_two_legs_reuses_the_live_one() -> None:
    """The stop executed (its answer lost), the target not yet: the live stop is adopted by
    its tag, only the target is added; exactly one stop."""
    world = World()
    survivor, _ = await crash_then_restart(
        world, {"crash_on": "place_order", "crash_at": 2, "crash_after": True}, market_bracket()
    )
    assert_protected_exactly(world, 2)
    assert len([o for o in world.exchange.orders(1) if o.type is OrderType.STOP]) == 1
    await survivor.cleanup()


async def test_crash_mid_flatten_never_flattens_twice() -> None:
    """The bracket was being closed; the flatten executed and its answer died: recovery finds
    it by tag, cancels the exits, sends no second flatten."""
    world = World()

    async def close(manager: OrderManager) -> None:
        op_id = manager.brackets.active()[0]
        await manager.close_bracket(op_id)
        await manager.wait_for_completion(op_id)

    survivor, report = await crash_then_restart(
        world,
        {"crash_on": "place_order", "crash_at": 4, "crash_after": True},
        market_bracket(),
        after=close,
    )
    flattens = [o for o in world.exchange.orders(1) if "-flatten" in (o.custom_tag or "")]
    assert [(o.side, o.fill_volume) for o in flattens] == [(OrderSide.SELL, 2)]
    assert world.exchange.positions(1) == [] and working(world) == []
    assert [o.state_after for o in report.operations] == ["rolled_back"]
    await survivor.cleanup()


async def test_crash_during_the_sibling_cancel_finishes_it() -> None:
    """The stop filled and the process died cancelling the target: the restarted saga
    cancels it (no exit outlives its position) and completes the bracket."""
    world = World()

    async def stop_out(manager: OrderManager) -> None:
        world.exchange.set_price(MNQ, STOP - Decimal(1))  # through the stop
        await world.clock.sleep(5.0)

    survivor, report = await crash_then_restart(
        world,
        {"crash_on": "cancel_order", "crash_at": 1},
        market_bracket(),
        after=stop_out,
    )
    assert world.exchange.positions(1) == [] and working(world) == []
    op_id = report.operations[0].operation_id
    status = survivor.recovery.get_operation_status(op_id)
    assert status is not None and status["state"] == "completed"
    await survivor.cleanup()


async def test_native_bracket_restart_adopts_the_children() -> None:
    """Native mode, the entry's answer lost: the restarted saga adopts the server-side
    children (no client-side leg beside them)."""
    world = World()
    survivor, _ = await crash_then_restart(
        world,
        {"crash_on": "place_order", "crash_at": 1, "crash_after": True},
        market_bracket(native=True),
    )
    assert world.exchange.position_size(1, MNQ) == 2
    assert all(o.parent_order_id is not None for o in working(world))
    assert sum(o.size - o.fill_volume for o in working(world, OrderType.STOP)) == 2
    await survivor.cleanup()


async def test_the_resumer_acts_for_the_manager_that_recovers() -> None:
    """The resumer registry is process-wide; two managers recovering in one process each get
    their own bracket restarted in their own engine (nothing captured from the first)."""
    crash = {"crash_on": "place_order", "crash_at": 1, "crash_after": True}
    first, second = World(), World()
    a, report_a = await crash_then_restart(first, crash, market_bracket())
    b, report_b = await crash_then_restart(second, crash, market_bracket(size=1))
    op_a, op_b = report_a.operations[0].operation_id, report_b.operations[0].operation_id
    assert a.brackets.active() == [op_a] and b.brackets.active() == [op_b]
    assert_protected_exactly(first, 2)
    assert_protected_exactly(second, 1)
    await a.cleanup()
    await b.cleanup()
