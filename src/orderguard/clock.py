"""Injected time.

Everything in orderguard that waits, times out or stamps a record asks a :class:`Clock`, never
``asyncio.sleep`` or ``datetime.now`` directly. :class:`SystemClock` is wall time;
:class:`VirtualClock` is deterministic time that only moves when told to (``advance``) or when every
task is waiting on it (``run``), so simulations and tests replay to the event and take no real time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

DEFAULT_EPOCH = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """The time source every component is given."""

    def now(self) -> datetime:
        """Current UTC time, timezone-aware."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...

    async def sleep(self, seconds: float) -> None: ...

    def call_later(self, delay: float, callback: Callable[[], object]) -> TimerHandle: ...

    async def wait_for(self, aw: Awaitable[T], timeout: float | None) -> T:
        """Await ``aw``; cancel it and raise ``TimeoutError`` after ``timeout`` seconds."""
        ...

    def io(self) -> Any:
        """Async context manager marking real I/O in flight (a virtual clock won't jump past it)."""
        ...


class SystemClock:
    """Wall-clock time on the running asyncio loop."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def call_later(self, delay: float, callback: Callable[[], object]) -> TimerHandle:
        return asyncio.get_running_loop().call_later(max(0.0, delay), callback)

    async def wait_for(self, aw: Awaitable[T], timeout: float | None) -> T:
        # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that arrives as the
        # awaited thing completes (CPython gh-86296), and a task cancelled at shutdown then
        # runs on forever (a bracket saga woken by news as the manager stopped kept the
        # `orderguard cancel-all` process alive). asyncio.timeout counts cancellations.
        if timeout is None:
            return await aw
        async with asyncio.timeout(max(0.0, timeout)):
            return await aw

    @asynccontextmanager
    async def io(self) -> AsyncIterator[None]:
        yield


class _VirtualTimer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class DeadlockError(RuntimeError):
    """Every task waits, and no virtual timer is left that could wake one."""


class LivelockError(RuntimeError):
    """Timers keep firing but virtual time stands still: something re-arms itself at ``now``."""


# Timers closer together than this count as one instant for livelock detection: a loop that
# re-arms itself a nanosecond ahead makes no more progress than one that re-arms at ``now``.
_STALL_EPSILON = 1e-6


class VirtualClock:
    """Deterministic time: moves only by ``advance`` or, inside ``run``, when all tasks wait on it.

    Timers due at the same instant fire in the order they were scheduled, so a run is a pure
    function of its inputs and seeds.

    With ``stall_limit``, firing more than that many timers in a row without time moving (by at
    least a microsecond) raises :class:`LivelockError`. It counts timers, not wall time, so the
    verdict is as replayable as the run, and it comes after milliseconds instead of after a
    wall-clock watchdog's budget.
    """

    def __init__(self, start: datetime = DEFAULT_EPOCH, *, stall_limit: int | None = None) -> None:
        if start.tzinfo is None:
            raise ValueError("VirtualClock needs a timezone-aware start")
        if stall_limit is not None and stall_limit < 1:
            raise ValueError("stall_limit must be at least 1")
        self._epoch = start
        self._t = 0.0
        self._heap: list[tuple[float, int, _VirtualTimer]] = []
        self._seq = itertools.count()
        self._io_inflight = 0
        self._stall_limit = stall_limit
        self._stall_origin = 0.0  # where the current run of same-instant firings started
        self._stall_count = 0
        self.longest_stall = 0
        """The most timers fired in a row without time moving (for choosing ``stall_limit``)."""

    # -- reading ---------------------------------------------------------------------------------
    def now(self) -> datetime:
        return self._epoch + timedelta(seconds=self._t)

    def monotonic(self) -> float:
        return self._t

    @property
    def pending_timers(self) -> int:
        return sum(1 for _, _, t in self._heap if not t.cancelled)

    # -- scheduling ------------------------------------------------------------------------------
    def call_later(self, delay: float, callback: Callable[[], object]) -> _VirtualTimer:
        timer = _VirtualTimer(self._t + max(0.0, delay), callback)
        heapq.heappush(self._heap, (timer.when, next(self._seq), timer))
        return timer

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not fut.done():
                fut.set_result(None)

        timer = self.call_later(seconds, wake)
        try:
            await fut
        finally:
            timer.cancel()

    async def wait_for(self, aw: Awaitable[T], timeout: float | None) -> T:
        if timeout is None:
            return await aw
        task = asyncio.ensure_future(aw)
        expired = False

        def expire() -> None:
            nonlocal expired
            if not task.done():
                expired = True
                task.cancel()

        timer = self.call_later(timeout, expire)
        try:
            return await task
        except asyncio.CancelledError:
            if expired:
                raise TimeoutError(f"timed out after {timeout} s (virtual)") from None
            raise
        finally:
            timer.cancel()

    @asynccontextmanager
    async def io(self) -> AsyncIterator[None]:
        self._io_inflight += 1
        try:
            yield
        finally:
            self._io_inflight -= 1

    # -- moving time -----------------------------------------------------------------------------
    async def settle(self, max_rounds: int = 100_000) -> None:
        """Let every ready task run until none is ready (virtual time does not move)."""
        loop = asyncio.get_running_loop()
        ready = getattr(loop, "_ready", None)  # CPython's run queue; fall back to many yields
        for _ in range(max_rounds if ready is not None else 64):
            await asyncio.sleep(0)
            if ready is not None and not ready:
                if self._io_inflight == 0:
                    return
                # Real I/O (a journal write on its thread) is in flight: wait for it, don't spin.
                await asyncio.sleep(0.0002)

    def _fire(self, timer: _VirtualTimer) -> None:
        """Move time to ``timer`` and run it, counting firings that leave time where it was."""
        if timer.when - self._stall_origin >= _STALL_EPSILON:
            self._stall_origin = timer.when
            self._stall_count = 0
        else:
            self._stall_count += 1
            self.longest_stall = max(self.longest_stall, self._stall_count)
            if self._stall_limit is not None and self._stall_count > self._stall_limit:
                raise LivelockError(
                    f"{self._stall_count} timers fired at virtual {self._t:.6f} s "
                    "without time moving"
                )
        self._t = max(self._t, timer.when)
        timer.callback()

    def _pop_due(self, until: float) -> _VirtualTimer | None:
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        if self._heap and self._heap[0][0] <= until:
            return heapq.heappop(self._heap)[2]
        return None

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, firing due timers in order and settling after each."""
        target = self._t + max(0.0, seconds)
        await self.settle()
        while (timer := self._pop_due(target)) is not None:
            self._fire(timer)
            await self.settle()
        self._t = target
        await self.settle()

    async def run(self, aw: Awaitable[T], *, max_seconds: float | None = None) -> T:
        """Await ``aw``, jumping to the next timer whenever every task is waiting.

        Raises :class:`DeadlockError` if the awaited work waits with no timer left to wake it,
        ``TimeoutError`` if it needs more than ``max_seconds`` of virtual time, and
        :class:`LivelockError` past the ``stall_limit``.
        """
        task: asyncio.Future[T] = asyncio.ensure_future(aw)
        deadline = None if max_seconds is None else self._t + max_seconds
        try:
            while True:
                await self.settle()
                while self._io_inflight and not task.done():
                    await asyncio.sleep(0.0005)  # real I/O (a journal write) is still running
                    await self.settle()
                if task.done():
                    return task.result()
                timer = self._pop_due(float("inf"))
                if timer is None:
                    raise DeadlockError("all tasks wait and no virtual timer is pending")
                if deadline is not None and timer.when > deadline:
                    raise TimeoutError(f"virtual run exceeded {max_seconds} s")
                self._fire(timer)
        finally:
            if not task.done():
                task.cancel()

    def run_sync(self, main: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``main()`` on a fresh event loop under this clock (for scripts and the CLI)."""
        return asyncio.run(self.run(main()))


__all__ = [
    "DEFAULT_EPOCH",
    "Clock",
    "DeadlockError",
    "LivelockError",
    "SystemClock",
    "TimerHandle",
    "VirtualClock",
]
