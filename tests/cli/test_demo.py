"""The demo scenario as a function: its summary agrees with the simulated exchange's truth."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from orderguard.cli.demo import (
    ACCOUNT_ID,
    MNQ,
    DemoLine,
    DemoOptions,
    DemoScenario,
    FaultLevel,
    LineKind,
    audit,
    drive,
)
from orderguard.models import Order, OrderSide, OrderStatus, OrderType, Trade

AT = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


@pytest.fixture(params=list(FaultLevel))
def level(request: pytest.FixtureRequest) -> FaultLevel:
    return FaultLevel(request.param)


async def test_summary_matches_the_exchange(level: FaultLevel) -> None:
    """Orders, fills, P&L, fees and balance in the summary are the exchange's own numbers."""
    scenario = DemoScenario(DemoOptions(seed=5, faults=level))
    summary = await drive(scenario)
    exchange = scenario.exchange
    trades = exchange.trades(ACCOUNT_ID)
    assert [(r.id, r.filled, r.status) for r in summary.orders] == [
        (o.id, o.fill_volume, o.status.name.lower()) for o in exchange.orders(ACCOUNT_ID)
    ]
    assert summary.fills == len(trades)
    assert summary.realised_pnl == sum((t.profit_and_loss or 0 for t in trades), Decimal(0))
    assert summary.fees == sum((t.fees for t in trades), Decimal(0))
    assert summary.end_balance == exchange.account(ACCOUNT_ID).balance
    assert summary.end_balance == summary.start_balance + summary.net_pnl


async def test_demo_ends_flat_with_no_working_orders(level: FaultLevel) -> None:
    """At the end the exchange holds no position and no working order, and the summary says so."""
    scenario = DemoScenario(DemoOptions(seed=11, faults=level))
    summary = await drive(scenario)
    assert scenario.exchange.positions(ACCOUNT_ID) == []
    assert [o for o in scenario.exchange.orders(ACCOUNT_ID) if o.is_working] == []
    assert (summary.final_position, summary.working_orders, summary.violations) == (0, 0, ())
    assert summary.ok


async def test_demo_places_every_promised_order_type() -> None:
    """Market entry, resting limit, stop, trailing stop and join-bid all reach the exchange."""
    summary = await drive(DemoScenario(DemoOptions(seed=1)))
    kinds = {row.type for row in summary.orders}
    assert {
        OrderType.MARKET,
        OrderType.LIMIT,
        OrderType.STOP,
        OrderType.TRAILING_STOP,
        OrderType.JOIN_BID,
    } <= kinds


async def test_demo_places_a_bracket_with_both_exits() -> None:
    """The bracket's entry, stop and target reach the exchange; its final outcome is reported."""
    summary = await drive(DemoScenario(DemoOptions(seed=1)))
    roles = {row.role for row in summary.orders}
    assert {"bracket entry", "bracket stop", "bracket target"} <= roles
    assert summary.bracket.startswith(("flat", "protected"))


async def test_demo_shows_partial_fills() -> None:
    """The 2-lot entry fills one contract per step: a partial fill comes before the full one."""
    lines: list[DemoLine] = []
    await drive(DemoScenario(DemoOptions(seed=1), sink=lines.append))
    fills = [line.text for line in lines if line.kind is LineKind.FILL]
    assert any("(1/2)" in text for text in fills)
    assert any("(2/2)" in text for text in fills)


async def test_faults_are_counted_and_the_lost_entry_resolved_by_tag() -> None:
    """With mild faults the scripted ambiguous entry is injected and resolved by its tag."""
    summary = await drive(DemoScenario(DemoOptions(seed=1, faults=FaultLevel.MILD)))
    assert summary.fault_counts.get("ambiguous", 0) >= 1
    assert summary.order_stats["placements_resolved_by_tag"] >= 1


async def test_without_faults_nothing_is_injected() -> None:
    """`none` does not wrap the broker: no fault is counted."""
    summary = await drive(DemoScenario(DemoOptions(seed=1)))
    assert summary.fault_counts == {}


async def test_line_times_never_go_backwards() -> None:
    """Every line carries virtual time, and a fault is shown before what it caused."""
    lines: list[DemoLine] = []
    await drive(DemoScenario(DemoOptions(seed=2, faults=FaultLevel.ALL), sink=lines.append))
    stamps = [line.at for line in lines]
    assert stamps == sorted(stamps)


async def test_skipping_the_close_breaks_the_audit() -> None:
    """Without the close the position stays open and the summary lists the broken invariant."""
    summary = await drive(DemoScenario(DemoOptions(seed=1, close_at_end=False)))
    assert not summary.ok
    assert any(v.startswith("position left open") for v in summary.violations)


def test_too_few_steps_are_refused() -> None:
    """The story needs room: fewer steps than the minimum is a ValueError."""
    with pytest.raises(ValueError, match="at least"):
        DemoOptions(steps=10)


def _order(status: OrderStatus) -> Order:
    return Order(
        id=9,
        account_id=ACCOUNT_ID,
        contract_id=MNQ,
        creation_timestamp=AT,
        update_timestamp=None,
        status=status,
        type=OrderType.STOP,
        side=OrderSide.SELL,
        size=1,
        stop_price=Decimal("20990.00"),
    )


def _trade(pnl: str | None, fees: str) -> Trade:
    return Trade(
        id=1,
        account_id=ACCOUNT_ID,
        contract_id=MNQ,
        creation_timestamp=AT,
        price=Decimal("21000.00"),
        profit_and_loss=None if pnl is None else Decimal(pnl),
        fees=Decimal(fees),
        side=OrderSide.BUY,
        size=1,
        voided=False,
        order_id=1,
    )


def test_audit_flags_an_exit_order_left_on_a_flat_position() -> None:
    """A working order with no position is named as an orphaned exit."""
    problems = audit([_order(OrderStatus.OPEN)], {}, Decimal("50000.00"), [])
    assert problems == ["exit order left on a flat position: #9 stop sell 1 @ 20990.00 (OPEN)"]


def test_audit_flags_an_open_position() -> None:
    """A non-zero position at the end is a broken invariant."""
    problems = audit([], {MNQ: -2}, Decimal("50000.00"), [])
    assert problems == [f"position left open: short 2 {MNQ}"]


def test_audit_flags_a_balance_that_does_not_add_up() -> None:
    """Balance must equal the start plus realised P&L minus fees over all trades."""
    trades = [_trade(None, "0.37"), _trade("10.00", "0.37")]
    assert audit([], {}, Decimal("50009.26"), trades) == []
    assert audit([], {}, Decimal("50010.00"), trades) == [
        "balance 50,010.00 does not add up to 50,009.26"
    ]


def test_audit_accepts_a_clean_account() -> None:
    """Filled and cancelled orders, no position, balance booked: nothing to report."""
    orders = [_order(OrderStatus.FILLED), _order(OrderStatus.CANCELLED)]
    assert audit(orders, {}, Decimal("50000.00"), []) == []
