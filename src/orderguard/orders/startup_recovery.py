"""Start-up recovery as the OrderManager runs it: no new exposure until broker truth is read.

:func:`~orderguard.recovery.startup.recover` reconciles every unfinished operation of the journal
with the broker and rolls it forward or back. Around it, this module keeps the manager safe: new
exposure is held while operations wait to be reconciled and stays held, with the reason, while
broker truth cannot be read (the reconciler re-runs recovery until it can); operations a live saga
or a rollback drives are left to their driver; what recovery leaves unfinished, or hands off, goes
to the continuous reconciler. Once it has run, the engines that live across restarts get their
work back: managed position exits and working OCO pairs.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from orderguard.errors import OrderGuardError
from orderguard.orders.metrics import Counters, Metric
from orderguard.orders.send.latch import AmbiguityLatch
from orderguard.recovery.operations import OperationType
from orderguard.recovery.protection import ProtectionExecutor
from orderguard.recovery.startup import RecoveryHost, RecoveryReport, Resumer, recover

log = logging.getLogger("orderguard.orders")


class StartupRecovery:
    """Runs :func:`~orderguard.recovery.startup.recover` for one manager (see module docstring).

    ``host`` is the manager as recovery sees it; ``resumers`` gives the resumers of its engines
    by operation type (the bracket engine's rolls a filled bracket forward); ``saga_operations``
    names the operations its running bracket sagas and OCO pairs drive; ``leftover`` is the
    reconciler's set of operations to resume on its next passes; ``resume_position_orders`` and
    ``resume_oco_pairs`` give the position-order and OCO engines their journaled work back.
    """

    def __init__(
        self,
        *,
        host: RecoveryHost,
        resumers: Callable[[], Mapping[str, Resumer]],
        latch: AmbiguityLatch,
        stats: Counters,
        saga_operations: Callable[[], set[str]],
        leftover: set[str],
        resume_position_orders: Callable[[], Awaitable[object]],
        resume_oco_pairs: Callable[[], Awaitable[object]],
        in_flight_grace: float,
        protection: ProtectionExecutor,
        settle_timeout: float,
    ) -> None:
        self._host = host
        self._resumers = resumers
        self._latch = latch
        self._stats = stats
        self._saga_operations = saga_operations
        self._leftover = leftover
        self._resume_position_orders = resume_position_orders
        self._resume_oco_pairs = resume_oco_pairs
        self._grace = in_flight_grace
        self._protection = protection
        self._settle_timeout = settle_timeout

    async def run(self) -> RecoveryReport:
        """One run of recovery; exposure is lifted only when it read broker truth."""
        recovery = self._host.recovery
        if recovery.active_operations:
            # Nothing may be stacked on operations whose broker state we have not read yet.
            self._latch.hold("start-up recovery has not reconciled the journal with the broker")
        driven = self._saga_operations() | {
            i for i in recovery.active_operations if recovery.rolling_back(i)
        }
        mine = [i for i in recovery.active_operations if i not in driven]
        try:
            # Claimed: the reconciler leaves these alone while recovery works on them.
            with recovery.claimed(mine):
                report = await recover(
                    self._host,
                    resumers=self._resumers(),
                    exclude=driven,
                    in_flight_grace=self._grace,
                )
        except OrderGuardError as exc:
            # A journal or broker failure while resuming: the report says so; retried later.
            report = RecoveryReport(error=f"start-up recovery failed: {exc}")
        except Exception as exc:
            # A bug in a resumer must not leave the manager half-started with exposure allowed:
            # it is logged loudly, exposure stays held, and the reconciler retries.
            log.exception("start-up recovery raised")
            report = RecoveryReport(error=f"start-up recovery raised {type(exc).__name__}: {exc}")
        self._stats[Metric.STARTUP_RECOVERIES] += 1
        if report.error is not None:
            self._stats[Metric.STARTUP_RECOVERY_FAILURES] += 1
            self._latch.hold(f"broker truth unavailable at start-up ({report.error}); retrying")
            log.error("start-up recovery incomplete: %s; new exposure refused", report.error)
            return report
        # Rollbacks recovery handed to the protection executor run in the background; start()
        # waits a bounded while for them (they cancel entries and flatten what was owned), so
        # the report usually says how they ended. Re-protection of filled brackets does not
        # wait: their sagas already run.
        rolling = [o.operation_id for o in report.operations if o.state_after == "rolling_back"]
        if rolling:
            await self._protection.settle(rolling, self._settle_timeout)
            for outcome in report.operations:
                op = recovery.get_operation(outcome.operation_id)
                if op is not None:
                    outcome.state_after = op.state.value
        self._latch.lift()
        for done in report.operations:  # each operation recovery took on is one recovery
            await recovery.note_recovery("startup", done.finished or done.handed_off)
        # Unfinished ones are retried; handed-off OCO pairs are watched (if nobody resumes
        # their engine, the reconciler still applies the OCO rule when a leg fills).
        self._leftover.update(o.operation_id for o in report.unfinished)
        self._leftover.update(o.operation_id for o in report.handed_off)
        if report.operations:
            # Routine on every restart beside open positions: INFO. What needs a person (truth
            # unreadable, an overdue obligation) is logged at its own level where it happens.
            log.info(
                "start-up recovery: %d operations, %d left to the reconciler",
                len(report.operations),
                len(report.unfinished),
            )
        return report

    async def resume_engines(self, report: RecoveryReport | None) -> None:
        """After :meth:`run` (``report`` is its last report): managed exits journaled by an
        earlier process are re-checked against positions, then OCO pairs recovery left working
        (both legs live) get their engine back: a leg's fill must cancel its sibling with
        confirmation, as before the restart."""
        try:
            await self._resume_position_orders()
        except OrderGuardError as exc:
            # The watcher's periodic re-check and the reconciler try again.
            log.warning("resuming managed position exits failed: %s", exc)
        pending = any(
            op.operation_type is OperationType.OCO_PAIR
            for op in self._host.recovery.active_operations.values()
        )
        if not pending or report is None or report.error is not None:
            return  # nothing to re-link, or truth unread: the reconciler's rerun comes first
        try:
            await self._resume_oco_pairs()
        except OrderGuardError as exc:
            log.warning("re-linking OCO pairs failed: %s", exc)


__all__ = ["StartupRecovery"]
