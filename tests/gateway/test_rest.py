"""The REST endpoints over real loopback HTTP: envelopes, error codes, shapes, auth and limits."""

from __future__ import annotations

from decimal import Decimal

import jwt

from orderguard.clock import VirtualClock
from orderguard.gateway import AccountSpec, GatewayConfig, RateLimit
from orderguard.gateway.config import ExpiredValidate

from .conftest import MNQ, Api, GatewayFactory

START = "2020-01-01T00:00:00Z"


def _config(**changes: object) -> GatewayConfig:
    base: dict[str, object] = {"start_prices": {MNQ: Decimal("21000")}, "history_days": 0.1}
    return GatewayConfig(**{**base, **changes})  # type: ignore[arg-type]


# -- status and auth -----------------------------------------------------------------------------


async def test_ping_is_plain_text_pong(api: Api) -> None:
    """GET Status/ping answers the literal text pong, without a token."""
    r = await api.client.get("/api/Status/ping")
    assert r.status_code == 200 and r.text == "pong"
    assert (await api.client.post("/api/Status/ping")).status_code == 405


async def test_login_with_a_wrong_key_is_a_business_failure(api: Api) -> None:
    """A wrong apiKey is HTTP 200, success false, errorCode 3, no token."""
    r = await api.client.post("/api/Auth/loginKey", json={"userName": "orderguard", "apiKey": "x"})
    assert r.status_code == 200
    assert r.json() == {"token": None, "success": False, "errorCode": 3,
                        "errorMessage": "Invalid credentials."}  # fmt: skip


async def test_login_app_knows_no_apps(api: Api) -> None:
    """Auth/loginApp binds its five fields and answers AppNotFound (4)."""
    body = dict.fromkeys(("userName", "password", "deviceId", "appId", "verifyKey"), "x")
    data = (await api.client.post("/api/Auth/loginApp", json=body)).json()
    assert data["errorCode"] == 4 and data["success"] is False


async def test_paths_are_case_insensitive(api: Api) -> None:
    """api/account/SEARCH is Account/search."""
    r = await api.call("account/SEARCH", {"onlyActiveAccounts": True})
    assert r.status_code == 200 and r.json()["accounts"][0]["id"] == 1


async def test_missing_bad_and_logged_out_tokens_get_401(api: Api) -> None:
    """No token, a garbage token and a logged-out session's token are all 401 with no body."""
    body = {"onlyActiveAccounts": True}
    assert (await api.client.post("/api/Account/search", json=body)).status_code == 401
    assert (await api.call("Account/search", body, token="not.a.jwt")).status_code == 401
    token = api.token
    assert (await api.ok("Auth/logout"))["success"] is True
    r = await api.call("Account/search", body, token=token)
    assert r.status_code == 401 and r.content == b""


async def test_token_is_a_jwt_with_exp_and_expires_on_the_clock(
    start_gateway: GatewayFactory, clock: VirtualClock
) -> None:
    """The token carries exp = now + lifetime; past it, every call is 401."""
    api = await start_gateway(_config(token_lifetime=60))
    token = await api.login()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 60
    assert (await api.call("Account/search", {"onlyActiveAccounts": True})).status_code == 200
    await clock.advance(61)
    assert (await api.call("Account/search", {"onlyActiveAccounts": True})).status_code == 401


async def test_validate_returns_a_new_token_in_the_same_session(
    start_gateway: GatewayFactory, clock: VirtualClock
) -> None:
    """Auth/validate answers newToken; it outlives the old one's expiry."""
    api = await start_gateway(_config(token_lifetime=60))
    await api.login()
    await clock.advance(30)
    data = await api.ok("Auth/validate")
    assert data["success"] and data["newToken"] != api.token
    api.token = data["newToken"]
    await clock.advance(45)  # the first token has expired; the new one has 15 s left
    assert (await api.call("Account/search", {"onlyActiveAccounts": True})).status_code == 200


async def test_validate_on_an_expired_token_answers_code_3_by_default(
    start_gateway: GatewayFactory, clock: VirtualClock
) -> None:
    """ExpiredToken (3) by default; the renew switch issues a new token instead."""
    api = await start_gateway(_config(token_lifetime=10))
    await api.login()
    await clock.advance(11)
    data = (await api.call("Auth/validate")).json()
    assert data["errorCode"] == 3 and data["success"] is False

    renewing = await start_gateway(_config(token_lifetime=10,
                                           expired_validate=ExpiredValidate.RENEW))  # fmt: skip
    await renewing.login()
    await clock.advance(11)
    assert (await renewing.call("Auth/validate")).json()["newToken"]


async def test_validate_after_logout_is_session_not_found(api: Api) -> None:
    """A logged-out session's token on Auth/validate: errorCode 2 SessionNotFound."""
    await api.ok("Auth/logout")
    assert (await api.call("Auth/validate")).json()["errorCode"] == 2


# -- malformed bodies ----------------------------------------------------------------------------


async def test_malformed_body_is_an_aspnet_400_and_changes_nothing(api: Api) -> None:
    """Type errors and missing fields: 400 with an errors object; no order is created."""
    r = await api.call("Order/place", {"accountId": 1, "contractId": MNQ, "type": "limit",
                                       "side": 0})  # fmt: skip
    assert r.status_code == 400
    problem = r.json()
    assert problem["status"] == 400 and problem["title"].startswith("One or more validation")
    assert "$.type" in problem["errors"] and "Size" in problem["errors"]
    assert (await api.truth())["orders"] == []


async def test_invalid_json_and_empty_body_are_400(api: Api) -> None:
    """Not JSON at all, or nothing, is a 400 too (and never a 500)."""
    headers = {"Authorization": f"Bearer {api.token}", "Content-Type": "application/json"}
    r = await api.client.post("/api/Order/place", content=b"{nope", headers=headers)
    assert r.status_code == 400 and "errors" in r.json()
    r = await api.client.post("/api/Order/place", content=b"", headers=headers)
    assert r.status_code == 400


async def test_numbers_may_come_quoted_and_names_in_any_case(api: Api) -> None:
    """ASP.NET's web defaults: "1" binds to an int and AccountId to accountId."""
    data = await api.ok("Order/place", {"AccountId": "1", "contractId": MNQ, "type": 2,
                                        "side": "0", "size": 1})  # fmt: skip
    assert data["success"] and data["orderId"] == 1


# -- accounts and contracts ----------------------------------------------------------------------


async def test_account_search_shape(api: Api) -> None:
    """TradingAccountModel fields, balance as a number."""
    accounts = (await api.ok("Account/search", {"onlyActiveAccounts": True}))["accounts"]
    assert accounts == [{"id": 1, "name": "SIM-1", "balance": 50000, "canTrade": True,
                         "isVisible": True, "simulated": True}]  # fmt: skip


async def test_contract_search_is_fuzzy_and_capped(api: Api) -> None:
    """NQ finds ENQ and MNQ; every contract has the ContractModel fields."""
    contracts = (await api.ok("Contract/search", {"searchText": "NQ", "live": False}))["contracts"]
    ids = {c["id"] for c in contracts}
    assert {"CON.F.US.ENQ.Z26", MNQ} <= ids and len(contracts) <= 20
    assert set(contracts[0]) == {"id", "name", "description", "tickSize", "tickValue",
                                 "activeContract", "symbolId"}  # fmt: skip


async def test_contract_search_by_id_is_singular(api: Api) -> None:
    """searchById answers contract (singular); an unknown id is errorCode 1."""
    data = await api.ok("Contract/searchById", {"contractId": MNQ})
    assert data["contract"]["tickSize"] == 0.25 and data["contract"]["symbolId"] == "F.US.MNQ"
    missing = await api.ok("Contract/searchById", {"contractId": "CON.F.US.XX.Z26"})
    assert missing["errorCode"] == 1 and missing["contract"] is None


async def test_contract_available_lists_all(api: Api) -> None:
    data = await api.ok("Contract/available", {"live": False})
    assert len(data["contracts"]) == 4


async def test_retrieve_bars_newest_first_with_codes(api: Api, clock: VirtualClock) -> None:
    """Bars come newest first within the limit; bad contract, unit, unitNumber, limit: 1-4."""
    for price in ("21001.00", "21002.00", "21003.00"):
        await clock.advance(60)
        await api.price(price)
    body = {"contractId": MNQ, "live": False, "startTime": START,
            "endTime": "2030-01-01T00:00:00Z", "unit": 2, "unitNumber": 1, "limit": 5,
            "includePartialBar": True}  # fmt: skip
    bars = (await api.ok("History/retrieveBars", body))["bars"]
    assert len(bars) == 5
    assert [b["t"] for b in bars] == sorted((b["t"] for b in bars), reverse=True)
    assert bars[0]["c"] == 21003 and bars[0]["t"].endswith("+00:00")
    assert set(bars[0]) == {"t", "o", "h", "l", "c", "v"}
    for field, value, code in (("contractId", "CON.F.US.XX.Z26", 1), ("unit", 9, 2),
                               ("unitNumber", 0, 3), ("limit", 20_001, 4)):  # fmt: skip
        data = await api.ok("History/retrieveBars", {**body, field: value})
        assert data["errorCode"] == code and data["success"] is False


async def test_partial_bar_only_when_asked(api: Api, clock: VirtualClock) -> None:
    """includePartialBar false leaves out the bar still forming."""
    await api.price("21010.00")
    body = {"contractId": MNQ, "live": False, "startTime": START,
            "endTime": "2030-01-01T00:00:00Z", "unit": 3, "unitNumber": 1, "limit": 1,
            "includePartialBar": False}  # fmt: skip
    closed = (await api.ok("History/retrieveBars", body))["bars"][0]
    forming = (await api.ok("History/retrieveBars", {**body, "includePartialBar": True}))["bars"][0]
    assert forming["t"] > closed["t"]


# -- orders --------------------------------------------------------------------------------------


async def test_market_order_fills_and_reports_9_place_decimals(api: Api) -> None:
    """A market buy fills at the ask; the order model has every field."""
    order_id = (await api.place(size=3, customTag="t-1"))["orderId"]
    orders = (await api.ok("Order/search", {"accountId": 1, "startTimestamp": START}))["orders"]
    order = next(o for o in orders if o["id"] == order_id)
    assert order["status"] == 2 and order["fillVolume"] == 3 and order["filledPrice"] == 21000.25
    assert order["customTag"] == "t-1" and order["symbolId"] == "F.US.MNQ"
    assert order["creationTimestamp"].endswith("+00:00")


async def test_place_error_codes(api: Api) -> None:
    """Unknown account 1, off-tick price 2, duplicate tag 2, unknown contract 8."""
    assert (await api.place(accountId=99))["errorCode"] == 1
    off_tick = await api.place(type=1, limitPrice=20000.1)
    assert off_tick["errorCode"] == 2 and "tick" in off_tick["errorMessage"]
    await api.place(customTag="same")
    assert (await api.place(customTag="same"))["errorCode"] == 2
    assert (await api.place(contractId="CON.F.US.XX.Z26"))["errorCode"] == 8
    assert (await api.place(type=3, limitPrice=20000, stopPrice=20000))["errorCode"] == 2


async def test_cancel_and_modify(api: Api) -> None:
    """Modify moves a resting limit; cancel answers 0, then 3 (already cancelled), 2 unknown."""
    order_id = (await api.place(type=1, limitPrice=20000))["orderId"]
    assert (await api.ok("Order/modify", {"accountId": 1, "orderId": order_id,
                                          "limitPrice": 20001.5}))["success"]  # fmt: skip
    order = (await api.ok("Order/searchById", {"accountId": 1, "orderId": order_id}))["order"]
    assert order["limitPrice"] == 20001.5
    bad = await api.ok("Order/modify", {"accountId": 1, "orderId": order_id, "stopPrice": 1})
    assert bad["errorCode"] == 3
    assert (await api.ok("Order/cancel", {"accountId": 1, "orderId": order_id}))["success"]
    assert (await api.ok("Order/cancel", {"accountId": 1, "orderId": order_id}))["errorCode"] == 3
    assert (await api.ok("Order/cancel", {"accountId": 1, "orderId": 999}))["errorCode"] == 2
    assert (await api.ok("Order/modify", {"accountId": 1, "orderId": 999,
                                          "size": 2}))["errorCode"] == 2  # fmt: skip
    assert (await api.ok("Order/searchById", {"accountId": 1, "orderId": 999}))["errorCode"] == 1


async def test_native_bracket_children_are_suspended_and_hidden_from_search_open(api: Api) -> None:
    """A limit entry with brackets: two Suspended legs, in Order/search, not in searchOpen."""
    entry = (await api.place(type=1, limitPrice=20990, stopLossBracket={"ticks": -8, "type": 4},
                             takeProfitBracket={"ticks": 16, "type": 1}))["orderId"]  # fmt: skip
    every = (await api.ok("Order/search", {"accountId": 1, "startTimestamp": START}))["orders"]
    legs = [o for o in every if o["parentOrderId"] == entry]
    assert [o["status"] for o in legs] == [8, 8]
    assert {o["type"] for o in legs} == {4, 1}
    open_ids = {o["id"] for o in (await api.ok("Order/searchOpen", {"accountId": 1}))["orders"]}
    assert open_ids == {entry}
    query = await api.ok("Order/v2/query", {"filter": {"accountId": 1, "statuses": [8]},
                                            "includeTotalCount": True})  # fmt: skip
    assert query["totalCount"] == 2


async def test_bracket_rules_over_the_wire(api: Api) -> None:
    """Unsigned stop ticks on a long are refused with the field-reported text."""
    data = await api.place(stopLossBracket={"ticks": 10, "type": 4})
    assert data["errorCode"] == 2
    assert data["errorMessage"] == (
        "Invalid stop loss ticks (10). Ticks should be less than zero when longing."
    )
    bad_type = await api.place(takeProfitBracket={"ticks": 10, "type": 42})
    assert bad_type["errorCode"] == 2


async def test_position_brackets_mode_refuses_brackets(start_gateway: GatewayFactory) -> None:
    """An account in Position Brackets mode answers the 'Brackets cannot be used' rejection."""
    api = await start_gateway(_config(accounts=(AccountSpec(1, "PA-1", native_brackets=False),)))
    await api.login()
    data = await api.place(stopLossBracket={"ticks": -10, "type": 4})
    assert data["errorCode"] == 2
    assert data["errorMessage"].startswith("Brackets cannot be used with Position Brackets")


async def test_server_oco_when_the_target_trades(api: Api) -> None:
    """Market entry with brackets: the target fills, the stop is cancelled, flat."""
    await api.place(stopLossBracket={"ticks": -8, "type": 4},
                    takeProfitBracket={"ticks": 8, "type": 1})  # fmt: skip
    await api.price("21002.50")  # entry filled at 21000.25; target at 21002.25
    truth = await api.truth()
    statuses = sorted(o["status"] for o in truth["orders"])
    assert statuses == [2, 2, 3] and truth["positions"] == []


async def test_close_contract_leaves_bracket_legs_working(api: Api) -> None:
    """Position/closeContract flattens but the legs stay (field reports, §9.1)."""
    await api.place(stopLossBracket={"ticks": -8, "type": 4},
                    takeProfitBracket={"ticks": 8, "type": 1})  # fmt: skip
    assert (await api.ok("Position/closeContract", {"accountId": 1, "contractId": MNQ}))["success"]
    assert (await api.ok("Position/searchOpen", {"accountId": 1}))["positions"] == []
    working = [o for o in (await api.truth())["orders"] if o["status"] == 1]
    assert len(working) == 2


async def test_positions_partial_close_and_trades(api: Api) -> None:
    """searchOpen shape; partial close by size (too big: 5); trades with P&L on the close."""
    await api.place(size=3)
    position = (await api.ok("Position/searchOpen", {"accountId": 1}))["positions"][0]
    assert position["type"] == 1 and position["size"] == 3 and position["averagePrice"] == 21000.25
    too_big = {"accountId": 1, "contractId": MNQ, "size": 4}
    assert (await api.ok("Position/partialCloseContract", too_big))["errorCode"] == 5
    assert (await api.ok("Position/partialCloseContract", {**too_big, "size": 2}))["success"]
    assert (await api.ok("Position/searchOpen", {"accountId": 1}))["positions"][0]["size"] == 1
    trades = (await api.ok("Trade/search", {"accountId": 1, "startTimestamp": START}))["trades"]
    assert [t["profitAndLoss"] for t in trades] == [None, -1.0]  # 2 contracts, 1 tick each at 0.50
    assert set(trades[0]) == {
        "id",
        "accountId",
        "contractId",
        "creationTimestamp",
        "price",
        "profitAndLoss",
        "fees",
        "side",
        "size",
        "voided",
        "orderId",
    }
    no_position = {"accountId": 1, "contractId": "CON.F.US.MES.Z26"}
    assert (await api.ok("Position/closeContract", no_position))["errorCode"] == 2


async def test_queries_of_an_unknown_account_are_code_1(api: Api) -> None:
    for path, body in (("Order/searchOpen", {"accountId": 7}),
                       ("Order/search", {"accountId": 7, "startTimestamp": START}),
                       ("Position/searchOpen", {"accountId": 7}),
                       ("Trade/search", {"accountId": 7})):  # fmt: skip
        assert (await api.ok(path, body))["errorCode"] == 1


# -- rate limits ---------------------------------------------------------------------------------


async def test_rate_limit_is_a_sliding_window_of_429s(
    start_gateway: GatewayFactory, clock: VirtualClock
) -> None:
    """3 per 10 s: the 4th call is 429 (no Retry-After by default); 10 s later it passes."""
    api = await start_gateway(_config(general_limit=RateLimit(3, 10)))
    await api.login()
    body = {"onlyActiveAccounts": True}
    for _ in range(3):
        assert (await api.call("Account/search", body)).status_code == 200
    refused = await api.call("Account/search", body)
    assert refused.status_code == 429 and "retry-after" not in refused.headers
    await clock.advance(10)
    assert (await api.call("Account/search", body)).status_code == 200


async def test_bars_have_their_own_window_and_retry_after_switch(
    start_gateway: GatewayFactory,
) -> None:
    """retrieveBars counts separately; with retry_after on, the 429 says when to come back."""
    api = await start_gateway(_config(bars_limit=RateLimit(1, 30), retry_after=True))
    await api.login()
    body = {"contractId": MNQ, "live": False, "startTime": START, "endTime": START,
            "unit": 2, "unitNumber": 1, "limit": 1, "includePartialBar": False}  # fmt: skip
    assert (await api.call("History/retrieveBars", body)).status_code == 200
    refused = await api.call("History/retrieveBars", body)
    assert refused.status_code == 429 and refused.headers["retry-after"] == "30"
    assert (await api.call("Account/search", {"onlyActiveAccounts": True})).status_code == 200
