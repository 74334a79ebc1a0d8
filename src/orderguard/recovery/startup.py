"""Start-up recovery: reconcile every unfinished operation with broker truth before trading.

``OrderManager.start()`` calls :func:`recover` before it accepts new operations and keeps the
report as ``manager.last_recovery``; while ``report.error`` says broker truth was unavailable, new
exposure is refused and the manager's reconciler runs recovery again. Operations left unfinished
(``report.unfinished``) are retried by the reconciler with the same machinery
(:func:`resume_with_truth`). Called by hand, it is idempotent::

    await manager.start()
    report = manager.last_recovery

What it does (FAILURES F6):

1. Reads at once, with no fixed wait: only the conclusion that a leg the dead process may still
   have had in flight never reached the broker waits ``in_flight_grace`` seconds after the
   journal's last write (so that "not at the broker" really means "never executed").
2. Reads the broker **once per account**: ``search_orders`` over a window covering the oldest
   unfinished operation (every status), ``search_positions``, then ``search_orders`` again; if a
   fill landed between the reads (the fills differ) the position and orders are read again, at
   most ``SNAPSHOT_ATTEMPTS`` times. Three queries per account in the usual case; the number does
   not grow with the number of operations; only the mutations recovery has to make do.
3. Plans with the pure :func:`~orderguard.recovery.reconcile.plan_recovery` and folds each leg's
   final state into its operation (Unknown and intended legs resolved by customTag).
4. Hands each operation to its *resumer*, which rolls it forward or back by the pivot rule, and
   returns a :class:`RecoveryReport` saying what was done per operation (oldest first). The
   operations of one (account, contract) are resumed one after another, oldest first; different
   contracts are resumed side by side (see ``_resume_in_lanes``).

Resumers
--------
A resumer is ``async def resumer(ctx: ResumeContext) -> None``. It finds the operation, its plan
and the account's truth on ``ctx`` and acts through ``ctx`` (``cancel_live_legs``,
``flatten_owned``, ``roll_back``, ``settle``, ``transition``, ``note``). The caller of
:func:`recover` passes the resumers it has (``resumers``, by name); which one runs:

1. ``operation.extra["resumer"]`` naming a given or built-in resumer (for sagas that need their
   own);
2. the resumer given for the operation's type (its value, e.g. ``"bracket_order"``);
3. :func:`roll_back` for an operation that was already rolling back;
4. the built-in default: :func:`roll_back` for brackets (cancel live legs with confirmation,
   flatten exactly the owned quantity — safe, though it gives up the position), :func:`settle`
   for everything else (record the truth, apply the OCO rule, never cancel or flatten a leg whose
   purpose it cannot know).

There is no process-wide registry: the OrderManager hands recovery the resumers of its own
engines (the bracket engine's re-protects after the pivot), so two managers in one process never
resume each other's operations::

    async def resume_bracket(ctx: ResumeContext) -> None:
        if not ctx.plan.pivot_passed:
            await ctx.roll_back("entry never filled")
            return
        ...  # place or resize stop/target for ctx.plan.owned with the legs' tags

    await recover(host, resumers={OperationType.BRACKET_ORDER.value: resume_bracket})

Over 500 lines: recover(), resume_with_truth(), the resumers and the ResumeContext actions they use
are one protocol; the pure planning is reconcile.py.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, ParamSpec, Protocol, TypeVar

from orderguard.broker.base import Broker
from orderguard.clock import Clock
from orderguard.errors import OperationError, OrderGuardError
from orderguard.journal.base import IntentKind
from orderguard.models import Order, OrderSide, OrderType, Position
from orderguard.recovery.legs import STOP, TARGET, count_numbered, numbered
from orderguard.recovery.manager import (
    OperationRecoveryManager,
    OrderReference,
    RecoveryOperation,
    RefStatus,
)
from orderguard.recovery.operations import OperationState, OperationType
from orderguard.recovery.protection import HOLDER_TYPES
from orderguard.recovery.reconcile import (
    AccountSnapshot,
    LegAction,
    OperationPlan,
    accounts_of,
    consistent,
    plan_recovery,
    search_windows,
)
from orderguard.resilience.retry import Retrier, RetryPolicy, retryable_query_error

log = logging.getLogger("orderguard.recovery")

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_IN_FLIGHT_GRACE = 10.0
"""Seconds after the dead process's last journal write within which a request it sent may still
execute at the gateway. Absence at the broker is only evidence after that."""

SNAPSHOT_ATTEMPTS = 3
"""Position reads per account before recovery settles for the last pair of reads: each is
followed by an order search, and a pair is taken once no fill happened between them."""

DEFAULT_QUERY_RETRY = RetryPolicy(max_attempts=6, initial_delay=0.5, max_delay=5.0, max_total=60.0)


class RecoveryHost(Protocol):
    """What recovery needs from the OrderManager (kept small so recovery never imports orders)."""

    @property
    def recovery(self) -> OperationRecoveryManager: ...

    @property
    def broker(self) -> Broker: ...

    @property
    def clock(self) -> Clock: ...

    async def cancel_and_confirm(self, account_id: int, order_id: int) -> Order | None: ...

    async def read_orders(self, account_id: int, start: datetime) -> list[Order]:
        """Every order of the account since ``start``, in the flattening lane."""
        ...

    async def read_positions(self, account_id: int) -> list[Position]:
        """The account's positions, in the flattening lane."""
        ...

    async def flatten_quantity(
        self, account_id: int, contract_id: str, signed_size: int, custom_tag: str
    ) -> Order | None: ...


# ------------------------------------------------------------------------------------------------
# the report
# ------------------------------------------------------------------------------------------------
@dataclass(slots=True)
class OperationRecovery:
    """What recovery did to one operation."""

    operation_id: str
    type: str
    state_before: str
    state_after: str
    resumer: str
    actions: list[str] = field(default_factory=list)
    error: str | None = None
    handed_off: bool = False
    """Left working on purpose: an OCO pair whose legs are all still working, or a filled
    bracket whose saga was restarted, is its engine's to drive (``OrderManager.start`` re-links
    the pairs), not recovery's to finish."""
    in_doubt: tuple[str, ...] = ()
    """Legs the broker had no trace of while their request may still be in flight (younger than
    the in-flight grace): not concluded absent yet; the reconciler finishes the operation."""

    @property
    def finished(self) -> bool:
        return OperationState(self.state_after).is_terminal

    def as_dict(self) -> dict[str, Any]:
        return {
            "operation_id": self.operation_id,
            "type": self.type,
            "state_before": self.state_before,
            "state_after": self.state_after,
            "resumer": self.resumer,
            "actions": list(self.actions),
            "error": self.error,
            "handed_off": self.handed_off,
            "in_doubt": list(self.in_doubt),
        }


@dataclass(slots=True)
class RecoveryReport:
    """Start-up recovery's account of itself; ``unfinished`` must be empty before trading."""

    operations: list[OperationRecovery] = field(default_factory=list)
    accounts: list[int] = field(default_factory=list)
    queries: int = 0
    """Broker queries made to read truth (retries included): 3 per account (orders, positions,
    orders again to prove no fill fell between them), whatever the count of operations."""
    waited: float = 0.0
    error: str | None = None
    """Set when broker truth could not be read; nothing was changed then."""

    @property
    def unfinished(self) -> list[OperationRecovery]:
        return [o for o in self.operations if not o.finished and not o.handed_off]

    @property
    def handed_off(self) -> list[OperationRecovery]:
        return [o for o in self.operations if o.handed_off]

    @property
    def ok(self) -> bool:
        """Truth was read and every operation was finished, handed to its driver, or is only
        waiting for a leg in doubt to be proved absent (the in-flight grace; the reconciler
        finishes it)."""
        return self.error is None and all(o.in_doubt for o in self.unfinished)

    def as_dict(self) -> dict[str, Any]:
        return {
            "operations": [o.as_dict() for o in self.operations],
            "accounts": list(self.accounts),
            "queries": self.queries,
            "waited": self.waited,
            "error": self.error,
            "unfinished": [o.operation_id for o in self.unfinished],
        }


# ------------------------------------------------------------------------------------------------
# resumers
# ------------------------------------------------------------------------------------------------


def resumer_for(
    op: RecoveryOperation, registry: Mapping[str, Resumer] | None = None
) -> tuple[str, Resumer]:
    """The resumer that handles ``op`` and its name (see the module docstring for the order)."""
    table = {**_BUILTIN, **(registry or {})}
    named = op.extra.get("resumer")
    if isinstance(named, str) and named in table:
        return named, table[named]
    if op.operation_type.value in table:
        return op.operation_type.value, table[op.operation_type.value]
    if op.state is OperationState.ROLLING_BACK:
        return "rollback", roll_back_resumer
    if op.operation_type is OperationType.BRACKET_ORDER:
        return "rollback", roll_back_resumer
    return "settle", settle_resumer


@dataclass(slots=True)
class ResumeContext:
    """One operation being resumed: its plan, its account's truth, and safe actions on it."""

    host: RecoveryHost
    operation: RecoveryOperation
    plan: OperationPlan
    snapshot: AccountSnapshot | None
    actions: list[str] = field(default_factory=list)
    handed_off: bool = False
    in_doubt: list[str] = field(default_factory=list)

    @property
    def recovery(self) -> OperationRecoveryManager:
        return self.host.recovery

    def note(self, text: str) -> None:
        self.actions.append(text)

    async def transition(self, target: OperationState, reason: str) -> None:
        """Move the operation to ``target`` along the transition table, journaled."""
        op = self.operation
        if op.state is target:
            return
        # The recovery manager owns state changes (journal, indexes, statistics).
        await self.recovery.transition_operation(op, target, reason)
        self.note(f"state -> {target.value}: {reason}")

    async def cancel_live_legs(self, legs: Iterable[str] | None = None) -> tuple[str, ...]:
        """Cancel working legs (all, or ``legs``), confirming each final state; returns the legs
        still live afterwards (a cancel can lose to a fill, or stay unconfirmed)."""
        wanted = set(legs) if legs is not None else None
        op = self.operation
        for ref in list(op.orders.values()):
            if wanted is not None and ref.leg not in wanted:
                continue
            if ref.order_id is None or ref.status not in (RefStatus.CONFIRMED, RefStatus.UNKNOWN):
                continue
            ref.cancel_attempted = True
            try:
                final = await self.host.cancel_and_confirm(ref.account_id, ref.order_id)
            except OrderGuardError as exc:
                ref.error_message = f"cancel failed: {exc}"
                self.note(f"cancel {ref.leg} (order {ref.order_id}) failed: {exc}")
                continue
            if final is not None:
                await self.recovery.record_order_state(op, ref, final)
                ref.cancel_successful = ref.status == RefStatus.CANCELLED
            self.note(
                f"cancel {ref.leg} (order {ref.order_id}) -> "
                + (final.status.name if final is not None else "unconfirmed")
            )
        return tuple(
            r.leg
            for r in op.orders.values()
            if (wanted is None or r.leg in wanted)
            and r.status in (RefStatus.CONFIRMED, RefStatus.UNKNOWN)
        )

    async def cancel_children(self) -> tuple[str, ...]:
        """Cancel the working native bracket children the plan found (legs or not); returns
        those still working afterwards."""
        known = {r.order_id for r in self.operation.orders.values() if r.order_id is not None}
        live: list[str] = []
        for child in self.plan.children:
            if child.id in known:
                continue  # a recorded leg: cancel_live_legs handled it
            try:
                final = await self.host.cancel_and_confirm(child.account_id, child.id)
            except OrderGuardError as exc:
                self.note(f"cancel bracket child {child.id} failed: {exc}")
                live.append(f"child{child.id}")
                continue
            state = final.status.name if final is not None else "unconfirmed"
            self.note(f"cancel bracket child {child.id} -> {state}")
            if final is None or final.is_working:
                live.append(f"child{child.id}")
        return tuple(live)

    async def roll_back(self, reason: str) -> None:
        """Hand the operation to the protection executor (recovery/protection.py), the one
        place every rollback runs: entries cancelled first, exits kept until the entries are
        final and the owned quantity (clamped by the account's position) is flattened, never
        given up while exposure is held. The operation stays ``rolling_back`` — the standing
        obligation — until the executor ends it ``rolled_back``."""
        op = self.operation
        if not op.orders:
            await self.transition(OperationState.FAILED, f"{reason}: nothing was sent")
            return
        executor = self.recovery.protection
        if executor is None:
            raise OperationError("no protection executor to roll the operation back with")
        await executor.roll_back(op, reason, truth=self.snapshot)
        self.handed_off = True
        self.note(f"rolling back: {reason} (handed to the protection executor)")

    async def settle(self) -> None:
        """Record the truth and finish without cancelling or flattening legs of unknown purpose.

        The one rule applied: an OCO leg filled means its sibling is cancelled (confirmed). A pair
        whose legs are all still working is left as it is, for its engine to resume (finishing
        it would drop the link while both orders can still fill).
        """
        op = self.operation
        if self._live_oco_pair():
            self.handed_off = True
            self.note("OCO pair still working: left for its engine (re-linked by start())")
            return
        linked = self._linked_orders()
        if linked is not None and not op.orders:
            await self._settle_linked(linked)
            return
        for a, b in op.oco_pairs:
            pair = [op.orders.get(a), op.orders.get(b)]
            if any(r is not None and r.status == RefStatus.FILLED for r in pair):
                await self.cancel_live_legs([a, b])
        refs = list(op.orders.values())
        if any(r.status in (RefStatus.UNKNOWN, RefStatus.INTENDED) for r in refs):
            self.note("left open: a leg is still unknown")
            return
        if refs and all(r.placed_successfully for r in refs):
            await self.transition(OperationState.COMPLETED, "every leg found at the broker")
            return
        absent = [r.leg for r in refs if not r.placed_successfully]
        reason = (
            f"interrupted by a restart; not placed: {absent}"
            if absent
            else ("interrupted by a restart before any order was sent")
        )
        await self.transition(OperationState.FAILED, reason)

    def _linked_orders(self) -> list[Order | None] | None:
        """The two orders of a pair linked by id (``link_oco_orders``), from the snapshot."""
        ids = self.operation.extra.get("linked_order_ids")
        if not isinstance(ids, list) or len(ids) != 2 or self.snapshot is None:
            return None
        by_id = {o.id: o for o in self.snapshot.orders}
        return [by_id.get(int(i)) for i in ids]

    def _live_oco_pair(self) -> bool:
        op = self.operation
        for a, b in op.oco_pairs:
            refs = [op.orders.get(a), op.orders.get(b)]
            if all(
                r is not None and r.status == RefStatus.CONFIRMED and r.filled_size == 0
                for r in refs
            ):
                return True
        linked = self._linked_orders()
        return linked is not None and all(
            o is not None and o.is_working and o.fill_volume == 0 for o in linked
        )

    async def _settle_linked(self, linked: list[Order | None]) -> None:
        """A pair linked by id: a leg filled means the other is cancelled (confirmed)."""
        if any(o is not None and o.fill_volume > 0 for o in linked):
            for order in linked:
                if order is None or not order.is_working:
                    continue
                final = await self.host.cancel_and_confirm(order.account_id, order.id)
                state = final.status.name if final is not None else "unconfirmed"
                self.note(f"cancel linked sibling {order.id} -> {state}")
                if final is None or final.is_working:
                    return  # still live: the next pass tries again
        if any(o is not None and o.is_working for o in linked):
            return  # one leg gone without a fill, the other working: nothing to enforce yet
        await self.transition(OperationState.COMPLETED, "linked pair over at the broker")


async def roll_back_resumer(ctx: ResumeContext) -> None:
    """The safe default: roll back (cancel with confirmation, flatten exactly what is owned)."""
    await ctx.roll_back("rolled back at start-up recovery")


async def settle_resumer(ctx: ResumeContext) -> None:
    """Default for operations that open no exposure of their own: record truth and finish."""
    await ctx.settle()


Resumer = Callable[[ResumeContext], Awaitable[None]]
"""A resumer: rolls one operation forward or back through its context (module docstring)."""

_BUILTIN: dict[str, Resumer] = {"rollback": roll_back_resumer, "settle": settle_resumer}


# ------------------------------------------------------------------------------------------------
# recover
# ------------------------------------------------------------------------------------------------
async def recover(
    host: RecoveryHost,
    *,
    resumers: Mapping[str, Resumer] | None = None,
    in_flight_grace: float = DEFAULT_IN_FLIGHT_GRACE,
    query_retry: RetryPolicy = DEFAULT_QUERY_RETRY,
    window_margin: timedelta = timedelta(minutes=5),
    exclude: Collection[str] = (),
) -> RecoveryReport:
    """Reconcile and resume every unfinished operation (see the module docstring).

    ``exclude`` names operations a live saga of this process drives (a re-run of recovery in a
    running process must not resume what is already being driven).
    """
    recovery = host.recovery
    clock = host.clock
    ops = sorted(
        (o for o in recovery.active_operations.values() if o.operation_id not in exclude),
        key=lambda o: (o.started_at, o.operation_id),
    )
    report = RecoveryReport()
    if not ops:
        return report
    # No fixed wait for requests the dead process may still have in flight: truth is read at
    # once and protection restored at once (a protective or flattening leg in doubt is re-sent
    # under its own tag, which the broker refuses to duplicate). Only the conclusion that a
    # leg never reached the broker waits for ``in_flight_grace`` (see ``_fold``).
    for op in ops:
        adopted = await _adopt_orphan_intents(recovery, op)
        if adopted:
            # A process stopped between a leg's intent and the operation's next save (a crash,
            # or a shutdown while a native child was being journaled): routine, resolved by tag.
            log.info("operation %s: adopted journaled legs %s", op.operation_id, adopted)

    report.accounts = accounts_of(ops)
    windows = search_windows(ops, window_margin)
    retrier = Retrier(
        query_retry, clock, random.Random(f"orderguard.recovery:{len(ops)}"),
        retry_on=retryable_query_error,
    )  # fmt: skip
    snapshots: dict[int, AccountSnapshot] = {}

    oldest = min(o.started_at for o in ops) - window_margin
    try:
        for account in report.accounts:
            start = windows.get(account, oldest)
            # In the flattening lane: a fill at the crash may be waiting for these reads.
            search = _counted(report, host.read_orders)
            orders: list[Order] = await retrier.call(search, account, start)
            positions: list[Position] = []
            for _ in range(SNAPSHOT_ATTEMPTS):
                positions = await retrier.call(_counted(report, host.read_positions), account)
                # Orders again: a fill between the two reads would make the position disagree
                # with the orders the plan counts ownership from (see reconcile.consistent).
                again: list[Order] = await retrier.call(search, account, start)
                stable = consistent(orders, again)
                orders = again
                if stable:
                    break
            else:
                log.warning("account %s: fills kept changing while reading truth", account)
            snapshots[account] = AccountSnapshot(
                account, tuple(orders), tuple(positions), since=start
            )
    except OrderGuardError as exc:
        # Without truth nothing may be decided: every operation stays as it is, unfinished.
        report.error = f"broker truth unavailable: {exc}"
        for op in ops:
            report.operations.append(
                OperationRecovery(
                    op.operation_id, op.type, op.state.value, op.state.value, "none",
                    error=report.error,
                )
            )  # fmt: skip
        log.error("start-up recovery could not read the broker: %s", exc)
        return report

    report.operations.extend(
        await resume_with_truth(
            host, ops, snapshots, resumers=resumers, adopt=False, in_flight_grace=in_flight_grace
        )
    )
    return report


async def resume_with_truth(
    host: RecoveryHost,
    ops: Sequence[RecoveryOperation],
    snapshots: Mapping[int, AccountSnapshot],
    *,
    resumers: Mapping[str, Resumer] | None = None,
    roll_back: bool = False,
    adopt: bool = True,
    in_flight_grace: float = DEFAULT_IN_FLIGHT_GRACE,
) -> list[OperationRecovery]:
    """Plan and resume ``ops`` (oldest first per contract) against broker truth already read.

    The shared step of start-up recovery and of the continuous reconciler, which reads the same
    one-query-per-account snapshots. ``roll_back`` forces the rollback resumer (the reconciler's
    retry of a rollback that could not confirm a safe state).
    """
    if adopt:
        for op in ops:
            await _adopt_orphan_intents(host.recovery, op)
    forced = ("rollback", roll_back_resumer) if roll_back else None
    await _credit_closes(host.recovery, ops, snapshots)
    # Finished operations that still own part of a position (a protected entry, completed with
    # its stop working) share the account's position with the ones resumed here.
    accounts = set(snapshots)
    holders = [
        op
        for op in host.recovery.finished_holders()
        if op.operation_type in HOLDER_TYPES
        and op.net_filled
        and (op.account_id in accounts or any(r.account_id in accounts for r in op.orders.values()))
    ]
    plans = plan_recovery(ops, snapshots, holders=holders)
    return await _resume_in_lanes(
        host, list(ops), plans, snapshots, resumers, forced, in_flight_grace
    )


async def _credit_closes(
    recovery: OperationRecoveryManager,
    ops: Sequence[RecoveryOperation],
    snapshots: Mapping[int, AccountSnapshot],
) -> None:
    """A position close for one operation that filled before the crash, but had not credited
    that operation yet, credits it now (idempotent: keyed by the close). Left to the plan, its
    shortfall would be taken from the newest holder instead of the one it closed for."""
    for op in ops:
        source_id = op.extra.get("for_operation")
        if op.operation_type is not OperationType.POSITION_CLOSE or not source_id:
            continue
        source = recovery.get_operation(str(source_id))
        if source is None or source.operation_type not in HOLDER_TYPES:
            continue
        closed = 0
        for ref in op.orders.values():
            snap = snapshots.get(ref.account_id)
            found = None if snap is None else _by_tag(snap, ref.lookup_tag)
            filled = found.fill_volume if found is not None else ref.filled_size
            closed += filled if ref.side == OrderSide.BUY else -filled
        if closed:
            await recovery.record_external_close(source, closed, by=op.operation_id)
            log.info("operation %s: %+d closed for it by %s", source.operation_id, closed, op.id)


def _by_tag(snapshot: AccountSnapshot, tag: str) -> Order | None:
    return next((o for o in snapshot.orders if o.custom_tag == tag), None)


async def _resume_in_lanes(
    host: RecoveryHost,
    ops: list[RecoveryOperation],
    plans: list[OperationPlan],
    snapshots: Mapping[int, AccountSnapshot],
    resumers: Mapping[str, Resumer] | None,
    forced: tuple[str, Resumer] | None,
    grace: float,
) -> list[OperationRecovery]:
    """Resume every operation; returns their recoveries in the order of ``ops``.

    Operations on one (account, contract) run strictly one after another, oldest first, as they
    always did. Different contracts run side by side: their positions and latches are separate
    and the plan allocated each operation's flattenable share up front, so they cannot interfere,
    while their journal intents now share group commits (one fsync for several lanes) instead of
    each mutation waiting for its own.
    """
    lanes: dict[tuple[int | None, str | None], list[int]] = {}
    for i, plan in enumerate(plans):
        lanes.setdefault((plan.account_id, plan.contract_id), []).append(i)
    done: dict[int, OperationRecovery] = {}

    async def lane(indexes: list[int]) -> None:
        for i in indexes:
            plan = plans[i]
            snapshot = snapshots.get(plan.account_id or -1)
            done[i] = await _resume(host, ops[i], plan, snapshot, resumers, forced, grace)

    if len(lanes) == 1:
        await lane(next(iter(lanes.values())))
    else:
        # A TaskGroup, so an unexpected error stops every lane (as it stopped the loop before).
        try:
            async with asyncio.TaskGroup() as group:
                for indexes in lanes.values():
                    group.create_task(lane(indexes))
        except BaseExceptionGroup as failed:
            # Callers catch the error itself (a dying process's ProcessKilled), not a group.
            raise failed.exceptions[0] from None
    return [done[i] for i in range(len(ops))]


async def _adopt_orphan_intents(
    recovery: OperationRecoveryManager, op: RecoveryOperation
) -> list[str]:
    """Legs whose intent is journaled but which the operation's record does not list.

    A crash between writing a leg's intent and saving the operation leaves exactly that, and
    the order may have been sent. Such legs join the operation as ``intended``, so the plan
    resolves them by tag like any other (a journal read per operation, no broker call).
    """
    adopted: list[str] = []
    for intent in await recovery.journal.intents_for(op.operation_id):
        if intent.kind is not IntentKind.PLACE:
            continue
        known = op.orders.get(intent.leg)
        if known is not None and known.custom_tag == intent.custom_tag:
            continue
        if known is not None and known.generation > intent.generation:
            continue  # superseded by a later generation the record already holds
        request = dict(intent.request)
        price = request.get("price") or request.get("stop_price") or request.get("limit_price")
        op.orders[intent.leg] = OrderReference(
            leg=intent.leg,
            custom_tag=intent.custom_tag,
            contract_id=intent.contract_id,
            side=int(request.get("side", 0)),
            size=int(request.get("size", 0)),
            order_type=str(request.get("type", "")),
            price=None if price is None else Decimal(str(price)),
            account_id=intent.account_id,
            generation=intent.generation,
            intent_id=intent.intent_id,
        )
        adopted.append(intent.leg)
    return adopted


def _counted(report: RecoveryReport, fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """``fn`` counting each call (retries too) in ``report.queries``."""

    async def call(*args: P.args, **kwargs: P.kwargs) -> T:
        report.queries += 1
        return await fn(*args, **kwargs)

    return call


async def _resume(
    host: RecoveryHost,
    op: RecoveryOperation,
    plan: OperationPlan,
    snapshot: AccountSnapshot | None,
    resumers: Mapping[str, Resumer] | None,
    forced: tuple[str, Resumer] | None = None,
    grace: float = DEFAULT_IN_FLIGHT_GRACE,
) -> OperationRecovery:
    before = op.state.value
    name, fn = forced if forced is not None else resumer_for(op, resumers)
    ctx = ResumeContext(host, op, plan, snapshot)
    outcome = OperationRecovery(op.operation_id, op.type, before, before, name, ctx.actions)
    try:
        await _fold(ctx, grace)
        await fn(ctx)
    except OrderGuardError as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"
        log.warning("resuming operation %s failed: %s", op.operation_id, exc)
    outcome.state_after = op.state.value
    outcome.handed_off = ctx.handed_off and not op.state.is_terminal
    outcome.in_doubt = tuple(ctx.in_doubt)
    return outcome


async def _fold(ctx: ResumeContext, grace: float) -> None:
    """Write what the broker said about each leg into the operation (journaled).

    A leg in doubt that the broker has no trace of is concluded absent only once ``grace``
    seconds have passed since the operation's last write: before that its request may still
    execute, and it stays in doubt (its owner resolves it by its tag, or re-sends that tag)."""
    op, recovery = ctx.operation, ctx.recovery
    await _adopt_children(ctx)
    age = (ctx.host.clock.now() - (op.updated_at or op.started_at)).total_seconds()
    for finding in ctx.plan.findings:
        ref = op.orders.get(finding.leg)
        if ref is None:
            continue
        if finding.action is LegAction.RESOLVE and finding.order is None and age < grace:
            ctx.note(f"{ref.leg} in doubt: not at the broker yet; resolved by its tag later")
            ctx.in_doubt.append(ref.leg)
            continue
        if finding.action is LegAction.RESOLVE:
            await recovery.record_resolution(op, ref, finding.order)
            ctx.note(
                f"resolved {ref.leg}: "
                + (
                    "absent"
                    if finding.order is None
                    else f"order {finding.order.id} "
                    f"{finding.order.status.name} filled {finding.order.fill_volume}"
                )
            )
        elif finding.action is LegAction.REBIND:
            # The record points this leg at another intent's order (its tag says so): start
            # the leg over from what its own tag finds (absent: never placed).
            wrong = ref.order_id
            ref.order_id = None
            ref.status = RefStatus.INTENDED
            ref.filled_size = 0
            ref.placed_successfully = False
            await recovery.record_resolution(op, ref, finding.order)
            ctx.note(
                f"{ref.leg} was recorded as order {wrong}, which carries another tag; by its "
                "own tag: " + ("absent" if finding.order is None else f"order {finding.order.id}")
            )
        elif finding.action is LegAction.REFRESH and finding.order is not None:
            if ref.order_id is None:
                ref.order_id = finding.order.id
                ref.placed_successfully = True
            await recovery.record_order_state(op, ref, finding.order)
    gone = ctx.plan.flattenable - ctx.plan.owned
    if gone and op.operation_type in HOLDER_TYPES and op.state is not OperationState.ROLLING_BACK:
        # The account holds less than the operation's fills say: someone closed part of it
        # while we were down (the platform, say). Credited, so it is neither re-protected nor
        # flattened again, and its exits are sized to what is left. (A rollback's executor
        # credits on its own.)
        await recovery.record_external_close(op, gone)
        ctx.note(f"{gone:+d} of {ctx.plan.owned:+d} closed outside while down")


async def _adopt_children(ctx: ResumeContext) -> None:
    """Journal the native bracket children no leg accounts for as legs of their operation.

    They carry no tag, so a crash before the saga recorded them leaves them unknown to the
    journal, yet they are the operation's exits and their fills close what it owns. As legs
    (``stop<n>``/``target<n>``, listed in ``extra["native_legs"]``) their fills count once in
    ``net_filled``, in the bracket saga's ``owned`` (it restores legs by order id and never adopts
    an order twice) and in the ownership the invariants read from the broker; a rollback cancels
    them like any leg. (Crediting the fills to ``closed_externally`` instead counted them twice
    once the saga adopted the same children.) The intent is journaled before the order id, so a
    crash in between leaves a leg the next plan claims by side and kind.
    """
    op = ctx.operation
    for child in ctx.plan.adoptable:
        kind = TARGET if child.type is OrderType.LIMIT else STOP
        n = count_numbered(op.orders, kind)
        ref = await ctx.recovery.add_order_to_operation(
            op, child.contract_id, int(child.side), child.size,
            "limit" if kind == TARGET else "stop",
            child.limit_price if kind == TARGET else child.stop_price,
            leg=numbered(kind, n), account_id=child.account_id,
            request={"native_child_of": child.parent_order_id},
        )  # fmt: skip
        op.extra.setdefault("native_legs", []).append(ref.leg)
        ref.order_id = child.id
        ref.placed_successfully = True
        await ctx.recovery.record_order_state(op, ref, child)
        ctx.note(
            f"native {kind} order {child.id} ({child.status.name}, filled {child.fill_volume}) "
            f"journaled as leg {ref.leg}"
        )


__all__ = [
    "DEFAULT_IN_FLIGHT_GRACE",
    "OperationRecovery",
    "RecoveryHost",
    "RecoveryReport",
    "ResumeContext",
    "Resumer",
    "recover",
    "resume_with_truth",
    "resumer_for",
    "roll_back_resumer",
    "settle_resumer",
]
