"""Retries for safe operations: capped, jittered, bounded in attempts and time."""

from __future__ import annotations

import random
from collections.abc import Awaitable

import pytest

from orderguard.clock import VirtualClock
from orderguard.errors import (
    ConnectionFailedError,
    OrderRejectedError,
    OutcomeUnknownError,
    RateLimitedError,
)
from orderguard.resilience import (
    Retrier,
    RetryDetails,
    RetryPolicy,
    retryable_error,
    retryable_query_error,
)


class Flaky:
    """An async callable that raises the given errors in turn, then returns "ok"."""

    def __init__(self, clock: VirtualClock, *errors: BaseException) -> None:
        self.clock = clock
        self.errors = list(errors)
        self.calls: list[float] = []  # virtual time of each call

    async def __call__(self) -> str:
        self.calls.append(self.clock.monotonic())
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def failing(clock: VirtualClock, exc: BaseException, times: int = 100) -> Flaky:
    return Flaky(clock, *[exc] * times)


def make(policy: RetryPolicy, seed: int = 7) -> tuple[VirtualClock, Retrier, list[RetryDetails]]:
    clock = VirtualClock()
    seen: list[RetryDetails] = []
    return clock, Retrier(policy, clock, random.Random(seed), hooks=[seen.append]), seen


async def run(clock: VirtualClock, call: Awaitable[str]) -> str:
    return await clock.run(call)


async def test_returns_the_result_after_transient_failures() -> None:
    """Two retryable failures, then success: the result comes back on the third call."""
    clock, retrier, _ = make(RetryPolicy(max_attempts=3))
    fn = Flaky(clock, ConnectionFailedError("refused"), ConnectionFailedError("refused"))
    assert await run(clock, retrier.call(fn)) == "ok"
    assert len(fn.calls) == 3


async def test_backoff_without_jitter_doubles_up_to_the_cap() -> None:
    """Without jitter the waits are initial_delay * factor**n, capped at max_delay."""
    policy = RetryPolicy(
        max_attempts=7, initial_delay=0.5, max_delay=4.0, max_total=1e9, jitter=False
    )
    clock, retrier, seen = make(policy)
    with pytest.raises(ConnectionFailedError):
        await run(clock, retrier.call(failing(clock, ConnectionFailedError("x"))))
    assert [d.wait for d in seen] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


async def test_full_jitter_stays_within_each_ceiling() -> None:
    """With full jitter every wait lies in [0, min(max_delay, initial * factor**n)]."""
    policy = RetryPolicy(max_attempts=8, initial_delay=0.5, max_delay=3.0, max_total=1e9)
    clock, retrier, seen = make(policy)
    with pytest.raises(ConnectionFailedError):
        await run(clock, retrier.call(failing(clock, ConnectionFailedError("x"))))
    ceilings = [min(3.0, 0.5 * 2.0**n) for n in range(7)]
    assert len(seen) == 7
    assert all(0.0 <= d.wait <= c for d, c in zip(seen, ceilings, strict=True))


async def test_full_jitter_is_deterministic_per_seed() -> None:
    """The same seed gives the same waits (random.Random(seed)'s draws); another differs."""

    async def waits(seed: int) -> list[float]:
        clock, retrier, seen = make(RetryPolicy(max_attempts=5, max_total=1e9), seed)
        with pytest.raises(ConnectionFailedError):
            await run(clock, retrier.call(failing(clock, ConnectionFailedError("x"))))
        return [d.wait for d in seen]

    rng = random.Random(11)
    expected = [rng.uniform(0, min(10.0, 0.5 * 2.0**n)) for n in range(4)]
    assert await waits(11) == await waits(11) == expected
    assert await waits(12) != expected


async def test_attempt_cap_stops_and_reraises_the_last_error() -> None:
    """After max_attempts calls the last error propagates unchanged."""
    clock, retrier, _ = make(RetryPolicy(max_attempts=4, max_total=1e9))
    last = ConnectionFailedError("fourth")
    fn = Flaky(clock, *[ConnectionFailedError("x")] * 3, last)
    with pytest.raises(ConnectionFailedError) as info:
        await run(clock, retrier.call(fn))
    assert info.value is last
    assert len(fn.calls) == 4


async def test_total_time_cap_refuses_a_wait_that_would_overrun() -> None:
    """A retry whose wait would end past max_total is not made."""
    policy = RetryPolicy(max_attempts=10, initial_delay=1.0, max_total=5.0, jitter=False)
    clock, retrier, _ = make(policy)
    fn = failing(clock, ConnectionFailedError("x"))
    with pytest.raises(ConnectionFailedError):
        await run(clock, retrier.call(fn))
    # waits 1 and 2 fit (t=3); the next wait of 4 would end at 7 > 5.
    assert fn.calls == [0.0, 1.0, 3.0]


async def test_retry_after_is_honoured_as_a_minimum_wait() -> None:
    """A RateLimitedError with retry_after delays the next call by at least that long."""
    clock, retrier, seen = make(RetryPolicy(initial_delay=0.1))
    fn = Flaky(clock, RateLimitedError("429", retry_after=7.0, sent=False))
    assert await run(clock, retrier.call(fn)) == "ok"
    assert fn.calls[1] - fn.calls[0] >= 7.0
    assert seen[0].wait >= 7.0


async def test_retry_after_beyond_the_total_cap_gives_up() -> None:
    """When the advised wait overruns max_total, the RateLimitedError is raised instead."""
    clock, retrier, _ = make(RetryPolicy(max_total=5.0))
    fn = Flaky(clock, RateLimitedError("429", retry_after=60.0, sent=False))
    with pytest.raises(RateLimitedError):
        await run(clock, retrier.call(fn))
    assert len(fn.calls) == 1


@pytest.mark.parametrize(
    "exc",
    [
        OrderRejectedError("rejected", code=2),
        OutcomeUnknownError("timeout after send", origin="timeout_after_send"),
    ],
    ids=["rejected", "unknown"],
)
async def test_rejections_and_unknown_outcomes_are_never_retried(exc: Exception) -> None:
    """Even a predicate that accepts everything gets exactly one call for these errors."""
    clock, retrier, seen = make(RetryPolicy(max_attempts=5))
    fn = failing(clock, exc)
    with pytest.raises(type(exc)):
        await run(clock, retrier.call(fn, retry_on=lambda _: True))
    assert len(fn.calls) == 1
    assert seen == []


async def test_rate_limit_after_send_is_not_retried_by_default() -> None:
    """A 429 after the request left is not retryable for mutations (the default predicate)."""
    clock, retrier, _ = make(RetryPolicy(max_attempts=5))
    fn = failing(clock, RateLimitedError("429", retry_after=1.0, sent=True))
    with pytest.raises(RateLimitedError):
        await run(clock, retrier.call(fn))
    assert len(fn.calls) == 1


async def test_query_predicate_retries_timeouts_the_default_does_not() -> None:
    """TimeoutError is retried under retryable_query_error only."""
    assert retryable_query_error(TimeoutError()) and not retryable_error(TimeoutError())
    clock, retrier, _ = make(RetryPolicy(max_attempts=3))
    fn = Flaky(clock, TimeoutError("read timed out"))
    assert await run(clock, retrier.call(fn, retry_on=retryable_query_error)) == "ok"
    assert len(fn.calls) == 2


async def test_query_predicate_retries_a_rate_limit_after_send() -> None:
    """Repeating a read that got a 429 is safe, so the query predicate retries it."""
    assert retryable_query_error(RateLimitedError("429", sent=True))


async def test_hooks_receive_details_of_each_retry() -> None:
    """Hooks get the name, attempt number, wait, time waited so far and exception name."""
    policy = RetryPolicy(max_attempts=3, initial_delay=1.0, jitter=False)
    clock, retrier, seen = make(policy)
    fn = Flaky(clock, ConnectionFailedError("a"), ConnectionFailedError("b"))
    await run(clock, retrier.call(fn, name="search_orders"))
    assert [(d.name, d.attempt, d.wait, d.waited_so_far) for d in seen] == [
        ("search_orders", 1, 1.0, 0.0),
        ("search_orders", 2, 2.0, 1.0),
    ]
    assert {d.exception_name for d in seen} == {"ConnectionFailedError"}


async def test_a_failing_hook_does_not_change_what_is_retried() -> None:
    """A hook that raises is logged and ignored; the retry still happens."""

    def broken(_: RetryDetails) -> None:
        raise RuntimeError("metrics down")

    clock = VirtualClock()
    retrier = Retrier(RetryPolicy(), clock, random.Random(1), hooks=[broken])
    fn = Flaky(clock, ConnectionFailedError("x"))
    assert await run(clock, retrier.call(fn)) == "ok"


async def test_arguments_are_passed_through() -> None:
    """Positional arguments reach the callable on every attempt."""
    clock, retrier, _ = make(RetryPolicy())
    got: list[tuple[int, str]] = []

    async def fn(a: int, b: str) -> str:
        got.append((a, b))
        if len(got) == 1:
            raise ConnectionFailedError("x")
        return b * a

    assert await clock.run(retrier.call(fn, 2, "z")) == "zz"
    assert got == [(2, "z"), (2, "z")]


def test_policy_rejects_nonsense() -> None:
    """A policy with no attempts or a shrinking backoff is refused."""
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(backoff_factor=0.5)


def test_ceiling_survives_huge_retry_indices() -> None:
    """The backoff ceiling saturates at max_delay instead of overflowing."""
    assert RetryPolicy(max_delay=10.0).ceiling(5000) == 10.0
