"""Property: random position changes and protective orders keep managed exits exact (I2)."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orderguard.errors import AlreadyProtectedError, NoPositionError
from orderguard.models import OrderSide
from orderguard.orders import OrderManager
from orderguard.orders.positions.rules import ExitKind, kind_of_type, reducing_side

from .conftest import MNQ, Harness, make_sim
from .fakes import DelegatingBroker
from .position_helpers import quiet

TICK = Decimal("0.25")

Step = tuple[str, int]
steps = st.lists(
    st.one_of(
        st.tuples(st.just("trade"), st.sampled_from([-3, -2, -1, 1, 2, 3])),
        st.tuples(st.sampled_from(["stop", "target"]), st.integers(1, 12)),
        st.tuples(st.just("partial"), st.integers(1, 3)),
        st.tuples(st.just("close"), st.just(0)),
        st.tuples(st.just("price"), st.integers(-40, 40)),
    ),
    max_size=14,
)


async def _apply(h: Harness, step: Step) -> None:
    kind, n = step
    pos = h.exchange.position_size(1, MNQ)
    last = h.exchange.last_price(MNQ)
    assert last is not None
    if kind == "trade":
        side = OrderSide.BUY if n > 0 else OrderSide.SELL
        await h.manager.place_market_order(MNQ, side, abs(n))
    elif kind in ("stop", "target"):
        add = h.manager.add_stop_loss if kind == "stop" else h.manager.add_take_profit
        away = n * TICK
        losing = last - away if pos > 0 else last + away
        winning = last + away if pos > 0 else last - away
        price = losing if kind == "stop" else winning
        exit_kind = ExitKind.STOP if kind == "stop" else ExitKind.TARGET
        covered = sum(
            o.remaining
            for o in h.exchange.open_orders(1)
            if o.contract_id == MNQ
            and o.side is reducing_side(pos)
            and kind_of_type(o.type) is exit_kind
        )
        if pos == 0:
            with pytest.raises(NoPositionError):
                await add(MNQ, price)
        elif covered >= abs(pos):
            with pytest.raises(AlreadyProtectedError):  # another would over-cover (I1)
                await add(MNQ, price)
        else:
            await add(MNQ, price)
    elif kind == "partial" and pos != 0:
        await h.manager.broker.partial_close_position(1, MNQ, min(n, abs(pos)))
    elif kind == "close" and pos != 0:
        await h.manager.broker.close_position(1, MNQ)
    elif kind == "price":
        h.exchange.set_price(MNQ, last + n * TICK)


def _check_quiet_point(h: Harness) -> None:
    pos = h.exchange.position_size(1, MNQ)
    managed = {e.order_id for e in h.manager.position_orders.managed_exits()}
    live = [o for o in h.exchange.orders(1) if o.id in managed and o.is_working]
    if pos == 0:
        assert live == [], "a managed exit outlived its position"
    for order in live:
        assert order.side is reducing_side(pos), "a managed exit would add exposure"
    for exit_kind in (ExitKind.STOP, ExitKind.TARGET):
        mine = [o for o in live if kind_of_type(o.type) is exit_kind]
        if mine:  # together they cover the position exactly: never less, never more
            assert sum(o.remaining for o in mine) == abs(pos), "managed exits do not match"
    # Nothing managed is forgotten: every working order we placed as an exit is still managed.
    for order in h.exchange.orders(1):
        tag = order.custom_tag or ""
        if order.is_working and ("-stop-" in tag or "-target-" in tag):
            assert order.id in managed


async def _scenario(plan: list[Step]) -> None:
    clock, _, sim = make_sim()
    broker = DelegatingBroker(sim)
    manager = OrderManager(broker, clock=clock, rng=random.Random(11))
    await manager.start()
    h = Harness(clock, sim.exchange, sim, broker, manager)
    try:
        for step in plan:
            await _apply(h, step)
            await quiet(h)
            _check_quiet_point(h)
    finally:
        await manager.cleanup()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=steps)
def test_managed_exits_match_the_position_at_every_quiet_point(plan: list[Step]) -> None:
    """At each quiet point the managed exits of each kind cover the position exactly; none lives
    on a flat one; a stop or target asked for on a covered position is refused."""
    asyncio.run(_scenario(plan))
