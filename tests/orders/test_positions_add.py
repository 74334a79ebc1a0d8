"""add_stop_loss / add_take_profit: protective orders for the current position, journaled."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from orderguard.errors import InvalidPriceError, InvalidSizeError, NoPositionError
from orderguard.journal.memory import MemoryJournal
from orderguard.models import OrderSide, OrderStatus, OrderType
from orderguard.orders import OrderManager

from .conftest import ES, MNQ, Harness, HarnessFactory
from .fakes import AnswerLostBroker, RequestLostBroker
from .position_helpers import exits, open_position, placed, quiet


async def test_stop_loss_protects_a_long(h: Harness) -> None:
    """A stop for a long is a sell stop of the position's size below the market."""
    await open_position(h, 2)
    result = await h.manager.add_stop_loss(MNQ, Decimal("20990.00"))
    [stop] = exits(h)
    assert (stop.id, stop.type, stop.side, stop.size) == (
        result.order_id,
        OrderType.STOP,
        OrderSide.SELL,
        2,
    )
    assert stop.stop_price == Decimal("20990.00")
    assert (result.kind, result.size, result.position_size) == ("stop", 2, 2)


async def test_take_profit_protects_a_short(h: Harness) -> None:
    """A target for a short is a buy limit of the position's size below the market."""
    await open_position(h, -3)
    result = await h.manager.add_take_profit(MNQ, Decimal("20980.00"))
    [target] = exits(h)
    assert (target.id, target.type, target.side, target.size) == (
        result.order_id,
        OrderType.LIMIT,
        OrderSide.BUY,
        3,
    )


async def test_smaller_size_is_honoured(h: Harness) -> None:
    """An explicit size no larger than the position is used as given."""
    await open_position(h, 3)
    await h.manager.add_stop_loss(MNQ, Decimal("20990.00"), size=1)
    assert [o.size for o in exits(h)] == [1]


async def test_larger_size_is_refused_and_nothing_sent(h: Harness) -> None:
    """A size above the position raises InvalidSizeError before anything is sent."""
    await open_position(h, 2)
    before = h.snapshot()
    with pytest.raises(InvalidSizeError):
        await h.manager.add_stop_loss(MNQ, Decimal("20990.00"), size=3)
    assert h.snapshot() == before


async def test_no_position_is_refused_and_nothing_sent(h: Harness) -> None:
    """Without a position there is nothing to protect: NoPositionError, no order, no record."""
    before = h.snapshot()
    with pytest.raises(NoPositionError):
        await h.manager.add_stop_loss(MNQ, Decimal("20990.00"))
    with pytest.raises(NoPositionError):
        await h.manager.add_take_profit(MNQ, Decimal("21010.00"))
    assert h.snapshot() == before
    assert h.manager.get_recovery_statistics()["operations_started"] == 0


@pytest.mark.parametrize(
    ("signed", "price"),
    [(2, "21000.00"), (2, "21005.00"), (-2, "21000.00"), (-2, "20995.00")],
)
async def test_stop_on_wrong_side_of_market_is_refused(h: Harness, signed: int, price: str) -> None:
    """A stop at or through the market would fill at once: refused, nothing sent."""
    await open_position(h, signed)
    before = h.snapshot()
    with pytest.raises(InvalidPriceError):
        await h.manager.add_stop_loss(MNQ, Decimal(price))
    assert h.snapshot() == before


@pytest.mark.parametrize(("signed", "price"), [(2, "20995.00"), (-2, "21005.00")])
async def test_target_on_wrong_side_of_market_is_refused(
    h: Harness, signed: int, price: str
) -> None:
    """A marketable target is really a market exit: refused, nothing sent."""
    await open_position(h, signed)
    before = h.snapshot()
    with pytest.raises(InvalidPriceError):
        await h.manager.add_take_profit(MNQ, Decimal(price))
    assert h.snapshot() == before


async def test_off_tick_price_is_refused(h: Harness) -> None:
    """A price off the tick grid is refused, never rounded."""
    await open_position(h, 1)
    before = h.snapshot()
    with pytest.raises(InvalidPriceError, match="tick"):
        await h.manager.add_stop_loss(MNQ, Decimal("20990.10"))
    assert h.snapshot() == before


async def test_position_on_another_contract_does_not_count(h: Harness) -> None:
    """A long on ES is no position on MNQ."""
    await open_position(h, 1, contract=ES)
    with pytest.raises(NoPositionError):
        await h.manager.add_stop_loss(MNQ, Decimal("20990.00"))


async def test_stop_is_journaled_with_a_deterministic_tag(h: Harness) -> None:
    """The order carries the operation's tag and the operation records it as completed."""
    await open_position(h, 1)
    result = await h.manager.add_stop_loss(MNQ, Decimal("20990.00"))
    status = h.manager.recovery.get_operation_status(result.operation_id)
    assert status is not None
    assert (status["type"], status["state"]) == ("protective_order", "completed")
    assert result.custom_tag == h.manager.recovery.tag_for(
        h.manager.recovery.operation_history[-1], "stop", 0
    )
    assert h.exchange.order(1, result.order_id).custom_tag == result.custom_tag  # type: ignore[union-attr]


async def test_lost_answer_is_resolved_by_tag(make_harness: HarnessFactory) -> None:
    """A stop whose answer was lost is found by its tag: one order, no duplicate."""
    h: Harness = await make_harness(wrapper=lambda sim: AnswerLostBroker(sim, lose=1))
    await open_position(h, 1)
    result = await h.manager.add_stop_loss(MNQ, Decimal("20990.00"))
    assert [o.id for o in exits(h)] == [result.order_id]
    assert placed(h) == 2  # the entry and one stop


async def test_unresolved_stop_that_arrives_late_is_managed(make_harness: HarnessFactory) -> None:
    """A stop whose request surfaced only later is found by tag and follows the position."""
    h: Harness = await make_harness(wrapper=RequestLostBroker)
    h.broker.losing = False  # type: ignore[attr-defined]
    await open_position(h, 2)
    h.broker.losing = True  # type: ignore[attr-defined]
    with pytest.raises(Exception, match="unknown"):
        await h.clock.run(h.manager.add_stop_loss(MNQ, Decimal("20990.00")))
    h.broker.losing = False  # type: ignore[attr-defined]
    await h.broker.deliver_late()  # type: ignore[attr-defined]
    await quiet(h)  # its events release the ambiguity latch
    await open_position(h, 1)
    await quiet(h, h.manager.config.position_recheck_interval)
    assert [o.size for o in exits(h)] == [3]
    assert h.manager.position_orders.managed_exits()[0].order_id == exits(h)[0].id


async def test_managed_exits_survive_a_restart(h: Harness) -> None:
    """A new manager on the same journal resumes managing the stop and cancels it when flat."""
    journal = MemoryJournal(h.clock)
    first = OrderManager(h.broker, clock=h.clock, rng=random.Random(1), journal=journal)
    await first.start()
    await open_position(h, 2)
    stop = await first.add_stop_loss(MNQ, Decimal("20990.00"))
    await first.cleanup()
    second = OrderManager(h.broker, clock=h.clock, rng=random.Random(2), journal=journal)
    await second.start()
    try:
        assert await second.position_orders.resume() == 1
        await open_position(h, -2)
        assert exits(h) == []
        assert h.exchange.order(1, stop.order_id).status is OrderStatus.CANCELLED  # type: ignore[union-attr]
    finally:
        await second.cleanup()
