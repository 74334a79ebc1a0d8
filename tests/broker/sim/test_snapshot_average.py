"""A position restored from a snapshot (``gateway --state``) closes at the right P&L."""

from __future__ import annotations

from decimal import Decimal

from orderguard.broker.sim import LatencyModel, SimBroker, SimExchange, default_contracts, snapshot
from orderguard.clock import VirtualClock
from orderguard.models import OrderRequest, OrderSide, OrderType

MNQ = "CON.F.US.MNQ.Z26"


def _exchange(clock: VirtualClock) -> SimExchange:
    return SimExchange(clock, contracts=default_contracts(), liquidity=None)


async def test_restored_position_books_its_close_from_the_exact_average() -> None:
    """Bought 3 at two prices (average 21000.1666...), restored, sold 3 at 21001: P&L from the
    exact average, as without the restart (it used to book the whole notional as profit)."""
    clock = VirtualClock()
    first = _exchange(clock)
    first.open_account(1, "SIM-1", Decimal("50000"))
    fast = LatencyModel(request=0.0, response=0.0, event=0.0)
    broker = SimBroker(first, clock, latency=fast)
    first.set_price(MNQ, Decimal("21000.00"))
    await broker.place_order(OrderRequest(1, MNQ, OrderType.MARKET, OrderSide.BUY, 2))
    first.set_price(MNQ, Decimal("21000.50"))
    await broker.place_order(OrderRequest(1, MNQ, OrderType.MARKET, OrderSide.BUY, 1))

    second = _exchange(clock)
    snapshot.restore(second, snapshot.dump(first))
    restored = SimBroker(second, clock, latency=fast)
    second.set_price(MNQ, Decimal("21001.00"))
    await restored.place_order(OrderRequest(1, MNQ, OrderType.MARKET, OrderSide.SELL, 3))

    first.set_price(MNQ, Decimal("21001.00"))  # the same close without the restart
    await broker.place_order(OrderRequest(1, MNQ, OrderType.MARKET, OrderSide.SELL, 3))
    closes = [
        [t.profit_and_loss for t in ex.trades(1) if t.profit_and_loss is not None]
        for ex in (first, second)
    ]
    assert closes[0] == closes[1] and closes[1] != []
    assert closes[1][0] < Decimal("10")  # 2.5 points on MNQ: $5, not the notional
