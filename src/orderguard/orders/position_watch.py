"""PositionWatcher: managed exits follow their position; none outlives it (FAILURES I2).

Driven by broker events (a position, order or reconnect event on a contract with managed exits
schedules a reconcile of that contract) and by a periodic REST re-check, because events can be
lost and absence of an event is no evidence of anything. A reconcile reads broker truth — the
position, then each managed exit — asks the pure planner (:func:`plan_follow`) what to change,
and does it: resize exits to the position, cancel them when it is flat or flipped.

Only exits in the :class:`ExitRegistry` are touched (placed by ``add_stop_loss`` /
``add_take_profit`` or registered explicitly); a bracket's legs belong to the bracket saga. The
quantity bracket operations own on the contract is subtracted from the net position, so managed
exits cover the part of the position that is outside any bracket.

Concurrency: no locks. Reconciles of one contract never overlap — an event arriving during one
marks the contract dirty and it runs again — and every mutation is idempotent (cancel; modify to
an absolute size), so a repeated or racing round converges instead of compounding.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from orderguard.broker.base import (
    BrokerEvent,
    ConnectionEvent,
    ConnectionState,
    OrderEvent,
    PositionEvent,
)
from orderguard.errors import ExposureRefusedError, OrderGuardError
from orderguard.models import Order, OrderStatus
from orderguard.orders.position_registry import ExitRegistry, ManagedExit
from orderguard.orders.position_rules import Cancel, ExitView, Resize, plan_follow
from orderguard.recovery.manager import RecoveryOperation
from orderguard.recovery.operations import OperationType
from orderguard.resilience import Priority

if TYPE_CHECKING:
    from orderguard.orders.manager import OrderManager

log = logging.getLogger("orderguard.orders.positions")

Key = tuple[int, str]
OwnedElsewhere = Callable[[int, str], int]


class PositionWatcher:
    """Keeps managed exits sized to their position and cancels them when it goes flat."""

    def __init__(
        self,
        manager: OrderManager,
        registry: ExitRegistry,
        *,
        enabled: bool = True,
        interval: float = 15.0,
        owned_elsewhere: OwnedElsewhere | None = None,
    ) -> None:
        self._manager = manager
        self._registry = registry
        self.enabled = enabled
        self.interval = interval
        self._owned_elsewhere = owned_elsewhere or self._bracket_owned
        self._running: set[Key] = set()
        self._dirty: set[Key] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self.stats: Counter[str] = Counter()

    # -- triggers (sync: called from the event dispatch, so they only schedule) ---------------
    def on_event(self, event: BrokerEvent) -> None:
        if not self.enabled or not len(self._registry):
            return
        if isinstance(event, PositionEvent):
            key = (event.position.account_id, event.position.contract_id)
            if key in self._registry.contracts():
                self.schedule(key)
        elif isinstance(event, OrderEvent):
            order = event.order
            if self._is_managed(order):
                self.schedule((order.account_id, order.contract_id))
        elif isinstance(event, ConnectionEvent) and event.state is ConnectionState.RECONNECTED:
            # Events in the gap are lost: re-read every contract we manage.
            for key in self._registry.contracts():
                self.schedule(key)

    def schedule(self, key: Key) -> None:
        """Reconcile ``key`` soon; if a reconcile of it is running, run once more after it."""
        if key in self._running:
            self._dirty.add(key)
            return
        self._running.add(key)
        self._manager.spawn(self._drain(key))

    def ensure_rechecks(self) -> None:
        """Start the periodic REST re-check if it is not running (it stops when nothing is left)."""
        if self.enabled and (self._loop_task is None or self._loop_task.done()):
            self._loop_task = self._manager.spawn(self._recheck_loop())

    async def _drain(self, key: Key) -> None:
        try:
            while True:
                self._dirty.discard(key)
                try:
                    await self.reconcile(*key)
                except OrderGuardError as exc:
                    # Broker trouble: the next event or the periodic re-check tries again.
                    self.stats["reconcile_errors"] += 1
                    log.warning("reconciling position orders on %s failed: %s", key, exc)
                if key not in self._dirty:
                    return
        finally:
            self._running.discard(key)

    async def _recheck_loop(self) -> None:
        while self.enabled and len(self._registry):
            await self._manager.clock.sleep(self.interval)
            for key in sorted(self._registry.contracts()):
                self.schedule(key)

    async def recheck_all(self) -> None:
        """Reconcile every managed contract now and wait for it (for tests and the CLI)."""
        for key in sorted(self._registry.contracts()):
            await self.reconcile(*key)

    # -- the reconcile --------------------------------------------------------------------------
    async def reconcile(self, account_id: int, contract_id: str) -> None:
        """Bring the managed exits on one contract in line with broker truth (see module doc)."""
        if not self.enabled:
            return
        manager = self._manager
        exits = self._registry.for_contract(account_id, contract_id)
        if not exits:
            return
        self.stats["reconciles"] += 1
        await self._resolve_tags(exits)
        signed = await manager.owned_position(account_id, contract_id)
        unowned = signed - self._owned_elsewhere(account_id, contract_id)
        views: list[ExitView] = []
        finished: list[tuple[ManagedExit, Order | None]] = []
        for managed in exits:
            if managed.order_id is None:
                continue  # still unresolved; _resolve_tags keeps looking
            order = await manager.get_order_by_id(managed.order_id, account_id, refresh=True)
            if order is None or order.is_terminal:
                finished.append((managed, order))
                continue
            views.append(
                ExitView(
                    order.id,
                    order.side,
                    order.size,
                    order.fill_volume,
                    order.is_working,
                    managed.cover,
                    managed.kind,
                )
            )
        max_size = await manager.reference.max_order_size(account_id)
        for action in plan_follow(unowned, views, max_size=max_size):
            if isinstance(action, Resize):
                order = await self._resize(account_id, action)
            else:
                order = await self._cancel(account_id, action)
            managed_exit = self._registry.by_order_id(action.order_id)
            if order is None or managed_exit is None:
                continue
            if order.is_terminal:
                reason = action.reason if isinstance(action, Cancel) else "ended while resized"
                await self.forget(managed_exit, order, reason, cancelled_by_us=True)
            else:
                await self._record(managed_exit, order)
        for managed, order in finished:
            if managed in self._registry:
                await self.forget(managed, order, "found finished at the broker")

    async def forget(
        self,
        managed: ManagedExit,
        order: Order | None,
        reason: str,
        *,
        cancelled_by_us: bool = False,
    ) -> None:
        """Stop managing an exit that is no longer working; its final state goes on record."""
        if order is not None:
            await self._record(managed, order, reason, cancelled_by_us=cancelled_by_us)
        await self._registry.discard(managed)

    async def _resolve_tags(self, exits: list[ManagedExit]) -> None:
        """Find exits whose placement outcome was unknown; forget ones too old to be found."""
        manager = self._manager
        for managed in exits:
            if managed.order_id is not None or managed.custom_tag is None:
                continue
            order = await manager.find_order_by_tag(managed.account_id, managed.custom_tag)
            if order is not None:
                managed.order_id = order.id
                await self._registry.update(managed)
                await self._resolve_operation(managed, order)
            elif managed.created_at < manager.reference.window_start(manager.clock.now()):
                # Beyond the search window a tag can no longer be found; stop asking.
                log.error("managed exit %s never appeared at the broker", managed.custom_tag)
                await self._registry.discard(managed)

    async def _resize(self, account_id: int, action: Resize) -> Order | None:
        manager = self._manager
        self.stats["resizes"] += 1
        log.info("resizing managed exit %s to %s", action.order_id, action.size)
        try:
            result = await manager.modify_order(
                action.order_id, size=action.size, account_id=account_id,
                priority=Priority.PROTECTIVE,
            )  # fmt: skip
            return result.order
        except ExposureRefusedError:
            # The ambiguity latch guards against new exposure; growing an exit removes exposure,
            # and a modify to an absolute size is idempotent, so it goes out anyway.
            await manager.gateway.modify_order(
                account_id, action.order_id, size=action.size, priority=Priority.PROTECTIVE
            )
            return await manager.get_order_by_id(action.order_id, account_id, refresh=True)
        except OrderGuardError as exc:
            self.stats["resize_errors"] += 1
            log.warning("resizing exit %s failed: %s", action.order_id, exc)
            return None

    async def _cancel(self, account_id: int, action: Cancel) -> Order | None:
        manager = self._manager
        self.stats["cancels"] += 1
        log.info("cancelling managed exit %s: %s", action.order_id, action.reason)
        try:
            # An exit without its position is risk: it goes in the protective lane.
            await manager.cancel_journaled(
                action.order_id, account_id, priority=Priority.PROTECTIVE
            )
        except OrderGuardError as exc:
            self.stats["cancel_errors"] += 1
            log.warning("cancelling exit %s failed: %s", action.order_id, exc)
        return manager.tracker.get(action.order_id)

    # -- records --------------------------------------------------------------------------------
    async def _record(
        self,
        managed: ManagedExit,
        order: Order,
        reason: str | None = None,
        *,
        cancelled_by_us: bool = False,
    ) -> None:
        """Fold broker truth about the exit into its operation record (keeps it truthful)."""
        if managed.operation_id is None:
            return
        op = await self._operation(managed.operation_id)
        if op is None:
            return
        ref = op.orders.get(managed.kind.value)
        if ref is None or ref.order_id != order.id:
            return
        ref.size = order.size
        if cancelled_by_us:
            ref.cancel_attempted = True
            ref.cancel_successful = order.status in (OrderStatus.CANCELLED, OrderStatus.EXPIRED)
        if reason is not None:
            op.extra["ended"] = f"{order.status.name.lower()}: {reason}"
        await self._manager.recovery.record_order_state(op, ref, order)

    async def _resolve_operation(self, managed: ManagedExit, order: Order) -> None:
        """The placement whose outcome was unknown exists after all: finish its operation."""
        if managed.operation_id is None:
            return
        op = await self._operation(managed.operation_id)
        if op is None or op.state.is_terminal:
            return
        ref = op.orders.get(managed.kind.value)
        recovery = self._manager.recovery
        if ref is not None and not ref.placed_successfully:
            await recovery.record_resolution(op, ref, order)
        await recovery.complete_operation(op)

    async def _operation(self, operation_id: str) -> RecoveryOperation | None:
        recovery = self._manager.recovery
        op = recovery.active_operations.get(operation_id)
        if op is None:
            op = next((o for o in recovery.operation_history if o.id == operation_id), None)
        if op is None:
            rec = await recovery.journal.get_operation(operation_id)
            op = None if rec is None else RecoveryOperation.from_record(rec)
        return op

    def _is_managed(self, order: Order) -> bool:
        if self._registry.by_order_id(order.id) is not None:
            return True
        return order.custom_tag is not None and self._registry.by_tag(order.custom_tag) is not None

    def _bracket_owned(self, account_id: int, contract_id: str) -> int:
        """Signed quantity bracket operations own on the contract (their legs protect it)."""
        recovery = self._manager.recovery
        ops = [*recovery.active_operations.values(), *recovery.operation_history]
        seen: set[str] = set()
        total = 0
        for op in ops:
            if op.id in seen or op.operation_type is not OperationType.BRACKET_ORDER:
                continue
            seen.add(op.id)
            contract = op.contract_id or next((r.contract_id for r in op.orders.values()), None)
            account = (
                op.account_id
                if op.account_id is not None
                else next((r.account_id for r in op.orders.values()), None)
            )
            if contract == contract_id and account == account_id:
                total += op.net_filled
        return total


__all__ = ["PositionWatcher"]
