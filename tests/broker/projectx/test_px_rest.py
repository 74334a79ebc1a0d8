"""ProjectXBroker over a MockTransport gateway: bodies sent, outcomes decided, errors raised."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx2
import pytest
from px_fakes import (
    ACCOUNT_ID,
    MNQ,
    T0,
    FakeRest,
    fail,
    ok,
    order_json,
    respond,
    rest_broker,
)

from orderguard.broker.base import Confirmed, Rejected, Unknown, UnknownOrigin
from orderguard.broker.projectx import GatewayUnavailableError, codes
from orderguard.clock import VirtualClock
from orderguard.errors import (
    BrokerError,
    ConnectionFailedError,
    MalformedPayloadError,
    OrderRejectedError,
    RateLimitedError,
    UnknownAccountError,
)
from orderguard.models import BracketSpec, OrderRequest, OrderSide, OrderType

LIMIT = OrderRequest(
    ACCOUNT_ID,
    MNQ,
    OrderType.LIMIT,
    OrderSide.BUY,
    1,
    limit_price=Decimal("21000.25"),
    custom_tag="t1",
)
BRACKETED = OrderRequest(
    ACCOUNT_ID,
    MNQ,
    OrderType.MARKET,
    OrderSide.BUY,
    1,
    custom_tag="t2",
    stop_loss_bracket=BracketSpec(-20, OrderType.STOP),
    take_profit_bracket=BracketSpec(40, OrderType.LIMIT),
)


def answer(body: Any) -> Any:
    return lambda b, r: body


async def place_with(body: Any, request: OrderRequest = LIMIT) -> Any:
    fake = FakeRest(routes={"/api/order/place": answer(body)})
    broker = rest_broker(fake)
    try:
        return await broker.place_order(request)
    finally:
        await broker.aclose()


async def test_place_confirmed_sends_the_wire_body() -> None:
    """A success with an orderId is Confirmed; the body has Decimal numbers and the tag."""
    fake = FakeRest(routes={"/api/order/place": answer(ok(orderId=42))})
    broker = rest_broker(fake)
    assert await broker.place_order(LIMIT) == Confirmed(42)
    (body,) = fake.bodies("/api/order/place")
    assert body == {
        "accountId": ACCOUNT_ID,
        "contractId": MNQ,
        "type": 1,
        "side": 0,
        "size": 1,
        "limitPrice": 21000.25,
        "customTag": "t1",
    }
    await broker.aclose()


def _table_cases() -> list[tuple[str, Any, int, type, UnknownOrigin | None]]:
    cases = []
    for name, table in (
        ("place", codes.PLACE),
        ("cancel", codes.CANCEL),
        ("modify", codes.MODIFY),
        ("close", codes.CLOSE),
        ("partial", codes.PARTIAL_CLOSE),
    ):
        for code, verdict in table.items():
            if verdict is codes.Verdict.REJECTED:
                cases.append((name, table, code, Rejected, None))
            elif verdict is codes.Verdict.PENDING:
                cases.append((name, table, code, Unknown, UnknownOrigin.PENDING))
            else:
                cases.append((name, table, code, Unknown, UnknownOrigin.UNKNOWN_CODE))
        cases.append((name, table, 99, Unknown, UnknownOrigin.UNKNOWN_CODE))  # not in the table
    return cases


ROUTES = {
    "place": "/api/order/place",
    "cancel": "/api/order/cancel",
    "modify": "/api/order/modify",
    "close": "/api/position/closecontract",
    "partial": "/api/position/partialclosecontract",
}


async def _mutate(broker: Any, name: str) -> Any:
    if name == "place":
        return await broker.place_order(LIMIT)
    if name == "cancel":
        return await broker.cancel_order(ACCOUNT_ID, 5)
    if name == "modify":
        return await broker.modify_order(ACCOUNT_ID, 5, size=2)
    if name == "close":
        return await broker.close_position(ACCOUNT_ID, MNQ)
    return await broker.partial_close_position(ACCOUNT_ID, MNQ, 1)


@pytest.mark.parametrize(("name", "table", "code", "kind", "origin"), _table_cases())
async def test_every_code_table_decision(
    name: str, table: Any, code: int, kind: type, origin: UnknownOrigin | None
) -> None:
    """Each endpoint's codes: definitive ones Rejected, Pending/UnknownError/unlisted Unknown."""
    fake = FakeRest(routes={ROUTES[name]: answer(fail(code, "why"))})
    broker = rest_broker(fake)
    outcome = await _mutate(broker, name)
    assert isinstance(outcome, kind)
    if isinstance(outcome, Unknown):
        assert outcome.origin is origin
    else:
        assert outcome.code == code
    await broker.aclose()


async def test_partial_close_sends_size_not_close_size() -> None:
    fake = FakeRest(routes={ROUTES["partial"]: answer(ok())})
    broker = rest_broker(fake)
    assert await broker.partial_close_position(ACCOUNT_ID, MNQ, 2) == Confirmed(None)
    assert fake.bodies(ROUTES["partial"]) == [
        {"accountId": ACCOUNT_ID, "contractId": MNQ, "size": 2}
    ]
    await broker.aclose()


async def test_rejected_place_keeps_the_order_id() -> None:
    assert await place_with(fail(2, "no", orderId=77)) == Rejected(2, "no", 77)


@pytest.mark.parametrize(
    "body",
    [
        {"success": True, "errorCode": 2, "orderId": 1},  # contradiction
        {"success": False, "errorCode": 0},
        {"orderId": 5},  # no envelope
        ok(),  # success without orderId
    ],
)
async def test_protocol_errors_on_a_mutation_are_unknown(body: Any) -> None:
    """A broken or self-contradicting envelope proves nothing: Unknown, never Rejected."""
    outcome = await place_with(body)
    assert isinstance(outcome, Unknown) and outcome.origin is UnknownOrigin.UNKNOWN_CODE


async def test_non_json_answer_is_unknown() -> None:
    outcome = await place_with(httpx2.Response(200, content=b"<html>oops</html>"))
    assert isinstance(outcome, Unknown)


@pytest.mark.parametrize(
    ("status", "origin"),
    [
        (500, UnknownOrigin.SERVER_ERROR),
        (502, UnknownOrigin.SERVER_ERROR),
        (503, UnknownOrigin.SERVER_ERROR),
        (429, UnknownOrigin.RATE_LIMITED_AFTER_SEND),
        (418, UnknownOrigin.UNKNOWN_CODE),
    ],
)
async def test_http_failures_after_send_are_unknown(status: int, origin: UnknownOrigin) -> None:
    outcome = await place_with(respond(status=status))
    assert isinstance(outcome, Unknown) and outcome.origin is origin


@pytest.mark.parametrize(("status", "code"), [(400, -400), (404, -404), (405, -405)])
async def test_http_refusals_before_execution_are_rejected(status: int, code: int) -> None:
    """Model binding (400) and a missing endpoint (404/405) never ran the action."""
    outcome = await place_with(respond({"errors": {"$.size": ["required"]}}, status=status))
    assert isinstance(outcome, Rejected) and outcome.code == code


def raising(exc: Exception) -> Any:
    def handler(body: dict[str, Any], request: httpx2.Request) -> Any:
        raise exc

    return handler


@pytest.mark.parametrize(
    "exc",
    [httpx2.ConnectError("refused"), httpx2.ConnectTimeout("slow"), httpx2.PoolTimeout("pool")],
)
async def test_connect_failure_is_not_sent(exc: Exception) -> None:
    """A request that never reached the server raises ConnectionFailedError (safe to re-send)."""
    fake = FakeRest(routes={"/api/order/place": raising(exc)})
    broker = rest_broker(fake)
    with pytest.raises(ConnectionFailedError) as info:
        await broker.place_order(LIMIT)
    assert info.value.retryable
    await broker.aclose()


@pytest.mark.parametrize(
    ("exc", "origin"),
    [
        (httpx2.ReadTimeout("slow"), UnknownOrigin.TIMEOUT_AFTER_SEND),
        (httpx2.WriteTimeout("slow"), UnknownOrigin.TIMEOUT_AFTER_SEND),
        (httpx2.ReadError("reset"), UnknownOrigin.CONNECTION_LOST),
        (httpx2.WriteError("broken pipe"), UnknownOrigin.CONNECTION_LOST),
        (httpx2.RemoteProtocolError("server disconnected"), UnknownOrigin.CONNECTION_LOST),
    ],
)
async def test_failure_after_send_is_unknown(exc: Exception, origin: UnknownOrigin) -> None:
    """Once the request may have been written, the outcome is Unknown (F1)."""
    fake = FakeRest(routes={"/api/order/place": raising(exc)})
    broker = rest_broker(fake)
    outcome = await broker.place_order(LIMIT)
    assert isinstance(outcome, Unknown) and outcome.origin is origin
    await broker.aclose()


async def test_retry_after_is_reported_and_honoured() -> None:
    """A 429 with Retry-After: the outcome carries the wait; requests before it ends are refused
    locally as not sent; after it, they go out again."""
    clock = VirtualClock(T0)
    calls = {"n": 0}

    def place(body: dict[str, Any], req: httpx2.Request) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            return respond(status=429, headers={"Retry-After": "3"})
        return ok(orderId=9)

    fake = FakeRest(clock=clock, routes={"/api/order/place": place})
    broker = rest_broker(fake, clock=clock)
    first = await broker.place_order(LIMIT)
    assert isinstance(first, Unknown) and first.retry_after == 3.0
    with pytest.raises(RateLimitedError) as info:
        await broker.place_order(LIMIT)
    assert (
        info.value.sent is False
        and info.value.retryable
        and info.value.retry_after == pytest.approx(3.0)
    )
    await clock.advance(3.1)
    assert await broker.place_order(LIMIT) == Confirmed(9)
    assert calls["n"] == 2
    await broker.aclose()


async def test_retry_after_is_capped() -> None:
    outcome = await place_with(respond(status=429, headers={"Retry-After": "86400"}))
    assert isinstance(outcome, Unknown) and outcome.retry_after == 60.0


# -- queries -------------------------------------------------------------------------------------


async def test_query_failures_raise_typed_errors() -> None:
    """Reads raise: 5xx and lost answers retryable, 429 with retry_after, codes OrderRejected,
    broken envelopes MalformedPayload, a refused connection ConnectionFailed."""
    results = {
        "/api/order/searchopen": respond(status=503),
        "/api/position/searchopen": respond(status=429, headers={"Retry-After": "1"}),
        "/api/trade/search": fail(1, "AccountNotFound"),
        "/api/order/search": {"success": True, "errorCode": 1},
    }
    fake = FakeRest(routes={p: answer(r) for p, r in results.items()})
    broker = rest_broker(fake)
    with pytest.raises(GatewayUnavailableError) as unavailable:
        await broker.search_open_orders(ACCOUNT_ID)
    assert unavailable.value.retryable
    with pytest.raises(RateLimitedError) as limited:
        await broker.search_positions(ACCOUNT_ID)
    assert limited.value.sent and limited.value.retry_after == 1.0
    await broker.aclose()
    broker = rest_broker(fake)
    with pytest.raises(OrderRejectedError) as rejected:
        await broker.search_trades(ACCOUNT_ID, T0)
    assert rejected.value.code == 1
    with pytest.raises(MalformedPayloadError):
        await broker.search_orders(ACCOUNT_ID, T0)
    await broker.aclose()


async def test_query_timeout_and_refused_connection() -> None:
    fake = FakeRest(
        routes={
            "/api/order/searchopen": raising(httpx2.ReadTimeout("slow")),
            "/api/position/searchopen": raising(httpx2.ConnectError("no")),
        }
    )
    broker = rest_broker(fake)
    with pytest.raises(GatewayUnavailableError):
        await broker.search_open_orders(ACCOUNT_ID)
    with pytest.raises(ConnectionFailedError):
        await broker.search_positions(ACCOUNT_ID)
    await broker.aclose()


async def test_a_malformed_record_fails_the_query() -> None:
    """Dropping an undecodable order would make it look absent: the whole read fails."""
    broken = {k: v for k, v in order_json(2).items() if k != "status"}
    fake = FakeRest(routes={"/api/order/searchopen": answer(ok(orders=[order_json(1), broken]))})
    broker = rest_broker(fake)
    with pytest.raises(MalformedPayloadError):
        await broker.search_open_orders(ACCOUNT_ID)
    await broker.aclose()


async def test_searches_send_windows_and_decode() -> None:
    fake = FakeRest(
        routes={
            "/api/order/search": answer(ok(orders=[order_json(1), order_json(2, status=2)])),
            "/api/order/searchopen": answer(ok(orders=None)),
            "/api/trade/search": answer(
                ok(
                    trades=[
                        {
                            "id": 1,
                            "accountId": ACCOUNT_ID,
                            "contractId": MNQ,
                            "creationTimestamp": "2026-01-05T14:30:00Z",
                            "price": 21000,
                            "profitAndLoss": 5,
                            "fees": 1,
                            "side": 0,
                            "size": 1,
                            "voided": False,
                            "orderId": 1,
                        }
                    ]
                )
            ),
            "/api/position/searchopen": answer(
                ok(
                    positions=[
                        {
                            "id": 1,
                            "accountId": ACCOUNT_ID,
                            "contractId": MNQ,
                            "creationTimestamp": "2026-01-05T14:30:00Z",
                            "type": 1,
                            "size": 2,
                            "averagePrice": 21000,
                        },
                        {
                            "id": 2,
                            "accountId": ACCOUNT_ID,
                            "contractId": "CON.F.US.EP.Z26",
                            "creationTimestamp": "2026-01-05T14:30:00Z",
                            "type": 1,
                            "size": 0,
                            "averagePrice": 0,
                        },
                    ]
                )
            ),
        }
    )
    broker = rest_broker(fake)
    orders = await broker.search_orders(ACCOUNT_ID, T0, T0 + timedelta(hours=1))
    assert [o.id for o in orders] == [1, 2]
    assert fake.bodies("/api/order/search") == [
        {
            "accountId": ACCOUNT_ID,
            "startTimestamp": "2026-01-05T14:30:00+00:00",
            "endTimestamp": "2026-01-05T15:30:00+00:00",
        }
    ]
    assert await broker.search_open_orders(ACCOUNT_ID) == []
    assert [t.order_id for t in await broker.search_trades(ACCOUNT_ID, T0)] == [1]
    assert [p.id for p in await broker.search_positions(ACCOUNT_ID)] == [1]  # size 0 is flat
    await broker.aclose()


async def test_get_order_uses_search_by_id_then_falls_back_when_missing() -> None:
    """Order/searchById where served; a 404 switches to Order/search for the session."""
    fake = FakeRest(routes={"/api/order/searchbyid": answer(ok(order=order_json(5)))})
    broker = rest_broker(fake)
    assert (await broker.get_order(ACCOUNT_ID, 5)).id == 5  # type: ignore[union-attr]
    await broker.aclose()

    fake = FakeRest(routes={"/api/order/searchbyid": answer(fail(1, "OrderNotFound"))})
    broker = rest_broker(fake)
    assert await broker.get_order(ACCOUNT_ID, 5) is None
    await broker.aclose()

    fake = FakeRest(
        routes={"/api/order/search": answer(ok(orders=[order_json(4), order_json(5, status=3)]))}
    )
    broker = rest_broker(fake)
    found = await broker.get_order(ACCOUNT_ID, 5)
    assert found is not None and found.status == 3
    assert await broker.get_order(ACCOUNT_ID, 6) is None
    assert fake.paths().count("/api/order/searchbyid") == 1  # asked once, then remembered
    await broker.aclose()


@pytest.mark.parametrize("key", ["contract", "contracts"])
async def test_contract_by_id_accepts_both_shapes(key: str) -> None:
    contract = {
        "id": MNQ,
        "name": "MNQZ6",
        "description": "",
        "tickSize": 0.25,
        "tickValue": 0.5,
        "activeContract": True,
        "symbolId": "F.US.MNQ",
    }
    value = contract if key == "contract" else [contract]
    fake = FakeRest(routes={"/api/contract/searchbyid": answer(ok(**{key: value}))})
    broker = rest_broker(fake)
    found = await broker.get_contract(MNQ)
    assert found is not None and found.tick_size == Decimal("0.25")
    await broker.get_contract(MNQ)
    assert fake.paths().count("/api/contract/searchbyid") == 1  # cached
    await broker.aclose()


async def test_contract_not_found_is_none_and_search_and_available() -> None:
    contract = {
        "id": MNQ,
        "name": "MNQZ6",
        "description": "",
        "tickSize": 0.25,
        "tickValue": 0.5,
        "activeContract": True,
    }
    fake = FakeRest(
        routes={
            "/api/contract/searchbyid": answer(fail(1, "ContractNotFound")),
            "/api/contract/search": answer(ok(contracts=[contract])),
            "/api/contract/available": answer(ok(contracts=[contract, contract])),
        }
    )
    broker = rest_broker(fake)
    assert await broker.get_contract("CON.F.US.NOPE.Z26") is None
    assert [c.id for c in await broker.search_contracts("MNQ")] == [MNQ]
    assert fake.bodies("/api/contract/search") == [{"searchText": "MNQ", "live": False}]
    assert len(await broker.available_contracts()) == 2
    await broker.aclose()


async def test_native_bracket_mode_is_learned_and_configurable() -> None:
    """Assumed on; the Position Brackets rejection turns it off for that account; config wins."""
    message = "Brackets cannot be used with Position Brackets. You must enable Auto OCO Brackets."
    fake = FakeRest(routes={"/api/order/place": answer(fail(2, message))})
    broker = rest_broker(fake)
    assert (await broker.get_capabilities(ACCOUNT_ID)).native_brackets is True
    outcome = await broker.place_order(BRACKETED)
    assert isinstance(outcome, Rejected) and outcome.code == 2
    assert (await broker.get_capabilities(ACCOUNT_ID)).native_brackets is False
    assert (await broker.get_capabilities(7002)).native_brackets is True
    await broker.aclose()
    broker = rest_broker(fake, native_brackets=False, max_order_size=5)
    caps = await broker.get_capabilities(ACCOUNT_ID)
    assert caps.native_brackets is False and caps.max_order_size == 5
    await broker.aclose()


async def test_account_selection_by_name_and_id() -> None:
    """PROJECT_X_ACCOUNT_NAME picks by name (any case) and is listed first; unknown names fail."""
    fake = FakeRest()
    broker = rest_broker(fake, account_name="eval-7002")
    assert (await broker.selected_account()).id == 7002
    assert [a.id for a in await broker.get_accounts()] == [7002, ACCOUNT_ID]
    await broker.aclose()
    broker = rest_broker(fake, account_id=ACCOUNT_ID)
    assert (await broker.selected_account()).id == ACCOUNT_ID
    await broker.aclose()
    broker = rest_broker(fake)
    assert (await broker.selected_account()).id == ACCOUNT_ID
    await broker.aclose()
    broker = rest_broker(fake, account_name="nope")
    with pytest.raises(UnknownAccountError, match="PRAC-7001"):
        await broker.selected_account()
    await broker.aclose()


async def test_last_price_falls_back_to_bars_without_realtime() -> None:
    bars = {
        "bars": [
            {
                "t": "2026-01-05T14:29:00+00:00",
                "o": 1,
                "h": 1,
                "l": 1,
                "c": Decimal("21002.75"),
                "v": 3,
            }
        ]
    }
    fake = FakeRest(routes={"/api/history/retrievebars": answer(ok(**bars))})
    broker = rest_broker(fake)
    assert await broker.get_last_price(MNQ) == Decimal("21002.75")
    (body,) = fake.bodies("/api/history/retrievebars")
    assert body["contractId"] == MNQ and body["unit"] == 2 and body["includePartialBar"] is True
    await broker.aclose()


async def test_unknown_http_status_on_query_is_a_broker_error() -> None:
    fake = FakeRest(routes={"/api/order/searchopen": answer(respond(status=418))})
    broker = rest_broker(fake)
    with pytest.raises(BrokerError):
        await broker.search_open_orders(ACCOUNT_ID)
    await broker.aclose()
