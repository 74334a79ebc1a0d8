"""The CI chaos gate: the wide workload, every fault, crashes — a ratchet that can fail.

Seeds 0-299, not chosen: the first three hundred (about 80 s on a 2-core machine). The wide
profile (the default) adds client-side brackets, OCO pairs, user-protected entries, every close
and cancel, caller timeouts and shutdowns, an outside actor, fault storms, crashes at fills, the
SQLite journal with injected write failures and, per seed, the exchange's readings (default,
harsh or a mix); I6 and over-coverage are bounds judged continuously from broker truth, I7 is
checked whenever an operation ends (docs/chaos.md). A finding prints each violation with its
replay command.

The gate is not clean yet (docs/chaos.md, findings), so it is two tests over one run:

* the **ratchet** must pass: no error, no duplicate order (I3), no quantity unaccounted for (I5),
  and no more violations of each other invariant than ``BUDGET`` — the counts on main when it
  was last lowered, with a little room because any change of timing moves a few. A change that
  makes chaos find more fails CI; a fix that makes it find fewer should lower the budget.
* the **goal** (every seed clean) is marked ``xfail(strict=False)``; it turns into XPASS the day
  the gate is clean, and the mark and the budget should then go.
"""

from __future__ import annotations

from collections import Counter
from functools import cache

import pytest

from orderguard.chaos import ChaosConfig, ChaosReport, run_chaos

GATE_SEEDS = range(300)

# Lowered on main of 2026-12-07 evening: I1 47, I6 33, I2 10, I7 6, I4 0 in 49 of 300 seeds
# (first set at e2f6e6a: I1 55, I6 33, I2 13, I7 6, I4 1 in 57).
BUDGET: dict[str, int] = {"I1": 20, "I6": 22, "I2": 6, "I7": 3, "I4": 1, "I3": 0, "I5": 0}


@cache
def _gate_run() -> ChaosReport:
    return run_chaos(GATE_SEEDS, ChaosConfig(faults="all", crash=True))


def _found(report: ChaosReport) -> list[str]:
    return [f"{v.seed} {v.invariant} {v.detail}; replay: {v.replay}" for v in report.violations]


def test_the_gate_finds_no_more_than_its_budget() -> None:
    report = _gate_run()
    assert report.seeds == list(GATE_SEEDS)
    assert report.crashes > 0  # the gate really crashed processes (it is not a fault-free run)
    assert report.errors == []
    counts = Counter(v.invariant for v in report.violations)
    over = {inv: n for inv, n in counts.items() if n > BUDGET.get(inv, 0)}
    assert over == {}, "\n".join(
        [f"over budget: {over} (budget {BUDGET})"]
        + [f for f in _found(report) if f.split()[1] in over]
    )


@pytest.mark.xfail(
    strict=False,
    reason="the wide chaos still finds violations on main (docs/chaos.md, findings)",
)
def test_three_hundred_seeds_with_all_faults_and_crashes_are_clean() -> None:
    assert _found(_gate_run()) == []
