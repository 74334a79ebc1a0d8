"""Start-up recovery: one contract's operations in order, different contracts side by side."""

from __future__ import annotations

from orderguard.models import OrderSide
from orderguard.recovery.operations import OperationType
from orderguard.recovery.startup import RecoveryReport, ResumeContext

from .startup_world import MNQ, World, bury

MES = "CON.F.US.MES.Z26"


async def test_one_contract_in_order_contracts_side_by_side() -> None:
    """Per contract no two resumptions overlap (oldest first); the two contracts do overlap."""
    world = World()
    log: list[tuple[str, str, str, float]] = []

    async def probe(ctx: ResumeContext) -> None:
        contract = ctx.operation.contract_id or ""
        log.append(("start", contract, ctx.operation.operation_id, world.clock.monotonic()))
        await world.clock.sleep(1.0)  # a broker round trip, say
        log.append(("end", contract, ctx.operation.operation_id, world.clock.monotonic()))
        await ctx.settle()

    async def scenario() -> tuple[RecoveryReport, dict[str, list[str]]]:
        dead, _ = world.process()
        await dead.start()
        started: dict[str, list[str]] = {MNQ: [], MES: []}
        for i in range(6):
            contract = MNQ if i % 2 else MES
            op = await dead.recovery.start_operation(
                OperationType.BRACKET_ORDER, account_id=1, contract_id=contract,
                extra={"resumer": "probe"},
            )  # fmt: skip
            await dead.recovery.add_order_to_operation(
                op, contract, OrderSide.BUY, 1, "market", leg="entry"
            )
            started[contract].append(op.operation_id)
            await world.clock.sleep(0.1)
        bury(dead)
        survivor, _ = world.process(resumers={"probe": probe})
        await survivor.start()  # start-up recovery runs inside start()
        report = survivor.last_recovery
        assert report is not None
        await survivor.cleanup()
        return report, started

    report, started = await world.clock.run(scenario())
    assert report.ok and len(report.operations) == 6
    assert [o.operation_id for o in report.operations] == [
        op_id for pair in zip(started[MES], started[MNQ], strict=True) for op_id in pair
    ]  # the report keeps the oldest-first order
    for contract, op_ids in started.items():
        mine = [(kind, op_id) for kind, c, op_id, _ in log if c == contract]
        assert mine == [(k, op_id) for op_id in op_ids for k in ("start", "end")]
    first_end = min(t for kind, _, _, t in log if kind == "end")
    assert sum(1 for kind, _, _, t in log if kind == "start" and t < first_end) == 2


class Died(BaseException):
    """Stands in for a process killed mid-recovery (chaos raises a BaseException too)."""


async def test_an_error_in_one_lane_surfaces_as_itself() -> None:
    """A lane's unexpected error stops recovery and reaches the caller unwrapped."""
    world = World()

    async def probe(ctx: ResumeContext) -> None:
        await world.clock.sleep(1.0)
        if ctx.operation.contract_id == MES:
            raise Died("killed")
        await ctx.settle()

    async def scenario() -> str:
        dead, _ = world.process()
        await dead.start()
        for contract in (MNQ, MES):
            op = await dead.recovery.start_operation(
                OperationType.BRACKET_ORDER, account_id=1, contract_id=contract,
                extra={"resumer": "probe"},
            )  # fmt: skip
            await dead.recovery.add_order_to_operation(
                op, contract, OrderSide.BUY, 1, "market", leg="entry"
            )
        bury(dead)
        survivor, _ = world.process(resumers={"probe": probe})
        try:
            await survivor.start()  # start-up recovery runs inside start()
        except Died as exc:
            return str(exc)
        finally:
            await survivor.cleanup()
        return "no error"

    assert await world.clock.run(scenario()) == "killed"
