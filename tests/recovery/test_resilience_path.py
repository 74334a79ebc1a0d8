"""Rate limiter, circuit breakers and query retries on the OrderManager's path to the broker."""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal

import pytest

from orderguard.broker.faults import FaultKind, FaultPlan, MutationFaults
from orderguard.config import OrderManagerConfig
from orderguard.errors import CircuitOpenError, OrderRejectedError
from orderguard.models import OrderSide

from .conftest import RigFactory
from .rig import FAST, MNQ, limit_request, market_request

ENTRY = Decimal("20900")


def config(**kw: object) -> OrderManagerConfig:
    return FAST.model_copy(update=kw)


async def test_breaker_status_has_the_seed_shape(make_rig: RigFactory) -> None:
    """The seed's keys at top level, and per family: state, failure_count, is_healthy,
    retry_config from the status-check keys."""
    rig = await make_rig()
    summary = rig.manager.get_circuit_breaker_status()
    assert set(summary) == {"state", "failure_count", "is_healthy", "retry_config", "families"}
    status = summary["families"]
    assert set(status) == {"orders", "positions", "queries"}
    for entry in status.values():
        assert set(entry) == {"state", "failure_count", "is_healthy", "retry_config"}
        assert entry["state"] == "closed" and entry["is_healthy"]
    assert status["queries"]["retry_config"] == {
        "max_attempts": 3,
        "initial_delay": 0.1,
        "backoff_factor": 2.0,
        "max_delay": 0.5,
    }


async def test_infrastructure_failures_open_the_orders_breaker(make_rig: RigFactory) -> None:
    """Two timeouts after send open 'orders'; the next entry is refused and nothing is sent."""
    rig = await make_rig(config=config(status_check_circuit_breaker_threshold=2))
    rig.broker.fail_next("place_order", FaultKind.AMBIGUOUS, repeat=2)
    for _ in range(2):
        await rig.clock.run(rig.manager.place_limit_order(MNQ, OrderSide.BUY, 1, ENTRY))
    assert rig.manager.get_circuit_breaker_status()["families"]["orders"]["state"] == "open"
    before = len(rig.orders())
    with pytest.raises(CircuitOpenError):
        await rig.manager.place_limit_order(MNQ, OrderSide.BUY, 1, ENTRY)
    assert len(rig.orders()) == before


async def test_rejections_never_open_the_breaker(make_rig: RigFactory) -> None:
    """Business rejections are answers: five of them leave the breaker closed."""
    rig = await make_rig(config=config(status_check_circuit_breaker_threshold=2))
    rig.broker.fail_next("place_order", FaultKind.REJECT, repeat=5)
    for _ in range(5):
        with pytest.raises(OrderRejectedError):
            await rig.manager.place_limit_order(MNQ, OrderSide.BUY, 1, ENTRY)
    status = rig.manager.get_circuit_breaker_status()["families"]["orders"]
    assert (status["state"], status["failure_count"]) == ("closed", 0)


async def test_protective_order_bypasses_an_open_breaker(make_rig: RigFactory) -> None:
    """A protective order (it reduces the position) is sent even while 'orders' is open; it
    reaches the exchange."""
    rig = await make_rig(config=config(status_check_circuit_breaker_threshold=1))
    rig.broker.fail_next("place_order", FaultKind.AMBIGUOUS)  # executed, the answer lost
    await rig.clock.run(rig.manager.place_market_order(MNQ, OrderSide.BUY, 1))
    await rig.settle()
    assert rig.manager.get_circuit_breaker_status()["families"]["orders"]["state"] == "open"
    placed = await rig.manager.submit(
        limit_request("og-p-stop-0", OrderSide.SELL), respect_latch=False
    )
    assert rig.exchange.order(1, placed.order_id) is not None
    assert rig.manager.get_recovery_statistics()["breaker_bypassed"] == 1
    # It got an answer: the endpoint works, so the circuit closed for everyone.
    assert rig.manager.get_circuit_breaker_status()["families"]["orders"]["state"] == "closed"


async def test_breaker_reset_time_lets_a_query_probe_close_it(make_rig: RigFactory) -> None:
    """After the reset time the breaker is half-open; the next entry is preceded by a query
    probe, which closes it, and then reaches the exchange."""
    rig = await make_rig(
        config=config(
            status_check_circuit_breaker_threshold=1, status_check_circuit_breaker_reset_time=5.0
        )
    )
    rig.broker.fail_next("place_order", FaultKind.AMBIGUOUS)
    await rig.clock.run(rig.manager.place_limit_order(MNQ, OrderSide.BUY, 1, ENTRY))
    breaker = rig.manager.gateway.breakers.get("orders")
    await rig.clock.advance(4.9)
    assert breaker.state.value == "open"
    await rig.clock.advance(0.1)
    assert breaker.state.value == "half_open"
    before = len(rig.orders())
    await rig.manager.place_limit_order(MNQ, OrderSide.BUY, 1, ENTRY)
    assert breaker.state.value == "closed" and len(rig.orders()) == before + 1
    assert rig.manager.gateway.stats["probes"] == 1


async def test_failed_probe_reopens_and_refuses_the_entry(make_rig: RigFactory) -> None:
    """A failing probe re-opens the breaker; the entry is refused and not sent."""
    rig = await make_rig(
        config=config(
            status_check_circuit_breaker_threshold=1, status_check_circuit_breaker_reset_time=5.0
        )
    )
    rig.broker.fail_next("place_order", FaultKind.AMBIGUOUS)
    await rig.clock.run(rig.manager.place_limit_order(MNQ, OrderSide.BUY, 1, ENTRY))
    await rig.clock.advance(5.0)
    rig.broker.fail_next("search_open_orders", FaultKind.QUERY_ERROR)
    before = len(rig.orders())
    with pytest.raises(CircuitOpenError):
        await rig.manager.place_limit_order(MNQ, OrderSide.BUY, 1, ENTRY)
    assert len(rig.orders()) == before
    assert rig.manager.get_circuit_breaker_status()["families"]["orders"]["state"] == "open"


async def test_queries_are_retried_mutations_are_not(make_rig: RigFactory) -> None:
    """A failing read is retried to success; a refused placement is re-sent only as configured."""
    rig = await make_rig()
    rig.broker.fail_next("search_open_orders", FaultKind.QUERY_ERROR, repeat=2)
    await rig.clock.run(rig.manager.search_open_orders())
    assert rig.manager.get_recovery_statistics()["query_retries"] == 2


async def test_query_retry_max_total_caps_retry_time(make_rig: RigFactory) -> None:
    """query_retry_max_total=0: a failing read is not retried at all."""
    rig = await make_rig(config=config(query_retry_max_total=0.0))
    rig.broker.fail_next("search_open_orders", FaultKind.QUERY_ERROR)
    with pytest.raises(Exception, match="503"):
        await rig.clock.run(rig.manager.search_open_orders())
    assert rig.manager.get_recovery_statistics()["query_retries"] == 0


async def test_status_check_max_attempts_caps_query_attempts(make_rig: RigFactory) -> None:
    """status_check_max_attempts bounds the attempts of one query."""
    rig = await make_rig(config=config(status_check_max_attempts=2))
    rig.broker.fail_next("search_open_orders", FaultKind.QUERY_ERROR, repeat=5)
    with pytest.raises(Exception, match="503"):
        await rig.clock.run(rig.manager.search_open_orders())
    assert rig.manager.get_recovery_statistics()["query_retries"] == 1


async def test_protective_order_overtakes_waiting_entries(make_rig: RigFactory) -> None:
    """With the window full for entries, a protective order (it reduces the position: a fact,
    not the caller's word) takes a reserved slot at once."""
    rig = await make_rig(
        config=config(
            rate_limit_requests=3,
            rate_limit_window=10.0,
            rate_limit_reserved=1,
            position_check_interval=600.0,  # the periodic position read would take a slot
        )
    )
    # Warms the caches and opens the long 1 the stop below protects.
    await rig.clock.run(rig.manager.submit(market_request("og-w-w-0")))
    await rig.clock.advance(10.0)  # start-up and warm-up requests leave the window
    entries = [
        asyncio.ensure_future(rig.manager.submit(limit_request(f"og-e-e{i}-0"))) for i in range(3)
    ]
    await rig.settle()
    assert len(rig.orders()) == 1 + 2  # NORMAL may fill only 3 - 1 slots
    stop = await rig.manager.submit(
        limit_request("og-p-stop-0", OrderSide.SELL), respect_latch=False
    )
    assert len(rig.orders()) == 1 + 3 and not entries[2].done()
    await rig.settle(10.0)
    await asyncio.gather(*entries)
    third = await entries[2]
    assert stop.order_id < third.order_id  # the stop went before the waiting entry


async def test_rate_limit_window_delays_the_next_request(make_rig: RigFactory) -> None:
    """rate_limit_requests=1 per rate_limit_window=30 s: the second read waits 30 s."""
    rig = await make_rig(
        config=config(rate_limit_requests=1, rate_limit_window=30.0, rate_limit_reserved=0)
    )
    await rig.clock.advance(30.0)
    await rig.clock.run(rig.manager.search_open_orders())
    t0 = rig.clock.monotonic()
    await rig.clock.run(rig.manager.search_open_orders())
    assert rig.clock.monotonic() - t0 == pytest.approx(30.0)


async def test_random_placement_faults_leave_breakers_reporting(make_rig: RigFactory) -> None:
    """Under random faults the status stays well-formed and failure counts are non-negative."""
    plan = FaultPlan(place=MutationFaults(reject=0.3, ambiguous=0.3))
    rig = await make_rig(plan=plan, config=config(status_check_circuit_breaker_threshold=50))
    for _ in range(10):
        with contextlib.suppress(OrderRejectedError):
            await rig.clock.run(rig.manager.place_limit_order(MNQ, OrderSide.BUY, 1, ENTRY))
    status = rig.manager.get_circuit_breaker_status()["families"]["orders"]
    assert status["failure_count"] >= 0 and status["state"] == "closed"
