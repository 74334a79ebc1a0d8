"""Input checks made before anything is sent (FAILURES F14).

Pure functions: no I/O, so they are cheap on the hot path and the manager can run all of them before
it touches the broker. Every failure is a typed :class:`~orderguard.errors.ValidationError`.

Off-tick prices are refused, not rounded: project-x-py silently aligns them, which moves a stop or a
limit by up to half a tick without the caller knowing. A caller who wants rounding can call
``Contract.align`` explicitly.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation

from orderguard.errors import (
    InvalidPriceError,
    InvalidSideError,
    InvalidSizeError,
    UnknownAccountError,
    ValidationError,
)
from orderguard.models import Contract, OrderSide, OrderType

PriceInput = Decimal | int | float | str

MAX_PRICE = Decimal("1e27")
"""Prices at or above this are refused. The default ``Decimal`` context carries 28 significant
digits: tick arithmetic on a larger price (``price % tick``) raises ``decimal.InvalidOperation``
instead of answering, and no futures price or wire field comes near it."""

# Which order types carry which price: placement and modification check against the same sets.
LIMIT_PRICED = frozenset({OrderType.LIMIT, OrderType.STOP_LIMIT})
STOP_PRICED = frozenset({OrderType.STOP, OrderType.STOP_LIMIT})


def coerce_side(side: object) -> OrderSide:
    """``OrderSide`` or the wire ints 0 (buy) / 1 (sell); anything else is refused."""
    if isinstance(side, OrderSide):
        return side
    # bool is an int subclass; True as "sell" is a bug in the caller, not an intent.
    if isinstance(side, int) and not isinstance(side, bool) and side in (0, 1):
        return OrderSide(side)
    raise InvalidSideError(f"side must be OrderSide or 0 (buy) / 1 (sell), got {side!r}")


def check_size(size: object, max_size: int) -> int:
    """A positive ``int`` no larger than ``max_size``."""
    if not isinstance(size, int) or isinstance(size, bool):
        raise InvalidSizeError(f"size must be an int, got {type(size).__name__} {size!r}")
    if size <= 0:
        raise InvalidSizeError(f"size must be positive, got {size}")
    if size > max_size:
        raise InvalidSizeError(f"size {size} exceeds the maximum of {max_size}")
    return size


def coerce_price(value: object, name: str) -> Decimal:
    """A finite, positive ``Decimal``. Floats go through ``str`` so 0.1 stays 0.1."""
    if value is None:
        raise InvalidPriceError(f"{name} is required")
    if isinstance(value, bool):
        raise InvalidPriceError(f"{name} must be a number, got {value!r}")
    try:
        if isinstance(value, Decimal):
            price = value
        elif isinstance(value, int | str):
            price = Decimal(value)
        elif isinstance(value, float):
            price = Decimal(repr(value))
        else:
            raise InvalidPriceError(f"{name} must be a number, got {type(value).__name__}")
    except InvalidOperation:
        raise InvalidPriceError(f"{name} is not a number: {value!r}") from None
    if not price.is_finite():
        raise InvalidPriceError(f"{name} must be finite, got {value!r}")
    if price <= 0:  # refuses -0 too (Decimal("-0") <= 0)
        raise InvalidPriceError(f"{name} must be positive, got {price}")
    if price >= MAX_PRICE:
        raise InvalidPriceError(f"{name} {price} is too large (limit {MAX_PRICE})")
    return price


def check_duration(value: object, name: str, *, positive: bool = False) -> float:
    """A finite, non-negative number of seconds (``positive``: strictly above zero).

    NaN and infinity are refused (a NaN deadline compares false with everything, so it would
    never expire; infinity is "never" spelled as a number), and so is negative zero: ``-0.0``
    is almost always a sign error in the caller's arithmetic, not a wish for no wait.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValidationError(f"{name} must be a number of seconds, got {value!r}")
    seconds = float(value)
    if not math.isfinite(seconds):
        raise ValidationError(f"{name} must be finite, got {value!r}")
    if math.copysign(1.0, seconds) < 0:
        raise ValidationError(f"{name} must not be negative, got {value!r}")
    if positive and seconds == 0:
        raise ValidationError(f"{name} must be above zero, got {value!r}")
    return seconds


def check_tick(contract: Contract, price: Decimal, name: str) -> Decimal:
    """Refuse a price off the contract's tick grid (never round it)."""
    if not contract.is_aligned(price):
        raise InvalidPriceError(
            f"{name} {price} is not a multiple of {contract.id}'s tick size {contract.tick_size} "
            f"(nearest: {contract.align(price)})"
        )
    return price


def check_stop_vs_market(
    side: OrderSide, stop_price: Decimal, last_price: Decimal | None, *, allow_unknown: bool
) -> None:
    """A buy stop must sit above the last price, a sell stop below it.

    A stop on the wrong side triggers at once: a "protective" stop that is really a market order.
    """
    if last_price is None:
        if allow_unknown:
            return
        raise InvalidPriceError(
            "the last price is unknown, so the stop side cannot be checked "
            "(set allow_stop_without_last_price to place it anyway)"
        )
    if side is OrderSide.BUY and stop_price <= last_price:
        raise InvalidPriceError(f"buy stop {stop_price} must be above the last price {last_price}")
    if side is OrderSide.SELL and stop_price >= last_price:
        raise InvalidPriceError(f"sell stop {stop_price} must be below the last price {last_price}")


def check_account_id(account_id: object) -> int:
    """An account id is a plain int (its existence is checked against the broker elsewhere)."""
    if not isinstance(account_id, int) or isinstance(account_id, bool):
        raise UnknownAccountError(f"account id must be an int, got {account_id!r}")
    return account_id


__all__ = [
    "LIMIT_PRICED",
    "MAX_PRICE",
    "STOP_PRICED",
    "PriceInput",
    "check_account_id",
    "check_duration",
    "check_size",
    "check_stop_vs_market",
    "check_tick",
    "coerce_price",
    "coerce_side",
]
