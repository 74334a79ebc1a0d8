"""Retries for safe operations only: queries, and mutations whose request provably never left.

Backoff is capped exponential with *full jitter*: before retry number ``n`` (0-based) the wait is
``uniform(0, min(max_delay, initial_delay * backoff_factor ** n))`` drawn from an injected, seeded
:class:`random.Random`; a ``RateLimitedError.retry_after`` raises that wait to at least the advised
value. Attempts are capped (``max_attempts``) and so is the time spent (``max_total``, measured on
the injected clock from the first call; a retry whose wait would end past it is not made, and an
attempt already running is never interrupted).

Whether an error is retried is a predicate over the exception. :func:`retryable_error` (the
default) trusts the ``retryable`` flag our error tree carries; :func:`retryable_query_error`
widens that for idempotent reads. Whatever the predicate says, ``OutcomeUnknownError`` and
``OrderRejectedError`` are never retried: the first must be resolved by asking the broker, the
second is a definitive answer.

We do not use ``stamina`` here (DESIGN §4 names it) because it sleeps with ``asyncio.sleep``, times
out with ``time.monotonic`` and jitters with the global ``random`` module, so it can neither follow
our injected :class:`~orderguard.clock.Clock` nor replay deterministically from a seed.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar, TypeVarTuple

from orderguard.clock import Clock
from orderguard.errors import (
    ConnectionFailedError,
    OrderGuardError,
    OrderRejectedError,
    OutcomeUnknownError,
    RateLimitedError,
)

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

RetryPredicate = Callable[[BaseException], bool]

_log = logging.getLogger(__name__)

# Errors that no predicate may turn into a retry (see the module docstring).
NEVER_RETRIED: tuple[type[BaseException], ...] = (OutcomeUnknownError, OrderRejectedError)


def retryable_error(exc: BaseException) -> bool:
    """Default predicate: an orderguard error that says it is ``retryable``.

    That covers exactly the failures where a request provably never left (ConnectionFailedError,
    a RateLimitedError raised before sending), so it is safe for mutations too.
    """
    return isinstance(exc, OrderGuardError) and exc.retryable


def retryable_query_error(exc: BaseException) -> bool:
    """Predicate for idempotent queries: anything transient, even if the request was sent.

    Retried: whatever :func:`retryable_error` accepts; ``TimeoutError`` (the builtin, which
    ``asyncio.TimeoutError`` is); ``ConnectionError`` (OS-level resets and refusals);
    :class:`ConnectionFailedError`; and any :class:`RateLimitedError` (an HTTP 429 after sending a
    *read* changed nothing, so repeating it is safe). Not retried: validation errors,
    authentication failures (a token refresh is needed first), malformed payloads, open circuits.
    """
    if retryable_error(exc):
        return True
    return isinstance(
        exc, TimeoutError | ConnectionError | ConnectionFailedError | RateLimitedError
    )


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry. ``max_attempts`` counts the first call too."""

    max_attempts: int = 3
    initial_delay: float = 0.5
    backoff_factor: float = 2.0
    max_delay: float = 10.0
    max_total: float = 30.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_delay < 0 or self.max_delay < 0 or self.max_total < 0:
            raise ValueError("delays must not be negative")
        if self.backoff_factor < 1:
            raise ValueError("backoff_factor must be at least 1")

    def ceiling(self, retry_index: int) -> float:
        """Upper bound of the wait before retry ``retry_index`` (0 = the first retry)."""
        try:
            raw = self.initial_delay * self.backoff_factor**retry_index
        except OverflowError:  # a long retry series: the cap applies long before this
            return self.max_delay
        return min(self.max_delay, raw)

    def as_config(self) -> dict[str, float | int]:
        """The settings a circuit-breaker status reports as ``retry_config``."""
        return {
            "max_attempts": self.max_attempts,
            "initial_delay": self.initial_delay,
            "backoff_factor": self.backoff_factor,
            "max_delay": self.max_delay,
        }


@dataclass(frozen=True, slots=True)
class RetryDetails:
    """What a hook learns about one scheduled retry."""

    name: str  # the retried callable's qualified name, or the name the caller gave
    attempt: int  # 1-based number of the attempt that just failed
    wait: float  # seconds we are about to wait before the next attempt
    waited_so_far: float  # seconds spent in retry waits before this one
    exception_name: str
    exception: BaseException


class RetryHook(Protocol):
    """Called before every retry wait, e.g. to log or count retries. Must not block."""

    def __call__(self, details: RetryDetails, /) -> None: ...


class Retrier:
    """Runs an async callable under a :class:`RetryPolicy`, waiting on the injected clock."""

    def __init__(
        self,
        policy: RetryPolicy,
        clock: Clock,
        rng: random.Random,
        *,
        hooks: Sequence[RetryHook] = (),
        retry_on: RetryPredicate = retryable_error,
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._rng = rng
        self._hooks = tuple(hooks)
        self._retry_on = retry_on

    def next_wait(self, retry_index: int, exc: BaseException) -> float:
        """The wait before retry ``retry_index``: jittered backoff, raised to any Retry-After."""
        ceiling = self.policy.ceiling(retry_index)
        wait = self._rng.uniform(0.0, ceiling) if self.policy.jitter else ceiling
        if isinstance(exc, RateLimitedError) and exc.retry_after is not None:
            wait = max(wait, exc.retry_after)
        return wait

    async def call(
        self,
        fn: Callable[[*Ts], Awaitable[T]],
        *args: *Ts,
        retry_on: RetryPredicate | None = None,
        name: str | None = None,
    ) -> T:
        """Await ``fn(*args)``, retrying failures the predicate accepts; re-raise the last one."""
        predicate = retry_on or self._retry_on
        label: str = name or getattr(fn, "__qualname__", None) or repr(fn)
        started = self._clock.monotonic()
        deadline = started + self.policy.max_total
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            try:
                return await fn(*args)
            except Exception as exc:
                if isinstance(exc, NEVER_RETRIED) or not predicate(exc):
                    raise
                if attempt >= self.policy.max_attempts:
                    raise
                wait = self.next_wait(attempt - 1, exc)
                if self._clock.monotonic() + wait > deadline:
                    raise
                self._notify(RetryDetails(label, attempt, wait, waited, type(exc).__name__, exc))
            # Sleep outside the except block so the caught exception is not kept alive (and not
            # chained implicitly) while we wait.
            await self._clock.sleep(wait)
            waited += wait

    def _notify(self, details: RetryDetails) -> None:
        for hook in self._hooks:
            try:
                hook(details)
            except Exception:
                # A broken metrics/logging hook must not change what is retried.
                _log.exception("retry hook %r failed", hook)


__all__ = [
    "NEVER_RETRIED",
    "Retrier",
    "RetryDetails",
    "RetryHook",
    "RetryPolicy",
    "RetryPredicate",
    "retryable_error",
    "retryable_query_error",
]
