"""Unprotected exposure and time to protection (FAILURES I6), measured per operation.

An *episode* starts when an operation owns more than its working stop covers and ends when the
stop covers it again or nothing is owned any more. Its start is the fill's exchange time when the
order carries one (a fill learnt late, by polling after lost events, was still exposure from the
moment it happened); *time to protection* runs from when we learnt of the fill to when the stop
was confirmed, which is what the saga controls.

Pure: times are passed in (seconds on the injected clock's monotonic scale).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class EpisodeEnd:
    seconds: float
    time_to_protection: float | None
    """None when the episode ended by going flat rather than by protection."""


@dataclass(slots=True)
class ExposureMeter:
    """Episodes of one operation."""

    episodes: list[float] = field(default_factory=list)
    times_to_protection: list[float] = field(default_factory=list)
    open_since: float | None = None
    """Start of the current episode (exchange time of the fill when known)."""
    seen_at: float | None = None
    """When we learnt of the exposure of the current episode."""

    def update(
        self, now: float, owned: int, covered: int, started: float | None = None
    ) -> EpisodeEnd | None:
        """Feed the current owned/covered quantities; returns the episode that just closed."""
        exposed = owned != 0 and covered < abs(owned)
        if exposed:
            if self.open_since is None:
                self.open_since = now if started is None else min(now, started)
                self.seen_at = now
            return None
        if self.open_since is None:
            return None
        end = EpisodeEnd(max(0.0, now - self.open_since), None)
        if owned != 0 and self.seen_at is not None:
            # Closed by protection (not by going flat): that is a time to protection.
            end = EpisodeEnd(end.seconds, max(0.0, now - self.seen_at))
            self.times_to_protection.append(end.time_to_protection or 0.0)
        self.episodes.append(end.seconds)
        self.open_since = self.seen_at = None
        return end

    def open_for(self, now: float) -> float:
        return 0.0 if self.open_since is None else max(0.0, now - self.open_since)

    def as_dict(self, now: float) -> dict[str, Any]:
        return {
            "time_to_protection": list(self.times_to_protection),
            "unprotected_episodes": list(self.episodes),
            "unprotected_now": self.open_for(now),
        }


@dataclass(slots=True)
class ExposureStats:
    """Aggregate over every operation of a manager (bounded sample for percentiles)."""

    samples: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))
    episodes: int = 0
    total: float = 0.0
    longest: float = 0.0
    incidents: int = 0

    def add(self, end: EpisodeEnd) -> None:
        self.episodes += 1
        self.total += end.seconds
        self.longest = max(self.longest, end.seconds)
        if end.time_to_protection is not None:
            self.samples.append(end.time_to_protection)

    def as_dict(self) -> dict[str, Any]:
        ordered = sorted(self.samples)
        return {
            "time_to_protection_p50": percentile(ordered, 0.50),
            "time_to_protection_p99": percentile(ordered, 0.99),
            "time_to_protection_samples": len(ordered),
            "unprotected_episodes": self.episodes,
            "unprotected_seconds_total": self.total,
            "max_unprotected_seconds": self.longest,
            "oco_incidents": self.incidents,
        }


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0.0 when empty)."""
    if not ordered:
        return 0.0
    rank = math.ceil(round(q * len(ordered), 9))
    return ordered[max(1, min(len(ordered), rank)) - 1]


__all__ = ["EpisodeEnd", "ExposureMeter", "ExposureStats", "percentile"]
