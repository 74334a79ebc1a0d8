"""Resilience for broker calls: retries for safe operations, circuit breakers per endpoint family,
and a sliding-window rate limiter with a priority lane. Everything waits on the injected clock."""

from orderguard.resilience.breaker import (
    BreakerSettings,
    BreakerState,
    BreakerStatus,
    CallKind,
    CircuitBreaker,
    CircuitBreakerRegistry,
    is_infrastructure_failure,
)
from orderguard.resilience.ratelimit import PRIORITY_LANE, Priority, RateLimiter
from orderguard.resilience.retry import (
    NEVER_RETRIED,
    Retrier,
    RetryDetails,
    RetryHook,
    RetryPolicy,
    RetryPredicate,
    retryable_error,
    retryable_query_error,
)

__all__ = [
    "NEVER_RETRIED",
    "PRIORITY_LANE",
    "BreakerSettings",
    "BreakerState",
    "BreakerStatus",
    "CallKind",
    "CircuitBreaker",
    "CircuitBreakerRegistry",
    "Priority",
    "RateLimiter",
    "Retrier",
    "RetryDetails",
    "RetryHook",
    "RetryPolicy",
    "RetryPredicate",
    "is_infrastructure_failure",
    "retryable_error",
    "retryable_query_error",
]
