"""Beside a running strategy: the dashboard reads the strategy's journal read-only and broker
truth over the ProjectX REST API of its own, against ``orderguard gateway`` on loopback."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import httpx2
import pytest

from orderguard.broker.projectx import ProjectXBroker, ProjectXSettings
from orderguard.dashboard import JournalSource, RollbackRefusedError
from orderguard.gateway import Gateway, GatewayConfig
from orderguard.gateway.config import AccountSpec
from orderguard.journal.sqlite import SqliteJournal
from orderguard.orders import OrderManager
from orderguard.orders.bracket.values import BracketOutcome

MNQ = "CON.F.US.MNQ.Z26"


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    config = GatewayConfig(
        accounts=(AccountSpec(1, "SIM-1"),), seed=3, start_prices={MNQ: Decimal("21000.00")}
    )
    async with Gateway(config).running(port=0) as gw:
        async with httpx2.AsyncClient(base_url=gw.urls.base, trust_env=False) as control:
            # Prices move only when told: the bracket's exits are not reached meanwhile.
            r = await control.post("/control/market", json={"contractId": MNQ, "running": False})
            assert r.status_code == 200, r.text
        yield gw


def settings(gateway: Gateway) -> ProjectXSettings:
    user, key = gateway.credentials
    return ProjectXSettings(
        api_key=key, username=user, api_url=gateway.urls.base, first_connect_wait=5.0
    )


async def test_journal_and_broker_truth_beside_the_strategy(
    gateway: Gateway, tmp_path: Path
) -> None:
    """The strategy's protected bracket shows from its journal, its position from the broker
    (covered by its stop), and a rollback is refused: this source owns nothing."""
    path = tmp_path / "journal.db"
    strategy_broker = ProjectXBroker(settings(gateway))
    orders = OrderManager(strategy_broker, account_id=1, journal=SqliteJournal(path))
    reader = ProjectXBroker(settings(gateway), realtime=False)
    try:
        await orders.start()
        placed = await orders.place_bracket_order(
            MNQ, 0, 2, None, Decimal("20990"), Decimal("21010"), entry_type="market"
        )
        assert placed.outcome is BracketOutcome.PROTECTED
        await orders.journal.flush()

        source = JournalSource(path, broker=reader, truth_every=60.0)
        state = await source.snapshot()
        [op] = state["operations"]
        assert op["id"] == placed.operation_id and op["state"] == "in_progress"
        assert {leg["leg"] for leg in op["legs"]} >= {"entry"}
        [position] = state["positions"]
        assert (position["size"], position["stop_cover"], position["status"]) == (
            2,
            2,
            "protected",
        )
        assert state["truth"]["error"] is None
        with pytest.raises(RollbackRefusedError):
            await source.rollback(placed.operation_id)
    finally:
        await orders.cleanup()
        await orders.journal.close()
        await strategy_broker.aclose()
        await reader.aclose()


async def test_the_command_beside_a_strategy_on_a_running_gateway(
    gateway: Gateway, tmp_path: Path
) -> None:
    """`orderguard dashboard --broker projectx --api-url URL --journal FILE`: the page's state
    has the strategy's bracket and its protected position; Ctrl-C ends it with status 0."""
    path = tmp_path / "journal.db"
    strategy_broker = ProjectXBroker(settings(gateway))
    orders = OrderManager(strategy_broker, account_id=1, journal=SqliteJournal(path))
    user, key = gateway.credentials
    env = {**os.environ, "PROJECT_X_USERNAME": user, "PROJECT_X_API_KEY": key}
    try:
        await orders.start()
        placed = await orders.place_bracket_order(
            MNQ, 0, 1, None, Decimal("20990"), Decimal("21010"), entry_type="market"
        )
        await orders.journal.flush()
        proc = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "orderguard"),
            "dashboard", "--broker", "projectx", "--api-url", gateway.urls.base,
            "--journal", str(path), "--port", "0",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            match = re.search(r"(http://127\.0\.0\.1:\d+)/#token=", line)
            assert match, line
            async with httpx2.AsyncClient(base_url=match.group(1), trust_env=False) as page:
                state = (await page.get("/api/state", timeout=10)).json()
        finally:
            proc.send_signal(signal.SIGINT)
            _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()
        assert [op["id"] for op in state["operations"]] == [placed.operation_id]
        [position] = state["positions"]
        assert position["status"] == "protected" and position["size"] == 1
        assert key not in err.decode()
    finally:
        await orders.cleanup()
        await orders.journal.close()
        await strategy_broker.aclose()
