"""What the dashboard shows, as plain JSON-ready dicts, from a live manager or a journal file.

Two sources:

* :class:`ManagerSource` — inside a strategy (``await serve_dashboard(orders)``): operations
  with their legs and outcome, positions with protection coverage (what the manager knows of
  broker truth), breakers, the rate limiter's budget, recovery statistics, alerts, hook runs,
  and a force-rollback that goes through :meth:`OrderManager.force_rollback_operation`;
* :class:`JournalSource` — beside a running strategy (``orderguard dashboard --journal FILE``):
  the journal file read-only (:func:`~orderguard.journal.reader.read_journal`), a new snapshot
  each time. It has no broker connection and does not own the operations, so positions, breakers
  and the limiter are absent and a rollback is refused (the process that owns the operations
  must do it, or ``orderguard rollback``).
"""

from __future__ import annotations

import os
from collections import Counter, deque
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from orderguard.broker.base import Broker
from orderguard.clock import Clock, SystemClock
from orderguard.journal.base import format_time
from orderguard.journal.reader import JournalReader, read_journal
from orderguard.ops.coverage import PositionCoverage, coverage
from orderguard.orders.operator_tools import known_orders, known_positions, watched_accounts
from orderguard.recovery.manager import OperationRecoveryManager, RecoveryOperation
from orderguard.recovery.operations import OperationType

if TYPE_CHECKING:
    from orderguard.ops.monitor import AlertMonitor
    from orderguard.orders.manager import OrderManager

MAX_OPERATIONS = 60
MAX_SAMPLES = 300


class RollbackRefusedError(Exception):
    """The source cannot roll operations back (read-only), or does not know the operation."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class RollbackResult:
    operation_id: str
    safe: bool
    """The operation ended safe (nothing owned, nothing working)."""
    state: str | None


class DashboardSource(Protocol):
    read_only: bool

    async def snapshot(self) -> dict[str, Any]: ...

    def sample(self) -> None:
        """Record the time series (called every interval while the dashboard runs)."""
        ...

    async def rollback(self, operation_id: str) -> RollbackResult: ...

    def metrics(self) -> bytes | None:
        """Prometheus text, or None when this source has nothing to measure."""
        ...


def plain(value: Any) -> Any:
    """JSON-ready: Decimals and datetimes as strings, enums as values."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def operation_row(op: RecoveryOperation) -> dict[str, Any]:
    legs = [
        {
            "leg": ref.leg,
            "type": ref.order_type,
            "side": "buy" if int(ref.side) == 0 else "sell",
            "size": ref.size,
            "price": None if ref.price is None else str(ref.price),
            "status": str(ref.status),
            "order_id": ref.order_id,
            "filled": ref.filled_size,
        }
        for ref in op.orders.values()
    ]
    return {
        "id": op.operation_id,
        "type": op.operation_type.value,
        "state": op.state.value,
        "outcome": op.state.value,
        "account_id": op.account_id,
        "contract_id": op.contract_id,
        "started_at": format_time(op.started_at),
        "updated_at": None if op.updated_at is None else format_time(op.updated_at),
        "legs": legs,
        "owned": op.net_filled,
        "protected": None,
        "time_to_protection": None,
        "last_error": op.last_error,
        "active": not op.state.is_terminal,
    }


class _Series:
    """Unprotected exposure over time, sampled at most once per ``spacing`` seconds."""

    def __init__(self, spacing: float = 0.5) -> None:
        self.spacing = spacing
        self.points: deque[tuple[float, int]] = deque(maxlen=MAX_SAMPLES)
        self._origin: float | None = None

    def sample(self, now: float, value: int) -> None:
        if self._origin is None:
            self._origin = now
        t = now - self._origin
        if self.points and t - self.points[-1][0] < self.spacing:
            if value > self.points[-1][1]:  # keep the worst of a short interval
                self.points[-1] = (self.points[-1][0], value)
            return
        self.points.append((t, value))

    def as_dict(self) -> dict[str, list[float]]:
        return {
            "t": [round(t, 3) for t, _ in self.points],
            "v": [float(v) for _, v in self.points],
        }


def _scalars(stats: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sorted(stats.items()) if isinstance(v, int | float | str)}


class ManagerSource:
    """A live OrderManager (inside the strategy's process)."""

    read_only = False

    def __init__(self, manager: OrderManager, monitor: AlertMonitor | None = None) -> None:
        self.manager = manager
        self.monitor = monitor
        self._series = _Series()

    def _operations(self) -> list[RecoveryOperation]:
        recovery = self.manager.recovery
        seen: dict[str, RecoveryOperation] = {}
        for op in list(recovery.operation_history) + list(recovery.active_operations.values()):
            seen[op.operation_id] = op
        ops = sorted(seen.values(), key=lambda o: o.started_at, reverse=True)
        return ops[:MAX_OPERATIONS]

    def _operation(self, op: RecoveryOperation) -> dict[str, Any]:
        row = operation_row(op)
        m = self.manager
        row["time_to_protection"] = m.telemetry.time_to_protection_of(op.operation_id)
        if op.operation_type is OperationType.BRACKET_ORDER:
            status = m.get_bracket_status(op.operation_id)
            if status is not None:
                row["outcome"] = status.outcome.value
                row["owned"] = status.owned_size
                row["protected"] = status.protected_size
                row["filled"] = status.filled_size
                row["reason"] = status.reason
        row["obligation"] = m.protection.driving(op.operation_id)
        return row

    def _coverage(self) -> list[PositionCoverage]:
        m = self.manager
        rows: list[PositionCoverage] = []
        for account in watched_accounts(m):
            rows.extend(coverage(known_positions(m, account), known_orders(m, account)))
        return rows

    def sample(self) -> None:
        rows = self._coverage()
        self._series.sample(self.manager.clock.monotonic(), sum(r.uncovered for r in rows))

    async def snapshot(self) -> dict[str, Any]:
        m = self.manager
        rows = self._coverage()
        self._series.sample(m.clock.monotonic(), sum(r.uncovered for r in rows))
        operations = [self._operation(op) for op in self._operations()]
        limiter = m.gateway.limiter
        recovery = m.get_recovery_statistics()
        ttp = [
            op["time_to_protection"]
            for op in reversed(operations)
            if op["time_to_protection"] is not None
        ]
        snap: dict[str, Any] = plain(
            {
                "mode": "live",
                "read_only": False,
                "now": m.clock.now(),
                "account_id": m.account_id if m.started else None,
                "operations": operations,
                "positions": [r.as_dict() for r in rows],
                "breakers": {
                    family: {"state": st["state"], "failure_count": st["failure_count"]}
                    for family, st in sorted(m.gateway.status().items())
                },
                "rate_limiter": {
                    "in_window": limiter.in_window,
                    "max_requests": limiter.max_requests,
                    "window": limiter.window,
                    "available": limiter.available(),
                    "reserved_for_priority": limiter.reserved_for_priority,
                    "waiting": limiter.waiting,
                    "waits": limiter.waits,
                },
                "recovery": _scalars(recovery),
                "obligations": [
                    {"operation_id": op_id, "seconds": round(seconds, 3)}
                    for op_id, seconds in m.protection.open_obligations()
                ],
                "alerts": []
                if self.monitor is None
                else [a.as_dict() for a in reversed(self.monitor.alerter.recent)][:20],
                "hook_runs": [r.as_dict() for r in reversed(m.hooks.runs)][:20],
                "charts": {
                    "time_to_protection": ttp[-40:],
                    "unprotected": self._series.as_dict(),
                    "outcomes": dict(Counter(op["outcome"] for op in operations)),
                },
            }
        )
        return snap

    async def rollback(self, operation_id: str) -> RollbackResult:
        m = self.manager
        op = m.recovery.active_operations.get(operation_id)
        if op is None:
            known = any(o.operation_id == operation_id for o in m.recovery.operation_history)
            if known:
                raise RollbackRefusedError(f"operation {operation_id} is already finished", 409)
            raise RollbackRefusedError(f"no operation {operation_id}", 404)
        safe = await m.force_rollback_operation(operation_id)
        if not safe and self.monitor is not None:
            self.monitor.rollback_unconfirmed(operation_id, "the forced rollback did not end safe")
        status = m.recovery.get_operation_status(operation_id)
        return RollbackResult(operation_id, safe, None if status is None else status.get("state"))

    def metrics(self) -> bytes | None:
        from orderguard.ops.metrics import render_metrics  # noqa: PLC0415  (optional extra)

        return render_metrics(self.manager, self.monitor)


@dataclass(slots=True)
class _Truth:
    rows: list[PositionCoverage]
    at: float
    error: str | None = None


class JournalSource:
    """A journal file, read-only, beside the process that writes it; optionally broker truth
    (positions and working orders) read through a broker of its own.

    Broker truth is read at most once per ``truth_every`` seconds: the dashboard shares the
    account's request budget (200 per 60 s at the gateway) with the strategy, and must not eat
    it. It reads (positions, open orders per account) and never sends a mutation.
    """

    read_only = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        clock: Clock | None = None,
        *,
        broker: Broker | None = None,
        truth_every: float = 10.0,
    ) -> None:
        self.path = Path(path)
        self._clock = clock or SystemClock()
        self.broker = broker
        self.truth_every = truth_every
        self._truth: _Truth | None = None
        self._next_read = float("-inf")
        self._accounts: list[int] | None = None

    async def _broker_truth(self) -> _Truth | None:
        broker = self.broker
        if broker is None:
            return None
        now = self._clock.monotonic()
        if now < self._next_read:
            return self._truth
        self._next_read = now + self.truth_every  # failures wait as long: never hammering
        try:
            if self._accounts is None:
                self._accounts = sorted(a.id for a in await broker.get_accounts())
            rows: list[PositionCoverage] = []
            for account in self._accounts:
                positions = await broker.search_positions(account)
                orders = await broker.search_open_orders(account)
                rows.extend(coverage(positions, orders))
            self._truth = _Truth(rows, now)
        except Exception as exc:  # shown on the page; the last truth is kept, with its age
            error = f"{type(exc).__name__}: {exc}"
            if self._truth is None:
                self._truth = _Truth([], now, error)
            else:
                self._truth.error = error
        return self._truth

    async def snapshot(self) -> dict[str, Any]:
        async def body(reader: JournalReader) -> dict[str, Any]:
            records = await reader.operations(limit=MAX_OPERATIONS)
            stats = await OperationRecoveryManager.read_statistics(reader)
            return {
                "ops": [operation_row(RecoveryOperation.from_record(r)) for r in records],
                "stats": stats,
            }

        read = await read_journal(self.path, body)
        operations = read["ops"]
        truth = await self._broker_truth()
        snap: dict[str, Any] = plain(
            {
                "mode": "journal",
                "read_only": True,
                "journal": str(self.path),
                "now": self._clock.now(),
                "account_id": None,
                "operations": operations,
                "positions": None if truth is None else [r.as_dict() for r in truth.rows],
                "truth": None
                if truth is None
                else {
                    "age": round(self._clock.monotonic() - truth.at, 1),
                    "error": truth.error,
                },
                "breakers": None,
                "rate_limiter": None,
                "recovery": _scalars(read["stats"]),
                "obligations": [
                    {"operation_id": op["id"], "seconds": None}
                    for op in operations
                    if op["state"] == "rolling_back"
                ],
                "alerts": [],
                "hook_runs": [],
                "charts": {
                    "time_to_protection": [],
                    "unprotected": {"t": [], "v": []},
                    "outcomes": dict(Counter(op["outcome"] for op in operations)),
                },
            }
        )
        return snap

    def sample(self) -> None:
        """A journal has no positions to sample."""

    async def rollback(self, operation_id: str) -> RollbackResult:
        raise RollbackRefusedError(
            "this dashboard reads the journal read-only: roll back from the process that owns "
            "the operation (orderguard.serve_dashboard) or with `orderguard rollback`",
            409,
        )

    def metrics(self) -> bytes | None:
        return None


__all__ = [
    "DashboardSource",
    "JournalSource",
    "ManagerSource",
    "RollbackRefusedError",
    "RollbackResult",
    "operation_row",
    "plain",
]
