"""Gateway-style validation: error codes, tick alignment, sizes, customTag uniqueness."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from orderguard.broker.sim import SimExchange
from orderguard.clock import VirtualClock
from orderguard.models import OrderRequest, OrderSide, OrderStatus, OrderType

D = Decimal
MNQ = "CON.F.US.MNQ.Z26"
RequestFactory = Callable[..., OrderRequest]


def test_duplicate_custom_tag_is_rejected(market: SimExchange, req: RequestFactory) -> None:
    """A second order with the same customTag in the account is OrderRejected (2)."""
    assert market.place(
        req(OrderType.LIMIT, "buy", limit_price=D("20990"), custom_tag="op1")
    ).success
    again = market.place(req(OrderType.LIMIT, "buy", limit_price=D("20990"), custom_tag="op1"))
    assert (again.error_code, again.error_message) == (2, "customTag must be unique")


def test_custom_tag_stays_taken_after_the_order_is_done(
    market: SimExchange, req: RequestFactory
) -> None:
    """A filled order's tag cannot be reused: uniqueness spans every status."""
    market.place(req(OrderType.MARKET, "buy", custom_tag="entry-1"))
    assert market.place(req(OrderType.MARKET, "buy", custom_tag="entry-1")).error_code == 2


def test_custom_tag_is_unique_per_account_only(market: SimExchange, req: RequestFactory) -> None:
    """Another account may use the same tag."""
    market.open_account(account_id=2, name="SIM-2")
    market.place(req(OrderType.MARKET, "buy", custom_tag="t"))
    assert market.place(req(OrderType.MARKET, "buy", custom_tag="t", account_id=2)).success


def test_custom_tag_is_echoed_on_the_order(market: SimExchange, req: RequestFactory) -> None:
    """The order carries the tag it was placed with."""
    result = market.place(req(OrderType.MARKET, "buy", custom_tag="abc"))
    order = market.order(1, result.order_id or 0)
    assert order is not None
    assert order.custom_tag == "abc"


def test_duplicate_tags_can_be_allowed(clock: VirtualClock, req: RequestFactory) -> None:
    """reject_duplicate_tags=False models a gateway that does not enforce uniqueness."""
    ex = SimExchange(clock, reject_duplicate_tags=False)
    ex.open_account()
    ex.set_price(MNQ, D("21000"))
    ex.place(req(OrderType.MARKET, "buy", custom_tag="t"))
    assert ex.place(req(OrderType.MARKET, "buy", custom_tag="t")).success


@pytest.mark.parametrize(
    "fields",
    [
        {"type": OrderType.LIMIT, "limit_price": D("21000.10")},
        {"type": OrderType.STOP, "stop_price": D("21010.30")},
        {"type": OrderType.TRAILING_STOP, "trail_price": D("1.1")},
    ],
)
def test_off_tick_prices_are_rejected(market: SimExchange, fields: dict[str, object]) -> None:
    """A price off the 0.25 grid is OrderRejected (2) and creates no order."""
    request = OrderRequest(1, MNQ, side=OrderSide.SELL, size=1, **fields)  # type: ignore[arg-type]
    result = market.place(request)
    assert result.error_code == 2
    assert "tick size" in (result.error_message or "")
    assert market.orders(1) == []


@pytest.mark.parametrize("size", [0, -1, 51])
def test_bad_sizes_are_rejected(market: SimExchange, req: RequestFactory, size: int) -> None:
    """Sizes must be positive and within the account's max_order_size (50)."""
    assert market.place(req(OrderType.MARKET, "buy", size)).error_code == 2


@pytest.mark.parametrize("kind", [OrderType.LIMIT, OrderType.STOP, OrderType.TRAILING_STOP])
def test_missing_required_price_is_rejected(
    market: SimExchange, req: RequestFactory, kind: OrderType
) -> None:
    """Limit needs limitPrice, Stop stopPrice, TrailingStop trailPrice."""
    assert market.place(req(kind, "buy")).error_code == 2


def test_non_positive_price_is_rejected(market: SimExchange, req: RequestFactory) -> None:
    """A zero limit price is refused even though it is on the grid."""
    assert market.place(req(OrderType.LIMIT, "buy", limit_price=D("0"))).error_code == 2


def test_unknown_account_is_code_1(market: SimExchange, req: RequestFactory) -> None:
    """Order/place for an account that does not exist answers AccountNotFound (1)."""
    assert market.place(req(OrderType.MARKET, "buy", account_id=99)).error_code == 1


def test_unknown_contract_is_code_8(market: SimExchange, req: RequestFactory) -> None:
    """Order/place on an unlisted contract answers ContractNotFound (8)."""
    result = market.place(req(OrderType.MARKET, "buy", contract_id="CON.F.US.ZZZ.Z26"))
    assert result.error_code == 8


def test_cancel_codes(market: SimExchange, req: RequestFactory) -> None:
    """Cancel answers 1 for an unknown account, 2 for an unknown order, 3 for a filled one."""
    filled = market.place(req(OrderType.MARKET, "buy")).order_id or 0
    assert market.cancel(99, filled).error_code == 1
    assert market.cancel(1, 12345).error_code == 2
    assert market.cancel(1, filled).error_code == 3


def test_cancel_of_a_cancelled_order_is_rejected(market: SimExchange, req: RequestFactory) -> None:
    """A second cancel answers 3 and changes nothing."""
    order_id = market.place(req(OrderType.LIMIT, "buy", limit_price=D("20990"))).order_id or 0
    assert market.cancel(1, order_id).success
    assert market.cancel(1, order_id).error_code == 3


def test_modify_rejects_off_tick_prices(market: SimExchange, req: RequestFactory) -> None:
    """Order/modify with an off-tick price answers Rejected (3) and keeps the old price."""
    order_id = market.place(req(OrderType.LIMIT, "buy", limit_price=D("20990"))).order_id or 0
    assert market.modify(1, order_id, limit_price=D("20990.1")).error_code == 3
    order = market.order(1, order_id)
    assert order is not None
    assert order.limit_price == D("20990")


def test_modify_rejects_a_price_the_type_does_not_use(
    market: SimExchange, req: RequestFactory
) -> None:
    """A stop price on a limit order is refused."""
    order_id = market.place(req(OrderType.LIMIT, "buy", limit_price=D("20990"))).order_id or 0
    assert market.modify(1, order_id, stop_price=D("20990")).error_code == 3


def test_modify_rejects_a_size_at_or_below_the_filled_volume(
    clock: VirtualClock, req: RequestFactory
) -> None:
    """A partly filled order cannot shrink to what it already filled."""
    ex = SimExchange(clock, liquidity=2)
    ex.open_account()
    ex.set_price(MNQ, D("21000"))
    order_id = ex.place(req(OrderType.MARKET, "buy", 4)).order_id or 0
    assert ex.modify(1, order_id, size=2).error_code == 3
    assert ex.modify(1, order_id, size=3).success


def test_modify_of_a_filled_order_is_rejected(market: SimExchange, req: RequestFactory) -> None:
    """A terminal order cannot be modified (3)."""
    order_id = market.place(req(OrderType.MARKET, "buy")).order_id or 0
    assert market.modify(1, order_id, size=2).error_code == 3


def test_modify_to_a_marketable_limit_fills_at_the_touch(
    market: SimExchange, req: RequestFactory
) -> None:
    """Raising a resting buy limit through the ask fills it at once at the ask."""
    order_id = market.place(req(OrderType.LIMIT, "buy", limit_price=D("20990"))).order_id or 0
    assert market.modify(1, order_id, limit_price=D("21005")).success
    order = market.order(1, order_id)
    assert order is not None
    assert (order.status, order.filled_price) == (OrderStatus.FILLED, D("21000.25"))


def test_modify_of_an_unknown_order_is_code_2(market: SimExchange) -> None:
    """Modify of an order id that never existed answers OrderNotFound (2)."""
    assert market.modify(1, 777, size=1).error_code == 2
