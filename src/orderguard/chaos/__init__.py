"""Deterministic chaos testing: invariants from broker truth, a seeded workload, crashes.

The public entry points are :func:`run_chaos` (what ``orderguard chaos`` runs), the invariant
checks in :mod:`orderguard.chaos.invariants` (reusable by any test) and :class:`ChaosConfig`.
"""

from orderguard.chaos.invariants import (
    BrokerTruth,
    ExposureTracker,
    Violation,
    check_all,
)
from orderguard.chaos.report import ChaosConfig, ChaosReport, SeedResult
from orderguard.chaos.runner import run_chaos, run_seed, run_seed_async

__all__ = [
    "BrokerTruth",
    "ChaosConfig",
    "ChaosReport",
    "ExposureTracker",
    "SeedResult",
    "Violation",
    "check_all",
    "run_chaos",
    "run_seed",
    "run_seed_async",
]
