"""submit(): caller-tagged requests are validated like any placement, tags are idempotency keys."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from orderguard.config import OrderManagerConfig
from orderguard.errors import (
    ExposureRefusedError,
    InvalidPriceError,
    OrderRejectedError,
    OutcomeUnknownError,
    UnknownContractError,
    ValidationError,
)
from orderguard.models import OrderRequest, OrderSide, OrderType

from .conftest import MNQ, Harness
from .fakes import RequestLostBroker


def _request(h: Harness, **changes: Any) -> OrderRequest:
    tag = h.manager.tags.tag("op1", "entry", 0)
    base = OrderRequest(
        1, MNQ, OrderType.LIMIT, OrderSide.BUY, 1, Decimal("20990.00"), custom_tag=tag
    )
    return replace(base, **changes)


async def test_submit_places_with_callers_tag(h: Harness) -> None:
    """A submitted request is placed with the tag the caller derived."""
    result = await h.manager.submit(_request(h))
    assert result.custom_tag == "og-op1-entry-0"
    assert h.exchange.order(1, result.order_id) is not None


async def test_resubmitting_same_intent_is_refused_by_the_broker(h: Harness) -> None:
    """Re-sending the same tag cannot create a second order: the broker refuses the duplicate."""
    await h.manager.submit(_request(h))
    with pytest.raises(OrderRejectedError):
        await h.manager.submit(_request(h))
    assert len(h.exchange.orders(1)) == 1


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"custom_tag": None}, ValidationError),
        ({"type": OrderType.STOP_LIMIT}, ValidationError),
        ({"limit_price": Decimal("20990.10")}, InvalidPriceError),
        ({"limit_price": None}, InvalidPriceError),
        ({"contract_id": "MNQ"}, UnknownContractError),
        ({"size": 0}, ValidationError),
    ],
)
async def test_bad_submit_sends_nothing(
    h: Harness, changes: dict[str, Any], error: type[Exception]
) -> None:
    """A malformed submitted request raises its typed error and sends nothing."""
    before = h.snapshot()
    with pytest.raises(error):
        await h.manager.submit(_request(h, **changes))
    assert h.snapshot() == before


async def test_a_reducing_order_passes_the_latch_whatever_the_caller_says(
    make_harness: Any,
) -> None:
    """On a latched contract a stop that reduces the position goes out, flag or not (a fact
    of the position); one larger than the position would open exposure and is refused even
    with respect_latch=False."""
    config = OrderManagerConfig(status_check_initial_delay=0.1, status_check_max_delay=0.2)
    h: Harness = await make_harness(RequestLostBroker, config=config)
    assert isinstance(h.broker, RequestLostBroker)
    h.broker.losing = False
    await h.clock.run(h.manager.place_market_order(MNQ, 0, 1))  # long 1
    await h.clock.advance(0.1)
    h.broker.losing = True
    with pytest.raises(OutcomeUnknownError):
        await h.clock.run(h.manager.place_limit_order(MNQ, 0, 1, Decimal("20990.00")))
    h.broker.losing = False  # the line is healthy again; the contract stays latched
    stop = _request(h, type=OrderType.STOP, side=OrderSide.SELL, limit_price=None,
                    stop_price=Decimal("20950.00"))  # fmt: skip
    with pytest.raises(ExposureRefusedError):
        await h.clock.run(h.manager.submit(replace(stop, size=2), respect_latch=False))
    result = await h.clock.run(h.manager.submit(stop))
    assert h.exchange.order(1, result.order_id) is not None
