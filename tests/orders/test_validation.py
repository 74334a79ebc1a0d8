"""Bad input to every OrderManager method raises a typed error and sends nothing (F14)."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest

from orderguard.config import OrderManagerConfig
from orderguard.errors import (
    InvalidPriceError,
    InvalidSideError,
    InvalidSizeError,
    OrderNotFoundError,
    OrderRejectedError,
    UnknownAccountError,
    UnknownContractError,
    ValidationError,
)
from orderguard.models import OrderSide
from orderguard.orders import OrderManager

from .conftest import MES, MNQ, Harness

Call = Callable[[OrderManager], Awaitable[Any]]


def bad(value: object) -> Any:
    """Pass a wrongly typed value past the type checker, as an untyped caller would."""
    return value


BAD_PLACEMENTS: list[tuple[str, Call, type[Exception]]] = [
    # side
    ("side 2", lambda m: m.place_market_order(MNQ, 2, 1), InvalidSideError),
    ("side -1", lambda m: m.place_limit_order(MNQ, -1, 1, Decimal("20990")), InvalidSideError),
    ("side str", lambda m: m.place_market_order(MNQ, bad("buy"), 1), InvalidSideError),
    ("side bool", lambda m: m.place_market_order(MNQ, True, 1), InvalidSideError),
    (
        "side None",
        lambda m: m.place_stop_order(MNQ, bad(None), 1, Decimal("21010")),
        InvalidSideError,
    ),
    # size
    ("size 0", lambda m: m.place_market_order(MNQ, 0, 0), InvalidSizeError),
    (
        "size negative",
        lambda m: m.place_limit_order(MNQ, 0, -1, Decimal("20990")),
        InvalidSizeError,
    ),
    ("size float", lambda m: m.place_market_order(MNQ, 0, bad(1.0)), InvalidSizeError),
    ("size str", lambda m: m.place_market_order(MNQ, 0, bad("1")), InvalidSizeError),
    ("size over config max", lambda m: m.place_market_order(MNQ, 0, 101), InvalidSizeError),
    ("size over account max", lambda m: m.place_market_order(MNQ, 0, 51), InvalidSizeError),
    ("join bid size 0", lambda m: m.place_join_bid_order(MNQ, 0), InvalidSizeError),
    ("join ask size -2", lambda m: m.place_join_ask_order(MNQ, -2), InvalidSizeError),
    # prices
    ("limit missing", lambda m: m.place_limit_order(MNQ, 0, 1, bad(None)), InvalidPriceError),
    ("limit zero", lambda m: m.place_limit_order(MNQ, 0, 1, Decimal(0)), InvalidPriceError),
    ("limit negative", lambda m: m.place_limit_order(MNQ, 0, 1, -5), InvalidPriceError),
    ("limit NaN", lambda m: m.place_limit_order(MNQ, 0, 1, float("nan")), InvalidPriceError),
    ("limit text", lambda m: m.place_limit_order(MNQ, 0, 1, "abc"), InvalidPriceError),
    (
        "limit off tick",
        lambda m: m.place_limit_order(MNQ, 0, 1, Decimal("20990.10")),
        InvalidPriceError,
    ),
    ("limit float off tick", lambda m: m.place_limit_order(MNQ, 0, 1, 20990.3), InvalidPriceError),
    ("stop missing", lambda m: m.place_stop_order(MNQ, 1, 1, bad(None)), InvalidPriceError),
    (
        "stop off tick",
        lambda m: m.place_stop_order(MNQ, 1, 1, Decimal("20950.01")),
        InvalidPriceError,
    ),
    (
        "trail missing",
        lambda m: m.place_trailing_stop_order(MNQ, 1, 1, bad(None)),
        InvalidPriceError,
    ),
    (
        "trail off tick",
        lambda m: m.place_trailing_stop_order(MNQ, 1, 1, Decimal("10.1")),
        InvalidPriceError,
    ),
    ("trail zero", lambda m: m.place_trailing_stop_order(MNQ, 1, 1, 0), InvalidPriceError),
    # stop on the wrong side of the market (last 21000.00)
    (
        "buy stop below",
        lambda m: m.place_stop_order(MNQ, 0, 1, Decimal("20990")),
        InvalidPriceError,
    ),
    (
        "buy stop at last",
        lambda m: m.place_stop_order(MNQ, 0, 1, Decimal("21000")),
        InvalidPriceError,
    ),
    (
        "sell stop above",
        lambda m: m.place_stop_order(MNQ, 1, 1, Decimal("21010")),
        InvalidPriceError,
    ),
    (
        "stop, market unknown",
        lambda m: m.place_stop_order(MES, 1, 1, Decimal("5000")),
        InvalidPriceError,
    ),
    # contract and account
    (
        "unknown contract",
        lambda m: m.place_market_order("CON.F.US.XYZ.Z26", 0, 1),
        UnknownContractError,
    ),
    ("empty contract", lambda m: m.place_limit_order("", 0, 1, Decimal("1")), UnknownContractError),
    ("contract not str", lambda m: m.place_market_order(bad(123), 0, 1), UnknownContractError),
    (
        "unknown account",
        lambda m: m.place_market_order(MNQ, 0, 1, account_id=999),
        UnknownAccountError,
    ),
    (
        "account not int",
        lambda m: m.place_market_order(MNQ, 0, 1, account_id=bad("1")),
        UnknownAccountError,
    ),
    ("join on unknown contract", lambda m: m.place_join_bid_order("NOPE", 1), UnknownContractError),
]


@pytest.mark.parametrize(
    ("case", "call", "error"), BAD_PLACEMENTS, ids=[c[0] for c in BAD_PLACEMENTS]
)
async def test_bad_placement_raises_and_sends_nothing(
    h: Harness, case: str, call: Call, error: type[Exception]
) -> None:
    """Each bad placement raises its typed error and leaves the exchange untouched."""
    before = h.snapshot()
    with pytest.raises(error):
        await call(h.manager)
    assert h.snapshot() == before


async def _resting(h: Harness, side: int = 0, price: str = "20990.00") -> int:
    return (await h.manager.place_limit_order(MNQ, side, 1, Decimal(price))).order_id


async def _stop(h: Harness) -> int:
    return (await h.manager.place_stop_order(MNQ, OrderSide.SELL, 1, Decimal("20950"))).order_id


BAD_MODIFIES: list[tuple[str, Callable[[int], dict[str, Any]], type[Exception]]] = [
    ("nothing to change", lambda oid: {}, ValidationError),
    ("limit off tick", lambda oid: {"limit_price": Decimal("20990.13")}, InvalidPriceError),
    ("limit negative", lambda oid: {"limit_price": -1}, InvalidPriceError),
    ("size 0", lambda oid: {"size": 0}, InvalidSizeError),
    ("size float", lambda oid: {"size": 2.0}, InvalidSizeError),
    ("size over max", lambda oid: {"size": 500}, InvalidSizeError),
    (
        "stop price on a limit order",
        lambda oid: {"stop_price": Decimal("20950")},
        InvalidPriceError,
    ),
    ("trail on a limit order", lambda oid: {"trail_price": Decimal("5")}, InvalidPriceError),
]


@pytest.mark.parametrize(
    ("case", "changes", "error"), BAD_MODIFIES, ids=[c[0] for c in BAD_MODIFIES]
)
async def test_bad_modify_raises_and_sends_nothing(
    h: Harness, case: str, changes: Callable[[int], dict[str, Any]], error: type[Exception]
) -> None:
    """Each bad modify raises its typed error and leaves the order untouched."""
    order_id = await _resting(h)
    before = h.snapshot()
    with pytest.raises(error):
        await h.manager.modify_order(order_id, **changes(order_id))
    assert h.snapshot() == before


async def test_modify_stop_to_wrong_side_sends_nothing(h: Harness) -> None:
    """Moving a sell stop above the market is refused before sending."""
    order_id = await _stop(h)
    before = h.snapshot()
    with pytest.raises(InvalidPriceError):
        await h.manager.modify_order(order_id, stop_price=Decimal("21010"))
    assert h.snapshot() == before


async def test_modify_size_below_filled_sends_nothing(make_harness: Any) -> None:
    """A size at or below the filled volume is refused before sending."""
    harness: Harness = await make_harness()
    harness.exchange.liquidity = 1
    result = await harness.manager.place_limit_order(MNQ, 0, 3, Decimal("21000.25"))
    await harness.settle()
    before = harness.snapshot()
    with pytest.raises(ValidationError):
        await harness.manager.modify_order(result.order_id, size=1)
    assert harness.snapshot() == before


async def test_modify_unknown_order_raises_not_found(h: Harness) -> None:
    """Modifying an order that exists in no status raises OrderNotFoundError."""
    before = h.snapshot()
    with pytest.raises(OrderNotFoundError):
        await h.manager.modify_order(4242, limit_price=Decimal("20990"))
    assert h.snapshot() == before


async def _add_bad_callback(manager: OrderManager) -> None:
    manager.add_callback("order_explodes", print)


OTHER_BAD_CALLS: list[tuple[str, Call, type[Exception]]] = [
    ("cancel id str", lambda m: m.cancel_order(bad("7")), ValidationError),
    ("cancel id 0", lambda m: m.cancel_order(0), ValidationError),
    ("cancel unknown account", lambda m: m.cancel_order(1, account_id=999), UnknownAccountError),
    ("cancel_all unknown contract", lambda m: m.cancel_all_orders("NOPE"), UnknownContractError),
    (
        "cancel_all unknown account",
        lambda m: m.cancel_all_orders(account_id=999),
        UnknownAccountError,
    ),
    ("search bad side", lambda m: m.search_open_orders(side=3), InvalidSideError),
    ("search unknown contract", lambda m: m.search_open_orders("NOPE"), UnknownContractError),
    ("get bad id", lambda m: m.get_order_by_id(-4), ValidationError),
    ("is_filled bad id", lambda m: m.is_order_filled(bad(None)), ValidationError),
    ("modify bad id", lambda m: m.modify_order(0, limit_price=1), ValidationError),
    ("unknown callback event", _add_bad_callback, ValidationError),
]


@pytest.mark.parametrize(
    ("case", "call", "error"), OTHER_BAD_CALLS, ids=[c[0] for c in OTHER_BAD_CALLS]
)
async def test_bad_input_to_other_methods_sends_nothing(
    h: Harness, case: str, call: Call, error: type[Exception]
) -> None:
    """Cancel, search, lookup and callback methods refuse bad input and change nothing."""
    await _resting(h)
    before = h.snapshot()
    with pytest.raises(error):
        await call(h.manager)
    assert h.snapshot() == before


async def test_validation_errors_are_value_errors(h: Harness) -> None:
    """Typed validation errors are also ValueErrors, for callers that catch those."""
    with pytest.raises(ValueError):
        await h.manager.place_market_order(MNQ, 0, 0)


async def test_stop_side_check_can_be_disabled(make_harness: Any) -> None:
    """With validate_stop_against_market off, the stop check is left to the broker."""
    harness: Harness = await make_harness(
        config=OrderManagerConfig(validate_stop_against_market=False)
    )
    with contextlib.suppress(OrderRejectedError):  # the exchange may take it or refuse it
        await harness.manager.place_stop_order(MNQ, OrderSide.BUY, 1, Decimal("20990"))
    assert [kind for kind, _ in harness.broker.calls] == ["place"]
