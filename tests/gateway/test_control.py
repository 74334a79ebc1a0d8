"""The control API: the platform's actions, the market, tokens, limits, hubs — and its guard."""

from __future__ import annotations

import logging

import httpx2 as httpx
import pytest

from orderguard.gateway.control import is_loopback

from .conftest import MNQ, Api, Hub, base_url


async def test_control_refuses_non_loopback_clients(api: Api) -> None:
    """A request from 10.0.0.7 gets 403, even in-process (no network needed to prove it)."""
    transport = httpx.ASGITransport(app=api.gateway.app, client=("10.0.0.7", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as remote:
        r = await remote.get("/control/truth")
    assert r.status_code == 403
    assert is_loopback("127.0.0.1") and is_loopback("::1") and not is_loopback("192.168.1.2")


async def test_truth_and_log(api: Api) -> None:
    """truth shows what the exchange holds; every control action is in the log."""
    await api.place(customTag="x")
    await api.price("21001.00")
    truth = await api.truth()
    assert truth["orders"][0]["customTag"] == "x" and truth["positions"][0]["size"] == 1
    assert truth["trades"][0]["price"] == 21000.25
    log = (await api.client.get("/control/log")).json()["log"]
    assert [e["action"] for e in log][-1] == "price"


async def test_scripted_prices_pause_the_walk_and_trigger_a_stop(api: Api) -> None:
    """A price script stops the random walk and walks the market through a resting stop."""
    await api.place(size=1)
    await api.place(type=4, side=1, stopPrice=20995)
    data = await api.control("prices", {"contractId": MNQ, "prices": [20998, 20996, 20995]})
    assert data["applied"] == 3
    assert (await api.truth())["positions"] == []
    status = (await api.client.get("/control/status")).json()
    assert status["market"][MNQ] is False


async def test_market_switch_and_unknowns(api: Api) -> None:
    """The random walk can be resumed; an unknown contract is 404; a bad price is 400."""
    assert (await api.control("market", {"contractId": MNQ, "running": True}))["running"]
    r = await api.client.post("/control/price", json={"contractId": "NOPE", "price": 1})
    assert r.status_code == 404
    r = await api.client.post("/control/price", json={"contractId": MNQ, "price": 1.1})
    assert r.status_code == 400
    r = await api.client.post("/control/price", json={"contractId": MNQ})
    assert r.status_code == 400 and "Price" in r.json()["errors"]
    assert (await api.client.post("/control/nothing", json={})).status_code == 404


async def test_liquidity_makes_partial_fills(api: Api) -> None:
    """liquidity 1: a 3-lot market order fills one contract per matching run."""
    await api.control("liquidity", {"liquidity": 1})
    order_id = (await api.place(size=3))["orderId"]
    order = (await api.ok("Order/searchById", {"accountId": 1, "orderId": order_id}))["order"]
    assert order["fillVolume"] == 1 and order["status"] == 1
    await api.price("21000.00")
    order = (await api.ok("Order/searchById", {"accountId": 1, "orderId": order_id}))["order"]
    assert order["fillVolume"] == 2


async def test_platform_orders_and_closes_reach_the_client(api: Api) -> None:
    """Orders placed, cancelled and positions closed "on the platform" show up over the wire."""
    hub = await Hub.connect(base_url(api), "user", api.token)
    await hub.invoke("SubscribeOrders", 1)
    order = {"accountId": 1, "contractId": MNQ, "type": 1, "side": 0, "size": 1,
             "limitPrice": 20000}  # fmt: skip
    placed = await api.control("orders/place", order)
    assert placed["success"]
    (event,) = await hub.event("GatewayUserOrder")
    assert event["data"]["id"] == placed["orderId"]
    cancelled = await api.control("orders/cancel", {"accountId": 1, "orderId": placed["orderId"]})
    assert cancelled["errorCode"] == 0
    await api.place(size=3)
    part = await api.control("positions/close", {"accountId": 1, "contractId": MNQ, "size": 1})
    assert part["errorCode"] == 0
    assert (await api.ok("Position/searchOpen", {"accountId": 1}))["positions"][0]["size"] == 2
    assert (await api.control("positions/close", {"accountId": 1, "contractId": MNQ}))[
        "errorCode"
    ] == 0
    assert (await api.ok("Position/searchOpen", {"accountId": 1}))["positions"] == []
    await hub.close()


async def test_bracket_mode_switch(api: Api) -> None:
    """Position Brackets mode refuses brackets; the switch is refused with exposure (409)."""
    assert await api.control("accounts/brackets", {"accountId": 1, "mode": "position"})
    refused = await api.place(stopLossBracket={"ticks": -4, "type": 4})
    assert refused["errorMessage"].startswith("Brackets cannot be used")
    await api.place()
    r = await api.client.post("/control/accounts/brackets", json={"accountId": 1, "mode": "auto"})
    assert r.status_code == 409
    await api.control("accounts/brackets", {"accountId": 1, "mode": "auto", "force": True})
    assert (await api.place(stopLossBracket={"ticks": -4, "type": 4}))["success"]


async def test_expire_and_revoke_tokens(api: Api) -> None:
    """expire: 401 and validate says 3; revoke: 401 and validate says 2; a new login works."""
    body = {"onlyActiveAccounts": True}
    await api.control("tokens", {"action": "expire"})
    assert (await api.call("Account/search", body)).status_code == 401
    assert (await api.call("Auth/validate")).json()["errorCode"] == 3
    await api.login()
    assert (await api.call("Account/search", body)).status_code == 200
    await api.control("tokens", {"action": "revoke"})
    assert (await api.call("Account/search", body)).status_code == 401
    assert (await api.call("Auth/validate")).json()["errorCode"] == 2
    await api.login()
    assert (await api.call("Account/search", body)).status_code == 200


async def test_rate_limit_burst_and_switch(api: Api) -> None:
    """A burst fills the user's window (429 next); switching limits off lets everything pass."""
    await api.control("ratelimits", {"burst": True})
    assert (await api.call("Account/search", {"onlyActiveAccounts": True})).status_code == 429
    await api.control("ratelimits", {"enabled": False})
    assert (await api.call("Account/search", {"onlyActiveAccounts": True})).status_code == 200


async def test_silenced_hub_keeps_its_socket_open(api: Api) -> None:
    """A silenced hub sends nothing while its socket stays open; afterwards events flow again."""
    hub = await Hub.connect(base_url(api), "user", api.token)
    await hub.invoke("SubscribeOrders", 1)
    await api.control("hubs", {"hub": "user", "action": "silence", "seconds": 0.4})
    await api.place()
    assert await hub.events_now(0.2) == []
    status = (await api.client.get("/control/status")).json()
    assert status["hubs"]["user"]["connections"] == 1 and status["hubs"]["user"]["silent"]
    await hub.events_now(0.3)  # the silence ends
    await api.place()
    assert (await hub.event("GatewayUserOrder"))[0]["data"]["id"] == 2
    await hub.close()


async def test_secrets_stay_out_of_logs_and_reprs(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither the API key nor a token appears in a server log line or the issuer's repr."""
    caplog.set_level(logging.DEBUG)
    token = await api.login()
    hub = await Hub.connect(base_url(api), "user", token, negotiate=1)
    await hub.invoke("SubscribeOrders", 1)
    await api.place()
    await api.control("tokens", {"action": "revoke"})
    _, key = api.gateway.credentials
    # The server's loggers (the test's own client libraries log their requests: not ours).
    server = ("orderguard", "uvicorn", "websockets.server", "starlette")
    lines = [r.getMessage() for r in caplog.records if r.name.startswith(server)]
    assert any("hub user" in line for line in lines)  # the server did log
    text = "\n".join(lines) + repr(api.gateway.core.tokens)
    assert token not in text and key not in text
    await hub.close()
