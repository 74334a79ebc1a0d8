"""A live gateway on 127.0.0.1 (port 0) per test, on a virtual clock, and a SignalR test client.

The exchange, the tokens and the rate limits run on a ``VirtualClock``: prices move and tokens
expire only when a test says so (``clock.advance`` or the control API), so nothing here waits for
time to pass. Network I/O is real loopback HTTP and WebSocket.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx2 as httpx
import pytest
import websockets

from orderguard.clock import VirtualClock
from orderguard.gateway import Gateway, GatewayConfig

MNQ = "CON.F.US.MNQ.Z26"
RS = "\x1e"
WAIT = 5.0  # generous: a deadline for things that should happen at once


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = WAIT) -> None:
    """Poll ``check`` until it holds (never a fixed sleep to "wait for" something)."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


class Api:
    """A logged-in REST client of one gateway."""

    def __init__(self, gateway: Gateway, client: httpx.AsyncClient) -> None:
        self.gateway = gateway
        self.client = client
        self.token = ""

    async def login(self) -> str:
        user, key = self.gateway.credentials
        r = await self.client.post("/api/Auth/loginKey", json={"userName": user, "apiKey": key})
        assert r.status_code == 200 and r.json()["success"], r.text
        self.token = r.json()["token"]
        return self.token

    async def call(
        self, path: str, body: Any = None, *, token: str | None = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token if token is not None else self.token}"}
        return await self.client.post(f"/api/{path}", json=body, headers=headers)

    async def ok(self, path: str, body: Any = None) -> dict[str, Any]:
        r = await self.call(path, body)
        assert r.status_code == 200, (r.status_code, r.text)
        data: dict[str, Any] = r.json()
        assert data["success"] is (data["errorCode"] == 0)
        return data

    async def control(self, name: str, body: Any = None) -> dict[str, Any]:
        r = await self.client.post(f"/control/{name}", json=body or {})
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    async def truth(self) -> dict[str, Any]:
        r = await self.client.get("/control/truth")
        data: dict[str, Any] = r.json()["accounts"][0]
        return data

    async def price(self, price: str, contract: str = MNQ) -> None:
        await self.control("price", {"contractId": contract, "price": price})

    async def place(self, **fields: Any) -> dict[str, Any]:
        body = {"accountId": 1, "contractId": MNQ, "type": 2, "side": 0, "size": 1, **fields}
        return await self.ok("Order/place", body)


class Hub:
    """A minimal SignalR JSON client over ``websockets``, for asserting what the server sends."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self._ids = 0

    @classmethod
    async def connect(cls, base: str, hub: str, token: str, *, negotiate: int | None = None) -> Hub:
        url = f"{base.replace('http', 'ws', 1)}/hubs/{hub}?access_token={token}"
        if negotiate is not None:
            async with httpx.AsyncClient(verify=False) as client:
                r = await client.post(
                    f"{base}/hubs/{hub}/negotiate?negotiateVersion={negotiate}",
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert r.status_code == 200, r.text
                data = r.json()
                url += f"&id={data.get('connectionToken', data['connectionId'])}"
        ws = await websockets.connect(url)
        await ws.send(json.dumps({"protocol": "json", "version": 1}) + RS)
        assert await asyncio.wait_for(ws.recv(), WAIT) == "{}" + RS
        return cls(ws)

    async def _pump(self) -> None:
        raw = await asyncio.wait_for(self.ws.recv(), WAIT)
        text = raw if isinstance(raw, str) else raw.decode()
        for part in text.split(RS)[:-1]:
            self.messages.append(json.loads(part))

    async def invoke(self, target: str, *arguments: Any) -> dict[str, Any]:
        self._ids += 1
        invocation_id = str(self._ids)
        message = {"type": 1, "invocationId": invocation_id, "target": target,
                   "arguments": list(arguments)}  # fmt: skip
        await self.ws.send(json.dumps(message) + RS)
        return await self.next(lambda m: m.get("invocationId") == invocation_id)

    async def next(self, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT
        while True:
            for index, message in enumerate(self.messages):
                if match(message):
                    return self.messages.pop(index)
            if time.monotonic() > deadline:
                raise AssertionError(f"no matching message; have {self.messages}")
            await self._pump()

    async def event(self, target: str) -> list[Any]:
        message = await self.next(lambda m: m.get("type") == 1 and m.get("target") == target)
        arguments: list[Any] = message["arguments"]
        return arguments

    async def events_now(self, wait: float = 0.3) -> list[dict[str, Any]]:
        """Everything that arrives within ``wait`` (for asserting that nothing came)."""
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            try:
                raw = await asyncio.wait_for(self.ws.recv(), left)
            except TimeoutError:
                break
            text = raw if isinstance(raw, str) else raw.decode()
            self.messages += [json.loads(p) for p in text.split(RS)[:-1]]
        found = [m for m in self.messages if m.get("type") == 1]
        self.messages = [m for m in self.messages if m.get("type") != 1]
        return found

    async def close(self) -> None:
        await self.ws.close()


GatewayFactory = Callable[..., Awaitable[Api]]


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
async def start_gateway(clock: VirtualClock) -> AsyncIterator[GatewayFactory]:
    """Start gateways (any config) for this test; all are stopped at its end."""
    stack: list[tuple[Gateway, httpx.AsyncClient]] = []

    async def start(config: GatewayConfig | None = None, **kwargs: Any) -> Api:
        config = config or GatewayConfig(start_prices={MNQ: Decimal("21000")}, history_days=0.1)
        gateway = Gateway(config, clock=kwargs.pop("clock", clock), **kwargs)
        urls = await gateway.start()
        client = httpx.AsyncClient(base_url=urls.base, timeout=WAIT, verify=False)
        stack.append((gateway, client))
        return Api(gateway, client)

    yield start
    for gateway, client in reversed(stack):
        await client.aclose()
        await gateway.stop()


@pytest.fixture
async def api(start_gateway: GatewayFactory) -> Api:
    """A running default gateway (MNQ at 21000.00) and a logged-in client."""
    client = await start_gateway()
    await client.login()
    return client


def base_url(api: Api) -> str:
    assert api.gateway.urls is not None
    return api.gateway.urls.base
