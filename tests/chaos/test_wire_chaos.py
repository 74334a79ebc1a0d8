"""Chaos over the wire: the workload in real time against the gateway simulator, invariants from
the server's truth (``orderguard chaos --broker projectx``).

Real time and loopback I/O: a few short seeds per test, every wait bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from typer.testing import CliRunner

from orderguard.chaos.report import ChaosConfig
from orderguard.chaos.truth import ControlClient, GatewayTruth
from orderguard.chaos.wire import START_PRICES, WireChaosConfig, WireTarget, run_wire_chaos_async
from orderguard.chaos.workload import RESTING_CONTRACT
from orderguard.cli.app import app
from orderguard.gateway import Gateway, GatewayConfig

pytestmark = pytest.mark.timeout(60)


def config(operations: int, faults: str, outside: str) -> WireChaosConfig:
    return WireChaosConfig(
        chaos=ChaosConfig(operations=operations, faults=faults, outside_actor=outside)
    )


@contextlib.asynccontextmanager
async def gateway() -> AsyncIterator[Gateway]:
    cfg = GatewayConfig(seed=5, start_prices=dict(START_PRICES), keep_alive_interval=1.0)
    async with Gateway(cfg).running(port=0) as gw:
        yield gw


def target_of(gw: Gateway, *, control: bool) -> WireTarget:
    assert gw.urls is not None
    user, key = gw.credentials
    return WireTarget(
        gw.urls.base,
        control_url=gw.urls.base if control else None,
        username=user,
        api_key=key,
    )


async def test_seeds_with_every_wire_fault_and_the_outside_actor_hold_the_invariants() -> None:
    """Two seeds against an embedded gateway each: faults armed through its control API (lost
    answers, 500s, Pending, 429s, held answers, dropped and silent hubs, duplicated, reordered
    and lost events), the platform closing positions and cancelling exits; I1-I5 and the
    bounds from the gateway's truth."""
    report = await run_wire_chaos_async([1, 4], config(6, "all", "on"))
    assert report.errors == [], report.to_text()
    assert report.violations == [], report.to_text()
    assert sum(report.operations.values()) == 12
    assert sum(report.faults.values()) > 0, "no fault was armed"
    assert report.quiet_points >= 4
    assert report.variants["outside=on"] == 2


async def test_an_outside_position_nobody_owns_is_reported() -> None:
    """The run judges the server's book, not the client's belief: a position the platform opens
    on the account mid-run (not the workload's outside actor, so nobody accounts for it) is an
    I1 violation. Also the path of a server given by URL (the account must start flat)."""
    async with gateway() as gw:
        target = target_of(gw, control=True)
        control = ControlClient(target.control_url or "")

        async def rogue() -> None:
            truth = GatewayTruth(control)
            async with asyncio.timeout(20):
                while not (await truth.read(1)).orders:  # noqa: ASYNC110  (the server's book)
                    await asyncio.sleep(0.02)  # until the run has begun placing
            await control.post(
                "orders/place",
                {"accountId": 1, "contractId": RESTING_CONTRACT, "type": 2, "side": 0, "size": 1},
            )

        task = asyncio.create_task(rogue())
        try:
            report = await run_wire_chaos_async([7], config(4, "none", "off"), target)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await control.aclose()
    found = [v for v in report.violations if v.invariant == "I1" and RESTING_CONTRACT in v.detail]
    assert found, report.to_text()
    assert "operations own +0" in found[0].detail


async def test_any_server_without_a_control_api_is_judged_from_its_rest_answers() -> None:
    """No control API: the truth comes from Order/search and Position/searchOpen through a
    session of its own, at quiet points; no faults, no outside actor. The account is left flat."""
    async with gateway() as gw:
        report = await run_wire_chaos_async(
            [2], config(5, "all", "on"), target_of(gw, control=False)
        )
        control = ControlClient(target_of(gw, control=True).control_url or "")
        truth = await GatewayTruth(control).read(1)
        await control.aclose()
    assert report.errors == [], report.to_text()
    assert report.violations == [], report.to_text()
    assert report.quiet_points >= 1
    assert sum(report.faults.values()) == 0
    assert report.variants["outside=off"] == 1
    assert truth.positions == () and not [o for o in truth.orders if o.is_working]


async def test_seeds_in_turn_on_one_server_are_judged_on_their_own_orders() -> None:
    """Two seeds against the same gateway, the outside actor closing positions: each seed
    leaves the account flat, and the second is judged only on the orders placed since it began
    (the first seed's fills, the platform's untagged closes among them, are not its own)."""
    async with gateway() as gw:
        report = await run_wire_chaos_async(
            [3, 6], config(5, "none", "on"), target_of(gw, control=True)
        )
    assert report.errors == [], report.to_text()
    assert report.violations == [], report.to_text()
    assert report.variants["outside=on"] == 2


async def test_a_server_that_is_not_flat_is_refused() -> None:
    """Positions the run did not make would make ownership uncheckable: the seed is refused."""
    async with gateway() as gw:
        target = target_of(gw, control=True)
        control = ControlClient(target.control_url or "")
        await control.post(
            "orders/place",
            {"accountId": 1, "contractId": RESTING_CONTRACT, "type": 2, "side": 1, "size": 1},
        )
        await control.aclose()
        report = await run_wire_chaos_async([0], config(2, "none", "off"), target)
    assert any("not flat" in e for e in report.errors), report.to_text()
    assert report.operations.total() == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--api-url", "https://api.topstepx.com"], "not on this machine"),
        (["--crash"], "not available over the wire"),
    ],
)
def test_the_cli_refuses_a_remote_server_and_crashes(args: list[str], message: str) -> None:
    """Nothing is contacted: a remote server needs --allow-remote, crashes are not wired."""
    result = CliRunner().invoke(app, ["chaos", "--broker", "projectx", "--seeds", "1", *args])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def test_the_cli_runs_a_seed_over_the_wire() -> None:
    """``orderguard chaos --broker projectx`` with no URL: an embedded gateway on 127.0.0.1."""
    result = CliRunner().invoke(
        app, ["chaos", "--broker", "projectx", "--seeds", "1", "--operations", "3", "--json"]
    )
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.output)
    assert data["seeds"] == 1 and data["violations"] == [] and data["errors"] == []
