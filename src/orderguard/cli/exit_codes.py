"""Exit statuses of the operator commands (``status``, ``bracket``, ``close``, ``cancel-all``,
``ops``, ``rollback``, ``recover``), one table for all of them so a script can rely on it.

===  ==================================================================================
 0   done, and the account is safe as far as the command looked
 1   refused or not found: the broker rejected the request, orderguard refused it (a risk
     limit, the ambiguity latch, no journal), or the operation/contract named does not exist
 2   bad input: arguments, a missing or unreadable file, a configuration error
 3   done, but not safe: a position is naked or over-covered, protection was not confirmed,
     a rollback could not be confirmed, or recovery left an obligation open
 4   the broker could not be reached or refused the credentials, or an outcome is unknown
130  interrupted (Ctrl-C)
141  the output was closed (a broken pipe)
===  ==================================================================================
"""

from __future__ import annotations

from orderguard.errors import (
    BrokerError,
    ExposureRefusedError,
    JournalError,
    OperationError,
    OrderNotFoundError,
    OrderRejectedError,
    ValidationError,
)

OK = 0
REFUSED = 1
USAGE = 2
UNSAFE = 3
UNAVAILABLE = 4
INTERRUPTED = 130
BROKEN_PIPE = 141


def exit_code_for(exc: BaseException) -> int:
    """The status an error ends a command with."""
    if isinstance(exc, (ExposureRefusedError, OrderRejectedError, OrderNotFoundError)):
        return REFUSED
    if isinstance(exc, OperationError):
        return REFUSED
    if isinstance(exc, (ValidationError, JournalError, OSError, ValueError)):
        return USAGE
    if isinstance(exc, BrokerError):
        return UNAVAILABLE
    return UNAVAILABLE


__all__ = [
    "BROKEN_PIPE",
    "INTERRUPTED",
    "OK",
    "REFUSED",
    "UNAVAILABLE",
    "UNSAFE",
    "USAGE",
    "exit_code_for",
]
