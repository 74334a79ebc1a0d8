"""Unknown outcomes: resolved by customTag, never re-sent; unresolved ones latch (F1)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from orderguard.broker.base import Confirmed
from orderguard.config import OrderManagerConfig
from orderguard.errors import ConnectionFailedError, ExposureRefusedError, OutcomeUnknownError
from orderguard.models import OrderRequest, OrderSide, OrderStatus, OrderType
from orderguard.orders import Resolution

from .conftest import ES, MNQ, Harness
from .fakes import AnswerLostBroker, RefusingBroker, RequestLostBroker

FAST = OrderManagerConfig(status_check_initial_delay=1.0, status_check_max_delay=4.0)


async def test_lost_answer_resolved_by_tag(make_harness: Any) -> None:
    """A placement whose answer is lost is found by its tag and reported with its status."""
    h: Harness = await make_harness(AnswerLostBroker)
    result = await h.manager.place_limit_order(MNQ, OrderSide.BUY, 1, Decimal("20990.00"))
    (order,) = h.exchange.orders(1)
    assert (result.order_id, result.custom_tag) == (order.id, order.custom_tag)
    assert (result.status, result.resolution) == (OrderStatus.OPEN, Resolution.TAG_LOOKUP)


async def test_lost_answer_is_never_resent(make_harness: Any) -> None:
    """The ambiguous placement is sent exactly once and exactly one order exists."""
    h: Harness = await make_harness(AnswerLostBroker)
    await h.manager.place_market_order(MNQ, OrderSide.BUY, 1)
    assert [kind for kind, _ in h.broker.calls] == ["place"]
    assert len(h.exchange.orders(1)) == 1
    assert h.exchange.position_size(1, MNQ) == 1


async def test_lost_answer_of_filled_order_found_among_all_statuses(make_harness: Any) -> None:
    """A market order that filled before the lookup is found although it is no longer open."""
    h: Harness = await make_harness(AnswerLostBroker)
    await h.settle()
    result = await h.manager.place_market_order(MNQ, OrderSide.BUY, 1)
    assert result.status is OrderStatus.FILLED


async def test_unresolved_placement_raises_outcome_unknown(make_harness: Any) -> None:
    """When the tag is never found, OutcomeUnknownError names the tag and origin."""
    h: Harness = await make_harness(RequestLostBroker, config=FAST)
    with pytest.raises(OutcomeUnknownError) as info:
        await h.clock.run(h.manager.place_limit_order(MNQ, 0, 1, Decimal("20990.00")))
    assert info.value.custom_tag == h.broker.placed_tags[0]
    assert info.value.origin == "connection_lost"
    assert h.exchange.orders(1) == []


async def test_unresolved_lookup_uses_bounded_backoff(make_harness: Any) -> None:
    """Resolution makes status_check_max_attempts searches over capped, growing delays."""
    h: Harness = await make_harness(RequestLostBroker, config=FAST)
    start = h.clock.monotonic()
    with pytest.raises(OutcomeUnknownError):
        await h.clock.run(h.manager.place_limit_order(MNQ, 0, 1, Decimal("20990.00")))
    assert h.broker.searches == FAST.status_check_max_attempts
    # delays 1, 2, 4, 4 (capped), each jittered into [d/2, d]
    assert 5.5 <= h.clock.monotonic() - start <= 11.0


async def test_unresolved_placement_latches_contract(make_harness: Any) -> None:
    """After an unresolved placement, new exposure on that contract is refused, unsent."""
    h: Harness = await make_harness(RequestLostBroker, config=FAST)
    with pytest.raises(OutcomeUnknownError):
        await h.clock.run(h.manager.place_limit_order(MNQ, 0, 1, Decimal("20990.00")))
    calls = len(h.broker.calls)
    with pytest.raises(ExposureRefusedError):
        await h.manager.place_market_order(MNQ, OrderSide.SELL, 1)
    assert len(h.broker.calls) == calls
    assert h.manager.latch.is_latched(1, MNQ)


async def test_latch_leaves_other_contracts_alone(make_harness: Any) -> None:
    """A latch on one contract does not block another contract."""
    h: Harness = await make_harness(RequestLostBroker, config=FAST)
    with pytest.raises(OutcomeUnknownError):
        await h.clock.run(h.manager.place_limit_order(MNQ, 0, 1, Decimal("20990.00")))
    assert isinstance(h.broker, RequestLostBroker)
    h.broker.losing = False  # the line is healthy again
    result = await h.manager.place_limit_order(ES, 0, 1, Decimal("5990.00"))
    assert h.exchange.order(1, result.order_id) is not None


async def test_cancel_passes_while_latched(make_harness: Any) -> None:
    """Cancels still go through on a latched contract."""
    h: Harness = await make_harness(RequestLostBroker, config=FAST)
    resting = await h.sim.place_order(_limit_request(h, "manual-1"))
    assert isinstance(resting, Confirmed) and resting.order_id is not None
    with pytest.raises(OutcomeUnknownError):
        await h.clock.run(h.manager.place_limit_order(MNQ, 0, 1, Decimal("20990.00")))
    result = await h.manager.cancel_order(resting.order_id)
    assert result and result.status is OrderStatus.CANCELLED


async def test_late_order_event_clears_latch(make_harness: Any) -> None:
    """When the lost request finally lands, its order event releases the latch."""
    h: Harness = await make_harness(RequestLostBroker, config=FAST)
    with pytest.raises(OutcomeUnknownError):
        await h.clock.run(h.manager.place_limit_order(MNQ, 0, 1, Decimal("20990.00")))
    await h.broker.deliver_late()
    await h.settle()
    assert not h.manager.latch.is_latched(1, MNQ)
    assert h.manager.background_tasks == 0


async def test_background_recheck_clears_latch_without_events(make_harness: Any) -> None:
    """With events lost, the periodic re-check finds the order and releases the latch."""
    h: Harness = await make_harness(RequestLostBroker, config=FAST)
    with pytest.raises(OutcomeUnknownError):
        await h.clock.run(h.manager.place_limit_order(MNQ, 0, 1, Decimal("20990.00")))
    h.manager._close_subscription()  # events are lost from here on
    await h.broker.deliver_late()
    assert h.manager.latch.is_latched(1, MNQ)
    await h.clock.advance(FAST.status_check_max_delay)
    assert not h.manager.latch.is_latched(1, MNQ)


async def test_connection_refused_is_resent_with_same_tag(make_harness: Any) -> None:
    """A request that provably never left is re-sent with the same tag, once placed."""
    h: Harness = await make_harness(lambda sim: RefusingBroker(sim, refuse=2))
    result = await h.clock.run(h.manager.place_market_order(MNQ, OrderSide.BUY, 1))
    assert h.broker.placed_tags == [result.custom_tag] * 3
    assert len(h.exchange.orders(1)) == 1


async def test_connection_refused_gives_up_after_bounded_retries(make_harness: Any) -> None:
    """Past placement_connect_retries the ConnectionFailedError surfaces; nothing is latched."""
    h: Harness = await make_harness(lambda sim: RefusingBroker(sim, refuse=10))
    with pytest.raises(ConnectionFailedError):
        await h.clock.run(h.manager.place_market_order(MNQ, OrderSide.BUY, 1))
    assert len(h.broker.placed_tags) == 1 + h.manager.config.placement_connect_retries
    assert not h.manager.latch.is_latched(1, MNQ)


async def test_modify_with_lost_answer_reports_live_order(make_harness: Any) -> None:
    """A modify whose answer is lost re-reads the order and reports the live price."""
    h: Harness = await make_harness(lambda sim: AnswerLostBroker(sim, lose=0))
    placed = await h.manager.place_limit_order(MNQ, 0, 1, Decimal("20990.00"))
    h.broker.lose = 1  # type: ignore[attr-defined]
    result = await h.manager.modify_order(placed.order_id, limit_price=Decimal("20980.00"))
    assert result.success and result.resolution is Resolution.STATE_READ
    assert result.order is not None and result.order.limit_price == Decimal("20980.00")


def _limit_request(h: Harness, tag: str) -> OrderRequest:
    return OrderRequest(1, MNQ, OrderType.LIMIT, OrderSide.BUY, 1, Decimal("20900"), custom_tag=tag)
