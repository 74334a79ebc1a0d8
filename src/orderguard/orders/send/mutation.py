"""Sending one mutation (place, cancel, modify): when a re-send is safe; what an exception means.

A mutation is re-sent only when the broker proves the request never left (a retryable
:class:`~orderguard.errors.OrderGuardError`: a refused connection, a rate limit met before
sending), at most ``placement_connect_retries`` times and never sooner than the advised
``retry_after``: re-sending anything that may have arrived could duplicate an order. An exception
outside the port's contract says nothing about whether the request left, so it becomes an
``Unknown`` outcome, resolved later like any other.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from orderguard.broker.base import Outcome, Unknown, UnknownOrigin
from orderguard.clock import Clock
from orderguard.config import OrderManagerConfig
from orderguard.errors import OrderGuardError
from orderguard.orders.metrics import Counters, Metric

log = logging.getLogger("orderguard.orders")


async def send_mutation(
    send: Callable[[], Awaitable[Outcome]],
    config: OrderManagerConfig,
    clock: Clock,
    stats: Counters,
) -> Outcome:
    """Run one mutation; re-send only when the broker proves the request never left."""
    retries = config.placement_connect_retries
    attempt = 0
    while True:
        try:
            return await send()
        except OrderGuardError as exc:
            if not exc.retryable or attempt >= retries:
                raise
            attempt += 1
            stats[Metric.CONNECT_RETRIES] += 1
            wait = max(config.placement_connect_retry_delay, _retry_after(exc))
            log.warning("request never left (%s); re-sending in %.2fs", type(exc).__name__, wait)
            await clock.sleep(wait)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Not part of the port's contract: we cannot know whether the request left.
            log.exception("broker raised during a mutation; outcome unknown")
            return Unknown(_exception_origin(exc), type(exc).__name__)


def _retry_after(exc: OrderGuardError) -> float:
    value = getattr(exc, "retry_after", None)
    return float(value) if isinstance(value, int | float) else 0.0


def _exception_origin(exc: BaseException) -> UnknownOrigin:
    if isinstance(exc, TimeoutError):
        return UnknownOrigin.TIMEOUT_AFTER_SEND
    return UnknownOrigin.CONNECTION_LOST


__all__ = ["send_mutation"]
