"""tracked_finished_orders bounds the finished orders the manager keeps in memory."""

from __future__ import annotations

from orderguard.config import OrderManagerConfig

from .bracket_helpers import BUY, MNQ, D, make_rig


async def finished_kept(bound: int | None, orders: int = 12) -> tuple[int, int]:
    rig = await make_rig(config=OrderManagerConfig(tracked_finished_orders=bound))
    ids = []
    for _ in range(orders):
        placed = await rig.run(rig.manager.place_limit_order(MNQ, BUY, 1, D("20900")))
        await rig.run(rig.manager.cancel_order(placed.order_id))
        ids.append(placed.order_id)
    kept = len(rig.manager.tracker)
    # A dropped order is still answered, from the broker.
    oldest = await rig.run(rig.manager.get_order_by_id(ids[0]))
    await rig.manager.cleanup()
    assert oldest is not None and oldest.id == ids[0]
    return kept, orders


async def test_the_bound_is_read_from_the_config() -> None:
    kept, orders = await finished_kept(4)
    # The bound plus the pruning batch (a tenth of the bound, at least one order).
    assert 4 <= kept <= 4 + 1 < orders


async def test_none_keeps_every_finished_order() -> None:
    kept, orders = await finished_kept(None)
    assert kept == orders
