"""The whole error tree of orderguard.

Every error raised by orderguard derives from :class:`OrderGuardError`. Whether retrying can help is
data on the error (``retryable``), never guessed from the type name::

    OrderGuardError
    ├── ValidationError            bad input, raised before anything is sent; nothing changed
    │   ├── InvalidSideError
    │   ├── InvalidSizeError
    │   ├── InvalidPriceError      missing, non-positive or off-tick price; stop on the wrong side
    │   ├── UnknownContractError
    │   ├── UnknownAccountError
    │   ├── NoPositionError        a position order was asked for where there is no position
    │   ├── AlreadyProtectedError  a stop or target asked for where exits already cover all of it
    │   └── ConfigurationError     an unknown configuration key, or a value out of range
    ├── BrokerError                the broker (or the path to it) failed
    │   ├── OrderRejectedError     a definitive business rejection, with the endpoint's error code
    │   ├── ReadTimeoutError       a read took longer than it was given (safe to ask again)
    │   ├── OutcomeUnknownError    sent, no proof either way; resolve by asking the broker
    │   ├── RateLimitedError       local limiter or HTTP 429 (retryable when the request never left)
    │   ├── AuthenticationError    login failed or the token is no longer accepted
    │   ├── ConnectionFailedError  the request provably never left (retryable)
    │   ├── CircuitOpenError       a circuit breaker refuses calls to an endpoint family
    │   └── MalformedPayloadError  the broker sent data we cannot parse
    ├── OrderNotFoundError         no order with that id exists in any status
    ├── ExposureRefusedError       new exposure refused (ambiguity latch, journal unavailable)
    │   ├── ExitNotReducingError   an exit that would no longer reduce the position: not sent
    │   └── RiskLimitError         a position or daily-loss limit refuses new exposure
    ├── JournalError               the journal could not be read or written
    │   └── JournalCorruptError    the file is empty, not a database, or fails its integrity check
    └── OperationError             an operation id is unknown or a transition is not allowed

Errors carry no secrets: API keys and tokens are never part of a message.
"""

from __future__ import annotations


class OrderGuardError(Exception):
    """Base of every orderguard error."""

    retryable: bool = False


class ValidationError(OrderGuardError, ValueError):
    """Bad input caught before anything was sent to the broker."""


class InvalidSideError(ValidationError):
    """The side is not a valid OrderSide."""


class InvalidSizeError(ValidationError):
    """The size is not a positive integer within the configured limit."""


class InvalidPriceError(ValidationError):
    """A price is missing, not positive, off the tick grid, or on the wrong side of the market."""


class UnknownContractError(ValidationError):
    """No contract with that id or symbol is known to the broker."""


class UnknownAccountError(ValidationError):
    """No account with that id is known to the broker."""


class NoPositionError(ValidationError):
    """A stop loss or take profit was asked for on a contract with no open position."""


class AlreadyProtectedError(ValidationError):
    """Working exits of that kind already cover the whole position: another would over-cover
    it (I1), and its fill would open a position the other way."""


class ConfigurationError(ValidationError):
    """A configuration key is unknown, or a value is out of range (refused, never ignored)."""


class BrokerError(OrderGuardError):
    """The broker, or the path to it, failed."""


class ReadTimeoutError(BrokerError):
    """A read took longer than it was given (a query is safe to ask again)."""

    retryable = True


class OrderRejectedError(BrokerError):
    """The broker definitively rejected a mutation with an endpoint-specific error code."""

    def __init__(self, message: str, *, code: int, order_id: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.order_id = order_id


class OutcomeUnknownError(BrokerError):
    """A mutation was sent but its outcome is not known; it must be resolved, not retried."""

    def __init__(self, message: str, *, origin: str, custom_tag: str | None = None) -> None:
        super().__init__(message)
        self.origin = origin
        self.custom_tag = custom_tag


class RateLimitedError(BrokerError):
    """Too many requests; ``retry_after`` seconds is the advised wait when known."""

    def __init__(self, message: str, *, retry_after: float | None = None, sent: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.sent = sent
        # Only a request that provably never left may be retried blindly.
        self.retryable = not sent


class AuthenticationError(BrokerError):
    """Login failed, or the session token is no longer accepted."""


class ConnectionFailedError(BrokerError):
    """The request provably never left (connect refused, DNS failure)."""

    retryable = True


class CircuitOpenError(BrokerError):
    """A circuit breaker is open for this endpoint family."""

    def __init__(self, message: str, *, family: str, retry_in: float) -> None:
        super().__init__(message)
        self.family = family
        self.retry_in = retry_in


class MalformedPayloadError(BrokerError):
    """The broker sent data that does not parse."""


class OrderNotFoundError(OrderGuardError, LookupError):
    """No order with that id exists in any status."""


class ExposureRefusedError(OrderGuardError):
    """New exposure is refused (an unresolved outcome on the contract, or no journal)."""


class ExitNotReducingError(ExposureRefusedError):
    """An exit (a stop or target sent as protection) would not reduce the account's position,
    read just now: the position it was meant for is gone or smaller (closed outside, say).
    Sent anyway, it would be a new position if it filled; the caller re-plans instead."""

    def __init__(self, message: str, *, position: int) -> None:
        super().__init__(message)
        self.position = position


class RiskLimitError(ExposureRefusedError):
    """A risk limit refuses a request that would increase exposure (never a protective or
    flattening one): a per-contract or per-account position limit, the daily loss limit, or
    ``unverified`` when the account could not be read to check them (refused, not guessed).

    ``limit`` names the limit; ``value`` is what the request would make of it (contracts, or
    the day's realized P&L) and ``allowed`` the configured bound. Nothing was sent."""

    def __init__(
        self,
        message: str,
        *,
        limit: str,
        account_id: int,
        contract_id: str,
        value: object = None,
        allowed: object = None,
    ) -> None:
        super().__init__(message)
        self.limit = limit
        self.account_id = account_id
        self.contract_id = contract_id
        self.value = value
        self.allowed = allowed


class JournalError(OrderGuardError):
    """The journal could not be read or written."""


class JournalCorruptError(JournalError):
    """The journal file is empty, not a SQLite database, or fails SQLite's integrity check.

    Refused at open rather than adopted: an empty file would silently become a new journal, losing
    the record of every unfinished operation a crashed process left. Only orderguard itself
    creates a journal file, and it does so atomically (see ``journal/writer.py``)."""


class OperationError(OrderGuardError):
    """An operation id is unknown, or the requested transition is not allowed."""


__all__ = [
    "AlreadyProtectedError",
    "AuthenticationError",
    "BrokerError",
    "CircuitOpenError",
    "ConfigurationError",
    "ConnectionFailedError",
    "ExitNotReducingError",
    "ExposureRefusedError",
    "InvalidPriceError",
    "InvalidSideError",
    "InvalidSizeError",
    "JournalCorruptError",
    "JournalError",
    "MalformedPayloadError",
    "NoPositionError",
    "OperationError",
    "OrderGuardError",
    "OrderNotFoundError",
    "OrderRejectedError",
    "OutcomeUnknownError",
    "RateLimitedError",
    "ReadTimeoutError",
    "RiskLimitError",
    "UnknownAccountError",
    "UnknownContractError",
    "ValidationError",
]
