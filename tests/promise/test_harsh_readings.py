"""Issue 15.3: what the harsher readings of the exchange's unconfirmed rules ask of the client is
handled under the promise — protected or flat within the deadline, and a record that says what
happened. One test per reading that needs its own handling (``docs/exchange-rules.md``)."""

from __future__ import annotations

import dataclasses

from orderguard.broker.sim.rules import CloseFill, EntryAfterExit, ExchangeRules, MarketableStop
from orderguard.models import OrderType
from orderguard.orders.bracket.values import BracketOutcome

from .helpers import BUY, DEADLINE, INTERVAL, MNQ, D, World, make_world

BOUND = DEADLINE + INTERVAL


def protected_or_flat(w: World) -> bool:
    return w.position() == 0 or w.stop_cover() == abs(w.position())


async def test_a_stop_the_market_has_gone_through_is_refused_and_the_fill_is_flattened() -> None:
    """MarketableStop.REJECT (the field report's reading, our default): the entry fills after
    the market fell through the stop price; the stop is refused, so the bracket goes flat."""
    rules = dataclasses.replace(ExchangeRules.default(), marketable_stops=MarketableStop.REJECT)
    w = await make_world(rules=rules)
    r = await w.run(w.manager.place_bracket_order(MNQ, BUY, 1, D("20995"), D("20990"), D("21010")))
    assert r.outcome is BracketOutcome.PENDING_ENTRY
    w.price("20985")  # the entry fills: the stop is now above the market
    await w.settle(BOUND)
    assert w.position() == 0 and w.working() == []
    status = w.manager.get_bracket_status(r.operation_id)
    assert status is not None and status.finished and status.outcome is BracketOutcome.FLAT
    assert status.reason
    await w.close()


async def test_an_entry_that_keeps_filling_after_its_exit_filled_is_protected() -> None:
    """EntryAfterExit.KEEP_WORKING: a native entry filling one contract per move; its target
    takes the first contract, the entry keeps working and fills more with no leg left."""
    rules = dataclasses.replace(
        ExchangeRules.default(), entry_after_exit=EntryAfterExit.KEEP_WORKING
    )
    w = await make_world(native=True, rules=rules, liquidity=1)
    r = await w.run(
        w.manager.place_bracket_order(MNQ, BUY, 3, D("20995"), D("20985"), D("21005"), native=True)
    )
    assert r.entry_order_id is not None
    w.price("20994.75")  # one contract of the entry fills (the ask reaches its limit)
    await w.settle(1.0)
    assert w.position() == 1 and w.stop_cover() == 1
    # The target takes it, and before any cancel can arrive the entry fills twice more: the
    # exchange leaves it working with no leg.
    for price in ("21006", "20994.75", "20994.5", "20994.75"):
        w.price(price)
    assert w.position() == 2 and w.stop_cover() == 0
    await w.settle(BOUND)
    assert w.position() == 2 and w.stop_cover() == 2, "the later fills were left bare"
    assert w.target_cover() <= 2
    await w.close()


async def test_a_close_that_fills_over_several_steps_ends_with_nothing_working() -> None:
    """CloseFill.LIQUIDITY_LIMITED: closeContract's market order fills one contract per move;
    the bracket's exits follow the shrinking position and are gone once it is flat."""
    rules = dataclasses.replace(ExchangeRules.default(), close_fill=CloseFill.LIQUIDITY_LIMITED)
    w = await make_world(rules=rules)
    r = await w.run(
        w.manager.place_bracket_order(
            MNQ, BUY, 3, None, D("20990"), D("21010"), entry_type="market"
        )
    )
    assert r.outcome is BracketOutcome.PROTECTED or w.position() > 0
    for step in range(12):
        w.price("21000.25" if step % 2 else "21000")
        await w.settle(0.5)
    assert w.position() == 3 and w.stop_cover() == 3
    closing = w.run(w.manager.close_position(MNQ, whole_contract=True), seconds=60)
    task = __import__("asyncio").ensure_future(closing)
    for step in range(10):
        w.price("21000.25" if step % 2 else "21000")
        await w.settle(0.5)
    await task
    await w.settle(BOUND)
    assert w.position() == 0
    assert w.working(OrderType.STOP) == [] and w.working(OrderType.LIMIT) == []
    await w.close()


async def test_a_native_stop_closer_than_four_ticks_is_refused_and_nothing_is_left() -> None:
    """§9.1's minimum (errorCode 2 on the bracketed entry): the call returns an unsuccessful,
    finished result that says why; nothing was placed, nothing is owned."""
    w = await make_world(native=True)
    r = await w.run(
        w.manager.place_bracket_order(
            MNQ, BUY, 1, None, D("20999.75"), D("21010"), entry_type="market", native=True
        )
    )
    assert not r.success and r.finished and r.entry_order_id is None
    assert "4 ticks" in (r.error_message or "")
    assert w.position() == 0 and w.working() == []
    await w.close()
