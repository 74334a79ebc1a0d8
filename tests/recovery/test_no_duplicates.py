"""'Executed, answer lost' on every placement: 1,000 seeded runs place no order twice (I3)."""

from __future__ import annotations

import contextlib
from collections import Counter
from decimal import Decimal

from orderguard.broker.faults import FaultPlan, MutationFaults, QueryFaults
from orderguard.errors import BrokerError, ExposureRefusedError, OutcomeUnknownError
from orderguard.models import OrderSide
from orderguard.recovery.operations import OperationType

from .rig import MNQ, Rig, build_rig, limit_request

RUNS = 1000
# Every placement executes and loses its answer; some look-ups fail too, so some outcomes stay
# unknown past the bounded look-ups (and latch the contract) - still never placed twice.
PLAN = FaultPlan(place=MutationFaults(ambiguous=1.0), query=QueryFaults(query_error=0.2))


async def _workload(rig: Rig, seed: int) -> int:
    """Two plain entries and a two-leg operation; returns how many intents were journaled."""
    m = rig.manager
    for i in range(2):
        # Unresolved (then latched), refused by the latch, or a reference read failed: all fine.
        with contextlib.suppress(OutcomeUnknownError, ExposureRefusedError, BrokerError):
            await m.place_limit_order(MNQ, OrderSide.BUY, 1, Decimal("20900") - i)
    op = await m.recovery.start_operation(OperationType.OCO_PAIR, account_id=1, contract_id=MNQ)
    for leg, side in (("a", OrderSide.BUY), ("b", OrderSide.SELL)):
        ref = await m.recovery.add_order_to_operation(op, MNQ, side, 1, "limit", leg=leg)
        with contextlib.suppress(BrokerError):  # an unknown outcome is left unknown, not re-sent
            await m.submit(limit_request(ref.custom_tag, side), respect_latch=False)
    return (await rig.journal.counts()).intents


async def test_answer_lost_on_every_placement_never_duplicates() -> None:
    """Across 1,000 seeds: tags unique at the exchange and at most one order per intent."""
    placed = unknown = 0
    for seed in range(RUNS):
        rig = await build_rig(plan=PLAN, seed=seed)
        intents = await rig.clock.run(_workload(rig, seed))
        tags = Counter(o.custom_tag for o in rig.orders())
        assert all(n == 1 for n in tags.values()), (seed, tags)
        assert len(rig.orders()) <= intents, seed
        placed += len(rig.orders())
        unknown += rig.manager.get_recovery_statistics()["unknown_outcomes_seen"]
        await rig.manager.cleanup()
    # The faults really fired: every placement reached the exchange with its answer lost.
    assert placed >= 3 * RUNS and unknown >= placed
