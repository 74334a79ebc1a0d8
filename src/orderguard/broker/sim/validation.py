"""Request validation of the simulated gateway: pure functions returning a rejection message.

The gateway answers bad input with HTTP 200, ``success: false`` and an endpoint error code; for
``Order/place`` that is 2 (OrderRejected) with a free-text message, for ``Order/modify`` 3
(Rejected). These functions only produce the message; the exchange attaches the code. A ``None``
result means the request is acceptable. The exact texts of the real gateway are mostly unknown
(projectx-api.md §8.7, §8.8); the native-bracket texts are the field-reported ones (§9.1).
"""

from __future__ import annotations

from decimal import Decimal

from orderguard.models import (
    PLACEABLE_ORDER_TYPES,
    BracketSpec,
    Contract,
    OrderRequest,
    OrderSide,
    OrderType,
)

POSITION_BRACKETS_MESSAGE = (
    "Brackets cannot be used with Position Brackets. You must enable Auto OCO Brackets."
)
DUPLICATE_TAG_MESSAGE = "customTag must be unique"
# The field-reported text for a stop at or through the market (projectx-api.md, issue 15).
INVALID_STOP_PRICE_MESSAGE = "Invalid stop price"

# Wire names of the order types, as the gateway spells them in messages.
TYPE_NAMES: dict[OrderType, str] = {
    OrderType.LIMIT: "Limit",
    OrderType.MARKET: "Market",
    OrderType.STOP_LIMIT: "StopLimit",
    OrderType.STOP: "Stop",
    OrderType.TRAILING_STOP: "TrailingStop",
    OrderType.JOIN_BID: "JoinBid",
    OrderType.JOIN_ASK: "JoinAsk",
}

# Order types that need a market price to be placed (they price off the quote).
NEEDS_MARKET = frozenset(
    {
        OrderType.MARKET,
        OrderType.STOP,
        OrderType.TRAILING_STOP,
        OrderType.JOIN_BID,
        OrderType.JOIN_ASK,
    }
)
STOP_LOSS_TYPES = frozenset({OrderType.STOP, OrderType.TRAILING_STOP})
TAKE_PROFIT_TYPES = frozenset({OrderType.LIMIT})


def type_name(order_type: int) -> str:
    try:
        return TYPE_NAMES[OrderType(order_type)]
    except ValueError:
        return str(order_type)


def check_price(label: str, price: Decimal | None, contract: Contract) -> str | None:
    """A price, when given, must be positive and on the contract's tick grid."""
    if price is None:
        return None
    if not price.is_finite() or price <= 0:
        return f"Invalid {label} ({price}). Price must be greater than zero."
    if not contract.is_aligned(price):
        return (
            f"Invalid {label} ({price}). Price must be a multiple of the tick size "
            f"{contract.tick_size}."
        )
    return None


def check_size(size: int, max_order_size: int | None) -> str | None:
    if size <= 0:
        return f"Invalid order size ({size}). Size must be greater than zero."
    if max_order_size is not None and size > max_order_size:
        return f"Invalid order size ({size}). Maximum order size is {max_order_size}."
    return None


def check_position_limit(held: int, signed_qty: int, max_position: int | None) -> str | None:
    """The position an order would leave, ``held + signed_qty``, must stay within the limit.

    An order that only reduces the position passes even from beyond the limit.
    """
    if max_position is None:
        return None
    after = held + signed_qty
    if abs(after) <= max_position:
        return None
    if (held > 0 and 0 < after < held) or (held < 0 and held < after < 0):
        return None
    return f"Invalid order size ({abs(signed_qty)}). Maximum position size is {max_position}."


def check_brackets(
    side: OrderSide,
    stop_loss: BracketSpec | None,
    take_profit: BracketSpec | None,
    *,
    native_brackets: bool,
    min_stop_loss_ticks: int = 0,
) -> str | None:
    """Native bracket rules (§9.1): account mode, leg types, and signed ticks relative to the entry.

    A long's stop loss must have negative ticks and its take profit positive ticks; a short the
    mirror. Zero ticks are refused either way. A stop loss must also be at least
    ``min_stop_loss_ticks`` ticks away (the gateway's minimum is 4).
    """
    if stop_loss is None and take_profit is None:
        return None
    if not native_brackets:
        return POSITION_BRACKETS_MESSAGE
    long = side is OrderSide.BUY
    if stop_loss is not None:
        if stop_loss.type not in STOP_LOSS_TYPES:
            return f"Invalid stop loss type ({type_name(stop_loss.type)})."
        if long and stop_loss.ticks >= 0:
            return (
                f"Invalid stop loss ticks ({stop_loss.ticks}). "
                "Ticks should be less than zero when longing."
            )
        if not long and stop_loss.ticks <= 0:
            return (
                f"Invalid stop loss ticks ({stop_loss.ticks}). "
                "Ticks should be greater than zero when going short."
            )
        if abs(stop_loss.ticks) < min_stop_loss_ticks:
            return (
                f"Invalid stop loss ticks ({stop_loss.ticks}). "
                f"Stop loss tick value should be at least {min_stop_loss_ticks} ticks."
            )
    if take_profit is not None:
        if take_profit.type not in TAKE_PROFIT_TYPES:
            return f"Invalid take profit type ({type_name(take_profit.type)})."
        if long and take_profit.ticks <= 0:
            return (
                f"Invalid take profit ticks ({take_profit.ticks}). "
                "Ticks should be greater than zero when longing."
            )
        if not long and take_profit.ticks >= 0:
            return (
                f"Invalid take profit ticks ({take_profit.ticks}). "
                "Ticks should be less than zero when going short."
            )
    return None


def check_place(
    request: OrderRequest,
    contract: Contract,
    *,
    max_order_size: int | None,
    has_market: bool,
    tag_taken: bool,
    native_brackets: bool,
    duplicate_tag_message: str = DUPLICATE_TAG_MESSAGE,
    min_stop_loss_ticks: int = 0,
) -> str | None:
    """Why ``Order/place`` refuses ``request`` (errorCode 2), or None if it is acceptable.

    Prices a type does not use are ignored, not refused (the gateway's fields are all optional).
    """
    kind = request.type
    if kind not in PLACEABLE_ORDER_TYPES:
        return f"Invalid order type ({type_name(kind)}). This order type is not supported."
    problem = check_size(request.size, max_order_size)
    if problem:
        return problem
    if kind is OrderType.LIMIT:
        if request.limit_price is None:
            return "Limit price is required for a Limit order."
        problem = check_price("limit price", request.limit_price, contract)
    elif kind is OrderType.STOP:
        if request.stop_price is None:
            return "Stop price is required for a Stop order."
        problem = check_price("stop price", request.stop_price, contract)
    elif kind is OrderType.TRAILING_STOP:
        if request.trail_price is None:
            return "Trail price is required for a TrailingStop order."
        problem = check_price("trail price", request.trail_price, contract)
    if problem:
        return problem
    if kind in NEEDS_MARKET and not has_market:
        return f"No market price is available for {contract.name}."
    if tag_taken:
        return duplicate_tag_message
    return check_brackets(
        request.side,
        request.stop_loss_bracket,
        request.take_profit_bracket,
        native_brackets=native_brackets,
        min_stop_loss_ticks=min_stop_loss_ticks,
    )


def check_modify(
    kind: OrderType,
    contract: Contract,
    *,
    fill_volume: int,
    max_order_size: int | None,
    size: int | None,
    limit_price: Decimal | None,
    stop_price: Decimal | None,
    trail_price: Decimal | None,
) -> str | None:
    """Why ``Order/modify`` refuses the change (errorCode 3), or None if it is acceptable."""
    if size is not None:
        problem = check_size(size, max_order_size)
        if problem:
            return problem
        if size <= fill_volume:
            return f"Invalid order size ({size}). {fill_volume} contracts are already filled."
    limit_like = kind in (OrderType.LIMIT, OrderType.JOIN_BID, OrderType.JOIN_ASK)
    stop_like = kind in STOP_LOSS_TYPES
    if limit_price is not None and not limit_like:
        return f"A limit price cannot be set on a {type_name(kind)} order."
    if stop_price is not None and not stop_like:
        return f"A stop price cannot be set on a {type_name(kind)} order."
    if trail_price is not None and kind is not OrderType.TRAILING_STOP:
        return f"A trail price cannot be set on a {type_name(kind)} order."
    for label, price in (
        ("limit price", limit_price),
        ("stop price", stop_price),
        ("trail price", trail_price),
    ):
        problem = check_price(label, price, contract)
        if problem:
            return problem
    return None


__all__ = [
    "DUPLICATE_TAG_MESSAGE",
    "INVALID_STOP_PRICE_MESSAGE",
    "NEEDS_MARKET",
    "POSITION_BRACKETS_MESSAGE",
    "STOP_LOSS_TYPES",
    "TAKE_PROFIT_TYPES",
    "check_brackets",
    "check_modify",
    "check_place",
    "check_position_limit",
    "check_price",
    "check_size",
    "type_name",
]
