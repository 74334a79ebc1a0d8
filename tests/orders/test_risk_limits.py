"""Risk limits (send/risk.py): refused before exposure, never before protection or flattening."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from orderguard import RiskLimitError
from orderguard.broker.sim import default_contracts
from orderguard.config import OrderManagerConfig
from orderguard.errors import ConnectionFailedError, ExposureRefusedError, InvalidSizeError
from orderguard.models import Order, OrderRequest, OrderSide, OrderStatus, OrderType, Position
from orderguard.orders.send.risk import (
    RISK_EVENT,
    AccountFacts,
    RiskLimits,
    evaluate,
    trading_day_start,
    worst_case,
)

from .conftest import ES, MNQ, Harness, HarnessFactory
from .fakes import DelegatingBroker


def _order(side: OrderSide, size: int, contract: str = MNQ, filled: int = 0) -> Order:
    now = datetime(2026, 12, 7, tzinfo=UTC)
    return Order(
        id=1,
        account_id=1,
        contract_id=contract,
        creation_timestamp=now,
        update_timestamp=None,
        status=OrderStatus.OPEN,
        type=OrderType.LIMIT,
        side=side,
        size=size,
        limit_price=Decimal("1"),
        fill_volume=filled,
    )


async def _events(h: Harness, kind: str = RISK_EVENT) -> list[Any]:
    """Every journaled event of ``kind`` (the memory journal's store: the port lists events
    by operation only, and a refused stand-alone order has none)."""
    journal: Any = h.manager.journal
    return [rec for rec, _ in journal._events.values() if rec.kind == kind]


async def _harness(make_harness: HarnessFactory, **limits: Any) -> Harness:
    harness: Harness = await make_harness(config=OrderManagerConfig(**limits))
    return harness


# -- pure ---------------------------------------------------------------------------------------
def test_worst_case_counts_working_orders_of_each_side() -> None:
    """Long 2 with a stop and a target (sell 2 each) is worst case 2; a buy 1 more makes 3."""
    exits = [_order(OrderSide.SELL, 2), _order(OrderSide.SELL, 2)]
    assert worst_case(2, exits) == 2
    assert worst_case(2, exits, extra=1) == 3
    assert worst_case(0, [_order(OrderSide.BUY, 3, filled=1)], extra=-1) == 2


def test_evaluate_refuses_the_first_broken_limit() -> None:
    """Daily loss is checked first, then the contract's limit (override by symbol), then the
    account's."""
    contract = next(c for c in default_contracts() if c.id == MNQ)
    buy = OrderRequest(1, MNQ, OrderType.MARKET, OrderSide.BUY, 1)
    facts = AccountFacts({MNQ: 2, ES: -1})
    assert evaluate(RiskLimits(per_contract=3), buy, contract, facts) is None
    refusal = evaluate(RiskLimits(per_contract=3, overrides={"F.US.MNQ": 2}), buy, contract, facts)
    assert refusal is not None and refusal.limit == "contract_position"
    assert (refusal.value, refusal.allowed) == (3, 2)
    refusal = evaluate(RiskLimits(per_account=3), buy, contract, facts)
    assert refusal is not None and refusal.limit == "account_position" and refusal.value == 4
    lost = AccountFacts({}, realized=Decimal("-500"))
    refusal = evaluate(RiskLimits(daily_loss=Decimal("500"), per_contract=1), buy, contract, lost)
    assert refusal is not None and refusal.limit == "daily_loss"


def test_trading_day_starts_at_the_local_time_given() -> None:
    """17:00 Chicago: 21:30 UTC in July is still the day that began at 22:00 UTC the evening
    before; in December the day turns at 23:00 UTC."""
    summer = trading_day_start(datetime(2026, 7, 1, 21, 30, tzinfo=UTC), "17:00", "America/Chicago")
    assert summer.astimezone(UTC) == datetime(2026, 6, 30, 22, 0, tzinfo=UTC)
    winter = trading_day_start(
        datetime(2026, 12, 7, 22, 59, tzinfo=UTC), "17:00", "America/Chicago"
    )
    assert winter.astimezone(UTC) == datetime(2026, 12, 6, 23, 0, tzinfo=UTC)
    after = trading_day_start(datetime(2026, 12, 7, 23, 0, tzinfo=UTC), "17:00", "America/Chicago")
    assert after.astimezone(UTC) == datetime(2026, 12, 7, 23, 0, tzinfo=UTC)


# -- through the manager, on the simulated exchange ----------------------------------------------
async def test_contract_limit_refuses_more_exposure_and_sends_nothing(
    make_harness: HarnessFactory,
) -> None:
    """At a limit of 2, a third contract is refused, typed, journaled, and never sent."""
    h = await _harness(make_harness, max_position_per_contract=2)
    await h.manager.place_market_order(MNQ, OrderSide.BUY, 2)
    await h.settle()
    before = h.snapshot()
    with pytest.raises(RiskLimitError) as refused:
        await h.manager.place_market_order(MNQ, OrderSide.BUY, 1)
    assert isinstance(refused.value, ExposureRefusedError)
    assert refused.value.limit == "contract_position" and refused.value.value == 3
    assert h.snapshot() == before
    events = await _events(h)
    assert [e.payload["limit"] for e in events] == ["contract_position"]
    assert h.manager.get_order_statistics()["risk_refusals"] == 1


async def test_protective_and_flattening_orders_pass_at_the_limit(
    make_harness: HarnessFactory,
) -> None:
    """At the limit, a stop for the position and a close still go out."""
    h = await _harness(make_harness, max_position_per_contract=2, max_position_per_account=2)
    await h.manager.place_market_order(MNQ, OrderSide.BUY, 2)
    await h.settle()
    stop = await h.manager.add_stop_loss(MNQ, Decimal("20900.00"))
    assert stop.order_id is not None
    closed = await h.manager.close_position(MNQ, whole_contract=True)
    assert closed, closed
    await h.settle()
    assert h.exchange.position_size(1, MNQ) == 0
    assert await _events(h) == []


async def test_working_entries_count_toward_the_limit(make_harness: HarnessFactory) -> None:
    """Two resting one-lots and a limit of 2: a third resting one-lot is refused."""
    h = await _harness(make_harness, max_position_per_contract=2)
    for _ in range(2):
        await h.manager.place_limit_order(MNQ, OrderSide.BUY, 1, Decimal("20900.00"))
    with pytest.raises(RiskLimitError):
        await h.manager.place_limit_order(MNQ, OrderSide.BUY, 1, Decimal("20900.00"))
    # The other side is its own worst case: a resting sell 2 is within the limit.
    await h.manager.place_limit_order(MNQ, OrderSide.SELL, 2, Decimal("21100.00"))


async def test_per_contract_override_by_symbol(make_harness: HarnessFactory) -> None:
    """``position_limits`` keyed by symbol id overrides the general per-contract limit."""
    h = await _harness(make_harness, max_position_per_contract=5, position_limits={"F.US.MNQ": 1})
    await h.manager.place_market_order(MNQ, OrderSide.SELL, 1)
    with pytest.raises(RiskLimitError, match="above the limit of 1"):
        await h.manager.place_market_order(MNQ, OrderSide.SELL, 1)
    await h.manager.place_market_order(ES, OrderSide.SELL, 3)


async def test_account_limit_sums_every_contract(make_harness: HarnessFactory) -> None:
    """MNQ 2 and an account limit of 3: one ES passes, a second is refused."""
    h = await _harness(make_harness, max_position_per_account=3)
    await h.manager.place_market_order(MNQ, OrderSide.BUY, 2)
    await h.settle()
    await h.manager.place_market_order(ES, OrderSide.SELL, 1)
    await h.settle()
    with pytest.raises(RiskLimitError) as refused:
        await h.manager.place_market_order(ES, OrderSide.SELL, 1)
    assert refused.value.limit == "account_position" and refused.value.value == 4


async def test_daily_loss_from_realized_pnl(make_harness: HarnessFactory) -> None:
    """A realized loss past the limit refuses new entries; flattening and stops still pass."""
    h = await _harness(make_harness, daily_loss_limit=Decimal("100"))
    await h.manager.place_market_order(MNQ, OrderSide.BUY, 2)
    await h.settle()
    h.exchange.set_price(MNQ, Decimal("20950.00"))  # 50 points x $2 x 2 = -$200
    await h.manager.place_market_order(MNQ, OrderSide.SELL, 1)  # reducing: realizes -$100
    await h.settle()
    with pytest.raises(RiskLimitError) as refused:
        await h.manager.place_market_order(MNQ, OrderSide.BUY, 1)
    assert refused.value.limit == "daily_loss"
    assert refused.value.value <= Decimal("-100")
    await h.manager.add_stop_loss(MNQ, Decimal("20900.00"))  # protection passes
    closed = await h.manager.close_position(MNQ, whole_contract=True)  # so does a flatten
    assert closed
    await h.settle()
    assert h.exchange.position_size(1, MNQ) == 0
    with pytest.raises(RiskLimitError):  # and the day stays closed for new exposure
        await h.manager.place_market_order(ES, OrderSide.BUY, 1)


async def test_bracket_refused_by_a_limit_fails_its_operation(
    make_harness: HarnessFactory,
) -> None:
    """A bracket whose entry breaks a limit raises the typed refusal; its operation records it."""
    h = await _harness(make_harness, max_position_per_contract=1)
    with pytest.raises(RiskLimitError):
        await h.manager.place_bracket_order(
            MNQ, OrderSide.BUY, 2, None, Decimal("20990.00"), Decimal("21010.00"),
            entry_type="market",
        )  # fmt: skip
    await h.settle()
    assert h.exchange.orders(1) == []
    events = await _events(h)
    assert len(events) == 1 and events[0].operation_id is not None
    op = await h.manager.journal.get_operation(events[0].operation_id)
    assert op is not None and op.type == "bracket_order" and op.state == "failed"


async def test_growing_a_working_order_is_checked(make_harness: HarnessFactory) -> None:
    """Modifying a resting entry to a size past the limit is refused; shrinking is not."""
    h = await _harness(make_harness, max_position_per_contract=2)
    placed = await h.manager.place_limit_order(MNQ, OrderSide.BUY, 2, Decimal("20900.00"))
    with pytest.raises(RiskLimitError):
        await h.manager.modify_order(placed.order_id, size=3)
    result = await h.manager.modify_order(placed.order_id, size=1)
    assert result.success


class _PositionsDown(DelegatingBroker):
    async def search_positions(self, account_id: int) -> list[Position]:
        raise ConnectionFailedError("positions endpoint unreachable")


async def test_a_limit_that_cannot_be_checked_refuses(make_harness: HarnessFactory) -> None:
    """Positions unreadable: the entry is refused as unverified rather than let through."""
    h: Harness = await make_harness(
        wrapper=_PositionsDown,
        config=OrderManagerConfig(max_position_per_contract=5, query_retry_max_total=0.0),
    )
    with pytest.raises(RiskLimitError) as refused:
        await h.manager.place_market_order(MNQ, OrderSide.BUY, 1)
    assert refused.value.limit == "unverified"
    assert h.exchange.orders(1) == []


async def test_no_limits_configured_reads_nothing_extra(make_harness: HarnessFactory) -> None:
    """The default config has no limits: the gate reads nothing and refuses nothing."""
    h = await _harness(make_harness)
    assert not h.manager.risk.limits.active
    await h.manager.place_market_order(MNQ, OrderSide.BUY, 10)


async def test_the_accounts_own_max_order_size_is_respected(
    make_harness: HarnessFactory,
) -> None:
    """The account allows 50 per order (config allows 100): 51 is refused before sending."""
    h = await _harness(make_harness)
    with pytest.raises(InvalidSizeError):
        await h.manager.place_market_order(MNQ, OrderSide.BUY, 51)
    assert h.exchange.orders(1) == []


async def test_the_daily_loss_limit_resets_at_the_trading_day_start(
    make_harness: HarnessFactory,
) -> None:
    """The virtual session opens 08:30 Chicago time; with the day starting at 08:32 the loss
    made at 08:30 belongs to the day before once 08:32 has passed: entries pass again."""
    h = await _harness(
        make_harness,
        daily_loss_limit=Decimal("50"),
        trading_day_start="08:32",
        trading_day_timezone="America/Chicago",
    )
    await h.manager.place_market_order(MNQ, OrderSide.BUY, 1)
    await h.settle()
    h.exchange.set_price(MNQ, Decimal("20950.00"))  # 50 points x $2 = -$100
    assert (await h.manager.close_position(MNQ, whole_contract=True)).final_position == 0
    await h.settle()
    with pytest.raises(RiskLimitError):
        await h.manager.place_market_order(MNQ, OrderSide.BUY, 1)
    await h.clock.advance(180.0)  # 08:33: a new trading day
    await h.manager.place_market_order(MNQ, OrderSide.BUY, 1)


async def test_entries_checked_at_once_cannot_share_the_room(
    make_harness: HarnessFactory,
) -> None:
    """Two 2-lot entries sent together under a limit of 2: one passes, one is refused (the
    first holds its room while it is sent), never a position of 4."""
    h = await _harness(make_harness, max_position_per_contract=2)
    results = await asyncio.gather(
        h.manager.place_market_order(MNQ, OrderSide.BUY, 2),
        h.manager.place_market_order(MNQ, OrderSide.BUY, 2),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["OrderPlaceResponse", "RiskLimitError"]
    await h.settle()
    assert h.exchange.position_size(1, MNQ) == 2
    assert h.manager.risk.reserved(1) == []  # released after the send
