"""Circuit breakers: infrastructure failures open them, business rejections never do, and a
half-open breaker admits exactly one query probe."""

from __future__ import annotations

import asyncio

import pytest

from orderguard.broker.base import Rejected
from orderguard.clock import VirtualClock
from orderguard.errors import (
    CircuitOpenError,
    ConnectionFailedError,
    OrderRejectedError,
    OutcomeUnknownError,
)
from orderguard.resilience import (
    BreakerState,
    CircuitBreaker,
    CircuitBreakerRegistry,
    RetryPolicy,
    is_infrastructure_failure,
)


def breaker(
    failure_threshold: int = 3, success_threshold: int = 1
) -> tuple[VirtualClock, CircuitBreaker]:
    """A breaker for "orders" with a 10 s reset timeout."""
    clock = VirtualClock()
    return clock, CircuitBreaker("orders", clock, failure_threshold, 10.0, success_threshold)


def trip(b: CircuitBreaker) -> None:
    for _ in range(b.settings.failure_threshold):
        b.allow("query")
        b.record_failure(TimeoutError("read timed out"))


async def test_opens_after_threshold_consecutive_failures() -> None:
    """The third consecutive infrastructure failure opens the breaker; calls are then refused."""
    clock, b = breaker()
    for _ in range(2):
        b.record_failure(ConnectionFailedError("refused"))
    assert b.status()["state"] == "closed"
    b.record_failure("http 503")
    assert b.state is BreakerState.OPEN
    await clock.advance(4.0)
    with pytest.raises(CircuitOpenError) as info:
        b.allow("query")
    assert info.value.family == "orders"
    assert info.value.retry_in == pytest.approx(6.0)


async def test_a_success_resets_the_consecutive_count() -> None:
    """Failures separated by a success do not add up."""
    _, b = breaker()
    b.record_failure(TimeoutError())
    b.record_failure(TimeoutError())
    b.record_success()
    b.record_failure(TimeoutError())
    assert b.state is BreakerState.CLOSED
    assert b.failure_count == 1


async def test_business_rejections_never_trip_the_breaker() -> None:
    """OrderRejectedError and a Rejected outcome are answers, not outages."""
    _, b = breaker(failure_threshold=1)
    assert b.record_failure(OrderRejectedError("insufficient funds", code=3)) is False
    assert b.record_failure(Rejected(code=2, message="rejected")) is False
    assert b.state is BreakerState.CLOSED
    assert b.failure_count == 0


def test_unknown_outcomes_and_timeouts_count_as_infrastructure() -> None:
    """Timeouts, connection errors and Unknown outcomes count; programming errors do not."""
    assert is_infrastructure_failure(OutcomeUnknownError("x", origin="server_error"))
    assert is_infrastructure_failure(TimeoutError())
    assert is_infrastructure_failure(ConnectionResetError())
    assert not is_infrastructure_failure(KeyError("bug"))
    assert not is_infrastructure_failure(CircuitOpenError("x", family="f", retry_in=1.0))


async def test_goes_half_open_after_the_reset_timeout() -> None:
    """Once reset_timeout has passed since opening, the breaker reads as half-open."""
    clock, b = breaker()
    trip(b)
    await clock.advance(9.999)
    assert b.status()["state"] == "open"
    await clock.advance(0.001)
    assert b.state is BreakerState.HALF_OPEN


async def test_half_open_admits_exactly_one_query_probe() -> None:
    """The first query is admitted; a second one is refused while the probe is in flight."""
    clock, b = breaker()
    trip(b)
    await clock.advance(10.0)
    b.allow("query")
    with pytest.raises(CircuitOpenError):
        b.allow("query")


async def test_half_open_refuses_mutations() -> None:
    """A mutation is never the probe: it is refused while half-open, even with no probe out."""
    clock, b = breaker()
    trip(b)
    await clock.advance(10.0)
    with pytest.raises(CircuitOpenError) as info:
        b.allow("mutation")
    assert info.value.retry_in > 0


async def test_probe_success_closes_the_breaker() -> None:
    """A successful probe closes the breaker and admits mutations again."""
    clock, b = breaker()
    trip(b)
    await clock.advance(10.0)
    b.allow("query")
    b.record_success()
    assert b.state is BreakerState.CLOSED
    b.allow("mutation")


async def test_success_threshold_needs_that_many_probes() -> None:
    """With success_threshold=2 the breaker closes only after the second successful probe."""
    clock, b = breaker(success_threshold=2)
    trip(b)
    await clock.advance(10.0)
    b.allow("query")
    b.record_success()
    assert b.status()["state"] == "half_open"
    b.allow("query")
    b.record_success()
    assert b.state is BreakerState.CLOSED


async def test_probe_failure_reopens_and_restarts_the_timeout() -> None:
    """A failed probe re-opens the breaker for a full reset_timeout."""
    clock, b = breaker()
    trip(b)
    await clock.advance(10.0)
    b.allow("query")
    b.record_failure(TimeoutError())
    assert b.state is BreakerState.OPEN
    assert b.retry_in() == pytest.approx(10.0)


async def test_rejected_probe_frees_the_slot_without_counting() -> None:
    """A probe ending in a business rejection frees the probe slot and leaves it half-open."""
    clock, b = breaker()
    trip(b)
    await clock.advance(10.0)
    b.allow("query")
    b.record_failure(OrderRejectedError("no", code=2))
    assert b.state is BreakerState.HALF_OPEN
    b.allow("query")


async def test_a_probe_that_never_reports_is_forgotten_after_the_timeout() -> None:
    """A lost probe cannot wedge the breaker: after reset_timeout another probe is admitted."""
    clock, b = breaker()
    trip(b)
    await clock.advance(10.0)
    b.allow("query")
    await clock.advance(10.0)
    b.allow("query")


async def test_guard_records_infrastructure_failures() -> None:
    """An infrastructure exception inside guard() counts toward opening the breaker."""
    _, b = breaker(failure_threshold=1)
    with pytest.raises(TimeoutError):
        async with b.guard("query"):
            raise TimeoutError("read timed out")
    assert b.state is BreakerState.OPEN


async def test_guard_releases_a_cancelled_probe() -> None:
    """A probe cancelled inside guard() frees the slot and records nothing."""
    clock, b = breaker()
    trip(b)
    await clock.advance(10.0)

    async def probe() -> None:
        async with b.guard("query"):
            await clock.sleep(5.0)

    task = asyncio.create_task(probe())
    await clock.settle()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert b.state is BreakerState.HALF_OPEN
    b.allow("query")


async def test_registry_keeps_one_breaker_per_family() -> None:
    """The same family gives the same breaker; families are independent."""
    registry = CircuitBreakerRegistry(VirtualClock(), failure_threshold=1)
    assert registry.get("orders") is registry["orders"]
    registry.get("orders").record_failure(TimeoutError())
    assert registry.get("queries").state is BreakerState.CLOSED
    assert registry.families == ("orders", "queries")


async def test_status_has_the_project_x_py_shape() -> None:
    """status() maps each family to state, failure_count, is_healthy and retry_config."""
    policy = RetryPolicy(max_attempts=4, initial_delay=0.25, backoff_factor=3.0, max_delay=8.0)
    registry = CircuitBreakerRegistry(VirtualClock(), failure_threshold=1, retry_policy=policy)
    registry.get("queries").record_success()
    registry.get("orders").record_failure(ConnectionFailedError("refused"))
    retry_config = {
        "max_attempts": 4,
        "initial_delay": 0.25,
        "backoff_factor": 3.0,
        "max_delay": 8.0,
    }
    assert registry.status() == {
        "orders": {
            "state": "open",
            "failure_count": 1,
            "is_healthy": False,
            "retry_config": retry_config,
        },
        "queries": {
            "state": "closed",
            "failure_count": 0,
            "is_healthy": True,
            "retry_config": retry_config,
        },
    }
