"""OCO pairs as a public, journaled operation (exchange truth)."""

from __future__ import annotations

import pytest

from orderguard.broker.sim import LatencyModel
from orderguard.clock import VirtualClock
from orderguard.config import OrderManagerConfig
from orderguard.errors import ValidationError
from orderguard.journal.memory import MemoryJournal
from orderguard.models import OrderStatus
from orderguard.orders.oco.engine import OcoLeg

from .bracket_helpers import BUY, MNQ, SELL, D, Rig, make_rig

# A long position's exits as an OCO pair: sell limit above, sell stop below.
TARGET = OcoLeg(SELL, 1, D("21010"), "limit")
STOP = OcoLeg(SELL, 1, D("20990"), "stop")


def status(rig: Rig, order_id: int | None) -> OrderStatus:
    order = rig.ex.order(1, order_id or 0)
    assert order is not None
    return order.status


async def test_place_oco_links_both_orders() -> None:
    """Both legs are working and each names the other as its sibling."""
    rig = await make_rig()
    r = await rig.run(rig.manager.place_oco_order(MNQ, TARGET, STOP))
    assert r.success and len(rig.working()) == 2
    assert rig.manager.get_oco_linked_order(r.order1_id) == r.order2_id
    assert rig.manager.get_oco_linked_order(r.order2_id) == r.order1_id
    await rig.manager.cleanup()


async def test_fill_of_one_leg_cancels_the_other() -> None:
    """When one leg fills, the sibling ends cancelled at the exchange and the link goes."""
    rig = await make_rig()
    await rig.run(rig.manager.place_market_order(MNQ, BUY, 1))
    r = await rig.run(rig.manager.place_oco_order(MNQ, TARGET, STOP))
    rig.price("21010")
    await rig.settle(1.0)
    assert status(rig, r.order1_id) is OrderStatus.FILLED
    assert status(rig, r.order2_id) is OrderStatus.CANCELLED
    assert rig.position() == 0 and rig.working() == []
    assert rig.manager.get_oco_linked_order(r.order1_id) is None
    assert rig.manager.recovery.get_operation_status(r.operation_id)["state"] == "completed"
    await rig.manager.cleanup()


async def test_both_legs_filled_flattens_excess_and_records_incident() -> None:
    """Both legs filled before the cancel landed: the late leg's fill is flattened (F5)."""
    rig = await make_rig(latency=LatencyModel(request=0.02, response=0.02, event=0.02))
    await rig.run(rig.manager.place_market_order(MNQ, BUY, 1))
    r = await rig.run(rig.manager.place_oco_order(MNQ, TARGET, STOP))
    rig.price("21010")
    await rig.settle(0.03)
    rig.price("20990")  # the stop fills too, before its cancel arrives
    await rig.settle(2.0)
    assert rig.position() == 0 and rig.working() == []
    stats = rig.manager.get_recovery_statistics()
    assert stats["oco_pair_incidents"] == 1
    assert rig.manager.recovery.get_operation_status(r.operation_id)["extra"]["incidents"]
    await rig.manager.cleanup()


async def test_link_validates_ids() -> None:
    """Self-links, unknown ids and finished orders are refused before anything changes."""
    rig = await make_rig()
    a = await rig.manager.place_limit_order(MNQ, BUY, 1, D("20990"))
    filled = await rig.run(rig.manager.place_market_order(MNQ, BUY, 1))
    for first, second in (
        (a.order_id, a.order_id),
        (a.order_id, 999),
        (a.order_id, filled.order_id),
    ):
        with pytest.raises(ValidationError):
            await rig.run(rig.manager.link_oco_orders(first, second))
    with pytest.raises(ValidationError):
        await rig.manager.link_oco_orders(0, a.order_id)
    assert rig.manager.get_oco_linked_order(a.order_id) is None
    await rig.manager.cleanup()


async def test_relink_breaks_the_old_link_cleanly() -> None:
    """Linking A to C when A-B exists unlinks B: no orphaned or circular link remains."""
    rig = await make_rig()
    a, b, c = [
        await rig.manager.place_limit_order(MNQ, BUY, 1, D(p)) for p in ("20990", "20980", "20970")
    ]
    first = await rig.run(rig.manager.link_oco_orders(a.order_id, b.order_id))
    second = await rig.run(rig.manager.link_oco_orders(a.order_id, c.order_id))
    assert second.replaced == (b.order_id,)
    assert rig.manager.get_oco_linked_order(a.order_id) == c.order_id
    assert rig.manager.get_oco_linked_order(c.order_id) == a.order_id
    assert rig.manager.get_oco_linked_order(b.order_id) is None
    assert rig.manager.recovery.get_operation_status(first.operation_id)["state"] == "completed"
    assert len(rig.working()) == 3  # relinking cancels nothing
    await rig.manager.cleanup()


async def test_unlink_returns_sibling_and_leaves_orders_working() -> None:
    """unlink_oco_orders breaks both directions and returns the former sibling."""
    rig = await make_rig()
    a = await rig.manager.place_limit_order(MNQ, BUY, 1, D("20990"))
    b = await rig.manager.place_limit_order(MNQ, BUY, 1, D("20980"))
    await rig.run(rig.manager.link_oco_orders(a.order_id, b.order_id))
    assert await rig.manager.unlink_oco_orders(b.order_id) == a.order_id
    assert rig.manager.get_oco_linked_order(a.order_id) is None
    assert await rig.manager.unlink_oco_orders(a.order_id) is None
    assert len(rig.working()) == 2
    await rig.manager.cleanup()


async def test_links_survive_a_restart() -> None:
    """A new manager on the same journal re-links the pair at start and still enforces it."""
    first = await make_rig(journal=MemoryJournal(VirtualClock()))
    journal = first.manager.journal
    a = await first.manager.place_limit_order(MNQ, BUY, 1, D("20990"))
    b = await first.manager.place_limit_order(MNQ, BUY, 1, D("20980"))
    await first.run(first.manager.link_oco_orders(a.order_id, b.order_id))
    await first.manager.cleanup()  # the process goes away without unlinking
    second = await make_rig(journal=journal, sim=first.sim, clock=first.clock, seed=9)
    # start() re-linked it (start-up recovery left the working pair to its engine).
    assert second.manager.get_oco_linked_order(a.order_id) == b.order_id
    assert await second.manager.resume_operations() == 0  # nothing left to resume by hand
    second.price("20989")  # a fills
    await second.settle(3.0)
    assert status(second, a.order_id) is OrderStatus.FILLED
    assert status(second, b.order_id) is OrderStatus.CANCELLED
    await second.manager.cleanup()


async def test_bracket_exits_report_each_other_as_oco_siblings() -> None:
    """get_oco_linked_order answers for a bracket's stop and target too."""
    rig = await make_rig()
    r = await rig.run(
        rig.manager.place_bracket_order(
            MNQ, BUY, 1, None, D("20990"), D("21010"), entry_type="market"
        )
    )
    assert rig.manager.get_oco_linked_order(r.stop_order_id) == r.target_order_id
    assert rig.manager.get_oco_linked_order(r.target_order_id) == r.stop_order_id
    await rig.manager.cleanup()


class _CountingReads:
    """Wraps a SimBroker; counts the order reads made through it."""

    def __init__(self, inner: object) -> None:
        self._inner = inner
        self.reads = 0

    def __getattr__(self, name: str) -> object:
        attr = getattr(self._inner, name)
        if name in ("search_orders", "get_order", "search_open_orders"):

            async def counted(*args: object, **kwargs: object) -> object:
                self.reads += 1
                return await attr(*args, **kwargs)

            return counted
        return attr


async def test_quiet_pairs_share_one_backed_off_poll() -> None:
    """Five quiet pairs for a minute stay far inside the 200 requests / 60 s budget: their
    re-reads are shared and back off (a read per pair and leg every 2 s spent it all)."""
    # The continuous reconciler's own safety re-reads (orders once per reconcile_threshold,
    # positions once per position_check_interval, while anything is in flight) are kept out
    # of this count: the test is about the pairs' poll.
    quiet = OrderManagerConfig(reconcile_threshold=3600.0, position_check_interval=3600.0)
    rig = await make_rig(wrap=_CountingReads, config=quiet)  # type: ignore[arg-type]
    for i in range(5):
        target = OcoLeg(SELL, 1, D("21010") + i, "limit")
        stop = OcoLeg(SELL, 1, D("20990") - i, "stop")
        await rig.run(rig.manager.place_oco_order(MNQ, target, stop))
    counter = rig.broker
    assert isinstance(counter, _CountingReads)
    before = counter.reads
    await rig.settle(60.0)
    assert counter.reads - before <= 15
    assert len(rig.working()) == 10  # nothing happened to the pairs meanwhile
    await rig.manager.cleanup()
