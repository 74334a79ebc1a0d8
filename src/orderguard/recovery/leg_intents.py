"""An order leg the seed API registers with an operation, and the checks before its intent.

:meth:`OperationRecoveryManager.add_orders_to_operation
<orderguard.recovery.manager.OperationRecoveryManager.add_orders_to_operation>` takes
:class:`LegIntent` values from the caller: side, size and price are checked here before the
intent is written (:func:`checked_leg`), and :func:`intent_request` is what the intent records.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from orderguard.errors import InvalidPriceError, InvalidSideError, InvalidSizeError

MAX_PRICE = Decimal("1e27")  # as orders.validation.MAX_PRICE (recovery never imports orders)


@dataclass(frozen=True, slots=True)
class LegIntent:
    """One order leg to register with :meth:`OperationRecoveryManager.add_orders_to_operation`."""

    contract_id: str
    side: int
    size: int
    order_type: str
    price: Decimal | float | int | str | None = None
    leg: str | None = None
    account_id: int | None = None
    generation: int = 0
    request: Mapping[str, Any] | None = None


def checked_leg(spec: LegIntent, leg: str) -> tuple[LegIntent, Decimal | None]:
    """The leg with its price as a ``Decimal``; side, size and price checked before its intent
    is written (the seed API takes them from the caller, so the order pipeline's own checks
    would come after the journal already holds a leg nobody can place)."""
    if isinstance(spec.side, bool) or spec.side not in (0, 1):
        raise InvalidSideError(f"leg {leg!r}: side must be 0 (buy) or 1 (sell), got {spec.side!r}")
    if isinstance(spec.size, bool) or not isinstance(spec.size, int) or spec.size <= 0:
        raise InvalidSizeError(f"leg {leg!r}: size must be a positive int, got {spec.size!r}")
    raw: object = spec.price
    if raw is None:
        return spec, None
    try:
        if isinstance(raw, bool) or not isinstance(raw, Decimal | int | float | str):
            raise InvalidOperation
        price = Decimal(repr(raw)) if isinstance(raw, float) else Decimal(raw)
    except InvalidOperation:
        raise InvalidPriceError(f"leg {leg!r}: price is not a number: {raw!r}") from None
    if not price.is_finite() or price <= 0:
        raise InvalidPriceError(f"leg {leg!r}: price must be finite and positive, got {raw!r}")
    if price >= MAX_PRICE:
        raise InvalidPriceError(f"leg {leg!r}: price {price} is too large (limit {MAX_PRICE})")
    return dataclasses.replace(spec, price=price), price


def intent_request(spec: LegIntent) -> dict[str, Any]:
    """The intent's request: what the order is (side, size, type, price), plus the caller's
    details. The basics are always there: an intent whose operation record was lost with a
    crash is adopted from them (a native child's intent once held only its parent id, and came
    back as a 0-lot BUY leg of no type, which a restarted bracket took for a missing stop)."""
    basics: dict[str, Any] = {"side": int(spec.side), "size": spec.size, "type": spec.order_type}
    if spec.price is not None:
        basics["price"] = str(spec.price)
    return {**basics, **(spec.request or {})}


__all__ = ["MAX_PRICE", "LegIntent", "checked_leg", "intent_request"]
