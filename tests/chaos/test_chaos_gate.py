"""The CI chaos gate: the wide workload, every fault, crashes — no violation, no error.

Seeds 0-299, not chosen: the first three hundred (about 80 s on a 2-core machine). The wide
profile (the default) adds client-side brackets, OCO pairs, user-protected entries, every close
and cancel, caller timeouts and shutdowns, an outside actor, fault storms, crashes at fills and
the SQLite journal with injected write failures; I6 and over-coverage are bounds judged
continuously from broker truth, I7 is checked whenever an operation ends (docs/chaos.md). A
finding prints each violation with its replay command.

On main today this gate finds violations (the classes are in docs/chaos.md): it is marked
``xfail(strict=False)`` so the branch stays green while the order code is fixed; it turns into a
pass (XPASS) the day it is clean, and the mark should then go.
"""

from __future__ import annotations

import pytest

from orderguard.chaos import ChaosConfig, run_chaos

GATE_SEEDS = range(300)


@pytest.mark.xfail(
    strict=False,
    reason="the wide chaos finds violations on main (docs/chaos.md, findings); "
    "order-code fixes are in progress elsewhere",
)
def test_three_hundred_seeds_with_all_faults_and_crashes_are_clean() -> None:
    report = run_chaos(GATE_SEEDS, ChaosConfig(faults="all", crash=True))
    assert report.seeds == list(GATE_SEEDS)
    assert report.crashes > 0  # the gate really crashed processes (it is not a fault-free run)
    found = [f"{v.seed} {v.invariant} {v.detail}; replay: {v.replay}" for v in report.violations]
    assert found == []
    assert report.errors == []
