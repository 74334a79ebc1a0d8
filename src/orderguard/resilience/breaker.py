"""Circuit breakers, one per endpoint family ("orders", "positions", "queries", "auth", ...).

A breaker stops hammering an endpoint family that is failing at the *infrastructure* level
(timeouts, connection errors, 5xx, unknown outcomes) and lets the rest of the system fail fast
with :class:`~orderguard.errors.CircuitOpenError`. Business answers — a rejected order, a
validation error, an order that does not exist — prove the endpoint works and never count.

States (transitions are lazy: they happen when the breaker is asked, not on timers)::

    closed ──failure_threshold consecutive infra failures──▶ open
    open ──reset_timeout elapsed──▶ half_open
    half_open ──success_threshold probe successes──▶ closed
    half_open ──one infra failure──▶ open (the reset timeout starts again)

While half-open exactly one call is in flight at a time, and it must be a *query*: a probe that
fails must not be an order. Mutations are refused until the circuit closes. A probe whose caller
never reports back (crashed without using :meth:`CircuitBreaker.guard`) is forgotten after
``reset_timeout``, so the breaker cannot stay wedged half-open.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, TypedDict

from orderguard.clock import Clock
from orderguard.errors import (
    AuthenticationError,
    BrokerError,
    CircuitOpenError,
    OrderRejectedError,
    OutcomeUnknownError,
    RateLimitedError,
)
from orderguard.resilience.retry import RetryPolicy

CallKind = Literal["query", "mutation"]


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerStatus(TypedDict):
    """One family's entry in :meth:`CircuitBreakerRegistry.status` (the project-x-py shape)."""

    state: str
    failure_count: int
    is_healthy: bool
    retry_config: dict[str, float | int]


# BrokerErrors that are answers or local refusals, not evidence that the endpoint is down.
_NOT_INFRA: tuple[type[BaseException], ...] = (
    OrderRejectedError,  # a definitive business rejection
    RateLimitedError,  # the server is up and throttling; the rate limiter deals with it
    AuthenticationError,  # needs a token refresh, not a pause
    CircuitOpenError,  # our own refusal: counting it would keep the circuit open forever
)


def is_infrastructure_failure(failure: object) -> bool:
    """Whether ``failure`` counts toward opening a breaker.

    Counted: ``TimeoutError``, ``OSError`` (connection errors), :class:`OutcomeUnknownError`, and
    any other :class:`BrokerError` (a 5xx, a connection that failed, a malformed payload) except
    rejections, rate limiting, authentication and open circuits. A plain string is a reason the
    caller already judged to be infrastructure (e.g. ``"http 503"``). A ``Rejected`` outcome from
    the broker port (anything with an integer ``code`` that is not an exception) never counts.
    Anything else (programming errors, validation errors) does not count.
    """
    if isinstance(failure, str):
        return True
    if isinstance(failure, OutcomeUnknownError):
        return True
    if isinstance(failure, _NOT_INFRA):
        return False
    return isinstance(failure, TimeoutError | OSError | BrokerError)


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    failure_threshold: int = 5
    reset_timeout: float = 30.0
    success_threshold: int = 1
    half_open_retry_in: float = 1.0  # hint given to callers refused while half-open

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.success_threshold < 1:
            raise ValueError("thresholds must be at least 1")
        if self.reset_timeout <= 0 or self.half_open_retry_in <= 0:
            raise ValueError("reset_timeout and half_open_retry_in must be positive")


class CircuitBreaker:
    """The breaker of one endpoint family. Pure state plus the injected clock; no locks needed
    because every method runs to completion without awaiting."""

    def __init__(
        self,
        family: str,
        clock: Clock,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        success_threshold: int = 1,
        *,
        half_open_retry_in: float = 1.0,
    ) -> None:
        self.family = family
        self.settings = BreakerSettings(
            failure_threshold, reset_timeout, success_threshold, half_open_retry_in
        )
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0  # consecutive infrastructure failures while closed
        self._successes = 0  # probe successes while half-open
        self._opened_at = 0.0
        self._probe_since: float | None = None  # when the in-flight half-open probe was admitted

    # -- reading ---------------------------------------------------------------------------------
    @property
    def state(self) -> BreakerState:
        """The current state (an open breaker whose timeout ran out reads as half-open)."""
        self._refresh()
        return self._state

    @property
    def failure_count(self) -> int:
        return self._failures

    def retry_in(self) -> float:
        """Seconds until a call could be admitted again (0 when one would be now)."""
        self._refresh()
        if self._state is BreakerState.OPEN:
            return max(0.0, self._opened_at + self.settings.reset_timeout - self._clock.monotonic())
        return 0.0

    # -- the protocol ----------------------------------------------------------------------------
    def allow(self, kind: CallKind = "query") -> None:
        """Admit one call of ``kind`` or raise :class:`CircuitOpenError`.

        Every admitted call must be followed by :meth:`record_success` or :meth:`record_failure`
        (or use :meth:`guard`), otherwise a half-open probe slot stays taken until it times out.
        """
        self._refresh()
        if self._state is BreakerState.CLOSED:
            return
        if self._state is BreakerState.OPEN:
            raise self._refusal("open", self.retry_in())
        if kind != "query":
            raise self._refusal(
                "half-open; only a query probe is admitted", self.settings.half_open_retry_in
            )
        if self._probe_since is not None:
            raise self._refusal("half-open; a probe is in flight", self.settings.half_open_retry_in)
        self._probe_since = self._clock.monotonic()

    def record_success(self) -> None:
        """The admitted call got an answer from the endpoint."""
        self._refresh()
        if self._state is BreakerState.CLOSED:
            self._failures = 0
        elif self._state is BreakerState.HALF_OPEN:
            self._probe_since = None
            self._successes += 1
            if self._successes >= self.settings.success_threshold:
                self._close()
        # OPEN: a call admitted before the circuit opened came back late; the open period still
        # runs its course, because one late answer says little about the endpoint now.

    def record_failure(self, failure: object) -> bool:
        """The admitted call failed; returns whether the failure counted.

        Failures that are not infrastructure (see :func:`is_infrastructure_failure`) are neutral:
        they free a half-open probe slot but neither count nor reset anything.
        """
        self._refresh()
        counted = is_infrastructure_failure(failure)
        if self._state is BreakerState.HALF_OPEN:
            self._probe_since = None
            if counted:
                self._open()
        elif self._state is BreakerState.CLOSED and counted:
            self._failures += 1
            if self._failures >= self.settings.failure_threshold:
                self._open()
        return counted

    def record_bypass_success(self) -> None:
        """A call that went out past the open circuit (protective work is never held back)
        got an answer: the endpoint works, which is what a probe would have shown. The circuit
        closes, so ordinary calls need not wait out the reset time after the endpoint
        recovered. (A bypassing call that fails changes nothing.)"""
        self._refresh()
        if self._state is not BreakerState.CLOSED:
            self._close()

    def release(self) -> None:
        """Give back an admitted call that ended with no verdict (it was cancelled)."""
        self._refresh()
        if self._state is BreakerState.HALF_OPEN:
            self._probe_since = None

    @asynccontextmanager
    async def guard(self, kind: CallKind = "query") -> AsyncIterator[None]:
        """``async with breaker.guard("query"):`` — allow, then record how the block ended."""
        self.allow(kind)
        try:
            yield
        except Exception as exc:
            self.record_failure(exc)
            raise
        except BaseException:  # cancelled (or the process is stopping): no verdict either way
            self.release()
            raise
        self.record_success()

    def reset(self) -> None:
        """Force the breaker closed (an operator action)."""
        self._close()

    def status(self, retry_policy: RetryPolicy | None = None) -> BreakerStatus:
        state = self.state
        return {
            "state": state.value,
            "failure_count": self._failures,
            "is_healthy": state is BreakerState.CLOSED,
            "retry_config": (retry_policy or RetryPolicy()).as_config(),
        }

    # -- transitions -----------------------------------------------------------------------------
    def _refresh(self) -> None:
        now = self._clock.monotonic()
        if (
            self._state is BreakerState.OPEN
            and now >= self._opened_at + self.settings.reset_timeout
        ):
            self._state = BreakerState.HALF_OPEN
            self._successes = 0
            self._probe_since = None
        elif (
            self._state is BreakerState.HALF_OPEN
            and self._probe_since is not None
            and now >= self._probe_since + self.settings.reset_timeout
        ):
            self._probe_since = None  # the probe's caller never reported back

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self._clock.monotonic()
        self._probe_since = None
        self._successes = 0

    def _close(self) -> None:
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._successes = 0
        self._probe_since = None

    def _refusal(self, why: str, retry_in: float) -> CircuitOpenError:
        return CircuitOpenError(
            f"circuit {self.family!r} is {why}; retry in {retry_in:.3g} s",
            family=self.family,
            retry_in=retry_in,
        )


class CircuitBreakerRegistry:
    """One :class:`CircuitBreaker` per endpoint family, created on first use."""

    def __init__(
        self,
        clock: Clock,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        success_threshold: int = 1,
        *,
        retry_policy: RetryPolicy | None = None,
        overrides: Mapping[str, BreakerSettings] | None = None,
    ) -> None:
        self._clock = clock
        self._default = BreakerSettings(failure_threshold, reset_timeout, success_threshold)
        self._overrides = dict(overrides or {})
        self.retry_policy = retry_policy or RetryPolicy()
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, family: str) -> CircuitBreaker:
        breaker = self._breakers.get(family)
        if breaker is None:
            s = self._overrides.get(family, self._default)
            breaker = CircuitBreaker(
                family,
                self._clock,
                s.failure_threshold,
                s.reset_timeout,
                s.success_threshold,
                half_open_retry_in=s.half_open_retry_in,
            )
            self._breakers[family] = breaker
        return breaker

    __getitem__ = get

    @property
    def families(self) -> tuple[str, ...]:
        return tuple(sorted(self._breakers))

    def status(self) -> dict[str, BreakerStatus]:
        """Each family's state in the project-x-py ``get_circuit_breaker_status`` shape."""
        return {f: self._breakers[f].status(self.retry_policy) for f in self.families}


__all__ = [
    "BreakerSettings",
    "BreakerState",
    "BreakerStatus",
    "CallKind",
    "CircuitBreaker",
    "CircuitBreakerRegistry",
    "is_infrastructure_failure",
]
