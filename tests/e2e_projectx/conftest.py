"""End-to-end over loopback: orderguard's ProjectX adapter (REST + our SignalR client) and the
OrderManager against ``orderguard gateway`` (the simulated exchange behind the real protocol).

The gateway runs on the system clock with its random walks paused: prices move only when a test
says so (``/control/price``). Faults are armed through the gateway's control API. Every wait is a
deadline with polling, never a bare sleep.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import pytest

from orderguard.broker.projectx import ProjectXBroker, ProjectXSettings
from orderguard.config import OrderManagerConfig
from orderguard.gateway import Gateway, GatewayConfig
from orderguard.gateway.config import AccountSpec
from orderguard.journal.sqlite import SqliteJournal
from orderguard.orders import OrderManager

MNQ = "CON.F.US.MNQ.Z26"
START = Decimal("21000.00")
WAIT = 10.0


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = WAIT, what: str = ""
) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not in time: {what}")
        await asyncio.sleep(0.02)


class Control:
    """The gateway's control API (loopback only) and its truth."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.client = httpx2.AsyncClient(base_url=gateway.urls.base, timeout=10.0, trust_env=False)

    async def post(self, name: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        r = await self.client.post(f"/control/{name}", json=body or {})
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    async def price(self, price: Decimal | str, contract: str = MNQ) -> None:
        await self.post("price", {"contractId": contract, "price": str(price)})

    async def fault(self, target: str, kind: str, **extra: Any) -> None:
        await self.post("faults", {"target": target, "kind": kind, **extra})

    async def truth(self, account_id: int = 1) -> dict[str, Any]:
        r = await self.client.get("/control/truth")
        for account in r.json()["accounts"]:
            if account["account"]["id"] == account_id:
                return dict(account)
        raise AssertionError(f"no account {account_id}")

    async def working(self, account_id: int = 1) -> list[dict[str, Any]]:
        return [o for o in (await self.truth(account_id))["orders"] if o["status"] in (1, 6, 7, 8)]

    async def position(self, account_id: int = 1, contract: str = MNQ) -> int:
        for p in (await self.truth(account_id))["positions"]:
            if p["contractId"] == contract and p["size"]:
                return int(p["size"]) if p["type"] == 1 else -int(p["size"])
        return 0

    async def aclose(self) -> None:
        await self.client.aclose()


def gateway_config(**over: Any) -> GatewayConfig:
    values: dict[str, Any] = {
        "accounts": (AccountSpec(1, "SIM-1"), AccountSpec(2, "PA-2", native_brackets=False)),
        "seed": 3,
        "start_prices": {MNQ: START},
        # The server pings well inside the client's 2 s silence timeout (ASP.NET's 15 s against
        # the client's 30 s, scaled): a quiet hub is not mistaken for a dead one.
        "keep_alive_interval": 0.5,
    }
    values.update(over)
    return GatewayConfig(**values)


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    async with Gateway(gateway_config()).running(port=0) as gw:
        control = Control(gw)
        for contract in (
            "CON.F.US.MNQ.Z26",
            "CON.F.US.MES.Z26",
            "CON.F.US.ENQ.Z26",
            "CON.F.US.EP.Z26",
        ):
            await control.post("market", {"contractId": contract, "running": False})
        await control.price(START)
        await control.aclose()
        yield gw


@pytest.fixture
async def control(gateway: Gateway) -> AsyncIterator[Control]:
    c = Control(gateway)
    yield c
    await c.aclose()


def settings_for(gateway: Gateway, **over: Any) -> ProjectXSettings:
    user, key = gateway.credentials
    values: dict[str, Any] = {
        "api_key": key,
        "username": user,
        "api_url": gateway.urls.base,
        "first_connect_wait": 5.0,
        "quote_wait": 2.0,
        "keepalive_interval": 0.5,
        "silence_timeout": 2.0,
        "reconnect_initial_delay": 0.05,
        "reconnect_max_delay": 0.5,
        "read_timeout": 2.0,
        "handshake_timeout": 1.0,
        "invoke_timeout": 2.0,
    }
    values.update(over)
    return ProjectXSettings(**values)


FAST = OrderManagerConfig(
    status_check_initial_delay=0.05,
    status_check_max_delay=0.5,
    query_retry_max_total=5.0,
)


@pytest.fixture
async def broker(gateway: Gateway) -> AsyncIterator[ProjectXBroker]:
    b = ProjectXBroker(settings_for(gateway))
    yield b
    await b.aclose()


@pytest.fixture
async def manager(broker: ProjectXBroker, tmp_path: Path) -> AsyncIterator[OrderManager]:
    om = OrderManager(
        broker, account_id=1, journal=SqliteJournal(tmp_path / "journal.db"), config=FAST
    )
    await om.start()
    yield om
    await om.cleanup()
    await om.journal.close()


@pytest.fixture(autouse=True)
async def dump_tasks_if_stuck() -> AsyncIterator[None]:
    """If a test (with its teardown) runs past 60 s, print every task's stack: a hang then says
    where it is instead of only timing out."""

    def dump() -> None:
        print("\n--- asyncio tasks still running after 60 s ---", file=sys.stderr)
        for task in asyncio.all_tasks():
            task.print_stack(file=sys.stderr)

    handle = asyncio.get_running_loop().call_later(60.0, dump)
    yield
    handle.cancel()
