"""The server's rate limits (§5): rolling windows that answer 429, never wait.

The client-side limiter in :mod:`orderguard.resilience.ratelimit` queues callers; a server only
says yes or no. This keeps one log of admission times per (family, key) — a true sliding window,
so no interval of ``window`` seconds ever admits more than ``requests`` — on the injected clock.
Refused requests are not counted (a client hammering a full window does not extend it).
"""

from __future__ import annotations

import math
from collections import deque

from orderguard.clock import Clock

from .config import RateLimit


class SlidingWindows:
    """Admission logs for one limit, one per key (a user, a token or the whole server)."""

    def __init__(self, clock: Clock, limit: RateLimit) -> None:
        self._clock = clock
        self.limit = limit
        self._logs: dict[str, deque[float]] = {}
        self.refused = 0

    def admit(self, key: str) -> float | None:
        """None when admitted (and counted); else the seconds until a slot frees."""
        now = self._clock.monotonic()
        log = self._logs.setdefault(key, deque())
        horizon = now - self.limit.window
        while log and log[0] <= horizon:
            log.popleft()
        if len(log) < self.limit.requests:
            log.append(now)
            return None
        self.refused += 1
        return max(0.0, log[0] + self.limit.window - now)

    def burst(self, key: str) -> None:
        """Fill the window of ``key`` now, as if a burst of requests had just been admitted."""
        now = self._clock.monotonic()
        self._logs[key] = deque([now] * self.limit.requests)

    def reset(self) -> None:
        self._logs.clear()


def retry_after_header(seconds: float) -> str:
    """Retry-After is whole seconds; round up so a client that obeys it is admitted."""
    return str(max(1, math.ceil(seconds)))


__all__ = ["SlidingWindows", "retry_after_header"]
