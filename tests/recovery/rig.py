"""A started OrderManager over FaultyBroker(SimBroker) on a virtual clock, with a memory journal.

Tests assert from the exchange (``rig.exchange``), the only truth they trust, and from the journal.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal

from orderguard.broker.faults import FaultPlan, FaultyBroker
from orderguard.broker.sim import SimBroker, SimExchange
from orderguard.clock import VirtualClock
from orderguard.config import OrderManagerConfig
from orderguard.journal import MemoryJournal
from orderguard.models import Order, OrderRequest, OrderSide, OrderType
from orderguard.orders import OrderManager
from orderguard.recovery.operations import TRANSITIONS

MNQ = "CON.F.US.MNQ.Z26"
PRICE = Decimal("21000.00")
ACCOUNT = 1

# Short schedules so a run needs little virtual time.
FAST = OrderManagerConfig(
    status_check_max_attempts=3,
    status_check_initial_delay=0.1,
    status_check_max_delay=0.5,
    query_retry_max_total=2.0,
)

ALLOWED = {(t.source.value, t.target.value) for t in TRANSITIONS}


@dataclass
class Rig:
    clock: VirtualClock
    sim: SimBroker
    broker: FaultyBroker
    journal: MemoryJournal
    manager: OrderManager

    @property
    def exchange(self) -> SimExchange:
        return self.sim.exchange

    def orders(self) -> list[Order]:
        return self.exchange.orders(ACCOUNT)

    def position(self) -> int:
        return self.exchange.position_size(ACCOUNT, MNQ)

    async def settle(self, seconds: float = 0.0) -> None:
        await self.clock.advance(seconds)
        await self.clock.advance(0)


async def build_rig(
    *,
    plan: FaultPlan | None = None,
    seed: int = 7,
    config: OrderManagerConfig | None = None,
    journal: MemoryJournal | None = None,
) -> Rig:
    clock = VirtualClock()
    sim = SimBroker.create(clock, prices={MNQ: PRICE})
    broker = FaultyBroker(sim, clock, plan or FaultPlan.none(), seed=seed)
    journal = journal if journal is not None else MemoryJournal(clock)
    manager = OrderManager(
        broker,
        clock=clock,
        config=config or FAST,
        rng=random.Random(seed),
        journal=journal,
    )
    broker.enabled = False  # faults are for the workload, not the start-up reads
    await clock.run(manager.start())  # start-up reads may wait for the rate limiter
    broker.enabled = True
    return Rig(clock, sim, broker, journal, manager)


def stop_request(tag: str, side: OrderSide = OrderSide.SELL, size: int = 1) -> OrderRequest:
    """A protective stop (far from the market) under the caller's tag."""
    price = PRICE - Decimal(100) if side is OrderSide.SELL else PRICE + Decimal(100)
    return OrderRequest(
        account_id=ACCOUNT,
        contract_id=MNQ,
        type=OrderType.STOP,
        side=side,
        size=size,
        stop_price=price,
        custom_tag=tag,
    )


def limit_request(tag: str, side: OrderSide = OrderSide.BUY, size: int = 1) -> OrderRequest:
    """A limit order that rests (far from the market) under the caller's tag."""
    price = PRICE - Decimal(100) if side is OrderSide.BUY else PRICE + Decimal(100)
    return OrderRequest(
        account_id=ACCOUNT,
        contract_id=MNQ,
        type=OrderType.LIMIT,
        side=side,
        size=size,
        limit_price=price,
        custom_tag=tag,
    )


def market_request(tag: str, side: OrderSide = OrderSide.BUY, size: int = 1) -> OrderRequest:
    return OrderRequest(
        account_id=ACCOUNT,
        contract_id=MNQ,
        type=OrderType.MARKET,
        side=side,
        size=size,
        custom_tag=tag,
    )


async def assert_stats_match_journal(rig: Rig) -> None:
    """The recovery statistics equal a recount of the journal's records."""
    await rig.journal.flush()
    counts = await rig.journal.counts()
    by_state = counts.operations_by_state
    stats = rig.manager.get_recovery_statistics()
    assert stats["operations_started"] == sum(by_state.values())
    assert stats["operations_completed"] == by_state.get("completed", 0)
    assert stats["operations_failed"] == by_state.get("failed", 0)
    assert stats["operations_rolled_back"] == by_state.get("rolled_back", 0)
    assert stats["unknown_outcomes_seen"] == counts.outcomes.get("unknown", 0)
    assert stats["unknown_outcomes_resolved"] == counts.outcomes.get("resolved", 0)


async def assert_transitions_follow_table(rig: Rig) -> None:
    """Every journaled state change is a row of TRANSITIONS (or the creation, None -> pending)."""
    for op in await rig.journal.operations(limit=100_000):
        for change in await rig.journal.state_changes(op.operation_id):
            if change.from_state is None:
                assert change.to_state == "pending"
            else:
                assert (change.from_state, change.to_state) in ALLOWED, change


def assert_no_duplicate_tags(rig: Rig) -> None:
    tags = [o.custom_tag for o in rig.orders() if o.custom_tag]
    assert len(tags) == len(set(tags)), tags
