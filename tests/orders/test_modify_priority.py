"""A protective resize (brackets, managed exits) is not held back by entries filling the budget."""

from __future__ import annotations

from orderguard.config import OrderManagerConfig
from orderguard.resilience import Priority

from .bracket_helpers import MNQ, SELL, D, Rig, make_rig

BUDGET = OrderManagerConfig(rate_limit_requests=40, rate_limit_window=60.0, rate_limit_reserved=10)


async def exit_order(rig: Rig) -> int:
    placed = await rig.run(rig.manager.place_limit_order(MNQ, SELL, 3, D("21050")))
    return placed.order_id


def fill_the_normal_lane(rig: Rig) -> None:
    """Other traffic (entries, reads) takes every slot the normal lane may use this window."""
    limiter = rig.manager.gateway.limiter
    while limiter.try_acquire(Priority.NORMAL):
        pass
    assert limiter.available(Priority.NORMAL) == 0 and limiter.available(Priority.PROTECTIVE) > 0


async def resize_seconds(rig: Rig, order_id: int, priority: Priority) -> float:
    t0 = rig.clock.monotonic()
    result = await rig.run(rig.manager.modify_order(order_id, size=1, priority=priority))
    assert result.success
    return rig.clock.monotonic() - t0


async def test_a_protective_resize_uses_the_reserved_slots() -> None:
    rig = await make_rig(config=BUDGET)
    order_id = await exit_order(rig)
    fill_the_normal_lane(rig)
    assert await resize_seconds(rig, order_id, Priority.PROTECTIVE) < 1.0
    assert [o.size for o in rig.ex.orders(1) if o.id == order_id] == [1]
    await rig.manager.cleanup()


async def test_a_normal_modify_waits_for_the_window() -> None:
    rig = await make_rig(config=BUDGET)
    order_id = await exit_order(rig)
    fill_the_normal_lane(rig)
    assert await resize_seconds(rig, order_id, Priority.NORMAL) > 1.0
    await rig.manager.cleanup()
