"""The manager's counters are named by an enum; what get_order_statistics() reports is unchanged."""

from __future__ import annotations

import re
from collections import Counter
from enum import StrEnum
from pathlib import Path

import pytest

import orderguard
from orderguard.models import OrderSide
from orderguard.orders.metrics import (
    HoldingsMetric,
    Metric,
    PositionOrderMetric,
    ReconcilerMetric,
    WatcherMetric,
    by_name,
    risk_refusal,
)

from .conftest import MNQ, Harness

SOURCE = Path(orderguard.__file__).parent


ENUMS = [Metric, ReconcilerMetric, PositionOrderMetric, WatcherMetric, HoldingsMetric]


@pytest.mark.parametrize("enum", ENUMS, ids=lambda e: e.__name__)
def test_every_metric_has_its_own_snake_case_name(enum: type[StrEnum]) -> None:
    names = [metric.value for metric in enum]
    assert len(set(names)) == len(names) == len(enum.__members__)  # no alias hides a second name
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", name) for name in names)


@pytest.mark.parametrize("enum", ENUMS, ids=lambda e: e.__name__)
def test_every_metric_is_counted_somewhere(enum: type[StrEnum]) -> None:
    """No name is declared that nothing counts (a renamed counter leaves no dead name)."""
    code = "\n".join(
        p.read_text(encoding="utf-8") for p in SOURCE.rglob("*.py") if p.name != "metrics.py"
    )
    uncounted = [
        metric.name
        for metric in enum
        if f"{enum.__name__}.{metric.name}" not in code
        and not metric.name.startswith("RISK_REFUSALS_")  # counted through risk_refusal(limit)
    ]
    assert uncounted == []


def test_a_refusal_is_counted_under_its_limit() -> None:
    assert risk_refusal("daily_loss") is Metric.RISK_REFUSALS_DAILY_LOSS
    assert risk_refusal("unverified") is Metric.RISK_REFUSALS_UNVERIFIED
    with pytest.raises(KeyError):
        risk_refusal("daily_los")


def test_by_name_keeps_the_order_first_counted_and_plain_string_keys() -> None:
    counts: Counter[Metric] = Counter()
    counts[Metric.PROBES] += 1
    counts[Metric.ORDERS_PLACED] += 2
    counts[Metric.PROBES] += 1
    assert counts[Metric.CANCELS_SENT] == 0  # reading does not count
    named = by_name(counts)
    assert named == {"probes": 2, "orders_placed": 2}
    assert [type(key) for key in named] == [str, str]


async def test_order_statistics_hold_only_what_was_counted(h: Harness) -> None:
    assert h.manager.get_order_statistics() == {  # the harness started the manager
        "startup_recoveries": 1,
        "callback_errors": 0,
        "latched_outcomes": 0,
        "tracked_orders": 0,
    }
    await h.manager.place_market_order(MNQ, OrderSide.BUY, 1)
    await h.settle()
    stats = h.manager.get_order_statistics()
    assert stats["orders_placed"] == 1
    assert "orders_rejected" not in stats
    assert all(type(key) is str for key in stats)
    assert h.manager.get_recovery_statistics()["journal_failures"] == 0
