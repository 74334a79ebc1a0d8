"""Hypothesis state machine over operations: random outcomes and faults.

Legs are sent through the real OrderManager to a FaultyBroker(SimBroker) whose next placement is
scripted to be confirmed, rejected, executed-but-unknown or lost-but-unknown; queries fail at
random. Invariants after every step: every journaled state change is a TRANSITIONS row, the
statistics equal a recount from the journal, and no customTag is at the exchange twice.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from orderguard.broker.faults import FaultKind, FaultPlan, QueryFaults
from orderguard.errors import BrokerError, ExposureRefusedError
from orderguard.models import OrderSide
from orderguard.recovery.manager import OperationRecoveryManager, RecoveryOperation
from orderguard.recovery.operations import OperationType

from .rig import (
    MNQ,
    Rig,
    assert_no_duplicate_tags,
    assert_stats_match_journal,
    assert_transitions_follow_table,
    build_rig,
    limit_request,
    market_request,
)

OUTCOMES = (None, FaultKind.REJECT, FaultKind.AMBIGUOUS, FaultKind.LOST, FaultKind.SERVER_ERROR)


class OperationMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.rig: Rig
        self.ops: list[RecoveryOperation] = []
        self.legs = itertools.count()

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(self.rig.clock.run(coro))

    @initialize(seed=st.integers(0, 2**16))
    def setup(self, seed: int) -> None:
        plan = FaultPlan(query=QueryFaults(query_error=0.1))
        self.rig = self.loop.run_until_complete(build_rig(plan=plan, seed=seed))

    def _pick(self, index: int) -> RecoveryOperation | None:
        return self.ops[index % len(self.ops)] if self.ops else None

    @rule(kind=st.sampled_from(list(OperationType)))
    def start(self, kind: OperationType) -> None:
        rec = self.rig.manager.recovery
        op = self.run(rec.start_operation(kind, account_id=1, contract_id=MNQ))
        self.ops.append(op)

    @rule(
        index=st.integers(0, 100),
        faults=st.lists(st.sampled_from(OUTCOMES), min_size=1, max_size=3),
        market=st.booleans(),
        side=st.sampled_from([OrderSide.BUY, OrderSide.SELL]),
    )
    def send_legs(
        self, index: int, faults: list[FaultKind | None], market: bool, side: OrderSide
    ) -> None:
        """One to three legs on an open operation (a fresh one if the pick is finished)."""
        op = self._pick(index)
        if op is None or op.state.is_terminal:
            self.start(OperationType.BRACKET_ORDER)
            op = self.ops[-1]
        for fault in faults:
            if op.state.is_terminal:
                break  # a rollback handed over earlier finished between two legs
            self.run(self._send_leg(op, fault, market, side))

    async def _send_leg(
        self, op: RecoveryOperation, fault: FaultKind | None, market: bool, side: OrderSide
    ) -> None:
        rec = self.rig.manager.recovery
        leg = f"leg{next(self.legs)}"
        kind = "market" if market else "limit"
        ref = await rec.add_order_to_operation(op, MNQ, side, 1, kind, leg=leg)
        if fault is not None:
            self.rig.broker.fail_next("place_order", fault)
        request = (market_request if market else limit_request)(ref.custom_tag, side)
        try:
            placed = await self.rig.manager.submit(request)
        except (BrokerError, ExposureRefusedError) as exc:
            await rec.record_order_failure(op, ref, exc)
        else:
            await rec.record_order_success(op, ref, placed)

    @rule(index=st.integers(0, 100))
    def complete(self, index: int) -> None:
        op = self._pick(index)
        if op is not None:
            self.run(self.rig.manager.recovery.complete_operation(op))

    @rule(index=st.integers(0, 100))
    def rollback(self, index: int) -> None:
        op = self._pick(index)
        if op is not None:
            self.run(self.rig.manager.force_rollback_operation(op.operation_id))

    @rule()
    def cleanup_stale(self) -> None:
        # max_age 0 after one second: every operation is stale (a long advance would only spin
        # the background re-checks of latched outcomes).
        self.loop.run_until_complete(self.rig.clock.advance(1.0))
        self.run(self.rig.manager.cleanup_stale_operations(0.0))

    @rule()
    def restart_statistics(self) -> None:
        """A new recovery manager over the same journal recounts the same statistics."""
        fresh = OperationRecoveryManager(self.rig.journal, self.rig.clock)
        self.run(fresh.load())
        mine = self.rig.manager.recovery.get_recovery_statistics()
        theirs = fresh.get_recovery_statistics()
        for key in (
            "operations_started",
            "operations_completed",
            "operations_failed",
            "operations_rolled_back",
            "unknown_outcomes_seen",
            "unknown_outcomes_resolved",
            "flattens",
        ):
            assert theirs[key] == mine[key], key

    @invariant()
    def journal_agrees(self) -> None:
        self.loop.run_until_complete(self._check())

    async def _check(self) -> None:
        await self.rig.clock.advance(0)
        await assert_transitions_follow_table(self.rig)
        await assert_stats_match_journal(self.rig)
        assert_no_duplicate_tags(self.rig)

    def teardown(self) -> None:
        try:
            self.loop.run_until_complete(self.rig.manager.cleanup())
        finally:
            # As asyncio.run does: what is still pending (a shared read the gateway started,
            # which cleanup does not own) is cancelled before the loop closes, not left to the
            # garbage collector to finalise on a closed loop.
            pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                self.loop.run_until_complete(asyncio.wait(pending))
            self.loop.close()


OperationMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestOperationMachine = OperationMachine.TestCase
