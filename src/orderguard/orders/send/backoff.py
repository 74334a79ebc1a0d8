"""The status-check schedule used to resolve an Unknown outcome (project-x-py's seed keys).

Attempt 1 is made at once: most lost answers are for requests the broker executed, and the order is
already there. Later attempts wait a capped exponential delay with "equal jitter" (half fixed, half
random from the injected ``random.Random``) so that many managers that lost the same answer do not
query in lock-step, while a seeded run stays replayable.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from orderguard.config import OrderManagerConfig


def status_check_delays(config: OrderManagerConfig, rng: random.Random) -> Iterator[float]:
    """Seconds to wait before each attempt; yields ``status_check_max_attempts`` values, first 0."""
    yield 0.0
    delay = config.status_check_initial_delay
    for _ in range(config.status_check_max_attempts - 1):
        capped = min(delay, config.status_check_max_delay)
        yield capped / 2 + rng.uniform(0.0, capped / 2)
        delay *= config.status_check_backoff_factor


__all__ = ["status_check_delays"]
