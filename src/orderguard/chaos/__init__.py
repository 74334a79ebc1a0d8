"""Deterministic chaos testing: invariants from broker truth, a seeded workload, crashes.

The public entry points are :func:`run_chaos` (what ``orderguard chaos`` runs), the invariant
checks in :mod:`orderguard.chaos.invariants` (I1–I5, reusable by any test), the continuous bounds
in :mod:`orderguard.chaos.bounds` (I6, over-coverage, I7) and :class:`ChaosConfig`.
"""

from orderguard.chaos.bounds import BoundChecker, Bounds, check_i7
from orderguard.chaos.invariants import (
    BrokerTruth,
    ExposureTracker,
    Violation,
    check_all,
)
from orderguard.chaos.report import ChaosConfig, ChaosReport, SeedResult
from orderguard.chaos.runner import run_chaos, run_seed, run_seed_async

__all__ = [
    "BoundChecker",
    "Bounds",
    "BrokerTruth",
    "ChaosConfig",
    "ChaosReport",
    "ExposureTracker",
    "SeedResult",
    "Violation",
    "check_all",
    "check_i7",
    "run_chaos",
    "run_seed",
    "run_seed_async",
]
