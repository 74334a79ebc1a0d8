"""The alert monitor: looks at a running manager every ``check_interval`` seconds (its clock)
and raises :class:`~orderguard.ops.alerts.Alert` values for incidents:

* a position naked or partly covered for longer than ``unprotected_after``;
* stops covering more than the position (or a stop on a flat contract) for longer than
  ``over_coverage_after``;
* a circuit breaker open;
* journal writes failing (the send path's ``journal_failures`` count grew).

A rollback that cannot confirm is told by the protection executor itself when it outlives the
protection deadline (:meth:`AlertMonitor.rollback_overdue` is wired to it), and by a forced
rollback that did not end safe (:meth:`AlertMonitor.rollback_unconfirmed`).

The monitor is given plain callables, not the manager, so it stays below ``orders`` in the
dependency order (``OrderManager.enable_alerts`` wires it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from orderguard.clock import Clock
from orderguard.models import Order, Position
from orderguard.ops.alerts import Alert, Alerter, AlertKind
from orderguard.ops.coverage import Coverage, PositionCoverage, coverage

log = logging.getLogger("orderguard.ops.monitor")


@dataclass(frozen=True, slots=True)
class MonitorSources:
    """Where the monitor reads (all synchronous: what the manager already knows, no I/O)."""

    accounts: Callable[[], Iterable[int]]
    orders: Callable[[int], Iterable[Order]]
    positions: Callable[[int], Iterable[Position]]
    breakers: Callable[[], Mapping[str, Mapping[str, Any]]]
    journal_failures: Callable[[], int]


class AlertMonitor:
    def __init__(self, clock: Clock, alerter: Alerter, sources: MonitorSources) -> None:
        self._clock = clock
        self.alerter = alerter
        self._sources = sources
        self._since: dict[tuple[int, str, str], float] = {}
        self._journal_failures = sources.journal_failures()
        self._task: asyncio.Task[None] | None = None
        self.checks = 0

    # -- incidents told from outside ----------------------------------------------------------
    def rollback_overdue(self, alert: Any) -> None:
        """A ``ProtectionAlert``: an obligation holds exposure past the protection deadline."""
        self.alerter.raise_alert(
            Alert(
                AlertKind.ROLLBACK_UNCONFIRMED,
                subject=alert.operation_id,
                message=(
                    f"rollback of {alert.operation_id} still holds {alert.exposure:+d} on "
                    f"{alert.contract_id} after {alert.seconds:.1f}s ({alert.reason}); "
                    "still trying"
                ),
                at=self._clock.now(),
                operation_id=alert.operation_id,
                account_id=alert.account_id,
                contract_id=alert.contract_id,
                details={"exposure": alert.exposure, "seconds": round(alert.seconds, 3)},
            )
        )

    def rollback_unconfirmed(self, operation_id: str, why: str) -> None:
        self.alerter.raise_alert(
            Alert(
                AlertKind.ROLLBACK_UNCONFIRMED,
                subject=operation_id,
                message=f"rollback of {operation_id} did not confirm a safe state: {why}",
                at=self._clock.now(),
                operation_id=operation_id,
            )
        )

    # -- the periodic check --------------------------------------------------------------------
    def check(self) -> list[PositionCoverage]:
        """One look; returns the coverage rows it judged (the dashboard shows the same)."""
        self.checks += 1
        now = self._clock.monotonic()
        rows: list[PositionCoverage] = []
        for account_id in sorted(set(self._sources.accounts())):
            rows.extend(
                coverage(self._sources.positions(account_id), self._sources.orders(account_id))
            )
        seen: set[tuple[int, str, str]] = set()
        policy = self.alerter.policy
        for row in rows:
            if row.status in (Coverage.NAKED, Coverage.PARTIAL):
                self._hold(seen, row, "unprotected", now, policy.unprotected_after)
            elif row.status in (Coverage.OVER, Coverage.ORPHAN):
                self._hold(seen, row, "over", now, policy.over_coverage_after)
        for key in set(self._since) - seen:
            del self._since[key]  # back to normal: a later episode is timed afresh
        for family, status in sorted(self._sources.breakers().items()):
            if status.get("state") == "open":
                self.alerter.raise_alert(
                    Alert(
                        AlertKind.BREAKER_OPEN,
                        subject=family,
                        message=(
                            f"circuit breaker '{family}' is open after "
                            f"{status.get('failure_count', 0)} failures"
                        ),
                        at=self._clock.now(),
                        details={"family": family},
                    )
                )
        failures = self._sources.journal_failures()
        if failures > self._journal_failures:
            self.alerter.raise_alert(
                Alert(
                    AlertKind.JOURNAL_FAILURE,
                    subject="journal",
                    message=(
                        f"{failures - self._journal_failures} journal write(s) failed: new "
                        "exposure is refused until the journal works again"
                    ),
                    at=self._clock.now(),
                    details={"failures": failures},
                )
            )
        self._journal_failures = failures
        return rows

    def _hold(
        self,
        seen: set[tuple[int, str, str]],
        row: PositionCoverage,
        what: str,
        now: float,
        threshold: float,
    ) -> None:
        key = (row.account_id, row.contract_id, what)
        seen.add(key)
        since = self._since.setdefault(key, now)
        held = now - since
        if held < threshold:
            return
        subject = f"{row.account_id}/{row.contract_id}"
        if what == "unprotected":
            alert = Alert(
                AlertKind.UNPROTECTED_EXPOSURE,
                subject=subject,
                message=(
                    f"{row.contract_id}: {row.uncovered} of {row.size:+d} unprotected for "
                    f"{held:.1f}s"
                ),
                at=self._clock.now(),
                account_id=row.account_id,
                contract_id=row.contract_id,
                details={**row.as_dict(), "seconds": round(held, 3)},
            )
        else:
            alert = Alert(
                AlertKind.OVER_COVERAGE,
                subject=subject,
                message=(
                    f"{row.contract_id}: stops for {row.stop_cover} against a position of "
                    f"{row.size:+d} for {held:.1f}s"
                ),
                at=self._clock.now(),
                account_id=row.account_id,
                contract_id=row.contract_id,
                details={**row.as_dict(), "seconds": round(held, 3)},
            )
        self.alerter.raise_alert(alert)

    # -- running -------------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            try:
                self.check()
            except Exception:
                log.exception("alert monitor check failed")
            await self._clock.sleep(self.alerter.policy.check_interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.alerter.aclose()


__all__ = ["AlertMonitor", "MonitorSources"]
