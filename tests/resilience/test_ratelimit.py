"""The sliding-window rate limiter: never more than N grants in any window, priority lane first."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orderguard.clock import VirtualClock
from orderguard.errors import RateLimitedError
from orderguard.resilience import Priority, RateLimiter


@dataclass
class Arrival:
    gap: float  # seconds after the previous arrival
    priority: Priority
    cancel_after: float | None  # seconds after arrival at which the caller gives up


@dataclass
class Grant:
    index: int
    priority: Priority
    arrived: float
    granted: float


def simulate(
    n: int, window: float, reserved: int, arrivals: list[Arrival]
) -> tuple[list[Grant], list[bool]]:
    """Replay ``arrivals`` on a virtual clock; return the grants and who was cancelled."""
    clock = VirtualClock()
    limiter = RateLimiter(clock, n, window, reserved)
    grants: list[Grant] = []

    async def caller(i: int, priority: Priority) -> None:
        arrived = clock.monotonic()
        await limiter.acquire(priority)
        grants.append(Grant(i, priority, arrived, clock.monotonic()))

    async def main() -> list[bool]:
        tasks = []
        for i, a in enumerate(arrivals):
            await clock.sleep(a.gap)
            task = asyncio.create_task(caller(i, a.priority))
            if a.cancel_after is not None:
                clock.call_later(a.cancel_after, task.cancel)
            tasks.append(task)
        await asyncio.gather(*tasks, return_exceptions=True)
        assert limiter.waiting == 0
        return [t.cancelled() for t in tasks]

    cancelled = clock.run_sync(main)
    return grants, cancelled


arrival = st.builds(
    Arrival,
    gap=st.one_of(st.just(0.0), st.floats(0.0, 1.5, allow_nan=False)),
    priority=st.sampled_from(Priority),
    cancel_after=st.one_of(st.none(), st.floats(0.0, 3.0, allow_nan=False)),
)


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 5),
    window=st.sampled_from([1.0, 2.5, 0.3]),
    reserved_share=st.floats(0.0, 0.99),
    arrivals=st.lists(arrival, max_size=30),
)
def test_no_window_ever_holds_more_than_n_grants(
    n: int, window: float, reserved_share: float, arrivals: list[Arrival]
) -> None:
    """Random arrivals, priorities and cancellations: every window of W holds at most N grants,
    non-lane grants stay below N - reserved, every caller not cancelled is served, and nobody is
    served while a more important or earlier equal-priority caller still waits."""
    reserved = int(reserved_share * n)
    scaled = [Arrival(a.gap * window, a.priority, a.cancel_after) for a in arrivals]
    grants, cancelled = simulate(n, window, reserved, scaled)

    times = sorted(g.granted for g in grants)
    for i in range(len(times) - n):
        assert times[i + n] >= times[i] + window
    for g in grants:
        if g.priority in (Priority.NORMAL, Priority.QUERY):
            # Grants made strictly earlier in its window, plus itself, stay out of the reserve.
            earlier = [
                h for h in grants if g.granted < h.granted + window and h.granted < g.granted
            ]
            assert len(earlier) + 1 <= n - reserved
    assert {g.index for g in grants} | {i for i, c in enumerate(cancelled) if c} == set(
        range(len(arrivals))
    )
    for a in grants:
        for b in grants:
            overtaken = a.arrived < b.granted < a.granted
            first_in_line = a.priority < b.priority or (
                a.priority == b.priority and a.arrived < b.arrived
            )
            assert not (overtaken and first_in_line), (a, b)


async def test_priority_lane_is_served_first_when_saturated() -> None:
    """With the window full, freed slots go protective, flatten, normal (FIFO), then query."""
    clock = VirtualClock()
    limiter = RateLimiter(clock, max_requests=2, window=10.0, reserved_for_priority=0)
    assert limiter.try_acquire() and limiter.try_acquire()
    order: list[str] = []

    async def caller(label: str, priority: Priority) -> None:
        await limiter.acquire(priority)
        order.append(f"{label}@{clock.monotonic():g}")

    tasks = [
        asyncio.create_task(caller(label, priority))
        for label, priority in [
            ("normal1", Priority.NORMAL),
            ("query", Priority.QUERY),
            ("protective", Priority.PROTECTIVE),
            ("normal2", Priority.NORMAL),
            ("flatten", Priority.FLATTEN),
        ]
    ]
    await clock.advance(30.0)
    await asyncio.gather(*tasks)
    assert order == ["protective@10", "flatten@10", "normal1@20", "normal2@20", "query@30"]


async def test_cancelled_waiter_leaves_no_hole() -> None:
    """A cancelled waiter leaves the queue; the next waiter gets the slot when it frees."""
    clock = VirtualClock()
    limiter = RateLimiter(clock, max_requests=1, window=5.0, reserved_for_priority=0)
    assert limiter.try_acquire()
    granted: list[str] = []

    async def caller(label: str) -> None:
        await limiter.acquire()
        granted.append(f"{label}@{clock.monotonic():g}")

    a, b, c = (asyncio.create_task(caller(x)) for x in "abc")
    await clock.settle()
    b.cancel()
    await clock.advance(10.0)
    await asyncio.gather(a, c)
    assert b.cancelled()
    assert granted == ["a@5", "c@10"]
    assert limiter.waiting == 0


async def test_slot_granted_to_a_waiter_cancelled_in_the_same_instant_is_given_back() -> None:
    """A waiter cancelled after its grant but before it ran returns the slot."""
    clock = VirtualClock()
    limiter = RateLimiter(clock, max_requests=1, window=5.0, reserved_for_priority=0)
    assert limiter.try_acquire()
    tasks: list[asyncio.Task[None]] = []

    def grant_then_cancel() -> None:
        assert not limiter.try_acquire(Priority.QUERY)  # dispatches: the waiter gets the slot
        tasks[0].cancel()  # ... and is cancelled before it can use it

    clock.call_later(5.0, grant_then_cancel)  # scheduled before the limiter's own wake-up
    tasks.append(asyncio.create_task(limiter.acquire()))
    await clock.advance(5.0)
    assert tasks[0].cancelled()
    assert limiter.in_window == 0
    assert limiter.try_acquire()


async def test_reserved_slots_are_kept_for_the_priority_lane() -> None:
    """New entries and queries stop at N - reserved; protective and flatten may use the rest."""
    clock = VirtualClock()
    limiter = RateLimiter(clock, max_requests=5, window=60.0, reserved_for_priority=2)
    assert all(limiter.try_acquire(Priority.NORMAL) for _ in range(3))
    assert not limiter.try_acquire(Priority.NORMAL)
    assert not limiter.try_acquire(Priority.QUERY)
    assert limiter.try_acquire(Priority.PROTECTIVE)
    assert limiter.try_acquire(Priority.FLATTEN)
    assert not limiter.try_acquire(Priority.PROTECTIVE)


async def test_protective_order_passes_queued_entries_using_a_reserved_slot() -> None:
    """Entries waiting for capacity do not block a stop-loss that fits in the reserved slots."""
    clock = VirtualClock()
    limiter = RateLimiter(clock, max_requests=3, window=60.0, reserved_for_priority=1)
    assert limiter.try_acquire() and limiter.try_acquire()
    waiting_entry = asyncio.create_task(limiter.acquire(Priority.NORMAL))
    await clock.settle()
    assert limiter.waiting == 1
    await clock.run(limiter.acquire(Priority.PROTECTIVE), max_seconds=0.0)
    waiting_entry.cancel()


async def test_window_slides_rather_than_resetting_in_buckets() -> None:
    """Grants spread over a window free up one by one, each exactly W after it was made."""
    clock = VirtualClock()
    limiter = RateLimiter(clock, max_requests=2, window=10.0, reserved_for_priority=0)
    assert limiter.try_acquire()
    await clock.advance(6.0)
    assert limiter.try_acquire()
    assert not limiter.try_acquire()
    assert limiter.next_slot_in() == pytest.approx(4.0)
    await clock.advance(4.0)
    assert limiter.try_acquire()
    assert not limiter.try_acquire()


async def test_acquire_timeout_raises_a_retryable_rate_limit() -> None:
    """Giving up on a slot raises RateLimitedError(sent=False) with the wait still needed."""
    clock = VirtualClock()
    limiter = RateLimiter(clock, max_requests=1, window=10.0, reserved_for_priority=0)
    assert limiter.try_acquire()
    with pytest.raises(RateLimitedError) as info:
        await clock.run(limiter.acquire(timeout=3.0))
    assert info.value.retryable and not info.value.sent
    assert info.value.retry_after == pytest.approx(7.0)
    assert limiter.waiting == 0


def test_bars_limiter_uses_its_own_parameters() -> None:
    """One class serves the bars family too (50 / 30 s, no reserve)."""
    limiter = RateLimiter(VirtualClock(), max_requests=50, window=30.0, reserved_for_priority=0)
    assert limiter.available(Priority.QUERY) == 50


def test_reserve_must_leave_room_for_normal_traffic() -> None:
    """Reserving every slot would starve new entries forever, so it is refused."""
    with pytest.raises(ValueError):
        RateLimiter(VirtualClock(), max_requests=5, reserved_for_priority=5)
