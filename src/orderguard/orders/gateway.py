"""The resilient path to the broker: every call the OrderManager makes goes through here.

:class:`GuardedBroker` implements the :class:`~orderguard.broker.base.Broker` port over another one
and adds, per call:

* the **rate limiter** (one sliding window for the whole gateway budget), with the caller's
  :class:`~orderguard.resilience.Priority`: protective orders, then flattening, then entries,
  then queries;
* a **circuit breaker per endpoint family** (``orders``: place/cancel/modify; ``positions``:
  close/partial close; ``queries``: every read). Only infrastructure failures count: an
  ``Unknown`` that means the endpoint did not answer (timeout, lost connection, 5xx) or an
  exception of that kind. A ``Rejected`` outcome is an answer and counts as a success;
* **retries for queries only** (capped exponential backoff with full jitter, Retry-After honoured).
  Mutations are never retried here: the manager re-sends only what provably never left.

A protective or flattening order is sent even while its family's breaker is open: an open breaker
protects the endpoint from load, but a stop that is not sent leaves a position naked for certain,
while a stop sent to a struggling endpoint is at worst an ``Unknown`` that is resolved by its tag.
Such a bypass is counted and does not feed the breaker (it was not admitted by it).

Such bypasses start at most one per ``breaker_bypass_interval`` per family while its breaker is
not closed: every protective actor retrying on its own schedule through a long storm spent the
whole rate budget in it, and after the storm nothing, protection included, could be sent until
the window slid on. The first bypass that gets an answer closes the breaker.

A half-open breaker admits only a *query* probe (a probe that fails must not be an order). So when
a mutation finds its family half-open, the gateway first sends that probe itself — a read of the
same endpoint family (open orders for ``orders``, positions for ``positions``) — and sends the
mutation only if the probe closed the circuit.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

from orderguard.broker.base import Broker, Outcome, Unknown, UnknownOrigin
from orderguard.broker.middleware import BrokerCall, BrokerMiddleware
from orderguard.clock import Clock
from orderguard.config import OrderManagerConfig
from orderguard.errors import CircuitOpenError, ReadTimeoutError
from orderguard.models import Order, Position
from orderguard.orders.coalesce import Coalescer
from orderguard.orders.metrics import Counters, Metric
from orderguard.resilience import (
    PRIORITY_LANE,
    BreakerState,
    BreakerStatus,
    CircuitBreakerRegistry,
    Priority,
    RateLimiter,
    Retrier,
    RetryDetails,
    RetryPolicy,
    retryable_query_error,
)

T = TypeVar("T")


class Family(StrEnum):
    """Endpoint families, each with its own circuit breaker."""

    ORDERS = "orders"
    POSITIONS = "positions"
    QUERIES = "queries"


# Which breaker guards each mutation, and the lane a mutation takes when its caller names none.
_FAMILY = {
    "place_order": Family.ORDERS,
    "cancel_order": Family.ORDERS,
    "modify_order": Family.ORDERS,
    "close_position": Family.POSITIONS,
    "partial_close_position": Family.POSITIONS,
}
_MUTATION_LANE = {Family.ORDERS: Priority.NORMAL, Family.POSITIONS: Priority.FLATTEN}

# Unknown outcomes that say the endpoint did not answer. PENDING, UNKNOWN_CODE and a 429 after
# send are answers from a working endpoint: they are resolved, but they do not open a breaker.
_INFRA_ORIGINS = frozenset(
    {UnknownOrigin.TIMEOUT_AFTER_SEND, UnknownOrigin.CONNECTION_LOST, UnknownOrigin.SERVER_ERROR}
)


def retry_policy_from(config: OrderManagerConfig) -> RetryPolicy:
    """The query retry policy: the seed's status-check keys, capped by ``query_retry_max_total``."""
    return RetryPolicy(
        max_attempts=config.status_check_max_attempts,
        initial_delay=config.status_check_initial_delay,
        backoff_factor=config.status_check_backoff_factor,
        max_delay=config.status_check_max_delay,
        max_total=config.query_retry_max_total,
    )


def _in_priority_lane(key: tuple[int, Priority]) -> bool:
    """Reads protection waits on are hedged (a second copy after ``read_hedge_after``); the
    others may queue for the rate budget, and a copy would only lengthen the queue."""
    return key[1] in PRIORITY_LANE


def _urgent_policy(policy: RetryPolicy) -> RetryPolicy:
    """The query policy for reads protection waits on: three attempts within a second."""
    return RetryPolicy(
        max_attempts=min(policy.max_attempts, 3),
        initial_delay=min(policy.initial_delay, 0.1),
        backoff_factor=policy.backoff_factor,
        max_delay=min(policy.max_delay, 0.5),
        max_total=min(policy.max_total, 1.0),
    )


class GuardedBroker(BrokerMiddleware):
    """The Broker port with rate limiting, circuit breakers and query retries (see module)."""

    def __init__(
        self,
        inner: Broker,
        clock: Clock,
        config: OrderManagerConfig,
        rng: random.Random,
        stats: Counters | None = None,
    ) -> None:
        super().__init__(inner)
        self._clock = clock
        self.urgent_read_timeout = config.protection_read_timeout
        """Seconds a read in a priority lane may take before it is asked again."""
        self.bypass_interval = config.breaker_bypass_interval
        self._bypass_gate = {family: asyncio.Lock() for family in Family}
        self._bypass_at = dict.fromkeys(Family, float("-inf"))
        self.stats: Counters = stats if stats is not None else Counter()
        self.limiter = RateLimiter(
            clock,
            config.rate_limit_requests,
            config.rate_limit_window,
            config.rate_limit_reserved,
            name="gateway",
        )
        self.retry_policy = retry_policy_from(config)
        self.breakers = CircuitBreakerRegistry(
            clock,
            config.status_check_circuit_breaker_threshold,
            config.status_check_circuit_breaker_reset_time,
            retry_policy=self.retry_policy,
        )
        for family in Family:
            self.breakers.get(family)  # every family appears in the status from the start
        self.retrier = Retrier(
            self.retry_policy,
            clock,
            rng,
            hooks=(self._count_retry,),
            retry_on=retryable_query_error,
        )
        self._order_reads: Coalescer[tuple[int, Priority], datetime, list[Order]] = Coalescer(
            self._fetch_orders,
            min,
            clock=clock,
            hedge_after=config.read_hedge_after,
            hedged=_in_priority_lane,
        )
        self._position_reads: Coalescer[tuple[int, Priority], None, list[Position]] = Coalescer(
            self._fetch_positions,
            lambda a, b: None,
            clock=clock,
            hedge_after=config.read_hedge_after,
            hedged=_in_priority_lane,
        )
        # A read that protective or flattening work waits on is retried briefly only: its
        # caller (a saga, the protection executor) retries on its own capped schedule, and a
        # read backing off for up to ``query_retry_max_total`` held a flatten back that long.
        self.urgent_retrier = Retrier(
            _urgent_policy(self.retry_policy),
            clock,
            random.Random(rng.getrandbits(64)),
            hooks=(self._count_retry,),
            retry_on=retryable_query_error,
        )

    def status(self) -> dict[str, BreakerStatus]:
        """Per family: state, failure_count, is_healthy, retry_config (project-x-py's shape)."""
        return self.breakers.status()

    def _count_retry(self, details: RetryDetails) -> None:
        self.stats[Metric.QUERY_RETRIES] += 1

    # -- the two paths -----------------------------------------------------------------------
    async def mutation(
        self,
        family: Family,
        priority: Priority,
        send: Callable[[], Awaitable[Outcome]],
        probe: Callable[[], Awaitable[object]] | None = None,
    ) -> Outcome:
        """One mutation attempt: breaker, then a rate-limit slot, then the call. Never retried."""
        breaker = self.breakers.get(family)
        if probe is not None and breaker.state is BreakerState.HALF_OPEN:
            await self._probe(family, probe)
        admitted = True
        try:
            breaker.allow("mutation")
        except CircuitOpenError:
            if priority not in PRIORITY_LANE:
                self.stats[Metric.BREAKER_REFUSALS] += 1
                raise
            admitted = False
            self.stats[Metric.BREAKER_BYPASSED] += 1
            await self._pace_bypass(family)
        try:
            await self.limiter.acquire(priority)
            outcome = await send()
        except Exception as exc:
            if admitted:
                breaker.record_failure(exc)
            raise
        except BaseException:
            if admitted:
                breaker.release()
            raise
        if isinstance(outcome, Unknown) and outcome.origin in _INFRA_ORIGINS:
            if admitted:
                breaker.record_failure(f"unknown outcome: {outcome.origin.value}")
        elif admitted:
            breaker.record_success()  # Confirmed, Rejected: the endpoint answered
        else:
            breaker.record_bypass_success()
        return outcome

    async def _pace_bypass(self, family: Family) -> None:
        """Wait for this family's next bypass start (see module docstring)."""
        async with self._bypass_gate[family]:
            if self.breakers.get(family).state is BreakerState.CLOSED:
                return  # a bypass got an answer meanwhile: the endpoint works again
            wait = self._bypass_at[family] + self.bypass_interval - self._clock.monotonic()
            if wait > 0:
                self.stats[Metric.BYPASS_PACED] += 1
                await self._clock.sleep(wait)
            self._bypass_at[family] = self._clock.monotonic()

    async def _probe(self, family: Family, probe: Callable[[], Awaitable[object]]) -> None:
        """Send the half-open family's query probe; its verdict closes or re-opens the circuit."""
        breaker = self.breakers.get(family)
        try:
            async with breaker.guard("query"):
                await self.limiter.acquire(Priority.QUERY)
                await probe()
        except CircuitOpenError:
            return  # another probe is in flight: the mutation below is refused (or bypasses)
        except Exception:  # guard() recorded it; the mutation below then meets an open breaker
            self.stats[Metric.PROBE_FAILURES] += 1
        else:
            self.stats[Metric.PROBES] += 1

    async def query(
        self, call: Callable[[], Awaitable[T]], priority: Priority = Priority.QUERY
    ) -> T:
        """A read: retried on transient failures, each attempt through breaker and limiter.

        ``priority`` lets the read that a protective or flattening step depends on (the
        position before a flatten) go ahead of ordinary reads when the window is full."""

        urgent = priority in PRIORITY_LANE

        async def answer() -> T:
            # A read protection waits on is cut short and asked again rather than waited on
            # for as long as the transport allows (the retries below are brief too).
            if urgent:
                try:
                    return await self._clock.wait_for(call(), self.urgent_read_timeout)
                except TimeoutError as exc:
                    raise ReadTimeoutError(
                        f"read gave no answer within {self.urgent_read_timeout:g} s"
                    ) from exc
            return await call()

        async def attempt() -> T:
            breaker = self.breakers.get(Family.QUERIES)
            try:
                async with breaker.guard("query"):
                    await self.limiter.acquire(priority)
                    return await answer()
            except CircuitOpenError:
                if priority not in PRIORITY_LANE:
                    self.stats[Metric.BREAKER_REFUSALS] += 1
                    raise
            # A read protection waits on (the position before a flatten, the truth a rollback
            # is planned from) goes out even while the breaker is open, like a protective
            # order: held back for the breaker's whole reset time, it left a position bare for
            # minutes after the endpoint recovered. It does not feed the breaker.
            self.stats[Metric.BREAKER_BYPASSED] += 1
            await self._pace_bypass(Family.QUERIES)
            await self.limiter.acquire(priority)
            result = await answer()
            breaker.record_bypass_success()
            return result

        retrier = self.urgent_retrier if priority in PRIORITY_LANE else self.retrier
        return await retrier.call(attempt, name="query")

    # -- the middleware hooks ------------------------------------------------------------------
    async def around_mutation(self, call: BrokerCall[Outcome]) -> Outcome:
        family = _FAMILY[call.op]
        priority = _MUTATION_LANE[family] if call.priority is None else call.priority
        assert call.account_id is not None  # every mutation of the port names its account
        return await self.mutation(
            family, priority, call.run, self._probe_read(family, call.account_id)
        )

    def _probe_read(self, family: Family, account_id: int) -> Callable[[], Awaitable[object]]:
        """The read that probes a half-open family: a read of the same endpoints."""
        if family is Family.ORDERS:
            return lambda: self.inner.search_open_orders(account_id)
        return lambda: self.inner.search_positions(account_id)

    async def around_query(self, call: BrokerCall[T]) -> T:
        lane = Priority.QUERY if call.priority is None else call.priority
        return await self.query(call.run, lane)

    # -- reads that share a request ----------------------------------------------------------
    async def search_orders(
        self,
        account_id: int,
        start: datetime,
        end: datetime | None = None,
        *,
        priority: Priority | None = None,
    ) -> list[Order]:
        """Orders created since ``start``. Concurrent searches of one account in one lane share
        a request (:mod:`~orderguard.orders.coalesce`) over the widest window asked, each cut
        back to its own window by creation time — the window the simulator and the gateway
        search by (the spec leaves it unsaid: ``docs/projectx.md``)."""
        lane = Priority.QUERY if priority is None else priority
        if end is not None:
            return await self.query(lambda: self.inner.search_orders(account_id, start, end), lane)
        orders = await self._order_reads.read((account_id, lane), start)
        return [o for o in orders if o.creation_timestamp >= start]

    async def search_positions(
        self, account_id: int, *, priority: Priority | None = None
    ) -> list[Position]:
        """The account's positions; concurrent reads in one lane share a request."""
        lane = Priority.QUERY if priority is None else priority
        return await self._position_reads.read((account_id, lane), None)

    async def _fetch_orders(self, key: tuple[int, Priority], start: datetime) -> list[Order]:
        account_id, priority = key
        return await self.query(lambda: self.inner.search_orders(account_id, start), priority)

    async def _fetch_positions(self, key: tuple[int, Priority], _: None) -> list[Position]:
        account_id, priority = key
        return await self.query(lambda: self.inner.search_positions(account_id), priority)


__all__ = ["Family", "GuardedBroker", "retry_policy_from"]
