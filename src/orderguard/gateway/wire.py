"""Our models in ProjectX wire shapes, and the JSON text they travel as.

ProjectX prints decimals as JSON numbers with up to 9 fractional digits (``1575.750000000``) and
timestamps as ISO-8601 with an offset and microseconds (``2025-04-14T17:49:10.142532+00:00``).
The standard ``json`` module cannot print a ``Decimal`` as a number without going through a
float, so :func:`dumps` is a small encoder of its own for the plain shapes we send. Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from orderguard.models import Account, Contract, Order, Position, Trade

_NINE_PLACES = Decimal("1e-9")

WireValue = Any  # str | int | float | bool | None | Decimal | datetime | list | dict


def decimal_text(value: Decimal) -> str:
    """A JSON number for ``value``: fixed point, at most 9 fractional digits, never exponent."""
    if not value.is_finite():
        raise ValueError(f"{value} has no JSON form")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -9:
        value = value.quantize(_NINE_PLACES)
    text = format(value, "f")
    return "0" if text in ("-0", "") else text


def timestamp(value: datetime) -> str:
    """ISO-8601 in UTC with microseconds and an explicit ``+00:00``."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def dumps(value: WireValue) -> str:
    """Compact JSON text; ``Decimal`` as an exact number, ``datetime`` as :func:`timestamp`."""
    parts: list[str] = []
    _encode(value, parts)
    return "".join(parts)


def _encode(value: WireValue, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, Decimal):
        out.append(decimal_text(value))
    elif isinstance(value, int | float):
        out.append(json.dumps(value))
    elif isinstance(value, datetime):
        out.append('"' + timestamp(value) + '"')
    elif isinstance(value, Mapping):
        out.append("{")
        first = True
        for key, item in value.items():
            if not first:
                out.append(",")
            first = False
            out.append(json.dumps(str(key), ensure_ascii=False))
            out.append(":")
            _encode(item, out)
        out.append("}")
    elif isinstance(value, Sequence):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        raise TypeError(f"cannot encode {type(value).__name__} for the wire")


# -- entities ------------------------------------------------------------------------------------


def account_json(account: Account) -> dict[str, WireValue]:
    return {
        "id": account.id,
        "name": account.name,
        "balance": account.balance,
        "canTrade": account.can_trade,
        "isVisible": account.is_visible,
        "simulated": account.simulated,
    }


def contract_json(contract: Contract) -> dict[str, WireValue]:
    return {
        "id": contract.id,
        "name": contract.name,
        "description": contract.description,
        "tickSize": contract.tick_size,
        "tickValue": contract.tick_value,
        "activeContract": contract.active,
        "symbolId": contract.symbol_id,
    }


def order_json(order: Order, symbol_id: str, *, extras: bool = True) -> dict[str, WireValue]:
    """``OrderModel``; ``extras`` adds the RS-observed ``trailPrice`` and ``parentOrderId``."""
    data: dict[str, WireValue] = {
        "id": order.id,
        "accountId": order.account_id,
        "contractId": order.contract_id,
        "symbolId": symbol_id,
        "creationTimestamp": order.creation_timestamp,
        "updateTimestamp": order.update_timestamp,
        "status": int(order.status),
        "type": int(order.type),
        "side": int(order.side),
        "size": order.size,
        "limitPrice": order.limit_price,
        "stopPrice": order.stop_price,
        "fillVolume": order.fill_volume,
        "filledPrice": order.filled_price,
        "customTag": order.custom_tag,
    }
    if extras:
        data["trailPrice"] = order.trail_price
        data["parentOrderId"] = order.parent_order_id
    return data


def position_json(position: Position) -> dict[str, WireValue]:
    return {
        "id": position.id,
        "accountId": position.account_id,
        "contractId": position.contract_id,
        "creationTimestamp": position.creation_timestamp,
        "type": int(position.type),
        "size": position.size,
        "averagePrice": position.average_price,
    }


def trade_json(trade: Trade) -> dict[str, WireValue]:
    return {
        "id": trade.id,
        "accountId": trade.account_id,
        "contractId": trade.contract_id,
        "creationTimestamp": trade.creation_timestamp,
        "price": trade.price,
        "profitAndLoss": trade.profit_and_loss,
        "fees": trade.fees,
        "side": int(trade.side),
        "size": trade.size,
        "voided": trade.voided,
        "orderId": trade.order_id,
    }


def envelope(
    error_code: int = 0, error_message: str | None = None, **payload: WireValue
) -> dict[str, WireValue]:
    """``{success, errorCode, errorMessage, ...payload}``; ``success`` iff the code is 0."""
    return {
        **payload,
        "success": error_code == 0,
        "errorCode": error_code,
        "errorMessage": error_message,
    }


__all__ = [
    "account_json",
    "contract_json",
    "decimal_text",
    "dumps",
    "envelope",
    "order_json",
    "position_json",
    "timestamp",
    "trade_json",
]
