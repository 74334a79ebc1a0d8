"""A real crash: the manager in a subprocess, SIGKILLed at points of a bracket's life; a new
OrderManager (this process) recovers from the SQLite journal over the wire, and the invariants
are checked from the gateway's truth (F6, F21, I1–I3)."""

from __future__ import annotations

import asyncio
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from test_e2e_faults import assert_safe

from conftest import FAST, Control, eventually, settings_for
from orderguard.broker.projectx import ProjectXBroker
from orderguard.gateway import Gateway
from orderguard.journal.sqlite import SqliteJournal
from orderguard.orders import OrderManager

WORKER = Path(__file__).with_name("crash_worker.py")


async def run_until_killed(gateway: Gateway, journal: Path, account: int, die_at: str) -> None:
    user, key = gateway.credentials
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(WORKER), gateway.urls.base, user, key, str(journal), str(account),
        die_at, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
        raise AssertionError(
            f"worker not killed: {out.decode()[-1500:]} {err.decode()[-3000:]}"
        ) from None
    assert proc.returncode == -9, (
        f"worker was not killed ({proc.returncode}): {err.decode()[-2000:]}"
    )


async def _safe(control: Control, account: int) -> bool:
    try:
        await assert_safe(control, account)
    except AssertionError:
        return False
    return await control.position(account) in (0, 1)


@pytest.mark.parametrize(
    ("account", "die_at"),
    [
        (1, "after_place_1"),  # native: entry and server-side legs exist, outcome never journaled
        (1, "protected"),
        # Account 2 is on Position Brackets: place 1 is the refused native try, 2 the entry.
        (2, "after_place_2"),  # client-side: the entry filled, no stop yet, answer lost
        (2, "before_place_3"),  # client-side: filled entry journaled, the stop never sent
        (2, "protected"),  # client-side: stop and target working
    ],
)
async def test_sigkill_mid_bracket_then_recover(
    gateway: Gateway, control: Control, tmp_path: Path, account: int, die_at: str
) -> None:
    journal = tmp_path / "journal.db"
    await run_until_killed(gateway, journal, account, die_at)
    assert await control.position(account) == 1  # the entry filled before every crash point

    broker = ProjectXBroker(settings_for(gateway))
    om = OrderManager(broker, account_id=account, journal=SqliteJournal(journal), config=FAST)
    try:
        # start() waits out the dead process's in-flight requests (DEFAULT_IN_FLIGHT_GRACE, 10 s)
        await om.start()
        assert om.last_recovery is not None and om.last_recovery.error is None
        await eventually(lambda: _safe(control, account), what=f"protected after {die_at}")
        assert await control.position(account) == 1
        # Protection that works: the target trades, the stop goes with it, nothing is left.
        await control.price(Decimal("21011"))
        await eventually(
            lambda: _flat_and_idle(control, account), what=f"flat and idle after {die_at}"
        )
        await assert_safe(control, account)
    finally:
        await om.cleanup()
        await om.journal.close()
        await broker.aclose()


async def _flat_and_idle(control: Control, account: int) -> bool:
    return await control.position(account) == 0 and await control.working(account) == []
