"""The SignalR hubs over real WebSockets: negotiate, handshake, subscriptions, events, pings."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx2 as httpx
import pytest
import websockets

from orderguard.gateway import GatewayConfig
from orderguard.gateway.config import UserEventShape

from .conftest import MNQ, RS, WAIT, Api, GatewayFactory, Hub, base_url


@pytest.mark.parametrize("version", [None, 0, 1])
async def test_connect_with_and_without_negotiate(api: Api, version: int | None) -> None:
    """skipNegotiation (direct WebSocket) and negotiate v0/v1 all reach a working hub."""
    hub = await Hub.connect(base_url(api), "user", api.token, negotiate=version)
    assert (await hub.invoke("SubscribeOrders", 1)) == {"type": 3, "invocationId": "1"}
    await api.place()
    (payload,) = await hub.event("GatewayUserOrder")
    assert payload["action"] == 0 and payload["data"]["status"] == 1
    await hub.close()


async def test_negotiate_shapes(api: Api) -> None:
    """v1 has a connectionToken apart from the connectionId; v0 has neither token nor v1."""
    headers = {"Authorization": f"Bearer {api.token}"}
    url = f"{base_url(api)}/hubs/market/negotiate"
    v1 = (await api.client.post(f"{url}?negotiateVersion=1", headers=headers)).json()
    assert v1["negotiateVersion"] == 1 and v1["connectionToken"] != v1["connectionId"]
    assert v1["availableTransports"][0]["transport"] == "WebSockets"
    v0 = (await api.client.post(url, headers=headers)).json()
    assert v0["negotiateVersion"] == 0 and "connectionToken" not in v0
    assert (await api.client.post(url)).status_code == 401


async def test_bad_token_and_unknown_connection_id_are_refused(api: Api) -> None:
    """The upgrade is refused: 401 for a bad token, 404 for an id nobody negotiated."""
    ws_base = base_url(api).replace("http", "ws", 1)
    with pytest.raises(websockets.InvalidStatus) as bad:
        await websockets.connect(f"{ws_base}/hubs/user?access_token=nope")
    assert bad.value.response.status_code == 401
    with pytest.raises(websockets.InvalidStatus) as unknown:
        await websockets.connect(f"{ws_base}/hubs/user?access_token={api.token}&id=nobody")
    assert unknown.value.response.status_code == 404


async def test_handshake_with_another_protocol_is_refused(api: Api) -> None:
    """{"protocol":"messagepack"} gets a handshake error and a closed socket."""
    ws_base = base_url(api).replace("http", "ws", 1)
    async with websockets.connect(f"{ws_base}/hubs/user?access_token={api.token}") as ws:
        await ws.send(json.dumps({"protocol": "messagepack", "version": 1}) + RS)
        answer = json.loads((await ws.recv()).rstrip(RS))
        assert "messagepack" in answer["error"]


async def test_invocation_errors_come_back_as_completions(api: Api) -> None:
    """Unknown method, wrong argument count or type: a completion with an error."""
    hub = await Hub.connect(base_url(api), "user", api.token)
    assert "does not exist" in (await hub.invoke("SubscribeEverything"))["error"]
    assert "expects 0" in (await hub.invoke("SubscribeAccounts", 1))["error"]
    assert "binding arguments" in (await hub.invoke("SubscribeOrders", "one"))["error"]
    await hub.close()


async def test_user_events_of_a_fill(api: Api) -> None:
    """A fill sends order, trade, position and account events to the subscribed connection."""
    hub = await Hub.connect(base_url(api), "user", api.token)
    for method in ("SubscribeOrders", "SubscribePositions", "SubscribeTrades"):
        assert "error" not in await hub.invoke(method, 1)
    assert "error" not in await hub.invoke("SubscribeAccounts")
    await api.place(size=2)
    filled = [(await hub.event("GatewayUserOrder"))[0] for _ in range(2)][-1]
    assert filled == {"action": 1, "data": filled["data"]}
    assert filled["data"]["status"] == 2 and filled["data"]["fillVolume"] == 2
    (trade,) = await hub.event("GatewayUserTrade")
    assert trade["data"]["size"] == 2 and trade["data"]["profitAndLoss"] is None
    (position,) = await hub.event("GatewayUserPosition")
    assert position["data"]["size"] == 2 and position["data"]["type"] == 1
    (account,) = await hub.event("GatewayUserAccount")
    assert account["data"]["id"] == 1
    await api.ok("Position/closeContract", {"accountId": 1, "contractId": MNQ})
    while True:  # the close reports the position flat (size 0), action 2
        (closed,) = await hub.event("GatewayUserPosition")
        if closed["data"]["size"] == 0:
            break
    assert closed["action"] == 2
    await hub.close()


async def test_bare_user_events_switch(start_gateway: GatewayFactory) -> None:
    """user_event_shape=bare sends the entity itself."""
    config = GatewayConfig(
        user_event_shape=UserEventShape.BARE, start_prices={MNQ: Decimal(21000)}, history_days=0
    )
    api = await start_gateway(config)
    await api.login()
    hub = await Hub.connect(base_url(api), "user", api.token)
    await hub.invoke("SubscribeOrders", 1)
    order_id = (await api.place())["orderId"]
    (order,) = await hub.event("GatewayUserOrder")
    assert order["id"] == order_id and "action" not in order
    await hub.close()


async def test_other_accounts_events_are_not_sent(api: Api) -> None:
    """A subscription to account 2's orders receives nothing about account 1."""
    hub = await Hub.connect(base_url(api), "user", api.token)
    await hub.invoke("SubscribeOrders", 2)
    await api.place()
    assert await hub.events_now() == []
    await hub.close()


async def test_market_events_carry_contract_id_and_payload(api: Api) -> None:
    """Quote (object), trade and depth (arrays) arrive as (contractId, payload)."""
    hub = await Hub.connect(base_url(api), "market", api.token)
    await hub.invoke("SubscribeContractQuotes", MNQ)
    await hub.invoke("SubscribeContractTrades", MNQ)
    await hub.invoke("SubscribeContractMarketDepth", MNQ)
    contract_id, snapshot = await hub.event("GatewayQuote")  # a snapshot on subscribe
    assert contract_id == MNQ and snapshot["symbol"] == "F.US.MNQ"
    _, book = await hub.event("GatewayDepth")
    assert book[0]["type"] == 6  # Reset, then the levels
    await api.price("21001.00")
    contract_id, quote = await hub.event("GatewayQuote")
    assert (
        quote["lastPrice"] == 21001 and quote["bestBid"] == 21001 and quote["bestAsk"] == 21001.25
    )
    contract_id, prints = await hub.event("GatewayTrade")
    assert contract_id == MNQ and prints[0]["price"] == 21001 and prints[0]["type"] == 0
    _, levels = await hub.event("GatewayDepth")
    assert {lvl["type"] for lvl in levels} >= {3, 4} and isinstance(levels, list)
    await hub.invoke("UnsubscribeContractQuotes", MNQ)
    await hub.invoke("UnsubscribeContractTrades", MNQ)
    await hub.invoke("UnsubscribeContractMarketDepth", MNQ)
    await api.price("21002.00")
    assert await hub.events_now() == []
    await hub.close()


async def test_reconnect_starts_without_subscriptions(api: Api) -> None:
    """After the server drops the hub, a new connection gets nothing until it subscribes."""
    hub = await Hub.connect(base_url(api), "user", api.token)
    await hub.invoke("SubscribeOrders", 1)
    assert (await api.control("hubs", {"hub": "user", "action": "disconnect"}))["closed"] == 1
    again = await Hub.connect(base_url(api), "user", api.token)
    await api.place()
    assert await again.events_now() == []
    await again.invoke("SubscribeOrders", 1)
    await api.place()
    assert (await again.event("GatewayUserOrder"))[0]["data"]["id"] == 2
    await again.close()


async def test_pings_both_ways_and_client_timeout(start_gateway: GatewayFactory) -> None:
    """The server pings every keep-alive interval, takes pings, and closes a silent client."""
    config = GatewayConfig(keep_alive_interval=0.05, client_timeout=0.5, history_days=0)
    api = await start_gateway(config)
    await api.login()
    hub = await Hub.connect(base_url(api), "user", api.token)
    assert await hub.next(lambda m: m.get("type") == 6) == {"type": 6}
    await hub.ws.send(json.dumps({"type": 6}) + RS)  # a client ping is just traffic
    close = await hub.next(lambda m: m.get("type") == 7)
    assert "timeout" in close["error"].lower()


async def test_graceful_disconnect_sends_close(api: Api) -> None:
    """A graceful server disconnect sends a Close message (type 7) with allowReconnect."""
    hub = await Hub.connect(base_url(api), "market", api.token)
    await api.control("hubs", {"hub": "market", "action": "disconnect", "graceful": True})
    close = await hub.next(lambda m: m.get("type") == 7)
    assert close["allowReconnect"] is True


async def test_logout_ends_hub_connections(api: Api) -> None:
    """Logging out sends GatewayLogout and closes the session's sockets."""
    hub = await Hub.connect(base_url(api), "user", api.token)
    await api.ok("Auth/logout")
    assert await hub.event("GatewayLogout") == []
    close = await hub.next(lambda m: m.get("type") == 7)
    assert close["allowReconnect"] is False


async def test_negotiate_is_case_insensitive_too(api: Api) -> None:
    headers = {"Authorization": f"Bearer {api.token}"}
    async with httpx.AsyncClient(timeout=WAIT, verify=False) as client:
        r = await client.post(f"{base_url(api)}/Hubs/User/Negotiate?negotiateVersion=1",
                              headers=headers)  # fmt: skip
    assert r.status_code == 200
