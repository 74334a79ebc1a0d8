"""What the operator's tools measure as it happens (pure accumulators; no I/O, no Prometheus).

The bracket engine reports each unprotected episode here as it ends
(:meth:`Telemetry.record_episode`): histograms of time to protection and of unprotected seconds
for ``/metrics``, and each operation's latest time to protection for the dashboard. Prometheus
histograms are cumulative, so these are counted at the source rather than rebuilt from the
engine's bounded sample (which forgets old episodes).
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

TIME_TO_PROTECTION_BUCKETS: tuple[float, ...] = (
    0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0,
)  # fmt: skip
UNPROTECTED_BUCKETS: tuple[float, ...] = TIME_TO_PROTECTION_BUCKETS


@dataclass(slots=True)
class Histogram:
    """Cumulative-able bucket counts (Prometheus semantics: ``le`` upper bounds, plus +Inf)."""

    bounds: Sequence[float]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    samples: int = 0

    def __post_init__(self) -> None:
        if list(self.bounds) != sorted(self.bounds):
            raise ValueError("bucket bounds must ascend")
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.samples += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """(le, count) pairs as Prometheus exposes them, ending with +Inf."""
        out: list[tuple[str, int]] = []
        running = 0
        for bound, count in zip(self.bounds, self.counts, strict=False):
            running += count
            out.append((repr(float(bound)), running))
        out.append(("+Inf", running + self.counts[-1]))
        return out


class Telemetry:
    """Episode histograms and per-operation times to protection of one OrderManager."""

    def __init__(self, *, max_operations: int = 1000) -> None:
        self.time_to_protection = Histogram(TIME_TO_PROTECTION_BUCKETS)
        self.unprotected = Histogram(UNPROTECTED_BUCKETS)
        self._by_operation: OrderedDict[str, float] = OrderedDict()
        self._max = max_operations

    def record_episode(
        self, seconds: float, time_to_protection: float | None, operation_id: str | None = None
    ) -> None:
        """One unprotected episode ended (``time_to_protection`` None: it ended flat)."""
        self.unprotected.observe(seconds)
        if time_to_protection is None:
            return
        self.time_to_protection.observe(time_to_protection)
        if operation_id is not None:
            self._by_operation[operation_id] = time_to_protection
            self._by_operation.move_to_end(operation_id)
            while len(self._by_operation) > self._max:
                self._by_operation.popitem(last=False)

    def time_to_protection_of(self, operation_id: str) -> float | None:
        return self._by_operation.get(operation_id)


__all__ = ["Histogram", "Telemetry"]
