"""project-x-py 4.4.1's ``place_bracket_order`` against the gateway (runs in its own venv).

Environment: project-x-py's own variables (PROJECTX_API_URL, PROJECTX_USER_HUB_URL,
PROJECTX_MARKET_HUB_URL, PROJECT_X_USERNAME, PROJECT_X_API_KEY, PROJECT_X_ACCOUNT_NAME) plus
the bench's (see common.py). One JSON object per line on stdout.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import project_x_py.client.base as pxp_client_base
from common import (
    ACCOUNT_ID,
    BRACKETS,
    CONTRACT,
    SCENARIOS,
    SETTLE,
    START,
    STOP_POINTS,
    TARGET_TRADES,
    arm,
    control,
    emit,
    fail,
    flatten,
    price,
    truth,
    wall,
)
from project_x_py import TradingSuite
from project_x_py.config import ConfigManager

# project-x-py 4.4.1 reads PROJECTX_API_URL & co. only in ConfigManager.load_config(); the client
# TradingSuite.create builds takes ProjectXConfig() defaults (TopstepX). Same fix as the fidelity
# test (tests/gateway/pxp/scenario.py).
_ENV_CONFIG = ConfigManager().load_config()
pxp_client_base.ProjectXConfig = lambda: _ENV_CONFIG  # type: ignore[assignment,misc]
logging.disable(logging.CRITICAL)  # its INFO logging per order would cost it time


async def bracket(suite: Any) -> Any:
    return await suite.orders.place_bracket_order(
        contract_id=CONTRACT,
        side=0,
        size=1,
        entry_price=None,
        stop_loss_price=START - STOP_POINTS,
        take_profit_price=START + STOP_POINTS,
        entry_type="market",
    )


async def flat(seconds: float = 15.0) -> bool:
    """Watch the gateway's truth (the control API: not the client's requests, not counted)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not [p for p in truth()["positions"] if p["contractId"] == CONTRACT and p["size"]]:
            return True
        await asyncio.sleep(0.05)
    return False


async def lifecycles(suite: Any) -> None:
    for i in range(BRACKETS):
        price(START)
        t0w, t0 = wall(), time.perf_counter()
        error = None
        response: Any = None
        try:
            response = await bracket(suite)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        ttp = time.perf_counter() - t0
        price(TARGET_TRADES)
        went_flat = await flat()
        await asyncio.sleep(1.0)  # what the client does after the exit (cancelling the stop)
        end = wall()
        left = flatten()
        emit(
            "lifecycle",
            i=i,
            t0=t0w,
            end=end,
            ttp=ttp,
            ok=bool(response is not None and getattr(response, "success", False)),
            entry=getattr(response, "entry_order_id", None),
            stop=getattr(response, "stop_order_id", None),
            target=getattr(response, "target_order_id", None),
            flat=went_flat,
            left_working=left,
            error=error,
        )


async def faults(suite: Any) -> None:
    for scenario in SCENARIOS:
        price(START)
        control("faults/clear")
        arm(scenario)
        t0w = wall()
        try:
            response = await asyncio.wait_for(bracket(suite), 90)  # its own fill wait is 60 s
            result = f"returned success={getattr(response, 'success', None)}"
        except Exception as exc:
            result = f"raised {type(exc).__name__}: {str(exc)[:160]}"
        await asyncio.sleep(SETTLE)  # what the client does on its own meanwhile
        control("faults/clear")
        emit("fault", scenario=scenario, t0=t0w, result=result, truth=truth())
        flatten()
        await asyncio.sleep(0.5)


async def main() -> None:
    control("market", {"contractId": CONTRACT, "running": False})
    suite = await TradingSuite.create("MNQ", timeframes=["1min"], initial_days=1)
    try:
        account = suite.client.account_info
        assert account is not None and account.id == ACCOUNT_ID, account
        emit("ready", account=account.id)
        await lifecycles(suite)
        await faults(suite)
    finally:
        await suite.disconnect()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as exc:
        fail(exc)
