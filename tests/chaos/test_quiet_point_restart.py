"""A process that dies between batches is restarted at once, not after the quiet point.

A background task (the reconciler, a saga) can reach the process's crash point while the quiet
point waits out a protection window. The runner used to leave that process dead until the next
batch, so the quiet point measured its downtime as exposure nobody could act on (chaos seeds
1272, 321, 379 and 1599 under ``--faults all --crash``: I1 with a dead process).
"""

from __future__ import annotations

import re

import pytest

from orderguard.chaos import ChaosConfig, run_seed_async

CONFIG = ChaosConfig(operations=20, faults="all", crash=True, profile="classic")


def quiet_points_while_dead(log: list[str]) -> list[str]:
    dead: str | None = None
    found: list[str] = []
    for line in log:
        if re.search(r" crash proc\d+ ", line):
            dead = line.strip()
        elif re.search(r" start proc\d+ ", line):
            dead = None
        elif " quiet point " in line and dead is not None:
            found.append(f"{dead} | {line.strip()}")
    return found


@pytest.mark.parametrize("seed", [1272, 321])
async def test_no_quiet_point_is_checked_while_the_process_is_dead(seed: int) -> None:
    result = await run_seed_async(seed, CONFIG)
    assert result.crashes >= 1
    assert quiet_points_while_dead(result.event_log) == []
