"""Journal first: an intent before every mutation, an outcome after; F15 when it cannot write."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orderguard.broker.faults import FaultKind
from orderguard.errors import ExposureRefusedError
from orderguard.models import OrderSide, OrderStatus
from orderguard.orders.results import CloseOutcome
from orderguard.resilience import Priority

from .conftest import RigFactory
from .rig import MNQ, Rig, limit_request, market_request


async def test_single_placement_intent_precedes_its_outcome(rig: Rig) -> None:
    """A plain placement journals a 'single' intent with its tag, then a confirmed outcome."""
    placed = await rig.manager.place_limit_order(MNQ, OrderSide.BUY, 1, Decimal("20900"))
    intent = await rig.journal.intent_by_tag(placed.custom_tag, 1)
    assert intent is not None
    assert (intent.operation_id, intent.leg, intent.kind.value) == (None, "single", "place")
    outcome = await rig.journal.outcome_for(intent.intent_id)
    assert outcome is not None and outcome.kind.value == "confirmed"
    assert outcome.order_id == placed.order_id


async def test_unknown_placement_is_journaled_unknown_then_resolved(make_rig: RigFactory) -> None:
    """Executed but answer lost: outcomes read unknown, then resolved with the found order."""
    rig = await make_rig()
    rig.broker.fail_next("place_order", FaultKind.AMBIGUOUS)
    placed = await rig.clock.run(
        rig.manager.place_limit_order(MNQ, OrderSide.BUY, 1, Decimal("20900"))
    )
    intent = await rig.journal.intent_by_tag(placed.custom_tag, 1)
    assert intent is not None
    outcomes = await rig.journal.outcomes_for(intent.intent_id)
    assert [o.kind.value for o in outcomes] == ["unknown", "resolved"]
    assert outcomes[-1].order_id == placed.order_id


async def test_cancel_is_journaled(rig: Rig) -> None:
    """A cancel records a cancel intent naming the order, and its outcome."""
    placed = await rig.manager.place_limit_order(MNQ, OrderSide.BUY, 1, Decimal("20900"))
    await rig.manager.cancel_order(placed.order_id)
    counts = await rig.journal.counts()
    assert counts.intents == 2 and counts.outcomes == {"confirmed": 2}


async def test_journal_down_refuses_new_exposure_and_sends_nothing(rig: Rig) -> None:
    """F15: an entry is refused before anything leaves; the exchange has no order."""
    rig.journal.fail_writes = True
    with pytest.raises(ExposureRefusedError, match="journal"):
        await rig.manager.place_limit_order(MNQ, OrderSide.BUY, 1, Decimal("20900"))
    with pytest.raises(ExposureRefusedError):
        await rig.manager.submit(limit_request("og-x-entry-0"))
    assert rig.orders() == []
    stats = rig.manager.get_recovery_statistics()
    assert stats["exposure_refused_journal"] == 2 and stats["journal_failures"] == 2


async def test_journal_down_still_sends_protective_orders(rig: Rig) -> None:
    """F15: a protective order (it reduces the position) goes out unjournaled and is
    counted."""
    await rig.manager.submit(market_request("og-x-entry-0"))
    await rig.settle()
    rig.journal.fail_writes = True
    placed = await rig.manager.submit(
        limit_request("og-x-stop-0", OrderSide.SELL), respect_latch=False
    )
    assert rig.exchange.order(1, placed.order_id) is not None
    assert rig.manager.get_recovery_statistics()["unjournaled_sends"] == 1


async def test_journal_down_still_cancels(rig: Rig) -> None:
    """F15: cancels go out while the journal cannot be written."""
    placed = await rig.manager.place_limit_order(MNQ, OrderSide.BUY, 1, Decimal("20900"))
    rig.journal.fail_writes = True
    result = await rig.manager.cancel_order(placed.order_id)
    assert result.cancelled
    order = rig.exchange.order(1, placed.order_id)
    assert order is not None and order.status is OrderStatus.CANCELLED


async def test_journal_down_still_flattens(rig: Rig) -> None:
    """F15: close_position flattens unrecorded (operation_id None) while the journal is down."""
    await rig.manager.submit(market_request("og-x-entry-0", size=2))
    await rig.settle()
    rig.journal.fail_writes = True
    result = await rig.clock.run(rig.manager.close_position(MNQ, size=2))
    await rig.settle()
    assert result.outcome is CloseOutcome.CLOSED and result.operation_id is None
    assert rig.position() == 0


async def test_flatten_priority_passes_while_entries_are_refused(rig: Rig) -> None:
    """A request that reduces the position passes the journal gate in its lane; the same
    request on a flat contract is exposure and is refused, whatever priority it claims."""
    rig.journal.fail_writes = True
    with pytest.raises(ExposureRefusedError):
        await rig.manager.submit(
            limit_request("og-x-flat-0", OrderSide.SELL), priority=Priority.FLATTEN
        )
    rig.journal.fail_writes = False
    await rig.manager.submit(market_request("og-x-entry-0"))
    await rig.settle()
    rig.journal.fail_writes = True
    placed = await rig.manager.submit(
        limit_request("og-x-flat-1", OrderSide.SELL), priority=Priority.FLATTEN
    )
    assert rig.exchange.order(1, placed.order_id) is not None
