"""A sliding-window rate limiter with a priority lane.

The gateway allows 200 requests in any rolling 60 s (``History/retrieveBars``: 50 or 30 per 30 s;
make one limiter per family with its own parameters). We keep a true sliding *log* of grant
times, so no window of length ``window`` ever holds more than ``max_requests`` grants — fixed
buckets would allow twice that across a bucket edge. Precisely: a grant at ``t`` is made only if
fewer than ``max_requests`` grants happened in ``(t - window, t]``.

When capacity frees, waiters are served strictly by :class:`Priority` (protective orders, then
flattening, then new entries, then queries) and first-come first-served within one priority. The
last ``reserved_for_priority`` slots of every window are kept for the priority lane (protective
and flattening orders), so a burst of new entries or queries can never starve a stop-loss.

A waiter that is cancelled leaves the queue at once; if it had just been granted a slot but never
got to use it, the slot is given back. Waiting happens only on the injected clock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from enum import IntEnum

from orderguard.clock import Clock, TimerHandle
from orderguard.errors import RateLimitedError


class Priority(IntEnum):
    """Who goes first when the window is full (lower value = served first)."""

    PROTECTIVE = 0  # stops and targets protecting a position
    FLATTEN = 1  # closing or reducing exposure
    NORMAL = 2  # new entries, modifications
    QUERY = 3  # reads


PRIORITY_LANE = frozenset({Priority.PROTECTIVE, Priority.FLATTEN})


class RateLimiter:
    """At most ``max_requests`` grants in any ``window`` seconds, highest priority first."""

    def __init__(
        self,
        clock: Clock,
        max_requests: int = 200,
        window: float = 60.0,
        reserved_for_priority: int = 10,
        *,
        name: str = "default",
    ) -> None:
        if max_requests < 1:
            raise ValueError("max_requests must be at least 1")
        if window <= 0:
            raise ValueError("window must be positive")
        if not 0 <= reserved_for_priority < max_requests:
            raise ValueError("reserved_for_priority must be in [0, max_requests)")
        self.name = name
        self.max_requests = max_requests
        self.window = window
        self.reserved_for_priority = reserved_for_priority
        self._clock = clock
        self._grants: deque[float] = deque()  # grant times in (now - window, now], ascending
        self._queues: dict[Priority, deque[asyncio.Future[float]]] = {p: deque() for p in Priority}
        self._timer: TimerHandle | None = None
        self._timer_at: float | None = None
        self.waits = 0
        """Acquisitions that found no free slot and queued (monotone)."""

    # -- reading ---------------------------------------------------------------------------------
    def limit(self, priority: Priority) -> int:
        """How many grants in one window ``priority`` may fill up to."""
        if priority in PRIORITY_LANE:
            return self.max_requests
        return self.max_requests - self.reserved_for_priority

    @property
    def in_window(self) -> int:
        """Grants made in the current window."""
        self._prune(self._clock.monotonic())
        return len(self._grants)

    @property
    def waiting(self) -> int:
        return sum(1 for q in self._queues.values() for f in q if not f.done())

    def available(self, priority: Priority = Priority.NORMAL) -> int:
        """Slots ``priority`` could take right now, ignoring waiters."""
        return max(0, self.limit(priority) - self.in_window)

    def next_slot_in(self, priority: Priority = Priority.NORMAL) -> float:
        """Seconds until ``priority`` would find a free slot, ignoring waiters."""
        now = self._clock.monotonic()
        self._prune(now)
        excess = len(self._grants) - self.limit(priority)
        if excess < 0:
            return 0.0
        return max(0.0, self._grants[excess] + self.window - now)

    # -- acquiring -------------------------------------------------------------------------------
    def try_acquire(self, priority: Priority = Priority.NORMAL) -> bool:
        """Take a slot now if one is free and nobody of equal or higher priority is waiting."""
        self._dispatch()
        now = self._clock.monotonic()
        if any(not f.done() for p in Priority if p <= priority for f in self._queues[p]):
            return False  # no barging past earlier or more important waiters
        if len(self._grants) >= self.limit(priority):
            return False
        self._grants.append(now)
        return True

    async def acquire(
        self, priority: Priority = Priority.NORMAL, *, timeout: float | None = None
    ) -> None:
        """Wait for a slot. With ``timeout``, give up with a retryable :class:`RateLimitedError`
        (``sent=False``: nothing left, so even a mutation may be retried)."""
        if self.try_acquire(priority):
            return
        self.waits += 1  # counted for /metrics: a request that had to queue for its slot
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._queues[priority].append(fut)
        self._schedule()
        expiry = None
        if timeout is not None:
            expiry = self._clock.call_later(timeout, lambda: self._expire(fut, priority))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                # Granted in the same instant we were cancelled: the request never goes out.
                with contextlib.suppress(ValueError):  # unless that grant has already expired
                    self._grants.remove(fut.result())
            self._forget(fut, priority)
            self._dispatch()
            raise
        finally:
            if expiry is not None:
                expiry.cancel()

    # -- internals -------------------------------------------------------------------------------
    def _prune(self, now: float) -> None:
        while self._grants and self._grants[0] + self.window <= now:
            self._grants.popleft()

    def _dispatch(self) -> None:
        """Grant freed slots to waiters, strictly by priority, then re-arm the wake-up timer."""
        now = self._clock.monotonic()
        self._prune(now)
        for priority in Priority:
            queue = self._queues[priority]
            while queue:
                if queue[0].done():  # cancelled or timed out; normally already removed
                    queue.popleft()
                    continue
                if len(self._grants) >= self.limit(priority):
                    # Lower priorities have no higher limit, so nobody below can go either.
                    self._schedule()
                    return
                self._grants.append(now)
                queue.popleft().set_result(now)
        self._schedule()

    def _head(self) -> Priority | None:
        for priority in Priority:
            if any(not f.done() for f in self._queues[priority]):
                return priority
        return None

    def _schedule(self) -> None:
        """Arm one timer for the moment the most important waiter's slot frees."""
        head = self._head()
        wake_at: float | None = None
        if head is not None:
            excess = len(self._grants) - self.limit(head)
            # After the (excess + 1) oldest grants expire there is room for the head waiter.
            wake_at = self._grants[excess] + self.window if excess >= 0 else None
        if wake_at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = self._timer_at = None
        if wake_at is not None:
            delay = wake_at - self._clock.monotonic()
            self._timer = self._clock.call_later(delay, self._on_timer)
            self._timer_at = wake_at

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        self._dispatch()

    def _forget(self, fut: asyncio.Future[float], priority: Priority) -> None:
        with contextlib.suppress(ValueError):  # already granted and popped
            self._queues[priority].remove(fut)

    def _expire(self, fut: asyncio.Future[float], priority: Priority) -> None:
        if fut.done():
            return
        self._forget(fut, priority)
        fut.set_exception(
            RateLimitedError(
                f"rate limiter {self.name!r}: no slot for {priority.name} in time",
                retry_after=self.next_slot_in(priority),
                sent=False,
            )
        )
        self._dispatch()


__all__ = ["PRIORITY_LANE", "Priority", "RateLimiter"]
