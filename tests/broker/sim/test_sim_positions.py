"""Net positions, trades, realised P&L, fees and balance; closing and partial closing."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from orderguard.broker.base import BrokerEvent, PositionEvent
from orderguard.broker.sim import SimExchange
from orderguard.models import OrderRequest, OrderType, PositionType

D = Decimal
MNQ = "CON.F.US.MNQ.Z26"
ES = "CON.F.US.EP.Z26"
RequestFactory = Callable[..., OrderRequest]
FEE = D("0.37")


def test_round_trip_pnl_and_fees_move_the_balance(market: SimExchange, req: RequestFactory) -> None:
    """Buy 2 at 21000.25, sell 2 at 21010: +9.75 points x $2 x 2 = $39 minus 4 x $0.37 fees."""
    market.place(req(OrderType.MARKET, "buy", 2))
    market.set_price(MNQ, D("21010"))
    market.place(req(OrderType.MARKET, "sell", 2))
    opening, closing = market.trades(1)
    assert (opening.profit_and_loss, opening.fees) == (None, FEE * 2)
    assert closing.profit_and_loss == D("39")
    assert market.account(1).balance == D("50000") + D("39") - FEE * 4


def test_short_profits_when_the_price_falls(market: SimExchange, req: RequestFactory) -> None:
    """Sell at 21000, buy back at 20990.25 (ask): +9.75 points x $2 = $19.50."""
    market.place(req(OrderType.MARKET, "sell"))
    market.set_price(MNQ, D("20990"))
    market.place(req(OrderType.MARKET, "buy"))
    assert market.trades(1)[-1].profit_and_loss == D("19.5")


def test_es_uses_its_own_tick_value(market: SimExchange, req: RequestFactory) -> None:
    """One ES point is $50: a 2-point gain on one contract realises $100 (minus the spread)."""
    market.set_price(ES, D("6000"))
    market.place(req(OrderType.MARKET, "buy", contract_id=ES))
    market.set_price(ES, D("6002.25"))
    market.place(req(OrderType.MARKET, "sell", contract_id=ES))
    assert market.trades(1)[-1].profit_and_loss == D("100")


def test_adding_re_averages_the_position(market: SimExchange, req: RequestFactory) -> None:
    """Buying at 21000.25 and 21002.25 gives a long of 2 averaging 21001.25."""
    market.place(req(OrderType.MARKET, "buy"))
    market.set_price(MNQ, D("21002"))
    market.place(req(OrderType.MARKET, "buy"))
    [position] = market.positions(1)
    assert (position.type, position.size, position.average_price) == (
        PositionType.LONG, 2, D("21001.25"),
    )  # fmt: skip


def test_reducing_keeps_the_average(market: SimExchange, req: RequestFactory) -> None:
    """Selling part of a long keeps its average price."""
    market.place(req(OrderType.MARKET, "buy", 3))
    market.set_price(MNQ, D("21005"))
    market.place(req(OrderType.MARKET, "sell", 1))
    [position] = market.positions(1)
    assert (position.size, position.average_price) == (2, D("21000.25"))


def test_flip_through_zero_realises_only_the_closed_part(
    market: SimExchange, req: RequestFactory
) -> None:
    """Selling 3 against a long 1 closes 1 (P&L) and opens a short 2 at the fill price."""
    market.place(req(OrderType.MARKET, "buy", 1))
    market.set_price(MNQ, D("21010"))
    market.place(req(OrderType.MARKET, "sell", 3))
    assert market.trades(1)[-1].profit_and_loss == D("19.5")
    [position] = market.positions(1)
    assert (position.type, position.size, position.average_price) == (
        PositionType.SHORT, 2, D("21010"),
    )  # fmt: skip
    assert market.position_size(1, MNQ) == -2


def test_flip_reports_the_old_position_flat_then_a_new_one(
    market: SimExchange, events: list[BrokerEvent], req: RequestFactory
) -> None:
    """A flip publishes the old position at size 0, then the new position with a new id."""
    market.place(req(OrderType.MARKET, "buy", 1))
    market.place(req(OrderType.MARKET, "sell", 2))
    positions = [e.position for e in events if isinstance(e, PositionEvent)]
    opened, flat, flipped = positions
    assert (flat.id, flat.size, flat.type) == (opened.id, 0, PositionType.LONG)
    assert flipped.id > opened.id
    assert (flipped.size, flipped.type) == (1, PositionType.SHORT)


def test_flat_positions_are_not_listed(market: SimExchange, req: RequestFactory) -> None:
    """positions() lists only non-flat positions."""
    market.place(req(OrderType.MARKET, "buy"))
    market.place(req(OrderType.MARKET, "sell"))
    assert market.positions(1) == []


def test_close_position_flattens_at_the_touch(market: SimExchange, req: RequestFactory) -> None:
    """closeContract sells a long of 2 at the bid with one market order."""
    market.place(req(OrderType.MARKET, "buy", 2))
    result = market.close_position(1, MNQ)
    assert result.success
    assert market.position_size(1, MNQ) == 0
    close = market.order(1, result.order_id or 0)
    assert close is not None
    assert (close.type, close.size, close.filled_price) == (OrderType.MARKET, 2, D("21000"))


def test_close_position_when_flat_is_position_not_found(market: SimExchange) -> None:
    """closeContract on a flat contract answers PositionNotFound (2)."""
    assert market.close_position(1, MNQ).error_code == 2


def test_partial_close_reduces_the_position(market: SimExchange, req: RequestFactory) -> None:
    """partialCloseContract of 1 from a short 3 leaves a short 2."""
    market.place(req(OrderType.MARKET, "sell", 3))
    assert market.partial_close(1, MNQ, 1).success
    assert market.position_size(1, MNQ) == -2


def test_partial_close_larger_than_the_position_is_code_5(
    market: SimExchange, req: RequestFactory
) -> None:
    """A close size above the position answers InvalidCloseSize (5) and changes nothing."""
    market.place(req(OrderType.MARKET, "buy", 2))
    assert market.partial_close(1, MNQ, 3).error_code == 5
    assert market.position_size(1, MNQ) == 2


def test_partial_close_when_flat_is_position_not_found(market: SimExchange) -> None:
    """partialCloseContract on a flat contract answers PositionNotFound (2)."""
    assert market.partial_close(1, MNQ, 1).error_code == 2


def test_close_codes_for_unknown_account_and_contract(market: SimExchange) -> None:
    """Close answers AccountNotFound (1) and ContractNotFound (3)."""
    assert market.close_position(9, MNQ).error_code == 1
    assert market.close_position(1, "CON.F.US.ZZZ.Z26").error_code == 3


def test_ids_increase(market: SimExchange, req: RequestFactory) -> None:
    """Order and trade ids are increasing integers."""
    for _ in range(3):
        market.place(req(OrderType.MARKET, "buy"))
    order_ids = [o.id for o in market.orders(1)]
    trade_ids = [t.id for t in market.trades(1)]
    assert order_ids == sorted(order_ids) and len(set(order_ids)) == 3
    assert trade_ids == sorted(trade_ids) and len(set(trade_ids)) == 3


def test_every_fill_has_a_trade_linked_to_its_order(
    market: SimExchange, req: RequestFactory
) -> None:
    """A trade names the order it filled and carries the fill's side, size and price."""
    order_id = market.place(req(OrderType.MARKET, "sell", 2)).order_id
    [trade] = market.trades(1)
    assert (trade.order_id, trade.size, trade.price, trade.voided) == (
        order_id,
        2,
        D("21000"),
        False,
    )


def test_pnl_from_a_repeating_average_is_rounded_to_cents(
    market: SimExchange, req: RequestFactory
) -> None:
    """Long 3 averaging 21000.41666… closed at 21001: 1.75 points x $2 = $3.50, not $3.499999998."""
    market.place(req(OrderType.MARKET, "buy", 1))  # 21000.25
    market.set_price(MNQ, D("21000.25"))
    market.place(req(OrderType.MARKET, "buy", 2))  # 21000.50
    [position] = market.positions(1)
    assert position.average_price == D("21000.416666667")  # the wire's 9 places
    market.set_price(MNQ, D("21001"))
    market.place(req(OrderType.MARKET, "sell", 3))
    pnl = market.trades(1)[-1].profit_and_loss
    assert pnl is not None and pnl.as_tuple().exponent == -2
    assert pnl == D("3.50")
    assert market.account(1).balance == D("50000") + D("3.50") - FEE * 6


def test_position_average_is_re_averaged_from_the_exact_cost(
    market: SimExchange, req: RequestFactory
) -> None:
    """2 @ 21000, +1 @ 21000.25, +3 @ 21000.75 averages 21000.416666667, not 21000.4166666665."""
    for last, size in ((D("20999.75"), 2), (D("21000"), 1), (D("21000.50"), 3)):
        market.set_price(MNQ, last)  # a market buy fills at last + one tick
        market.place(req(OrderType.MARKET, "buy", size))
    [position] = market.positions(1)
    assert str(position.average_price) == "21000.416666667"
    market.set_price(MNQ, D("21001"))
    market.place(req(OrderType.MARKET, "sell", 6))
    assert market.trades(1)[-1].profit_and_loss == D("7.00")  # 0.58333… points x 6 x $2
