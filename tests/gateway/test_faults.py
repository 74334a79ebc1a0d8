"""Every injected fault, seen from a client on the wire, and checked against exchange truth."""

from __future__ import annotations

from typing import Any

import httpx2 as httpx
import pytest

from .conftest import MNQ, Api, Hub, base_url, eventually

ORDER = {"accountId": 1, "contractId": MNQ, "type": 1, "side": 0, "size": 1, "limitPrice": 20000}


async def _arm(api: Api, kind: str, target: str = "Order/place", **extra: Any) -> None:
    await api.control("faults", {"target": target, "kind": kind, **extra})


async def _orders(api: Api) -> int:
    return len((await api.truth())["orders"])


@pytest.mark.parametrize(
    ("kind", "status", "code", "executed"),
    [
        ("reject", 200, 2, False),
        ("rate_limited", 429, None, False),
        ("http_500", 500, None, False),
        ("server_error", 500, None, True),
        ("pending", 200, 6, True),
        ("unknown_code", 200, 99, True),
        ("rate_limited_after_send", 429, None, True),
    ],
)
async def test_answer_faults(
    api: Api, kind: str, status: int, code: int | None, executed: bool
) -> None:
    """Each answer fault gives its status/code, and executes the order or not, as documented."""
    await _arm(api, kind)
    r = await api.call("Order/place", ORDER)
    assert r.status_code == status
    if code is not None:
        assert r.json()["errorCode"] == code and r.json()["success"] is False
    assert await _orders(api) == (1 if executed else 0)
    assert (await api.call("Order/place", ORDER)).json()["success"]  # one shot only


@pytest.mark.parametrize(("kind", "executed"), [("fail_before_send", False), ("lost", False),
                                                ("ambiguous", True)])  # fmt: skip
async def test_connection_closing_faults(api: Api, kind: str, executed: bool) -> None:
    """No answer at all: the client sees the connection drop; truth says whether it ran."""
    await _arm(api, kind)
    with pytest.raises(httpx.TransportError):
        await api.call("Order/place", ORDER)
    assert await _orders(api) == (1 if executed else 0)


async def test_late_execution(api: Api) -> None:
    """late: no answer now, the order appears a moment later."""
    await _arm(api, "late", seconds=0.2)
    with pytest.raises(httpx.TransportError):
        await api.call("Order/place", ORDER)
    assert await _orders(api) == 0

    async def placed() -> bool:
        return await _orders(api) == 1

    await eventually(placed)


async def test_response_held_past_the_client_timeout(api: Api) -> None:
    """hold: the order executes but the answer comes after the client has given up."""
    await _arm(api, "hold", seconds=1.0)
    headers = {"Authorization": f"Bearer {api.token}"}
    with pytest.raises(httpx.ReadTimeout):
        await api.client.post("/api/Order/place", json=ORDER, headers=headers, timeout=0.2)
    assert await _orders(api) == 1


async def test_delay_and_query_faults_on_any_endpoint(api: Api) -> None:
    """delay still answers; a query error on "*" hits whatever comes next."""
    await _arm(api, "delay", seconds=0.05)
    assert (await api.call("Order/place", ORDER)).json()["success"]
    await _arm(api, "query_error", target="*")
    assert (await api.call("Order/searchOpen", {"accountId": 1})).status_code == 500
    assert (await api.call("Order/searchOpen", {"accountId": 1})).status_code == 200


async def test_fault_count_and_clear(api: Api) -> None:
    """count N fires N times; clear disarms what is left."""
    await _arm(api, "reject", count=2, code=3, message="no margin")
    for _ in range(2):
        data = (await api.call("Order/place", ORDER)).json()
        assert data["errorCode"] == 3 and data["errorMessage"] == "no margin"
    await _arm(api, "reject", count=5)
    await api.control("faults/clear")
    assert (await api.call("Order/place", ORDER)).json()["success"]
    r = await api.client.post("/control/faults", json={"target": "x", "kind": "nonsense"})
    assert r.status_code == 400


# -- event faults --------------------------------------------------------------------------------


async def _order_events(api: Api) -> tuple[Hub, list[int]]:
    hub = await Hub.connect(base_url(api), "user", api.token)
    await hub.invoke("SubscribeOrders", 1)
    return hub, []


async def test_event_drop_and_duplicate(api: Api) -> None:
    """drop loses the next event; duplicate sends it twice."""
    hub, _ = await _order_events(api)
    await _arm(api, "drop", target="hub:user")
    await api.place(**{k: v for k, v in ORDER.items() if k != "accountId"})
    assert await hub.events_now(0.2) == []
    await _arm(api, "duplicate", target="hub:user")
    await api.place(**{k: v for k, v in ORDER.items() if k != "accountId"})
    events = await hub.events_now(0.2)
    assert [e["arguments"][0]["data"]["id"] for e in events] == [2, 2]
    await hub.close()


async def test_event_delay_and_reorder(api: Api) -> None:
    """event_delay lets a later event overtake; reorder swaps two neighbours."""
    hub, _ = await _order_events(api)
    limit = {k: v for k, v in ORDER.items() if k != "accountId"}
    await _arm(api, "reorder", target="hub:user")
    await api.place(**limit)
    await api.place(**limit)
    events = await hub.events_now(0.2)
    assert [e["arguments"][0]["data"]["id"] for e in events] == [2, 1]
    await _arm(api, "event_delay", target="hub:user", seconds=0.2)
    await api.place(**limit)
    await api.place(**limit)
    first = await hub.event("GatewayUserOrder")
    second = await hub.event("GatewayUserOrder")
    assert [first[0]["data"]["id"], second[0]["data"]["id"]] == [4, 3]
    await hub.close()


async def test_event_disconnect_and_go_silent(api: Api) -> None:
    """disconnect closes the hub's sockets; go_silent keeps them open and quiet."""
    hub = await Hub.connect(base_url(api), "market", api.token)
    await _arm(api, "go_silent", target="hub:market", seconds=0.3)
    status = (await api.client.get("/control/status")).json()
    assert status["hubs"]["market"]["silent"] and status["hubs"]["market"]["connections"] == 1
    await _arm(api, "disconnect", target="hub:market")

    async def closed() -> bool:
        status = (await api.client.get("/control/status")).json()
        return bool(status["hubs"]["market"]["connections"] == 0)

    await eventually(closed)
    await hub.close()
