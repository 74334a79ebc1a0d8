"""Issue 10, item 9: the seeds an independent check reported (stops covering more than the
position for over 60 s) replay with no violation."""

from __future__ import annotations

from orderguard.chaos.report import ChaosConfig
from orderguard.chaos.runner import run_chaos


def test_reported_over_coverage_seeds_replay_clean() -> None:
    """``orderguard chaos --seeds 1 --seed-start 8586|8601 --operations 20 --faults all
    --crash --profile classic`` (reported on the workload before the wide profile became the
    default)."""
    config = ChaosConfig(operations=20, faults="all", crash=True, profile="classic")
    report = run_chaos([8586, 8601], config)
    assert report.violations == [], [v.detail for v in report.violations]
    assert report.errors == []
