"""CountingBroker: a broker that forwards every call and counts it by method name.

A fake, not a mock: the calls really reach the broker it wraps. Tests and benchmarks use it to
show that start-up recovery's broker queries do not grow with the number of operations.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from orderguard.broker.base import Broker
from orderguard.broker.middleware import BrokerCall, BrokerMiddleware


class CountingBroker(BrokerMiddleware):
    """Forwards to ``inner`` and counts every call of the port in :attr:`calls` by method name
    (``subscribe`` passes through uncounted)."""

    def __init__(self, inner: Broker) -> None:
        super().__init__(inner)
        self.calls: Counter[str] = Counter()

    def before(self, call: BrokerCall[Any]) -> None:
        self.calls[call.op] += 1


__all__ = ["CountingBroker"]
