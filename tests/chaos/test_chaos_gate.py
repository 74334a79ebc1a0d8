"""The CI chaos gate (issue 5): a few hundred seeds, every fault, crashes — no violation, no error.

Seeds 0-299, not chosen: the first three hundred. A finding here prints each violation with its
replay command (``orderguard chaos --seeds 1 --seed-start S --faults all --crash``).
"""

from __future__ import annotations

from orderguard.chaos import ChaosConfig, run_chaos

GATE_SEEDS = range(300)


def test_three_hundred_seeds_with_all_faults_and_crashes_are_clean() -> None:
    report = run_chaos(GATE_SEEDS, ChaosConfig(faults="all", crash=True))
    assert report.seeds == list(GATE_SEEDS)
    found = [f"{v.seed} {v.invariant} {v.detail}; replay: {v.replay}" for v in report.violations]
    assert found == []
    assert report.errors == []
    assert report.crashes > 0  # the gate really crashed processes (it is not a fault-free run)
