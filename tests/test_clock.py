"""The injected clocks: virtual time moves only when told, and timers fire in order."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from orderguard.clock import DEFAULT_EPOCH, DeadlockError, SystemClock, VirtualClock


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


def test_virtual_clock_requires_aware_start() -> None:
    """A naive start time is refused."""
    with pytest.raises(ValueError):
        VirtualClock(DEFAULT_EPOCH.replace(tzinfo=None))


async def test_system_clock_now_is_aware() -> None:
    """The system clock stamps timezone-aware UTC times."""
    assert SystemClock().now().tzinfo is not None
