"""Continuous reconciliation: what events missed, REST finds (DESIGN principle 7, FAILURES F7).

A background task started by :meth:`OrderManager.start` and stopped by ``cleanup``. Every
``reconcile_interval`` seconds it asks the pure :func:`~orderguard.recovery.reconcile.plan_pass`
whether anything is in doubt for longer than ``reconcile_threshold`` — an Unknown placement, a
working order whose fill event may be lost, an operation not updated since, a rollback that could
not confirm a safe state — and if so reads broker truth **once per account** (``Order/search``
over all statuses, ``Position/search`` when positions matter; when the pass acts on operations,
``Order/search`` once more after the positions, repeated while a fill falls between the reads) and
acts on it:

* every order read is merged into the tracker (monotonic, so nothing goes backwards); an order
  whose view changed is announced to callbacks and internal listeners like an event, and an
  Unknown placement found by its tag is released from the ambiguity latch;
* an operation left ``rolling_back`` is rolled back again (cancel live legs with confirmation,
  flatten exactly what it owns, clamped by the account's position) until it is safe;
* an operation nobody drives any more (left unfinished by start-up recovery, or left
  ``partially_completed`` with an unknown leg) is resumed like start-up recovery would;
* if start-up recovery could not read broker truth, it is run again; new exposure stays refused
  (the latch's hold) until it succeeds.

A full resync (orders *and* positions, every tracked account) follows a ``RECONNECTED`` event and
a silent stream (no event for ``silence_threshold`` seconds); positions are also read every
``position_check_interval``. A position that differs from the last one seen is announced as a
position event (its own event may be the one that was lost); a silence is announced to internal
listeners as ``ConnectionEvent(SILENT)`` so the bracket, OCO and position-order engines re-read
too.

Journal failures (F15) never stop the loop: reading and announcing need no journal, and an
operation whose record cannot be written is retried on the next pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Coroutine, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from orderguard.broker.base import (
    BrokerEvent,
    ConnectionEvent,
    ConnectionState,
    OrderEvent,
    PositionEvent,
)
from orderguard.config import OrderManagerConfig
from orderguard.errors import JournalError, OrderGuardError, ReadTimeoutError
from orderguard.models import STOP_TYPES, Order, Position, PositionType
from orderguard.orders.feed.order_feed import OrderFeed
from orderguard.orders.feed.tracking import OrderTracker
from orderguard.orders.gateway import GuardedBroker
from orderguard.orders.metrics import ReconcilerMetric
from orderguard.recovery.protection import ProtectionExecutor
from orderguard.recovery.reconcile import (
    AccountSnapshot,
    PassPlan,
    consistent,
    plan_pass,
    plan_recovery,
)
from orderguard.recovery.startup import (
    SNAPSHOT_ATTEMPTS,
    RecoveryHost,
    RecoveryReport,
    Resumer,
    resume_with_truth,
)
from orderguard.resilience import Priority

T = TypeVar("T")

log = logging.getLogger("orderguard.reconciler")


class ReconcilerHost(RecoveryHost, Protocol):
    """The manager as its reconciler sees it: its state and start-up recovery, besides what
    recovery itself needs (the reconciler resumes operations the way recovery does)."""

    config: OrderManagerConfig
    tracker: OrderTracker
    feed: OrderFeed
    gateway: GuardedBroker
    protection: ProtectionExecutor
    last_recovery: RecoveryReport | None

    @property
    def started(self) -> bool: ...

    @property
    def account_id(self) -> int: ...

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]: ...

    async def rerun_recovery(self) -> RecoveryReport: ...

    def unresolved_since(self) -> list[tuple[int, datetime]]: ...

    def saga_operations(self) -> set[str]:
        """Operations a running bracket saga or OCO pair drives."""
        ...

    def resumers(self) -> Mapping[str, Resumer]:
        """The resumers of the manager's engines, by operation type (see recovery/startup)."""
        ...


class Reconciler:
    """The in-flight checker and resync loop of one manager (its ``host``)."""

    def __init__(self, manager: ReconcilerHost) -> None:
        self._m = manager
        self.stats: Counter[ReconcilerMetric] = Counter()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._resync = False
        self._last_event = 0.0
        self._last_read: datetime | None = None
        self._last_positions = 0.0
        self._silence_noted = False
        self._positions: dict[tuple[int, str], int] = {}
        self.leftover: set[str] = set()
        """Operations start-up recovery left unfinished: resumed by the next passes."""

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self.running:
            return
        now = self._m.clock.monotonic()
        self._last_event = now
        self._last_positions = now
        self._last_read = None
        self._task = self._m.spawn(self._run())

    def stop(self) -> None:
        """Cancel the loop (``cleanup`` also cancels and awaits every spawned task)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    # -- events (sync, from the manager's dispatch) ---------------------------------------------
    def on_event(self, event: BrokerEvent) -> None:
        self._last_event = self._m.clock.monotonic()
        self._silence_noted = False
        if isinstance(event, PositionEvent):
            p = event.position
            self._positions[(p.account_id, p.contract_id)] = p.signed_size
        elif isinstance(event, ConnectionEvent) and event.state in (
            ConnectionState.RECONNECTED,
            ConnectionState.SILENT,
        ):
            self.request_resync()

    def request_resync(self) -> None:
        """Make the next pass a full resync, now."""
        self._resync = True
        self._wake.set()

    # -- the loop -------------------------------------------------------------------------------
    async def _run(self) -> None:
        clock = self._m.clock
        while True:
            # A requested resync runs at once, except while start-up recovery is still failing:
            # its retry waits an interval (a failure can be instant, e.g. an open breaker).
            if not self._resync or self._recovery_pending():
                with contextlib.suppress(TimeoutError):
                    await clock.wait_for(self._wake.wait(), self._m.config.reconcile_interval)
            self._wake.clear()
            try:
                await self.run_pass()
            except OrderGuardError as exc:
                # Broker or journal trouble: nothing was decided on missing truth; next pass.
                self.stats[ReconcilerMetric.PASS_ERRORS] += 1
                log.warning("reconciliation pass failed: %s", exc)
            except Exception:
                # A bug must not silently end reconciliation for the life of the process.
                self.stats[ReconcilerMetric.PASS_ERRORS] += 1
                log.exception("reconciliation pass failed unexpectedly")

    def _recovery_pending(self) -> bool:
        report = self._m.last_recovery
        return report is not None and report.error is not None

    async def run_pass(self) -> PassPlan:
        """One pass (also callable directly, e.g. by tests and the CLI)."""
        m = self._m
        cfg = m.config
        clock = m.clock
        mono = clock.monotonic()
        if self._recovery_pending():
            await m.rerun_recovery()
            if not self._recovery_pending():
                self.request_resync()  # events may have been missed while it failed
            return PassPlan()
        recovery = m.recovery
        if recovery.backlog:
            # Records of protective work kept in memory while the journal refused them.
            try:
                written = await recovery.flush_backlog()
            except JournalError as exc:
                self.stats[ReconcilerMetric.BACKLOG_FLUSH_FAILURES] += 1
                log.debug("journal backlog kept: %s", exc)
            else:
                self.stats[ReconcilerMetric.BACKLOG_FLUSHED] += written
                log.info("journal backlog written: %d records", written)
        working = [o for o in m.tracker.orders() if o.is_working]
        # A quiet stream is normal when nothing is in flight (the user hub has no heartbeat
        # events): silence and periodic position reads only matter while there is something
        # whose events we could miss.
        watching = bool(working or recovery.active_operations or any(self._positions.values()))
        silent = watching and mono - self._last_event >= cfg.silence_threshold
        full = self._resync or (silent and not self._silence_noted)
        positions_due = watching and mono - self._last_positions >= cfg.position_check_interval
        now = clock.now()
        plan = plan_pass(
            now=now,
            threshold=timedelta(seconds=cfg.reconcile_threshold),
            last_read=self._last_read,
            operations=list(recovery.active_operations.values()),
            driven=self._driven(),
            leftover=frozenset(self.leftover),
            unresolved=m.unresolved_since(),
            working=working,
            default_account=m.account_id if m.started else None,
            full_resync=full,
            positions_due=positions_due,
            grace=timedelta(seconds=cfg.in_flight_grace),
            protection_deadline=timedelta(seconds=cfg.protection_deadline),
        )
        self._resync = False
        if full and silent:
            self._silence_noted = True  # one resync per silence, not one per pass
        if not plan.accounts:
            if not watching:
                self._last_positions = mono  # the period starts when there is something to watch
            return plan
        self.stats[ReconcilerMetric.PASSES] += 1
        if full:
            self.stats[ReconcilerMetric.FULL_RESYNCS] += 1
        snapshots = await self._read(plan)
        self._last_read = now
        if plan.read_positions:
            self._last_positions = mono
        self._apply_orders(snapshots)
        if plan.read_positions:
            self._apply_positions(snapshots)
        if full and silent:
            # Engines that keep their own state re-read too (the bracket poll, OCO, exits).
            m.feed.notify_listeners(ConnectionEvent(ConnectionState.SILENT, "no events: resynced"))
        await self._act(plan, snapshots)
        return plan

    def _driven(self) -> frozenset[str]:
        """Operations a running saga or rollback drives: the reconciler only re-reads them."""
        m = self._m
        driven = {op_id for op_id in m.recovery.active_operations if m.recovery.rolling_back(op_id)}
        driven.update(m.saga_operations())
        return frozenset(driven)

    async def _read(self, plan: PassPlan) -> dict[int, AccountSnapshot]:
        gateway = self._m.gateway
        assert plan.window_start is not None
        # A pass that resumes or rolls back operations, or checks positions (exits follow
        # them; an outside close is found so), is protection work: the flattening lane, past
        # an open breaker (paced). Blinded for the breaker's reset time, the safety net missed
        # an abandoned filled entry for minutes after a storm.
        lane = (
            Priority.FLATTEN
            if plan.resume or plan.retry_rollback or plan.read_positions
            else Priority.QUERY
        )
        clock, patience = self._m.clock, self._m.config.reconcile_threshold

        async def read(aw: Awaitable[T]) -> T:
            # An ordinary pass waits for the rate budget at most this long, then gives way to
            # the next pass: queued behind a spent window for 40 s, it blocked the passes that
            # would have found an abandoned bare position (they read in the flattening lane).
            if lane is not Priority.QUERY:
                return await aw
            try:
                return await clock.wait_for(aw, patience)
            except TimeoutError as exc:
                self.stats[ReconcilerMetric.READS_GIVEN_UP] += 1
                raise ReadTimeoutError(f"no read within {patience:g} s (rate budget)") from exc

        snapshots: dict[int, AccountSnapshot] = {}
        for account in plan.accounts:
            orders = await read(
                gateway.search_orders(account, start=plan.window_start, priority=lane)
            )
            self.stats[ReconcilerMetric.ORDER_READS] += 1
            positions: list[Position] = []
            if plan.read_positions:
                positions = await gateway.search_positions(account, priority=lane)
                self.stats[ReconcilerMetric.POSITION_READS] += 1
                if plan.retry_rollback or plan.resume:
                    orders, positions = await self._settled(account, plan, orders, positions, lane)
            snapshots[account] = AccountSnapshot(account, tuple(orders), tuple(positions))
        return snapshots

    async def _settled(
        self,
        account: int,
        plan: PassPlan,
        orders: list[Order],
        positions: list[Position],
        lane: Priority,
    ) -> tuple[list[Order], list[Position]]:
        """Orders read again after the positions, until no fill fell between the reads.

        Only when the pass acts on operations: their ownership is counted from the orders and
        clamped by the position, so the two must describe the same moment (see
        ``reconcile.consistent``). Returns the orders and the positions read between them.
        """
        gateway = self._m.gateway
        assert plan.window_start is not None
        for attempt in range(SNAPSHOT_ATTEMPTS):
            if attempt:
                positions = await gateway.search_positions(account, priority=lane)
                self.stats[ReconcilerMetric.POSITION_READS] += 1
            again = await gateway.search_orders(account, start=plan.window_start, priority=lane)
            self.stats[ReconcilerMetric.ORDER_READS] += 1
            stable = consistent(orders, again)
            orders = again
            if stable:
                break
        return orders, positions

    def _apply_orders(self, snapshots: dict[int, AccountSnapshot]) -> None:
        m = self._m
        for snap in snapshots.values():
            for order in snap.orders:
                before = m.tracker.get(order.id)
                m.feed.ingest(order)
                after = m.tracker.get(order.id)
                if after is not None and after != before:
                    self.stats[ReconcilerMetric.ORDERS_CORRECTED] += 1 if before is not None else 0
                    if before is not None and after.fill_volume > before.fill_volume:
                        self.stats[ReconcilerMetric.MISSED_FILLS] += 1
                        log.warning(
                            "order %s: fill %s -> %s found by reconciliation (event lost)",
                            order.id,
                            before.fill_volume,
                            after.fill_volume,
                        )
                    m.feed.notify_listeners(OrderEvent(after))

    def _apply_positions(self, snapshots: dict[int, AccountSnapshot]) -> None:
        m = self._m
        for account, snap in snapshots.items():
            seen: dict[str, Position] = {p.contract_id: p for p in snap.positions}
            known = {c for (a, c) in self._positions if a == account}
            for contract in sorted(known | set(seen)):
                position = seen.get(contract)
                signed = position.signed_size if position is not None else 0
                if self._positions.get((account, contract), 0) == signed:
                    continue
                self._positions[(account, contract)] = signed
                if position is None:
                    position = _flat(account, contract, m.clock.now())
                self.stats[ReconcilerMetric.POSITION_CHANGES] += 1
                m.feed.notify_listeners(PositionEvent(position))

    async def _act(self, plan: PassPlan, snapshots: dict[int, AccountSnapshot]) -> None:
        recovery = self._m.recovery
        await self._guard(plan.unguarded, snapshots)
        for ids, roll_back in ((plan.retry_rollback, True), (plan.resume, False)):
            ops = [recovery.active_operations[i] for i in ids if i in recovery.active_operations]
            if not ops:
                continue
            key = (
                ReconcilerMetric.ROLLBACK_RETRIES
                if roll_back
                else ReconcilerMetric.OPERATIONS_RESUMED
            )
            self.stats[key] += len(ops)
            try:
                with recovery.claimed(op.operation_id for op in ops):
                    done = await resume_with_truth(
                        self._m,
                        ops,
                        snapshots,
                        resumers=self._m.resumers(),
                        roll_back=roll_back,
                        in_flight_grace=self._m.config.in_flight_grace,
                    )
            except OrderGuardError as exc:
                self.stats[ReconcilerMetric.ACTION_ERRORS] += 1
                log.warning("reconciling operations %s failed: %s", ids, exc)
                continue
            for outcome in done:
                kind = "reconciler_rollback" if roll_back else "reconciler_resume"
                await recovery.note_recovery(kind, outcome.finished, retry_of=outcome.operation_id)
                log.info(
                    "reconciled operation %s: %s -> %s (%s)",
                    outcome.operation_id,
                    outcome.state_before,
                    outcome.state_after,
                    "; ".join(outcome.actions),
                )
                if outcome.finished:
                    self.leftover.discard(outcome.operation_id)
                    self.stats[ReconcilerMetric.OPERATIONS_FINISHED] += 1

    async def _guard(self, ids: tuple[str, ...], snapshots: dict[int, AccountSnapshot]) -> None:
        """The caller's brackets (the seed's calls) that own exposure their stops do not cover,
        untouched for longer than the protection deadline, are rolled back by the protection
        executor: the caller's code stalled between the entry and its stop (a read that did
        not answer), and the position sat bare for as long as it did."""
        recovery = self._m.recovery
        ops = [recovery.active_operations[i] for i in ids if i in recovery.active_operations]
        if not ops:
            return
        holders = [*recovery.active_operations.values(), *recovery.finished_holders()]
        for op, found in zip(ops, plan_recovery(ops, snapshots, holders=holders), strict=True):
            if found.flattenable == 0 or op.state.is_terminal or recovery.rolling_back(op.id):
                continue
            exits = [f.order for f in found.findings if f.order is not None]
            covered = sum(
                o.remaining
                for o in (*exits, *found.children)
                if o.is_working and o.type in STOP_TYPES and o.side.sign * found.flattenable < 0
            )
            if covered >= abs(found.flattenable):
                continue
            self.stats[ReconcilerMetric.UNGUARDED_ROLLED_BACK] += 1
            reason = (
                f"owns {found.flattenable:+d} with {covered} covered by stops, untouched for "
                f"longer than the protection deadline"
            )
            log.error("operation %s %s: rolling it back", op.id, reason)
            await self._m.protection.roll_back(op, reason)


def _flat(account: int, contract: str, at: datetime) -> Position:
    """A flat position (``size`` 0), which ``Position/search`` reports by leaving it out."""
    return Position(0, account, contract, at, PositionType.UNDEFINED, 0, Decimal(0))


__all__ = ["Reconciler"]
