"""project-x-py against ``orderguard gateway`` (runs in its own Python >= 3.12 venv).

Reads the gateway's URLs and credentials from the environment variables project-x-py itself
uses (PROJECTX_API_URL, PROJECTX_USER_HUB_URL, PROJECTX_MARKET_HUB_URL, PROJECT_X_USERNAME,
PROJECT_X_API_KEY) and the control URL from ORDERGUARD_CONTROL_URL. Prints one ``STEP name``
line per step that worked and exits non-zero at the first that did not.
"""

import asyncio
import json
import os
import sys
import time
import urllib.request
from typing import Any

import project_x_py.client.base as pxp_client_base
from project_x_py import EventType, TradingSuite
from project_x_py.config import ConfigManager

# project-x-py 4.4.1 reads PROJECTX_API_URL & co. only in ConfigManager.load_config(); the client
# that TradingSuite.create builds takes ProjectXConfig() defaults (the TopstepX URLs). So build
# the env-aware config once and make it the default of every client this process creates.
_ENV_CONFIG = ConfigManager().load_config()
pxp_client_base.ProjectXConfig = lambda: _ENV_CONFIG  # type: ignore[assignment,misc]

CONTROL = os.environ["ORDERGUARD_CONTROL_URL"]
WAIT = 15.0


def control(name: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        f"{CONTROL}/{name}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def _size(event: Any) -> Any:
    """The position size in a realtime position event, whatever its wrapping."""
    data = event.get("data", event) if isinstance(event, dict) else event
    if isinstance(data, dict) and isinstance(data.get("data"), dict):
        data = data["data"]
    return data.get("size") if isinstance(data, dict) else None


def step(name: str) -> None:
    print(f"STEP {name}", flush=True)


async def until(check: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def main() -> None:
    suite = await TradingSuite.create("MNQ", timeframes=["1min"], initial_days=1)
    try:
        await scenario(suite)
    finally:
        await suite.disconnect()


async def scenario(suite: Any) -> None:
    client = suite.client
    account = client.account_info
    assert account is not None and account.id == 1, account
    step("login")
    instrument = await client.get_instrument("MNQ")
    assert instrument.id == "CON.F.US.MNQ.Z26", instrument
    contract = instrument.id
    step("contract")
    bars = await client.get_bars("MNQ", days=1, interval=5)
    assert len(bars) > 10, len(bars)
    step("bars")

    # Raw hub events as project-x-py's realtime client delivers them, and the suite's own events.
    seen: dict[str, list[Any]] = {"order": [], "position": [], "trade": [], "suite": []}

    def collect(kind: str) -> Any:
        async def handler(event: Any) -> None:
            seen[kind].append(event)

        return handler

    realtime = suite.realtime
    await realtime.add_callback("order_update", collect("order"))
    await realtime.add_callback("position_update", collect("position"))
    await realtime.add_callback("trade_execution", collect("trade"))
    for kind in (EventType.ORDER_FILLED, EventType.POSITION_OPENED, EventType.POSITION_CLOSED):
        await suite.on(kind, collect("suite"))

    control("market", {"contractId": contract, "running": False})
    control("price", {"contractId": contract, "price": 21000})
    orders = suite.orders
    limit = await orders.place_limit_order(contract, 0, 1, 20900.0)
    assert limit.success, limit
    step("place")
    assert await orders.modify_order(limit.orderId, limit_price=20901.0)
    found = await orders.get_order_by_id(limit.orderId)
    assert found is not None and found.limitPrice == 20901.0, found
    step("modify")
    assert await orders.cancel_order(limit.orderId)
    step("cancel")

    bracket = await orders.place_order(
        contract_id=contract,
        order_type=2,
        side=0,
        size=1,
        stop_loss_bracket={"ticks": -20, "type": 4},
        take_profit_bracket={"ticks": 40, "type": 1},
    )
    assert bracket.success, bracket
    step("bracket")
    await until(lambda: seen["trade"], "a trade event")
    await until(lambda: seen["position"], "a position event")
    await until(lambda: seen["order"], "order events")
    step("events")
    positions = await suite.positions.get_all_positions()
    assert [p.size for p in positions] == [1], positions
    control("price", {"contractId": contract, "price": 21010.25})  # the take profit trades
    positions_left: list[Any] = [None]

    async def refresh() -> None:
        positions_left[:] = await client.search_open_positions()

    deadline = time.monotonic() + WAIT
    while True:
        await refresh()
        if not positions_left:
            break
        assert time.monotonic() < deadline, positions_left
        await asyncio.sleep(0.1)
    await until(lambda: any(_size(e) == 0 for e in seen["position"]), "a flat position event")
    step("position_closed")

    def suite_saw(kind: Any) -> bool:
        return any(getattr(e, "type", None) == kind for e in seen["suite"])

    for kind in (EventType.ORDER_FILLED, EventType.POSITION_OPENED, EventType.POSITION_CLOSED):
        await until(lambda kind=kind: suite_saw(kind), f"the suite's {kind} event")
    step("suite_events")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as exc:  # one clear line for the test to show
        print(f"FAILED {type(exc).__name__}: {exc}", flush=True)
        raise
    sys.exit(0)
