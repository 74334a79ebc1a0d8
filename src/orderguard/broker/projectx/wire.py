"""ProjectX wire format: encoding requests and decoding answers and realtime payloads. Pure.

Prices are ``Decimal`` both ways: requests are written by :func:`dumps`, which prints a Decimal as
a JSON number with at most 9 fractional digits (the gateway's own precision) and never goes
through ``float``; answers are parsed with Decimal for every non-integer (``http.loads``).

Decoding is strict about what identifies a record (ids, status, side, sizes) and tolerant about
the rest (missing optional fields, ``null`` lists, extra fields). A record that cannot be decoded
raises :class:`WireError`; the callers decide what that means (a failed query, or a counted and
logged malformed event).

Realtime payloads arrive in several shapes (spec §6.3): a bare object, ``{"action", "data"}``,
a list of either (with ``null`` padding), and a leading account-id argument.
:func:`extract_entities` flattens all of them.

Over 500 lines: one small pure codec per wire record (orders, positions, trades, accounts,
contracts, quotes, bars) sharing the strict and tolerant field helpers; nothing else lives here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import IntEnum
from typing import Any, TypeVar

from orderguard.models import (
    Account,
    Contract,
    Order,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    Position,
    PositionType,
    Trade,
)

_NINE_PLACES = Decimal("1e-9")
E = TypeVar("E", bound=IntEnum)


class WireError(ValueError):
    """A payload that does not decode (missing or mistyped field, broken envelope)."""


# ---------------------------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------------------------


def format_decimal(value: Decimal) -> str:
    """A Decimal as a JSON number: plain notation, at most 9 fractional digits, no trailing 0s."""
    if not value.is_finite():
        raise WireError(f"not a finite price: {value}")
    quantized = value.quantize(_NINE_PLACES)
    text = format(quantized, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def dumps(value: Any) -> bytes:
    """JSON bytes for a request body; Decimals become numbers via :func:`format_decimal`."""
    return "".join(_encode(value)).encode()


def _encode(value: Any) -> Iterator[str]:
    if isinstance(value, Decimal):
        yield format_decimal(value)
    elif isinstance(value, float):
        raise WireError("floats are never sent: use Decimal")
    elif isinstance(value, Mapping):
        yield "{"
        for i, (key, item) in enumerate(value.items()):
            if i:
                yield ","
            yield json.dumps(str(key))
            yield ":"
            yield from _encode(item)
        yield "}"
    elif isinstance(value, list | tuple):
        yield "["
        for i, item in enumerate(value):
            if i:
                yield ","
            yield from _encode(item)
        yield "]"
    else:  # str, int, bool, None
        yield json.dumps(value)


def iso(stamp: datetime) -> str:
    """A timestamp as the gateway writes them (UTC, offset form)."""
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.astimezone(UTC).isoformat()


def encode_place(request: OrderRequest, *, signed_ticks: bool = True) -> dict[str, Any]:
    """The ``Order/place`` body. Optional fields are omitted when unset."""
    body: dict[str, Any] = {
        "accountId": request.account_id,
        "contractId": request.contract_id,
        "type": int(request.type),
        "side": int(request.side),
        "size": request.size,
    }
    for key, price in (
        ("limitPrice", request.limit_price),
        ("stopPrice", request.stop_price),
        ("trailPrice", request.trail_price),
    ):
        if price is not None:
            body[key] = price
    if request.custom_tag is not None:
        body["customTag"] = request.custom_tag
    for key, spec in (
        ("stopLossBracket", request.stop_loss_bracket),
        ("takeProfitBracket", request.take_profit_bracket),
    ):
        if spec is not None:
            ticks = spec.ticks if signed_ticks else abs(spec.ticks)
            body[key] = {"ticks": ticks, "type": int(spec.type)}
    return body


def encode_modify(
    account_id: int,
    order_id: int,
    *,
    size: int | None,
    limit_price: Decimal | None,
    stop_price: Decimal | None,
    trail_price: Decimal | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"accountId": account_id, "orderId": order_id}
    for key, value in (
        ("size", size),
        ("limitPrice", limit_price),
        ("stopPrice", stop_price),
        ("trailPrice", trail_price),
    ):
        if value is not None:
            body[key] = value
    return body


# ---------------------------------------------------------------------------------------------
# Envelope
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Envelope:
    success: bool
    code: int
    message: str


def envelope(body: Any) -> Envelope:
    """The common envelope; ``success`` must agree with ``errorCode == 0`` (else WireError)."""
    if not isinstance(body, Mapping):
        raise WireError("the answer is not a JSON object")
    success = body.get("success")
    code = body.get("errorCode", 0 if success is True else None)
    if not isinstance(success, bool) or not _is_int(code):
        raise WireError("the answer has no success/errorCode envelope")
    if success != (code == 0):
        raise WireError(f"envelope disagrees with itself: success={success}, errorCode={code}")
    message = body.get("errorMessage")
    return Envelope(success, int(code), message if isinstance(message, str) else "")


# ---------------------------------------------------------------------------------------------
# Field readers
# ---------------------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _req(obj: Mapping[str, Any], key: str) -> Any:
    value = obj.get(key)
    if value is None:
        raise WireError(f"missing field {key!r}")
    return value


def _int(obj: Mapping[str, Any], key: str) -> int:
    value = _req(obj, key)
    if _is_int(value):
        return int(value)
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise WireError(f"field {key!r} is not an integer: {value!r}")


def _opt_int(obj: Mapping[str, Any], key: str) -> int | None:
    return None if obj.get(key) is None else _int(obj, key)


def _str(obj: Mapping[str, Any], key: str) -> str:
    value = _req(obj, key)
    if not isinstance(value, str):
        raise WireError(f"field {key!r} is not a string")
    return value


def _opt_str(obj: Mapping[str, Any], key: str, default: str | None = None) -> str | None:
    value = obj.get(key)
    return value if isinstance(value, str) else default


def _bool(obj: Mapping[str, Any], key: str, default: bool) -> bool:
    value = obj.get(key)
    return value if isinstance(value, bool) else default


def to_decimal(value: Any) -> Decimal:
    """A wire number as a tidy Decimal (``1575.750000000`` → ``1575.75``; ``21000`` stays)."""
    if isinstance(value, bool) or value is None:
        raise WireError(f"not a number: {value!r}")
    try:
        d = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        raise WireError(f"not a number: {value!r}") from None
    if not d.is_finite():
        raise WireError(f"not a finite number: {value!r}")
    if d == d.to_integral_value():
        return d.quantize(Decimal(1))
    return d.normalize()


def _dec(obj: Mapping[str, Any], key: str) -> Decimal:
    return to_decimal(_req(obj, key))


def _opt_dec(obj: Mapping[str, Any], key: str) -> Decimal | None:
    value = obj.get(key)
    return None if value is None else to_decimal(value)


def parse_time(value: Any) -> datetime:
    """An ISO-8601 timestamp; a naive one is UTC (the gateway writes UTC)."""
    if not isinstance(value, str):
        raise WireError(f"not a timestamp: {value!r}")
    try:
        stamp = datetime.fromisoformat(value.strip())
    except ValueError:
        raise WireError(f"not a timestamp: {value!r}") from None
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp


def _time(obj: Mapping[str, Any], key: str) -> datetime:
    return parse_time(_req(obj, key))


def _opt_time(obj: Mapping[str, Any], key: str) -> datetime | None:
    value = obj.get(key)
    return None if value is None else parse_time(value)


def _enum(cls: type[E], obj: Mapping[str, Any], key: str) -> E:
    raw = _int(obj, key)
    try:
        return cls(raw)
    except ValueError:
        raise WireError(f"field {key!r}: {raw} is not a {cls.__name__}") from None


def _mapping(obj: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise WireError(f"{what} is not an object")
    return obj


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------


def decode_order(raw: Any) -> Order:
    obj = _mapping(raw, "order")
    size = _int(obj, "size")
    return Order(
        id=_int(obj, "id"),
        account_id=_int(obj, "accountId"),
        contract_id=_str(obj, "contractId"),
        creation_timestamp=_time(obj, "creationTimestamp"),
        update_timestamp=_opt_time(obj, "updateTimestamp"),
        status=_enum(OrderStatus, obj, "status"),
        type=_enum(OrderType, obj, "type"),
        side=_enum(OrderSide, obj, "side"),
        size=size,
        limit_price=_opt_dec(obj, "limitPrice"),
        stop_price=_opt_dec(obj, "stopPrice"),
        fill_volume=_opt_int(obj, "fillVolume") or 0,
        filled_price=_opt_dec(obj, "filledPrice"),
        custom_tag=_opt_str(obj, "customTag"),
        trail_price=_opt_dec(obj, "trailPrice"),
        parent_order_id=_opt_int(obj, "parentOrderId"),
    )


def decode_position(raw: Any) -> Position:
    obj = _mapping(raw, "position")
    size = _int(obj, "size")
    return Position(
        id=_int(obj, "id"),
        account_id=_int(obj, "accountId"),
        contract_id=_str(obj, "contractId"),
        creation_timestamp=_time(obj, "creationTimestamp"),
        type=_enum(PositionType, obj, "type"),
        size=abs(size),
        # A flat position (size 0) may come without a price.
        average_price=_opt_dec(obj, "averagePrice") or Decimal(0),
    )


def decode_trade(raw: Any) -> Trade:
    obj = _mapping(raw, "trade")
    return Trade(
        id=_int(obj, "id"),
        account_id=_int(obj, "accountId"),
        contract_id=_str(obj, "contractId"),
        creation_timestamp=_time(obj, "creationTimestamp"),
        price=_dec(obj, "price"),
        profit_and_loss=_opt_dec(obj, "profitAndLoss"),
        fees=_opt_dec(obj, "fees") or Decimal(0),
        side=_enum(OrderSide, obj, "side"),
        size=_int(obj, "size"),
        voided=_bool(obj, "voided", False),
        order_id=_int(obj, "orderId"),
    )


def decode_account(raw: Any) -> Account:
    obj = _mapping(raw, "account")
    return Account(
        id=_int(obj, "id"),
        name=_opt_str(obj, "name", "") or "",
        balance=_opt_dec(obj, "balance") or Decimal(0),
        can_trade=_bool(obj, "canTrade", True),
        is_visible=_bool(obj, "isVisible", True),
        simulated=_bool(obj, "simulated", True),
    )


def decode_contract(raw: Any) -> Contract:
    obj = _mapping(raw, "contract")
    tick_size = _dec(obj, "tickSize")
    if tick_size <= 0:
        raise WireError(f"contract tickSize must be positive, got {tick_size}")
    contract_id = _str(obj, "id")
    return Contract(
        id=contract_id,
        name=_opt_str(obj, "name", contract_id) or contract_id,
        description=_opt_str(obj, "description", "") or "",
        tick_size=tick_size,
        tick_value=_dec(obj, "tickValue"),
        symbol_id=_opt_str(obj, "symbolId") or _symbol_of(contract_id),
        active=_bool(obj, "activeContract", True),
    )


def _symbol_of(contract_id: str) -> str:
    """``CON.F.US.MNQ.Z25`` → ``F.US.MNQ`` (older answers lack ``symbolId``)."""
    parts = contract_id.split(".")
    return ".".join(parts[1:-1]) if len(parts) >= 4 and parts[0] == "CON" else contract_id


def records(body: Mapping[str, Any], *keys: str) -> list[Any]:
    """The list under the first present key; a missing or ``null`` list is empty (spec §2).

    A single object under the key (``contract`` rather than ``contracts``) is a one-item list.
    """
    for key in keys:
        if key in body and body[key] is not None:
            value = body[key]
            if isinstance(value, list):
                return [v for v in value if v is not None]
            if isinstance(value, Mapping):
                return [value]
            raise WireError(f"field {key!r} is neither a list nor an object")
    return []


@dataclass(frozen=True, slots=True)
class QuoteFields:
    """The fields of one ``GatewayQuote`` that we use; None where the payload left them out."""

    last_price: Decimal | None
    best_bid: Decimal | None
    best_ask: Decimal | None
    timestamp: datetime | None


def decode_quote(raw: Any) -> QuoteFields:
    obj = _mapping(raw, "quote")
    stamp = obj.get("timestamp") or obj.get("lastUpdated")
    return QuoteFields(
        last_price=_opt_dec(obj, "lastPrice"),
        best_bid=_opt_dec(obj, "bestBid"),
        best_ask=_opt_dec(obj, "bestAsk"),
        timestamp=None if stamp is None else parse_time(stamp),
    )


def last_bar_close(body: Mapping[str, Any]) -> Decimal | None:
    """The close of the newest bar of a ``History/retrieveBars`` answer (any order)."""
    bars = [_mapping(b, "bar") for b in records(body, "bars")]
    if not bars:
        return None
    newest = max(bars, key=lambda b: _time(b, "t"))
    return _dec(newest, "c")


# ---------------------------------------------------------------------------------------------
# Realtime payload shapes
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Extracted:
    """Entities found in an event's arguments, and how many pieces could not be understood."""

    entities: list[Mapping[str, Any]]
    malformed: int


def _is_wrapper(obj: Mapping[str, Any]) -> bool:
    return "data" in obj and "id" not in obj


def extract_entities(arguments: Any) -> Extracted:
    """Flatten every payload shape of a user-hub event into entity objects (spec §6.3).

    Accepted: a bare object; ``{"action": n, "data": obj-or-list}``; a list of any of these with
    ``null`` padding; a leading account-id argument (an integer, skipped). The ``action`` value
    is not used: each entity carries its own state (status, size 0 for a closed position).
    Anything else (a string, a number that is not an id) is counted as malformed.
    """
    found: list[Mapping[str, Any]] = []
    bad = 0

    def walk(value: Any, depth: int) -> None:
        nonlocal bad
        if depth > 4:
            bad += 1
        elif value is None or _is_int(value):
            return  # null padding, or a leading account id
        elif isinstance(value, Mapping):
            if _is_wrapper(value):
                walk(value.get("data"), depth + 1)
            else:
                found.append(value)
        elif isinstance(value, list):
            for item in value:
                walk(item, depth + 1)
        else:
            bad += 1

    if not isinstance(arguments, list):
        return Extracted([], 1)
    for argument in arguments:
        walk(argument, 0)
    if not found and not bad:
        bad = 1  # an event with nothing in it
    return Extracted(found, bad)


def split_market_arguments(arguments: Any) -> tuple[str, Any]:
    """``(contractId, payload)`` of a market-hub event; the payload may itself be wrapped."""
    if not isinstance(arguments, list) or len(arguments) < 2 or not isinstance(arguments[0], str):
        raise WireError("a market event needs (contractId, payload)")
    payload = arguments[1]
    if isinstance(payload, Mapping) and _is_wrapper(payload):
        payload = payload.get("data")
    return arguments[0], payload


__all__ = [
    "Envelope",
    "Extracted",
    "QuoteFields",
    "WireError",
    "decode_account",
    "decode_contract",
    "decode_order",
    "decode_position",
    "decode_quote",
    "decode_trade",
    "dumps",
    "encode_modify",
    "encode_place",
    "envelope",
    "extract_entities",
    "format_decimal",
    "iso",
    "last_bar_close",
    "parse_time",
    "records",
    "split_market_arguments",
    "to_decimal",
]
