"""Operator's tools that live beside the order engines: recovery hooks, alerts, coverage,
telemetry and ``/metrics``. See docs/operators.md."""

from orderguard.ops.alerts import Alert, Alerter, AlertKind, AlertPolicy
from orderguard.ops.coverage import Coverage, PositionCoverage, coverage
from orderguard.ops.hooks import (
    DelayFlatten,
    HookContext,
    HookDecision,
    HookOutcome,
    HookPoint,
    HookRun,
    Proceed,
    RecoveryHooks,
    TightenStop,
)
from orderguard.ops.monitor import AlertMonitor, MonitorSources
from orderguard.ops.telemetry import Telemetry

__all__ = [
    "Alert",
    "AlertKind",
    "AlertMonitor",
    "AlertPolicy",
    "Alerter",
    "Coverage",
    "DelayFlatten",
    "HookContext",
    "HookDecision",
    "HookOutcome",
    "HookPoint",
    "HookRun",
    "MonitorSources",
    "PositionCoverage",
    "Proceed",
    "RecoveryHooks",
    "Telemetry",
    "TightenStop",
    "coverage",
]
