"""Issue 10, items 6 and 11: whether a request reduces exposure is decided from the position."""

from __future__ import annotations

import pytest

from orderguard.errors import ExposureRefusedError
from orderguard.models import OrderRequest, OrderType
from orderguard.orders.send.latch import LatchEntry

from .helpers import BUY, MNQ, SELL, D, make_world


async def test_respect_latch_false_cannot_pass_new_exposure_through_the_latch() -> None:
    """Item 11: a BUY 5 on a flat, latched contract is refused whatever the caller says."""
    w = await make_world()
    w.manager.latch.latch(LatchEntry(1, MNQ, "og-x", "test", w.clock.now()))
    before = w.ex.orders(1)
    request = OrderRequest(1, MNQ, OrderType.MARKET, BUY, 5, custom_tag="og-test-entry-0")
    with pytest.raises(ExposureRefusedError):
        await w.run(w.manager.submit(request, respect_latch=False))
    assert w.ex.orders(1) == before
    await w.close()


async def test_a_reducing_stop_passes_the_latch_without_the_callers_word() -> None:
    """Item 11: a stop that reduces the position goes out while latched, flag or not."""
    w = await make_world()
    await w.run(w.manager.place_market_order(MNQ, BUY, 2))
    await w.settle(0.2)
    w.manager.latch.latch(LatchEntry(1, MNQ, "og-x", "test", w.clock.now()))
    request = OrderRequest(
        1, MNQ, OrderType.STOP, SELL, 2, stop_price=D("20990"), custom_tag="og-test-stop-0"
    )
    placed = await w.run(w.manager.submit(request))
    assert placed.order_id
    await w.close()


async def test_an_oversized_exit_is_exposure() -> None:
    """Item 11: a SELL 5 stop against +2 would open -3: refused while latched."""
    w = await make_world()
    await w.run(w.manager.place_market_order(MNQ, BUY, 2))
    await w.settle(0.2)
    w.manager.latch.latch(LatchEntry(1, MNQ, "og-x", "test", w.clock.now()))
    request = OrderRequest(
        1, MNQ, OrderType.STOP, SELL, 5, stop_price=D("20990"), custom_tag="og-test-stop-1"
    )
    with pytest.raises(ExposureRefusedError):
        await w.run(w.manager.submit(request, respect_latch=False))
    await w.close()


async def test_growing_an_exit_within_the_position_passes_the_hold() -> None:
    """Item 6: a target of 1 grown to 3 against +3 still only shrinks the position: it goes
    out during the start-up hold (refused, a restarted bracket replaced it with a second order
    and both over-covered the position: chaos seed 146). Grown past the position it would
    open the other way: refused."""
    w = await make_world()
    await w.run(w.manager.place_market_order(MNQ, BUY, 3))
    await w.settle(0.2)
    target = await w.run(w.manager.place_limit_order(MNQ, SELL, 1, D("21010")))
    w.manager.latch.hold("start-up recovery has not reconciled the journal with the broker")
    grown = await w.run(w.manager.modify_order(target.order_id, size=3))
    assert grown.success and grown.order is not None and grown.order.size == 3
    with pytest.raises(ExposureRefusedError):
        await w.run(w.manager.modify_order(target.order_id, size=4))
    await w.close()
