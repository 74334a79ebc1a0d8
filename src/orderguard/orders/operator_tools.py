"""Wiring of the operator's tools (ops/) to an OrderManager: what the manager knows, read
without I/O, handed to the alert monitor as plain callables; and what recovery hooks are told
at the manager's own hook points (forced rollback, protection late, after recovery)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any, Protocol

import httpx2

from orderguard.clock import Clock
from orderguard.journal.base import Journal
from orderguard.models import Order, Position
from orderguard.ops.alerts import AlertCallback, Alerter, AlertPolicy
from orderguard.ops.hooks import HookContext, HookPoint
from orderguard.ops.monitor import AlertMonitor, MonitorSources
from orderguard.orders.callbacks import Callback
from orderguard.orders.gateway import GuardedBroker
from orderguard.orders.metrics import Metric
from orderguard.recovery.manager import OperationRecoveryManager, RecoveryOperation
from orderguard.recovery.protection import ProtectionAlert
from orderguard.recovery.reconcile import AccountSnapshot
from orderguard.recovery.startup import RecoveryReport


class Watched(Protocol):
    """What the operator's tools read of an OrderManager (orders/manager.py): what it knows,
    without I/O. A protocol, so that the manager can import this module."""

    @property
    def recovery(self) -> OperationRecoveryManager: ...

    @property
    def started(self) -> bool: ...

    @property
    def account_id(self) -> int: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def journal(self) -> Journal: ...

    @property
    def stats(self) -> Counter[Metric]: ...

    @property
    def gateway(self) -> GuardedBroker: ...

    def known(self, account_id: int) -> AccountSnapshot: ...

    def add_callback(self, event_name: str, fn: Callback) -> None: ...


def watched_accounts(manager: Watched) -> list[int]:
    """The default account (once started) and every account an unfinished operation names."""
    accounts = {op.account_id for op in manager.recovery.active_operations.values()}
    if manager.started:
        accounts.add(manager.account_id)
    return sorted(a for a in accounts if a is not None)


def known_orders(manager: Watched, account_id: int) -> Iterable[Order]:
    return manager.known(account_id).orders


def known_positions(manager: Watched, account_id: int) -> Iterable[Position]:
    return manager.known(account_id).positions or ()


def enable_alerts(
    manager: Watched,
    *,
    callback: AlertCallback | None = None,
    webhook: str | None = None,
    policy: AlertPolicy | None = None,
    transport: httpx2.AsyncBaseTransport | None = None,
    start: bool = True,
) -> AlertMonitor:
    alerter = Alerter(
        manager.clock,
        policy=policy,
        callback=callback,
        webhook=webhook,
        journal=manager.journal,
        transport=transport,
    )
    sources = MonitorSources(
        accounts=lambda: watched_accounts(manager),
        orders=lambda account: known_orders(manager, account),
        positions=lambda account: known_positions(manager, account),
        breakers=lambda: _families(manager),
        journal_failures=lambda: manager.stats[Metric.JOURNAL_FAILURES],
    )
    monitor = AlertMonitor(manager.clock, alerter, sources)
    manager.add_callback("protection_overdue", monitor.rollback_overdue)
    if start:
        monitor.start()
    return monitor


def _families(manager: Watched) -> dict[str, Any]:
    return dict(manager.gateway.status())


def forced_rollback(op: RecoveryOperation) -> HookContext:
    return HookContext(
        point=HookPoint.BEFORE_ROLLBACK,
        operation_id=op.operation_id,
        account_id=op.account_id,
        contract_id=op.contract_id,
        reason="forced by the caller",
        owned=op.net_filled,
    )


def protection_late(alert: ProtectionAlert) -> HookContext:
    return HookContext(
        point=HookPoint.PROTECTION_LATE,
        operation_id=alert.operation_id,
        account_id=alert.account_id,
        contract_id=alert.contract_id,
        reason=alert.reason,
        owned=alert.exposure,
        unprotected_seconds=alert.seconds,
    )


def after_recovery(report: RecoveryReport) -> HookContext:
    return HookContext(
        point=HookPoint.AFTER_RECOVERY,
        reason="start-up recovery" if report.error is None else f"recovery: {report.error}",
        details={
            "operations": len(report.operations),
            "unfinished": len(report.unfinished),
            "accounts": list(report.accounts),
        },
    )


__all__ = [
    "after_recovery",
    "enable_alerts",
    "forced_rollback",
    "known_orders",
    "known_positions",
    "protection_late",
    "watched_accounts",
]
