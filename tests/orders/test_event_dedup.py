"""Duplicated and reordered events (FaultyBroker event faults) count each fill once (F8)."""

from __future__ import annotations

import random
from collections import Counter
from decimal import Decimal

import pytest

from orderguard.broker.faults import FaultPlan, FaultyBroker
from orderguard.broker.faults.plan import EventFaults, FaultKind
from orderguard.broker.sim import SimBroker
from orderguard.clock import VirtualClock
from orderguard.models import Order, OrderSide, Trade
from orderguard.orders import OrderManager

MNQ = "CON.F.US.MNQ.Z26"


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_duplicated_and_reordered_fills_are_counted_once(seed: int) -> None:
    """Trade callbacks once per trade id; fill volumes equal the exchange's, however delivered."""
    clock = VirtualClock()
    sim = SimBroker.create(clock, prices={MNQ: Decimal("21000.00")})
    plan = FaultPlan(events=EventFaults(duplicate=0.4, reorder=0.3))
    broker = FaultyBroker(sim, clock, plan, seed=seed)
    manager = OrderManager(broker, clock=clock, rng=random.Random(seed))
    trades: list[Trade] = []
    filled: list[Order] = []
    manager.add_callback("trade_executed", trades.append)
    manager.add_callback("order_filled", filled.append)
    await clock.run(manager.start())
    ids = []
    for side in (OrderSide.BUY, OrderSide.SELL) * 3:
        placed = await clock.run(manager.place_market_order(MNQ, side, 3))
        ids.append(placed.order_id)
        await clock.advance(2.0)  # held (reordered) events are released by then
    faults = broker.fault_counts
    assert faults.get(FaultKind.DUPLICATE, 0) > 0 and faults.get(FaultKind.REORDER, 0) > 0
    truth = sim.exchange.trades(1)
    assert sorted(t.id for t in trades) == sorted(t.id for t in truth)
    assert Counter(o.id for o in filled) == Counter(ids)  # each order announced filled once
    for order_id in ids:
        exchange_order = sim.exchange.order(1, order_id)
        assert exchange_order is not None
        assert manager.tracker.filled_volume(order_id) == exchange_order.fill_volume == 3
    await manager.cleanup()
