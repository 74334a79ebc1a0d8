"""Wire codec: Decimal prices both ways, every record, the envelope, every realtime shape."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from px_fakes import ACCOUNT_ID, MNQ, order_json

from orderguard.broker.base import AccountEvent, OrderEvent, PositionEvent, QuoteEvent, TradeEvent
from orderguard.broker.projectx import wire
from orderguard.broker.projectx.hubs import QuoteBook, decode_user_event
from orderguard.models import (
    BracketSpec,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionType,
)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("21000.25"), "21000.25"),
        (Decimal("21000.250000000"), "21000.25"),
        (Decimal("21000"), "21000"),
        (Decimal("1E+3"), "1000"),
        (Decimal("0.0001"), "0.0001"),
        (Decimal("1.1234567891"), "1.123456789"),
        (Decimal("-0.5"), "-0.5"),
        (Decimal("0E-9"), "0"),
    ],
)
def test_decimal_formatting(value: Decimal, text: str) -> None:
    """Decimals print as plain JSON numbers with at most 9 fractional digits."""
    assert wire.format_decimal(value) == text


def test_floats_are_never_sent() -> None:
    """A float in a request body is a bug: refused."""
    with pytest.raises(wire.WireError):
        wire.dumps({"limitPrice": 1.25})


def test_place_body_with_signed_brackets() -> None:
    """Order/place carries prices as numbers, the tag, and signed native bracket ticks."""
    request = OrderRequest(
        ACCOUNT_ID,
        MNQ,
        OrderType.LIMIT,
        OrderSide.BUY,
        2,
        limit_price=Decimal("21000.25"),
        custom_tag="og-1",
        stop_loss_bracket=BracketSpec(-40, OrderType.STOP),
        take_profit_bracket=BracketSpec(80, OrderType.LIMIT),
    )
    raw = wire.dumps(wire.encode_place(request))
    assert json.loads(raw) == {
        "accountId": ACCOUNT_ID,
        "contractId": MNQ,
        "type": 1,
        "side": 0,
        "size": 2,
        "limitPrice": 21000.25,
        "customTag": "og-1",
        "stopLossBracket": {"ticks": -40, "type": 4},
        "takeProfitBracket": {"ticks": 80, "type": 1},
    }
    assert b'"limitPrice":21000.25' in raw
    unsigned = wire.encode_place(request, signed_ticks=False)
    assert unsigned["stopLossBracket"]["ticks"] == 40


def test_modify_body_omits_unset_fields() -> None:
    body = wire.encode_modify(
        1, 2, size=None, limit_price=None, stop_price=Decimal("5"), trail_price=None
    )
    assert body == {"accountId": 1, "orderId": 2, "stopPrice": Decimal("5")}


def test_decode_order_with_nine_place_decimals() -> None:
    """Order fields decode to our model; 9-place decimals come back tidy."""
    order = wire.decode_order(
        order_json(5, filledPrice=Decimal("21000.500000000"), status=2, fillVolume=2)
    )
    assert order.id == 5 and order.status is OrderStatus.FILLED and order.fill_volume == 2
    assert str(order.limit_price) == "21000.25" and str(order.filled_price) == "21000.5"
    assert order.creation_timestamp == datetime(2026, 1, 5, 14, 30, 0, 123456, tzinfo=UTC)


def test_decode_order_tolerates_missing_optionals_and_extra_fields() -> None:
    raw = order_json(5)
    for key in (
        "updateTimestamp",
        "limitPrice",
        "stopPrice",
        "fillVolume",
        "filledPrice",
        "customTag",
        "symbolId",
    ):
        raw.pop(key)
    raw["somethingNew"] = {"x": 1}
    raw["parentOrderId"] = 4
    order = wire.decode_order(raw)
    assert order.fill_volume == 0 and order.custom_tag is None and order.parent_order_id == 4


@pytest.mark.parametrize("key", ["id", "accountId", "contractId", "status", "side", "size"])
def test_decode_order_requires_identity(key: str) -> None:
    raw = order_json(5)
    raw.pop(key)
    with pytest.raises(wire.WireError):
        wire.decode_order(raw)


def test_decode_order_rejects_unknown_enum() -> None:
    with pytest.raises(wire.WireError):
        wire.decode_order(order_json(5, status=42))


def test_decode_position_trade_account_contract() -> None:
    pos = wire.decode_position(
        {
            "id": 3,
            "accountId": 1,
            "contractId": MNQ,
            "creationTimestamp": "2026-01-05T14:30:00Z",
            "type": 2,
            "size": 3,
            "averagePrice": Decimal("21001.750000000"),
        }
    )
    assert (
        pos.type is PositionType.SHORT
        and pos.signed_size == -3
        and pos.average_price == Decimal("21001.75")
    )
    flat = wire.decode_position(
        {
            "id": 3,
            "accountId": 1,
            "contractId": MNQ,
            "creationTimestamp": "2026-01-05T14:30:00Z",
            "type": 1,
            "size": 0,
            "averagePrice": None,
        }
    )
    assert flat.size == 0
    trade = wire.decode_trade(
        {
            "id": 9,
            "accountId": 1,
            "contractId": MNQ,
            "creationTimestamp": "2026-01-05T14:30:00+00:00",
            "price": Decimal("21000.25"),
            "profitAndLoss": None,
            "fees": Decimal("1.4000"),
            "side": 1,
            "size": 1,
            "voided": False,
            "orderId": 5,
        }
    )
    assert (
        trade.profit_and_loss is None
        and trade.fees == Decimal("1.4")
        and trade.side is OrderSide.SELL
    )
    account = wire.decode_account(
        {"id": 1, "name": "A", "balance": Decimal("50000.5"), "canTrade": True, "isVisible": True}
    )
    assert account.simulated is True and account.balance == Decimal("50000.5")
    contract = wire.decode_contract(
        {
            "id": MNQ,
            "name": "MNQZ6",
            "description": "Micro",
            "tickSize": Decimal("0.250000000"),
            "tickValue": Decimal("0.5"),
            "activeContract": True,
        }
    )
    assert contract.symbol_id == "F.US.MNQ" and contract.tick_size == Decimal("0.25")


def test_timestamps_naive_and_seven_digits() -> None:
    """Naive timestamps are UTC; .NET's 7 fractional digits parse."""
    assert wire.parse_time("2026-01-05T14:30:00").tzinfo is not None
    assert wire.parse_time("2026-01-05T14:30:00.1234567+00:00").microsecond == 123456
    with pytest.raises(wire.WireError):
        wire.parse_time("yesterday")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"success": True, "errorCode": 0}, (True, 0)),
        ({"success": False, "errorCode": 2, "errorMessage": "no"}, (False, 2)),
        ({"success": True}, (True, 0)),
    ],
)
def test_envelope_ok(body: dict[str, Any], expected: tuple[bool, int]) -> None:
    env = wire.envelope(body)
    assert (env.success, env.code) == expected


@pytest.mark.parametrize(
    "body",
    [
        {"success": True, "errorCode": 3},
        {"success": False, "errorCode": 0},
        {"errorCode": 0},
        {"success": "true", "errorCode": 0},
        ["not", "an", "object"],
        None,
    ],
)
def test_envelope_protocol_errors(body: Any) -> None:
    """success must agree with errorCode == 0; anything else is a protocol error."""
    with pytest.raises(wire.WireError):
        wire.envelope(body)


def test_records_absent_null_singular() -> None:
    """Absent and null lists are empty; a single object counts as one; nulls in lists drop."""
    assert wire.records({}, "orders") == []
    assert wire.records({"orders": None}, "orders") == []
    assert wire.records({"contract": {"id": "x"}}, "contract", "contracts") == [{"id": "x"}]
    assert wire.records({"contracts": [{"id": "x"}, None]}, "contract", "contracts") == [
        {"id": "x"}
    ]


ORDER = order_json(11)


@pytest.mark.parametrize(
    ("arguments", "count", "malformed"),
    [
        ([ORDER], 1, 0),  # bare
        ([{"action": 1, "data": ORDER}], 1, 0),  # wrapped
        ([[ORDER, order_json(12)]], 2, 0),  # list
        ([[{"action": 0, "data": ORDER}, None, {"action": 1, "data": order_json(12)}]], 2, 0),
        ([ACCOUNT_ID, ORDER], 1, 0),  # leading account id
        ([[ACCOUNT_ID, ORDER]], 1, 0),  # account id inside one list argument
        ([{"action": 1, "data": [ORDER, None]}], 1, 0),  # wrapper around a list
        ([ORDER, None], 1, 0),  # null padding
        (["garbage"], 0, 1),
        ([], 0, 1),
        ([None], 0, 1),
    ],
)
def test_user_event_shapes(arguments: list[Any], count: int, malformed: int) -> None:
    """Every payload shape seen in the field decodes to the same order events."""
    decoded = decode_user_event("GatewayUserOrder", arguments)
    assert len(decoded.events) == count and decoded.malformed == malformed
    assert all(isinstance(e, OrderEvent) for e in decoded.events)


def test_user_event_partly_malformed_is_counted() -> None:
    """One broken entity among good ones: the good ones go out, the broken one is counted."""
    broken = {k: v for k, v in order_json(13).items() if k != "status"}
    decoded = decode_user_event("GatewayUserOrder", [[ORDER, broken]])
    assert len(decoded.events) == 1 and decoded.malformed == 1


def test_each_user_target_maps_to_its_event() -> None:
    account = {
        "id": 1,
        "name": "A",
        "balance": 1,
        "canTrade": True,
        "isVisible": True,
        "simulated": True,
    }
    position = {
        "id": 2,
        "accountId": 1,
        "contractId": MNQ,
        "creationTimestamp": "2026-01-05T14:30:00Z",
        "type": 1,
        "size": 1,
        "averagePrice": 21000,
    }
    trade = {
        "id": 3,
        "accountId": 1,
        "contractId": MNQ,
        "creationTimestamp": "2026-01-05T14:30:00Z",
        "price": 21000,
        "fees": 0,
        "side": 0,
        "size": 1,
        "voided": False,
        "orderId": 4,
    }
    assert isinstance(decode_user_event("GatewayUserAccount", [account]).events[0], AccountEvent)
    assert isinstance(
        decode_user_event("GatewayUserPosition", [{"action": 1, "data": position}]).events[0],
        PositionEvent,
    )
    assert isinstance(decode_user_event("gatewayusertrade", [trade]).events[0], TradeEvent)
    assert decode_user_event("SomethingElse", [trade]).events == []


def test_quotes_merge_partial_payloads() -> None:
    """A partial quote updates what it carries; an event goes out once last/bid/ask are known."""
    book = QuoteBook(now=lambda: datetime(2026, 1, 5, tzinfo=UTC))
    first = book.apply(
        "GatewayQuote", [MNQ, {"symbol": "F.US.MNQ", "lastPrice": Decimal("21000.25")}]
    )
    assert first.events == [] and book.last_price(MNQ) == Decimal("21000.25")
    second = book.apply(
        "GatewayQuote",
        [
            MNQ,
            {
                "action": 1,
                "data": {
                    "bestBid": 21000,
                    "bestAsk": Decimal("21000.5"),
                    "timestamp": "2026-01-05T14:30:01Z",
                },
            },
        ],
    )
    (event,) = second.events
    assert (
        isinstance(event, QuoteEvent)
        and event.best_ask == Decimal("21000.5")
        and event.last_price == Decimal("21000.25")
    )
    assert book.apply("GatewayQuote", ["only-one-arg"]).malformed == 1
    assert book.apply("GatewayDepth", [MNQ, []]).events == []


def test_last_bar_close_takes_the_newest_in_any_order() -> None:
    bars = {
        "bars": [
            {
                "t": "2026-01-05T14:29:00+00:00",
                "o": 1,
                "h": 1,
                "l": 1,
                "c": Decimal("21000.5"),
                "v": 1,
            },
            {
                "t": "2026-01-05T14:27:00+00:00",
                "o": 1,
                "h": 1,
                "l": 1,
                "c": Decimal("20999"),
                "v": 1,
            },
        ]
    }
    assert wire.last_bar_close(bars) == Decimal("21000.5")
    assert wire.last_bar_close({"bars": None}) is None
