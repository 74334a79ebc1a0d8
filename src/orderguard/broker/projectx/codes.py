"""ProjectX's per-endpoint error codes and what each proves: definitive rejection or nothing.

The gateway answers business failures with HTTP 200, ``success: false`` and an endpoint-specific
``errorCode`` (spec §3). For a mutation, a code is a :class:`~orderguard.broker.base.Rejected`
only when it proves the mutation did not (and will not) happen. ``Pending`` codes, the
``UnknownError`` codes and any code missing from the table are ``Unknown``: the order may exist,
so it is resolved by asking the broker (FAILURES F16), never re-sent.

Decisions worth a reason:

* cancel/modify ``OrderNotFound`` (2) is definitive: the order id does not exist as a working
  order. The manager treats it as a state to reconcile (F11), not as an error.
* partial close ``OrderRejected`` (6) is also what the gateway answers when the market is closed
  or unpriced (spec §3.5): definitive, nothing was executed.
* place ``OrderRejected`` (2) may carry an ``orderId`` (a rejected order record, status 5); the
  outcome keeps it.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

# -- the numbers --------------------------------------------------------------------------------
# Each endpoint numbers its own codes (spec §3). The simulated exchange and the gateway simulator
# answer with these same numbers, so they take them from here.


class PlaceCode:
    ACCOUNT_NOT_FOUND = 1
    ORDER_REJECTED = 2
    INSUFFICIENT_FUNDS = 3
    ACCOUNT_VIOLATION = 4
    OUTSIDE_TRADING_HOURS = 5
    ORDER_PENDING = 6
    UNKNOWN_ERROR = 7
    CONTRACT_NOT_FOUND = 8
    CONTRACT_NOT_ACTIVE = 9
    ACCOUNT_REJECTED = 10


class CancelCode:
    ACCOUNT_NOT_FOUND = 1
    ORDER_NOT_FOUND = 2
    REJECTED = 3
    PENDING = 4
    UNKNOWN_ERROR = 5
    ACCOUNT_REJECTED = 6


class ModifyCode:
    ACCOUNT_NOT_FOUND = 1
    ORDER_NOT_FOUND = 2
    REJECTED = 3
    PENDING = 4
    UNKNOWN_ERROR = 5
    ACCOUNT_REJECTED = 6
    CONTRACT_NOT_FOUND = 7


class CloseCode:
    """``Position/closeContract``."""

    ACCOUNT_NOT_FOUND = 1
    POSITION_NOT_FOUND = 2
    CONTRACT_NOT_FOUND = 3
    CONTRACT_NOT_ACTIVE = 4
    ORDER_REJECTED = 5
    ORDER_PENDING = 6
    UNKNOWN_ERROR = 7
    ACCOUNT_REJECTED = 8


class PartialCloseCode:
    """``Position/partialCloseContract`` (note: one more code than closeContract, shifted)."""

    ACCOUNT_NOT_FOUND = 1
    POSITION_NOT_FOUND = 2
    CONTRACT_NOT_FOUND = 3
    CONTRACT_NOT_ACTIVE = 4
    INVALID_CLOSE_SIZE = 5
    ORDER_REJECTED = 6
    ORDER_PENDING = 7
    UNKNOWN_ERROR = 8
    ACCOUNT_REJECTED = 9


# -- what they prove ----------------------------------------------------------------------------
class Verdict(StrEnum):
    REJECTED = "rejected"  # definitive: nothing happened
    PENDING = "pending"  # accepted for processing, result not known
    UNKNOWN = "unknown"  # the server itself does not know (UnknownError)


R, P, U = Verdict.REJECTED, Verdict.PENDING, Verdict.UNKNOWN


def _table(entries: Mapping[int, Verdict]) -> Mapping[int, Verdict]:
    return MappingProxyType(dict(entries))


PLACE = _table(
    {
        PlaceCode.ACCOUNT_NOT_FOUND: R,
        PlaceCode.ORDER_REJECTED: R,
        PlaceCode.INSUFFICIENT_FUNDS: R,
        PlaceCode.ACCOUNT_VIOLATION: R,
        PlaceCode.OUTSIDE_TRADING_HOURS: R,
        PlaceCode.ORDER_PENDING: P,
        PlaceCode.UNKNOWN_ERROR: U,
        PlaceCode.CONTRACT_NOT_FOUND: R,
        PlaceCode.CONTRACT_NOT_ACTIVE: R,
        PlaceCode.ACCOUNT_REJECTED: R,
    }
)

CANCEL = _table(
    {
        CancelCode.ACCOUNT_NOT_FOUND: R,
        CancelCode.ORDER_NOT_FOUND: R,
        CancelCode.REJECTED: R,
        CancelCode.PENDING: P,
        CancelCode.UNKNOWN_ERROR: U,
        CancelCode.ACCOUNT_REJECTED: R,
    }
)

MODIFY = _table(
    {
        ModifyCode.ACCOUNT_NOT_FOUND: R,
        ModifyCode.ORDER_NOT_FOUND: R,
        ModifyCode.REJECTED: R,
        ModifyCode.PENDING: P,
        ModifyCode.UNKNOWN_ERROR: U,
        ModifyCode.ACCOUNT_REJECTED: R,
        ModifyCode.CONTRACT_NOT_FOUND: R,
    }
)

CLOSE = _table(
    {
        CloseCode.ACCOUNT_NOT_FOUND: R,
        CloseCode.POSITION_NOT_FOUND: R,
        CloseCode.CONTRACT_NOT_FOUND: R,
        CloseCode.CONTRACT_NOT_ACTIVE: R,
        CloseCode.ORDER_REJECTED: R,
        CloseCode.ORDER_PENDING: P,
        CloseCode.UNKNOWN_ERROR: U,
        CloseCode.ACCOUNT_REJECTED: R,
    }
)

PARTIAL_CLOSE = _table(
    {
        PartialCloseCode.ACCOUNT_NOT_FOUND: R,
        PartialCloseCode.POSITION_NOT_FOUND: R,
        PartialCloseCode.CONTRACT_NOT_FOUND: R,
        PartialCloseCode.CONTRACT_NOT_ACTIVE: R,
        PartialCloseCode.INVALID_CLOSE_SIZE: R,
        PartialCloseCode.ORDER_REJECTED: R,
        PartialCloseCode.ORDER_PENDING: P,
        PartialCloseCode.UNKNOWN_ERROR: U,
        PartialCloseCode.ACCOUNT_REJECTED: R,
    }
)

# Queries: a non-zero code fails the query; these codes say "no such thing" instead.
CONTRACT_NOT_FOUND = 1  # Contract/searchById
ORDER_BY_ID_NOT_FOUND = 1  # Order/searchById (RS only; UNCONFIRMED)

# Auth: LoginErrorCode and ValidateErrorCode (spec §3.1), for messages only.
LOGIN_CODES = MappingProxyType(
    {
        1: "UserNotFound",
        2: "PasswordVerificationFailed",
        3: "InvalidCredentials",
        4: "AppNotFound",
        5: "AppVerificationFailed",
        6: "InvalidDevice",
        7: "AgreementsNotSigned",
        8: "UnknownError",
        9: "ApiSubscriptionNotFound",
        10: "ApiKeyAuthenticationDisabled",
    }
)
VALIDATE_CODES = MappingProxyType(
    {1: "InvalidSession", 2: "SessionNotFound", 3: "ExpiredToken", 4: "UnknownError"}
)

# Synthetic codes for HTTP answers that prove the request was refused before it executed.
HTTP_BAD_REQUEST = -400  # ASP.NET model binding refused the body (before the action ran)
HTTP_NOT_FOUND = -404  # no such endpoint
HTTP_METHOD_NOT_ALLOWED = -405
REFUSED_STATUSES = MappingProxyType(
    {400: HTTP_BAD_REQUEST, 404: HTTP_NOT_FOUND, 405: HTTP_METHOD_NOT_ALLOWED}
)


def verdict(table: Mapping[int, Verdict], code: int) -> Verdict:
    """The table's verdict for ``code``; a code we do not know proves nothing."""
    return table.get(code, Verdict.UNKNOWN)


__all__ = [
    "CANCEL",
    "CLOSE",
    "CONTRACT_NOT_FOUND",
    "HTTP_BAD_REQUEST",
    "HTTP_METHOD_NOT_ALLOWED",
    "HTTP_NOT_FOUND",
    "LOGIN_CODES",
    "MODIFY",
    "ORDER_BY_ID_NOT_FOUND",
    "PARTIAL_CLOSE",
    "PLACE",
    "REFUSED_STATUSES",
    "VALIDATE_CODES",
    "CancelCode",
    "CloseCode",
    "ModifyCode",
    "PartialCloseCode",
    "PlaceCode",
    "Verdict",
    "verdict",
]
