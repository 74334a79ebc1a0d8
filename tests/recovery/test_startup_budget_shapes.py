"""Start-up recovery reads broker truth twice per account for realistic crash shapes too.

test_startup_budget covers brackets that only journaled an intent; here the dead process left the
shapes a crash really leaves (entries sent or not, unknown, filled with live exits; OCO pairs), so
recovery has mutations to make. Those grow with the operations; the truth reads must not.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from orderguard.broker.base import Confirmed, Unknown, UnknownOrigin
from orderguard.models import OrderRequest, OrderSide, OrderType
from orderguard.orders import OrderManager
from orderguard.recovery.manager import OrderReference, RecoveryOperation
from orderguard.recovery.operations import OperationType
from orderguard.recovery.startup import RecoveryReport
from orderguard.testing.counting import CountingBroker

from .startup_world import MNQ, PRICE, World, bury

BUY, SELL = OrderSide.BUY, OrderSide.SELL
TRUTH_READS = ("search_orders", "search_positions")


def send(world: World, ref: OrderReference, kind: OrderType, price: Decimal | None = None) -> int:
    result = world.exchange.place(
        OrderRequest(
            1, MNQ, kind, OrderSide(ref.side), ref.size,
            limit_price=price if kind is OrderType.LIMIT else None,
            stop_price=price if kind is OrderType.STOP else None,
            custom_tag=ref.custom_tag,
        )
    )  # fmt: skip
    assert result.order_id is not None
    return int(result.order_id)


async def leave_shape(world: World, dead: OrderManager, i: int) -> None:
    """One of five crash shapes, by ``i``."""
    rec = dead.recovery
    kind = OperationType.OCO_PAIR if i % 5 == 4 else OperationType.BRACKET_ORDER
    op: RecoveryOperation = await rec.start_operation(kind, account_id=1, contract_id=MNQ)

    async def leg(name: str, side: OrderSide, order_type: str) -> OrderReference:
        return await rec.add_order_to_operation(op, MNQ, side, 1, order_type, leg=name)

    below, above = PRICE - 10, PRICE + 10
    if i % 5 == 0:  # the entry's intent only: never sent
        await leg("entry", BUY, "market")
    elif i % 5 == 1:  # the entry sent, its outcome not recorded: filled at the broker
        send(world, await leg("entry", BUY, "market"), OrderType.MARKET)
    elif i % 5 == 2:  # the entry's send timed out: the limit rests at the broker
        entry = await leg("entry", BUY, "limit")
        send(world, entry, OrderType.LIMIT, below)
        await rec.record_order_failure(op, entry, Unknown(UnknownOrigin.TIMEOUT_AFTER_SEND))
    elif i % 5 == 3:  # filled, stop and target working and linked: the pivot has passed
        entry = await leg("entry", BUY, "market")
        await rec.record_order_success(op, entry, Confirmed(send(world, entry, OrderType.MARKET)))
        stop, target = await leg("stop", SELL, "stop"), await leg("target", SELL, "limit")
        await rec.add_oco_pair(op, stop, target)
        await rec.record_order_success(
            op, stop, Confirmed(send(world, stop, OrderType.STOP, below))
        )
        await rec.record_order_success(
            op, target, Confirmed(send(world, target, OrderType.LIMIT, above))
        )
    else:  # an OCO pair, both legs working
        a, b = await leg("first", BUY, "limit"), await leg("second", SELL, "limit")
        await rec.add_oco_pair(op, a, b)
        await rec.record_order_success(op, a, Confirmed(send(world, a, OrderType.LIMIT, below)))
        await rec.record_order_success(op, b, Confirmed(send(world, b, OrderType.LIMIT, above)))


async def recover_shapes(operations: int) -> tuple[Counter[str], RecoveryReport]:
    world = World()

    async def scenario() -> tuple[Counter[str], RecoveryReport]:
        dead, _ = world.process()
        await dead.start()
        for i in range(operations):
            await leave_shape(world, dead, i)
        bury(dead)
        survivor, _ = world.process(wrap=CountingBroker)
        await survivor.start()  # start-up recovery runs inside start()
        counting = world.wrapped
        assert isinstance(counting, CountingBroker)
        report = survivor.last_recovery
        assert report is not None
        calls = Counter(counting.calls)
        await survivor.cleanup()
        return calls, report

    return await world.clock.run(scenario())


async def test_truth_reads_do_not_grow_with_realistic_shapes() -> None:
    """Five or fifty crash-shaped operations: three truth reads (orders, positions, orders again);
    only the mutations grow."""
    few, few_report = await recover_shapes(5)
    many, many_report = await recover_shapes(50)
    # Start-up's own truth reads are three; the rollbacks it hands on read per account, too.
    assert [few[q] for q in TRUTH_READS] == [many[q] for q in TRUTH_READS]
    assert few_report.queries == many_report.queries == 3
    assert few_report.ok and many_report.ok and len(many_report.operations) == 50
    # The work itself does grow: each filled entry is flattened, each live order cancelled.
    assert many["place_order"] == 10 * few["place_order"] > 0
    assert many["cancel_order"] == 10 * few["cancel_order"] > 0
