"""start()/cleanup()/start() keeps the engines attached; a failing journal (F15) stops only
new exposure."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from orderguard.errors import ExposureRefusedError, JournalError
from orderguard.journal.memory import MemoryJournal
from orderguard.models import OrderSide, OrderStatus, OrderType
from orderguard.orders import OrderManager
from orderguard.testing import kill

from .conftest import MNQ, Harness, HarnessFactory, make_sim
from .fakes import DelegatingBroker
from .position_helpers import exits, open_position, position, quiet, working

STOP = Decimal("20990.00")


async def test_restart_reattaches_the_position_watcher(h: Harness) -> None:
    """After cleanup() and start(), flattening still cancels the managed stop at once."""
    await open_position(h, 2)
    stop = await h.manager.add_stop_loss(MNQ, STOP)
    await quiet(h)
    await h.manager.cleanup()
    await h.manager.start()
    await h.manager.place_market_order(MNQ, OrderSide.SELL, 2)
    await quiet(h, 0.5)  # far less than the periodic re-check: the event did it
    assert position(h) == 0 and working(h) == []
    assert h.exchange.order(1, stop.order_id).status is OrderStatus.CANCELLED  # type: ignore[union-attr]


async def test_a_new_process_resumes_managed_exits_on_start() -> None:
    """Exits journaled by a process that died are managed by the next one after start()."""
    clock, exchange, sim = make_sim()
    journal = MemoryJournal(clock)
    first = OrderManager(DelegatingBroker(sim), clock=clock, journal=journal, rng=random.Random(1))
    await clock.run(first.start())
    await clock.run(first.place_market_order(MNQ, OrderSide.BUY, 2))
    stop = await clock.run(first.add_stop_loss(MNQ, STOP))
    await clock.advance(0)
    kill(first)  # the process dies: its tasks go, the journal stays
    second = OrderManager(DelegatingBroker(sim), clock=clock, journal=journal, rng=random.Random(2))
    await clock.run(second.start())
    assert [e.order_id for e in second.position_orders.managed_exits()] == [stop.order_id]
    await clock.run(second.place_market_order(MNQ, OrderSide.SELL, 2))
    await clock.advance(0.5)
    assert exchange.order(1, stop.order_id).status is OrderStatus.CANCELLED  # type: ignore[union-attr]
    await second.cleanup()


# -- F15: the journal cannot be written ------------------------------------------------------------
def _journal(h: Harness) -> MemoryJournal:
    journal = h.manager.journal
    assert isinstance(journal, MemoryJournal)
    return journal


async def test_entries_are_refused_while_the_journal_fails(h: Harness) -> None:
    """A new entry raises ExposureRefusedError and nothing reaches the exchange."""
    _journal(h).fail_writes = True
    before = h.snapshot()
    with pytest.raises(ExposureRefusedError, match="journal"):
        await h.manager.place_limit_order(MNQ, OrderSide.BUY, 1, Decimal("20990.00"))
    with pytest.raises((ExposureRefusedError, JournalError)):
        await h.manager.place_bracket_order(
            MNQ, OrderSide.BUY, 1, Decimal("20990.00"), Decimal("20980.00"), Decimal("21010.00")
        )
    assert h.snapshot() == before


async def test_a_stop_loss_still_goes_out_while_the_journal_fails(h: Harness) -> None:
    """Protection for an existing position is placed (unjournaled) and managed in memory."""
    await open_position(h, 2)
    _journal(h).fail_writes = True
    response = await h.manager.add_stop_loss(MNQ, STOP)
    await quiet(h)
    assert [(o.type, o.side, o.size) for o in exits(h)] == [(OrderType.STOP, OrderSide.SELL, 2)]
    assert response.operation_id == ""  # no operation could be recorded
    assert h.manager.get_recovery_statistics()["unjournaled_sends"] == 1
    # Managed all the same: the position going flat cancels it.
    await h.manager.close_position(MNQ, whole_contract=True)
    await quiet(h, 0.5)
    assert position(h) == 0 and working(h) == []


async def test_flattening_goes_out_while_the_journal_fails(h: Harness) -> None:
    """close_position flattens the position although nothing can be journaled."""
    await open_position(h, 3)
    _journal(h).fail_writes = True
    result = await h.manager.close_position(MNQ, whole_contract=True)
    await quiet(h)
    assert position(h) == 0 and result.closed_size == 3


async def test_a_filled_bracket_stays_protected_while_the_journal_fails(
    make_harness: HarnessFactory,
) -> None:
    """A protected bracket keeps its stop through a journal outage and a market move."""
    h: Harness = await make_harness()
    response = await h.manager.place_bracket_order(
        MNQ, OrderSide.BUY, 1, None, Decimal("20980.00"), Decimal("21020.00"), entry_type="market"
    )
    await quiet(h, 1.0)
    assert response.stop_order_id is not None and position(h) == 1
    _journal(h).fail_writes = True
    await quiet(h, 60.0)
    stop = h.exchange.order(1, response.stop_order_id)
    assert stop is not None and stop.is_working and position(h) == 1
    h.exchange.set_price(MNQ, Decimal("20979.00"))  # the stop triggers: protection worked
    await quiet(h, 1.0)
    assert position(h) == 0 and working(h) == []


async def test_normal_operation_resumes_when_the_journal_recovers(h: Harness) -> None:
    """Once writes succeed again, entries are journaled and accepted."""
    _journal(h).fail_writes = True
    with pytest.raises(ExposureRefusedError):
        await h.manager.place_limit_order(MNQ, OrderSide.BUY, 1, Decimal("20990.00"))
    _journal(h).fail_writes = False
    placed = await h.manager.place_limit_order(MNQ, OrderSide.BUY, 1, Decimal("20990.00"))
    intent = await _journal(h).intent_by_tag(placed.custom_tag, 1)
    assert intent is not None


async def test_the_reconciler_keeps_working_while_the_journal_fails(
    make_harness: HarnessFactory,
) -> None:
    """A fill whose events were lost is still found by the reconciler during an outage."""
    h: Harness = await make_harness()
    placed = await h.manager.place_limit_order(MNQ, OrderSide.BUY, 1, Decimal("20990.00"))
    await quiet(h)
    _journal(h).fail_writes = True
    sub = h.manager._subscription
    assert sub is not None
    sub.close()  # the stream dies silently: no event from now on
    h.exchange.set_price(MNQ, Decimal("20989.00"))
    cfg = h.manager.config
    await quiet(h, cfg.silence_threshold + cfg.reconcile_interval + 0.1)
    view = h.manager.tracker.get(placed.order_id)
    assert view is not None and view.status is OrderStatus.FILLED
