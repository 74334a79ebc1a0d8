"""The injected clocks: virtual time moves only when told, and timers fire in order."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import pytest

from orderguard.clock import (
    DEFAULT_EPOCH,
    DeadlockError,
    LivelockError,
    SystemClock,
    VirtualClock,
)


async def test_virtual_sleep_wakes_only_when_time_advances() -> None:
    """A sleeper stays asleep until the clock is advanced past its wake time."""
    clock = VirtualClock()
    woke: list[float] = []

    async def sleeper() -> None:
        await clock.sleep(5)
        woke.append(clock.monotonic())

    task = asyncio.create_task(sleeper())
    await clock.advance(4.9)
    assert woke == []
    await clock.advance(0.1)
    assert woke == [5.0]
    await task


async def test_timers_at_same_instant_fire_in_schedule_order() -> None:
    """Two timers due at the same time fire in the order they were scheduled."""
    clock = VirtualClock()
    fired: list[str] = []
    clock.call_later(1, lambda: fired.append("a"))
    clock.call_later(1, lambda: fired.append("b"))
    clock.call_later(0.5, lambda: fired.append("first"))
    await clock.advance(1)
    assert fired == ["first", "a", "b"]


async def test_cancelled_timer_never_fires() -> None:
    """A cancelled timer is skipped."""
    clock = VirtualClock()
    fired: list[int] = []
    handle = clock.call_later(1, lambda: fired.append(1))
    handle.cancel()
    await clock.advance(2)
    assert fired == []
    assert clock.pending_timers == 0


async def test_wait_for_times_out_in_virtual_time() -> None:
    """wait_for raises TimeoutError when the virtual deadline passes first."""
    clock = VirtualClock()

    async def slow() -> int:
        await clock.sleep(10)
        return 1

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await clock.wait_for(slow(), 3)

    await clock.run(main())
    assert clock.monotonic() == 3.0


async def test_wait_for_returns_result_before_deadline() -> None:
    """wait_for returns the awaited value when it finishes in time, and leaves no timer."""
    clock = VirtualClock()

    async def quick() -> int:
        await clock.sleep(1)
        return 42

    assert await clock.run(clock.wait_for(quick(), 3)) == 42
    assert clock.pending_timers == 0


async def test_run_jumps_to_next_timer_when_all_wait() -> None:
    """run() fast-forwards through sleeps without real time passing."""
    clock = VirtualClock()

    async def long_job() -> float:
        for _ in range(100):
            await clock.sleep(60)
        return clock.monotonic()

    assert await clock.run(long_job()) == 6000.0
    assert clock.now() == DEFAULT_EPOCH + timedelta(seconds=6000)


async def test_run_detects_deadlock() -> None:
    """run() raises DeadlockError when the work waits on something no timer can wake."""
    clock = VirtualClock()
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    with pytest.raises(DeadlockError):
        await clock.run(never)


async def test_run_honours_max_seconds() -> None:
    """run() stops with TimeoutError when the work needs more virtual time than allowed."""
    clock = VirtualClock()
    with pytest.raises(TimeoutError):
        await clock.run(clock.sleep(100), max_seconds=10)


async def _rearm_a_zero_timeout_forever(clock: VirtualClock) -> None:
    """The shape of a real livelock: wait for something with a deadline that has already passed."""
    never: asyncio.Event = asyncio.Event()
    while True:
        with contextlib.suppress(TimeoutError):
            await clock.wait_for(never.wait(), 0)


async def test_run_detects_a_livelock_at_a_standing_instant() -> None:
    """Past ``stall_limit`` timers fired without time moving, run() raises LivelockError."""
    clock = VirtualClock(stall_limit=50)
    await clock.advance(7)
    with pytest.raises(LivelockError, match=r"51 timers fired at virtual 7\.000000"):
        await clock.run(_rearm_a_zero_timeout_forever(clock))
    assert clock.monotonic() == 7.0 and clock.longest_stall == 51


async def test_a_nanosecond_step_is_no_progress() -> None:
    """A loop that re-arms a hair ahead of now is a livelock too, not progress."""
    clock = VirtualClock(stall_limit=100)
    never: asyncio.Event = asyncio.Event()

    async def creep() -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await clock.wait_for(never.wait(), 1e-9)

    with pytest.raises(LivelockError):
        await clock.run(creep())
    assert clock.monotonic() < 1e-6


async def test_a_burst_at_one_instant_below_the_limit_is_not_a_livelock() -> None:
    """Many timers due at one instant fire normally; the longest run of them is reported."""
    clock = VirtualClock(stall_limit=100)
    fired: list[int] = []
    for i in range(80):
        clock.call_later(5, lambda i=i: fired.append(i))

    async def sleeper() -> float:
        await clock.sleep(10)
        return clock.monotonic()

    assert await clock.run(sleeper()) == 10.0
    assert fired == list(range(80))
    assert clock.longest_stall == 79  # the first of the 80 moved time; 79 stood at t=5


async def test_without_a_stall_limit_a_livelock_is_only_measured() -> None:
    """The limit is opt-in: without it the clock never raises, it only counts."""
    clock = VirtualClock()
    with pytest.raises(TimeoutError):  # stopped from outside, here by a step budget
        await clock.run(_bounded_rearm(clock, 500))
    assert clock.longest_stall >= 500


async def _bounded_rearm(clock: VirtualClock, times: int) -> None:
    never: asyncio.Event = asyncio.Event()
    for _ in range(times):
        with contextlib.suppress(TimeoutError):
            await clock.wait_for(never.wait(), 0)
    raise TimeoutError("stopped")


def test_stall_limit_must_be_positive() -> None:
    """A limit below one would call every timer a livelock: refused."""
    with pytest.raises(ValueError):
        VirtualClock(stall_limit=0)


def test_virtual_clock_requires_aware_start() -> None:
    """A naive start time is refused."""
    with pytest.raises(ValueError):
        VirtualClock(DEFAULT_EPOCH.replace(tzinfo=None))


async def test_system_clock_now_is_aware() -> None:
    """The system clock stamps timezone-aware UTC times."""
    assert SystemClock().now().tzinfo is not None
