"""Counters named by enums: a misspelt metric is a type error, not a new key.

:attr:`OrderManager.stats <orderguard.orders.manager.OrderManager.stats>` is one
:data:`Counters` (a ``Counter`` keyed by :class:`Metric`) shared by every collaborator the manager
builds: the send path, the order feed, the guarded gateway, the operations and the engines. A
metric is counted with ``stats[Metric.ORDERS_PLACED] += 1``; ``stats["orders_placed"]`` does not
type-check. The engines that keep counters of their own (the reconciler, the position-order
engine, the position watcher, the holdings follower) key them the same way, each by its own enum.

:meth:`OrderManager.get_order_statistics` reports the metrics counted at least once, in the order
they were first counted, under their string names (:func:`by_name`): the same dictionary the
string-keyed counter this replaces gave.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from enum import StrEnum
from typing import TypeAlias


class Metric(StrEnum):
    """What the manager counts; the value is the name ``get_order_statistics()`` reports."""

    # placement (orders/send/placement.py)
    ORDERS_PLACED = "orders_placed"
    ORDERS_REJECTED = "orders_rejected"
    PLACEMENTS_RESOLVED_BY_TAG = "placements_resolved_by_tag"
    PLACEMENTS_RESENT = "placements_resent"
    PLACEMENTS_UNRESOLVED = "placements_unresolved"
    UNKNOWN_RESOLVED_LATER = "unknown_resolved_later"
    PROTECTIVE_CLAIMS_REFUSED = "protective_claims_refused"
    EXITS_REFUSED_NOT_REDUCING = "exits_refused_not_reducing"
    # one mutation (orders/send/mutation.py, cancellation.py, operations.py)
    CONNECT_RETRIES = "connect_retries"
    CANCELS_SENT = "cancels_sent"
    MODIFIES_SENT = "modifies_sent"
    POSITION_CLOSES = "position_closes"
    # journal first (orders/send/journaling.py, operations.py)
    INTENTS_REUSED = "intents_reused"
    JOURNAL_FAILURES = "journal_failures"
    EXPOSURE_REFUSED_JOURNAL = "exposure_refused_journal"
    UNJOURNALED_SENDS = "unjournaled_sends"
    UNJOURNALED_OPERATIONS = "unjournaled_operations"
    UNKNOWN_OUTCOMES = "unknown_outcomes"
    UNKNOWN_RESOLVED = "unknown_resolved"
    # risk limits (orders/send/risk.py): all refusals, then by limit
    RISK_REFUSALS = "risk_refusals"
    RISK_REFUSALS_CONTRACT_POSITION = "risk_refusals_contract_position"
    RISK_REFUSALS_ACCOUNT_POSITION = "risk_refusals_account_position"
    RISK_REFUSALS_DAILY_LOSS = "risk_refusals_daily_loss"
    RISK_REFUSALS_UNVERIFIED = "risk_refusals_unverified"
    # the guarded gateway (orders/gateway.py)
    QUERY_RETRIES = "query_retries"
    BREAKER_REFUSALS = "breaker_refusals"
    BREAKER_BYPASSED = "breaker_bypassed"
    BYPASS_PACED = "bypass_paced"
    PROBES = "probes"
    PROBE_FAILURES = "probe_failures"
    # the order feed (orders/feed/order_feed.py)
    EVENT_ERRORS = "event_errors"
    RECONCILIATIONS = "reconciliations"
    # the manager's lifecycle (orders/manager.py, orders/startup_recovery.py)
    BACKGROUND_TASK_FAILURES = "background_task_failures"
    PROTECTION_OVERDUE = "protection_overdue"
    STARTUP_RECOVERIES = "startup_recoveries"
    STARTUP_RECOVERY_FAILURES = "startup_recovery_failures"


Counters: TypeAlias = "Counter[Metric]"
"""The manager's counters: how many times each :class:`Metric` was counted."""


class ReconcilerMetric(StrEnum):
    """What the continuous reconciler counts (``OrderManager.reconciler.stats``)."""

    PASSES = "passes"
    PASS_ERRORS = "pass_errors"
    FULL_RESYNCS = "full_resyncs"
    ORDER_READS = "order_reads"
    ORDERS_CORRECTED = "orders_corrected"
    MISSED_FILLS = "missed_fills"
    POSITION_READS = "position_reads"
    POSITION_CHANGES = "position_changes"
    READS_GIVEN_UP = "reads_given_up"
    OPERATIONS_FINISHED = "operations_finished"
    OPERATIONS_RESUMED = "operations_resumed"
    ROLLBACK_RETRIES = "rollback_retries"
    UNGUARDED_ROLLED_BACK = "unguarded_rolled_back"
    ACTION_ERRORS = "action_errors"
    BACKLOG_FLUSHED = "backlog_flushed"
    BACKLOG_FLUSH_FAILURES = "backlog_flush_failures"


class PositionOrderMetric(StrEnum):
    """What the position-order engine counts (``PositionOrders.stats``)."""

    UNJOURNALED_PROTECTION = "unjournaled_protection"
    REGISTRY_WRITE_FAILURES = "registry_write_failures"


class WatcherMetric(StrEnum):
    """What the position watcher counts (``PositionWatcher.stats``)."""

    RECONCILES = "reconciles"
    RECONCILE_RETRIES = "reconcile_retries"
    RECONCILE_ERRORS = "reconcile_errors"
    ADOPTED = "adopted"
    RESIZES = "resizes"
    RESIZE_ERRORS = "resize_errors"
    REPLACEMENTS = "replacements"
    REPLACE_ERRORS = "replace_errors"
    CANCELS = "cancels"
    CANCEL_ERRORS = "cancel_errors"
    REGISTRY_WRITE_FAILURES = "registry_write_failures"


class HoldingsMetric(StrEnum):
    """What the holdings follower counts (``HoldingsFollower.stats``)."""

    CHECKS = "checks"
    CHECK_ERRORS = "check_errors"
    CREDITED = "credited"
    EXITS_RESIZED = "exits_resized"
    EXITS_CANCELLED = "exits_cancelled"
    STOPS_REPLACED = "stops_replaced"


_RISK_REFUSAL_BY_LIMIT: Mapping[str, Metric] = {
    "contract_position": Metric.RISK_REFUSALS_CONTRACT_POSITION,
    "account_position": Metric.RISK_REFUSALS_ACCOUNT_POSITION,
    "daily_loss": Metric.RISK_REFUSALS_DAILY_LOSS,
    "unverified": Metric.RISK_REFUSALS_UNVERIFIED,
}


def risk_refusal(limit: str) -> Metric:
    """The metric of refusals by ``limit`` (a :class:`~orderguard.orders.send.risk.Refusal`'s)."""
    return _RISK_REFUSAL_BY_LIMIT[limit]


def by_name(counts: Counters) -> dict[str, int]:
    """``counts`` under the metrics' string names, in the order they were first counted."""
    return {metric.value: n for metric, n in counts.items()}


__all__ = [
    "Counters",
    "HoldingsMetric",
    "Metric",
    "PositionOrderMetric",
    "ReconcilerMetric",
    "WatcherMetric",
    "by_name",
    "risk_refusal",
]
