"""``/metrics``: an OrderManager's figures in the Prometheus text format.

Needs the optional extra ``orderguard[metrics]`` (``prometheus-client``); a
:class:`~orderguard.errors.ConfigurationError` says so when it is missing. The figures are read
from what the manager already counts, at scrape time, through a custom collector on a private
registry (so two managers in one process never share series):

===========================================  =====================================================
``orderguard_operations``                    operations in memory by ``type`` and ``state``
``orderguard_operation_outcomes``            operations in memory by ``type`` and ``outcome``
``orderguard_operations_finished_total``     finished operations by ``state`` (journal-backed)
``orderguard_unknown_outcomes_total``        mutations whose outcome was unknown
``orderguard_unknown_outcomes_resolved_total``  ...of which resolved by asking the broker
``orderguard_flattens_total``                flattens by ``source`` (rollback executor, closes)
``orderguard_obligations_open``              standing protection obligations now
``orderguard_obligations_overdue_total``     obligations that outlived the protection deadline
``orderguard_breaker_state``                 per ``family``: 0 closed, 1 half open, 2 open
``orderguard_breaker_failures``              per ``family``: consecutive failures
``orderguard_rate_limit_waits_total``        requests that queued for a rate-limiter slot
``orderguard_rate_limit_in_window``          grants in the current window (limit alongside)
``orderguard_time_to_protection_seconds``    histogram: fill learnt -> stop confirmed
``orderguard_unprotected_seconds``           histogram: length of unprotected episodes
``orderguard_alerts_total``                  alerts by ``result`` (delivered, suppressed)
``orderguard_hook_runs_total``               recovery hook runs by ``outcome``
===========================================  =====================================================
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from orderguard.errors import ConfigurationError
from orderguard.ops.telemetry import Histogram
from orderguard.orders.metrics import Metric

if TYPE_CHECKING:
    from orderguard.ops.monitor import AlertMonitor
    from orderguard.orders.manager import OrderManager

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BREAKER = {"closed": 0, "half_open": 1, "open": 2}


def _histogram(name: str, doc: str, h: Histogram) -> Any:
    from prometheus_client.core import HistogramMetricFamily  # noqa: PLC0415

    family = HistogramMetricFamily(name, doc, unit="")
    family.add_metric([], buckets=h.cumulative(), sum_value=h.total)
    return family


class _ManagerCollector:
    def __init__(self, manager: OrderManager, monitor: AlertMonitor | None) -> None:
        self.manager = manager
        self.monitor = monitor

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (  # noqa: PLC0415
            CounterMetricFamily,
            GaugeMetricFamily,
        )

        m = self.manager
        stats = m.stats
        rec = m.recovery
        ops = GaugeMetricFamily(
            "orderguard_operations",
            "Operations in memory by type and state",
            labels=["type", "state"],
        )
        by: Counter[tuple[str, str]] = Counter()
        seen = {o.operation_id: o for o in rec.operation_history}
        seen.update(rec.active_operations)
        for op in seen.values():
            by[(op.operation_type.value, op.state.value)] += 1
        for (t, s), n in sorted(by.items()):
            ops.add_metric([t, s], n)
        yield ops

        outcomes = GaugeMetricFamily(
            "orderguard_operation_outcomes",
            "Operations in memory by type and outcome (a bracket's own outcome, else its state)",
            labels=["type", "outcome"],
        )
        by_outcome: Counter[tuple[str, str]] = Counter()
        for op in seen.values():
            status = m.get_bracket_status(op.operation_id) if op.type == "bracket_order" else None
            outcome = op.state.value if status is None else status.outcome.value
            by_outcome[(op.operation_type.value, outcome)] += 1
        for (t, o), n in sorted(by_outcome.items()):
            outcomes.add_metric([t, o], n)
        yield outcomes

        finished = CounterMetricFamily(
            "orderguard_operations_finished",
            "Finished operations by final state",
            labels=["state"],
        )
        rs = rec.recovery_stats
        for final, key in (
            ("completed", "operations_completed"),
            ("failed", "operations_failed"),
            ("rolled_back", "operations_rolled_back"),
        ):
            finished.add_metric([final], rs[key])
        yield finished

        yield CounterMetricFamily(
            "orderguard_unknown_outcomes",
            "Mutations whose outcome was unknown (sent, no proof either way)",
            value=stats[Metric.UNKNOWN_OUTCOMES],
        )
        yield CounterMetricFamily(
            "orderguard_unknown_outcomes_resolved",
            "Unknown outcomes resolved by asking the broker",
            value=stats[Metric.UNKNOWN_RESOLVED],
        )
        flattens = CounterMetricFamily(
            "orderguard_flattens", "Flattening orders sent", labels=["source"]
        )
        flattens.add_metric(["rollback"], m.protection.stats["protective_flattens"])
        flattens.add_metric(["position_close"], stats[Metric.POSITION_CLOSES])
        yield flattens
        yield GaugeMetricFamily(
            "orderguard_obligations_open",
            "Standing protection obligations (rollbacks in progress)",
            value=len(m.protection.obligations()),
        )
        yield CounterMetricFamily(
            "orderguard_obligations_overdue",
            "Obligations that outlived the protection deadline",
            value=m.protection.stats["obligations_overdue"],
        )
        breaker = GaugeMetricFamily(
            "orderguard_breaker_state",
            "Circuit breaker state: 0 closed, 1 half open, 2 open",
            labels=["family"],
        )
        failures = GaugeMetricFamily(
            "orderguard_breaker_failures",
            "Consecutive failures counted by the breaker",
            labels=["family"],
        )
        for family, st in sorted(m.gateway.status().items()):
            breaker.add_metric([family], _BREAKER.get(st["state"], 2))
            failures.add_metric([family], st["failure_count"])
        yield breaker
        yield failures
        limiter = m.gateway.limiter
        yield CounterMetricFamily(
            "orderguard_rate_limit_waits",
            "Requests that queued for a rate-limiter slot",
            value=limiter.waits,
        )
        yield GaugeMetricFamily(
            "orderguard_rate_limit_in_window",
            "Requests granted in the current window",
            value=limiter.in_window,
        )
        yield GaugeMetricFamily(
            "orderguard_rate_limit_max_requests",
            "Requests allowed per window",
            value=limiter.max_requests,
        )
        yield _histogram(
            "orderguard_time_to_protection_seconds",
            "From learning of a fill to its stop being confirmed",
            m.telemetry.time_to_protection,
        )
        yield _histogram(
            "orderguard_unprotected_seconds",
            "Length of episodes with a fill not covered by a stop",
            m.telemetry.unprotected,
        )
        alerts = CounterMetricFamily(
            "orderguard_alerts", "Alerts raised, by result", labels=["result"]
        )
        astats = Counter[str]() if self.monitor is None else self.monitor.alerter.stats
        alerts.add_metric(["delivered"], astats["delivered"])
        alerts.add_metric(["suppressed"], astats["suppressed"])
        yield alerts
        hooks = CounterMetricFamily(
            "orderguard_hook_runs", "Recovery hook runs, by outcome", labels=["outcome"]
        )
        for outcome in ("decided", "raised", "timed_out", "refused"):
            hooks.add_metric([outcome], m.hooks.stats[f"hook_{outcome}"])
        yield hooks


def render_metrics(manager: OrderManager, monitor: AlertMonitor | None = None) -> bytes:
    """The manager's metrics in the Prometheus text format (see module docstring)."""
    try:
        from prometheus_client import CollectorRegistry, generate_latest  # noqa: PLC0415
    except ImportError as exc:
        raise ConfigurationError(
            "prometheus-client is not installed: pip install 'orderguard[metrics]'"
        ) from exc
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ManagerCollector(manager, monitor))
    return generate_latest(registry)


__all__ = ["CONTENT_TYPE", "render_metrics"]
