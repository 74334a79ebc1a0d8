"""Issue 10, items 7-8: start-up re-protects as soon as broker truth allows, and its rollback
keeps the stop until the entry's cancel is confirmed."""

from __future__ import annotations

import logging

import pytest

from orderguard.broker.base import Broker, Outcome, Unknown, UnknownOrigin
from orderguard.config import OrderManagerConfig
from orderguard.models import OrderType

from .helpers import BUY, DEADLINE, MNQ, D, Passthrough, kill, make_world


async def test_restart_after_a_crash_at_the_fill_reprotects_within_the_deadline() -> None:
    """Item 7: the entry fills while the process is dead; the restart protects it at once."""
    w = await make_world()
    r = await w.run(w.manager.place_bracket_order(MNQ, BUY, 1, D("20995"), D("20985"), D("21010")))
    kill(w.manager)
    w.price("20994.75")  # fills during the downtime
    await w.settle(0.1)
    assert w.position() == 1 and w.stop_cover() == 0
    began = w.clock.monotonic()
    await w.restart()
    while w.stop_cover() != 1 and w.clock.monotonic() - began < 60:
        await w.settle(0.1)
    assert w.stop_cover() == 1
    assert w.clock.monotonic() - began <= DEADLINE, "start-up waited a fixed grace"
    assert w.manager.get_bracket_status(r.operation_id) is not None
    await w.close()


async def test_a_normal_restart_logs_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    """Item 7: restarting beside a protected bracket is routine: INFO, not WARNING."""
    w = await make_world()
    await w.run(
        w.manager.place_bracket_order(
            MNQ, BUY, 1, None, D("20990"), D("21010"), entry_type="market"
        )
    )
    await w.settle(1.0)
    await w.run(w.manager.cleanup())
    with caplog.at_level(logging.INFO, logger="orderguard"):
        await w.restart()
        await w.settle(1.0)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [], [r.getMessage() for r in warnings]
    assert w.stop_cover() == 1
    await w.close()


async def test_the_in_flight_grace_is_configurable() -> None:
    """Item 7: ``in_flight_grace`` is a setting (bounded, documented), not a constant."""
    config = OrderManagerConfig(in_flight_grace=3.0)
    assert config.in_flight_grace == 3.0
    with pytest.raises(ValueError):
        OrderManagerConfig(in_flight_grace=-1.0)


class EntryCancelLost(Passthrough):
    """The first cancel of the entry is lost on the way; the market fills the entry soon after."""

    def __init__(self, inner: Broker, clock: object, fill: object, fill_after: float) -> None:
        super().__init__(inner)
        self.clock = clock
        self.fill = fill
        self.lost = False
        self.fill_after = fill_after

    async def cancel_order(self, account_id: int, order_id: int) -> Outcome:
        order = self.inner.exchange.order(account_id, order_id)  # type: ignore[attr-defined]
        is_entry = order is not None and order.type is OrderType.LIMIT and order.side is BUY
        if is_entry and not self.lost:
            self.lost = True
            self.clock.call_later(self.fill_after, self.fill)  # type: ignore[attr-defined]
            return Unknown(UnknownOrigin.CONNECTION_LOST, "lost on the way")
        outcome: Outcome = await self.inner.cancel_order(account_id, order_id)
        return outcome


@pytest.mark.parametrize("fill_after", [0.3, 6.0])
@pytest.mark.parametrize("native", [True, False])
async def test_startup_rollback_keeps_the_stop_until_the_entry_cancel_is_confirmed(
    native: bool, fill_after: float
) -> None:
    """Item 8: the entry fills while recovery's cancel of it is in doubt: its stop is still
    there (or the fill is protected or flattened within the deadline)."""

    def wrap(sim, clock):  # type: ignore[no-untyped-def]
        return EntryCancelLost(
            sim, clock, lambda: sim.exchange.set_price(MNQ, D("20994.75")), fill_after
        )

    w = await make_world(native=native, wrap=wrap)
    await w.run(
        w.manager.place_bracket_order(
            MNQ, BUY, 1, D("20995"), D("20985"), D("21010"), native=native
        )
    )
    await w.settle(0.5)
    kill(w.manager)  # start-up recovery will roll the unfilled bracket back
    await w.restart()
    naked_since = None
    for _ in range(600):
        if w.position() != 0 and w.stop_cover() < abs(w.position()):
            naked_since = naked_since if naked_since is not None else w.clock.monotonic()
            assert w.clock.monotonic() - naked_since <= DEADLINE, "filled entry left naked"
        else:
            naked_since = None
        await w.settle(0.1)
    assert w.position() == 0 or w.stop_cover() == abs(w.position())
    await w.close()
