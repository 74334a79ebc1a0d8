"""CountingBroker: a broker that forwards every call and counts it by method name.

A fake, not a mock: the calls really reach the broker it wraps. Tests and benchmarks use it to
show that start-up recovery's broker queries do not grow with the number of operations.
"""

from __future__ import annotations

from collections import Counter
from typing import Any


class CountingBroker:
    """Forwards to ``inner`` and counts every awaited call in :attr:`calls` (``subscribe`` and
    plain attributes pass through uncounted)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if name == "subscribe" or not callable(target):
            return target

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return await target(*args, **kwargs)

        return call
