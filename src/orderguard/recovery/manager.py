"""OperationRecoveryManager: multi-step operations with transaction-like semantics, persisted.

The public API is the project-x-py seed's (``start_operation``, ``add_order_to_operation``,
``record_order_success``/``record_order_failure``, ``add_oco_pair``, ``add_position_tracking``,
``complete_operation``, ``force_rollback_operation``, ``get_operation_status``,
``cleanup_stale_operations``, ``get_recovery_statistics``). What differs is what the seed only
claims:

* every operation, every order intent (with its deterministic customTag) and every outcome is in the
  journal *before* the next step, so a new process can finish or roll back what a dead one started;
* an ``Unknown`` outcome is never a failure: it is resolved by looking the tag up at the broker;
* rollback confirms each cancel's final state (a cancel can lose to a fill) and flattens exactly the
  filled quantity the operation owns — never the whole contract, never twice;
* cleaning up a stale operation never strips a live position of its protection.

Broker work is delegated to :class:`RecoveryActions` (the OrderManager implements it), so this
module holds the bookkeeping and the rules and stays free of adapter details.

The records it keeps are :mod:`~orderguard.recovery.records` (an operation and its orders) and
the seed API's legs are checked by :mod:`~orderguard.recovery.leg_intents`.

Over 500 lines: the seed's OperationRecoveryManager API (52 methods) over one journal-backed
store of operations, the single writer of their intents, outcomes and state changes. Its
statistics and its backlog of records the journal refused could still be collaborators of their
own (issue 11).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any, Protocol

from orderguard.broker.base import Confirmed, Outcome, Rejected, Unknown, UnknownOrigin
from orderguard.clock import Clock
from orderguard.errors import (
    JournalError,
    OperationError,
    OrderGuardError,
    OutcomeUnknownError,
    UnknownAccountError,
    ValidationError,
)
from orderguard.journal.base import (
    IntentKind,
    IntentRecord,
    Journal,
    OperationRecord,
    OutcomeKind,
    OutcomeRecord,
    ReadableJournal,
)
from orderguard.models import STOP_TYPES, Order, OrderSide, OrderStatus, OrderType
from orderguard.recovery.leg_intents import LegIntent, checked_leg, intent_request
from orderguard.recovery.operations import (
    OperationState,
    OperationType,
    can_transition,
    check_transition,
)
from orderguard.recovery.records import (
    DEFAULT_RETRY_BUDGET,
    MAX_RETRY_PAUSE,
    OrderReference,
    RecoveryOperation,
    RefStatus,
)
from orderguard.recovery.records import FINAL_REF as _FINAL_REF

log = logging.getLogger(__name__)


class RecoveryActions(Protocol):
    """Broker work the recovery manager delegates (implemented by the OrderManager)."""

    async def find_order_by_tag(self, account_id: int, custom_tag: str) -> Order | None:
        """The order carrying ``custom_tag`` in ANY status, or None if the broker has none."""
        ...

    async def cancel_and_confirm(self, account_id: int, order_id: int) -> Order | None:
        """Cancel and return the order's final (or latest known) state."""
        ...

    async def flatten_quantity(
        self, account_id: int, contract_id: str, signed_size: int, custom_tag: str
    ) -> Order | None:
        """Send a market order of exactly ``signed_size`` (tagged) and return its latest state.

        Returns None if the order could not be confirmed at the broker.
        """
        ...

    async def owned_position(self, account_id: int, contract_id: str) -> int:
        """The account's signed net position on the contract (broker truth)."""
        ...

    async def hand_off_oco_pair(
        self, operation: RecoveryOperation, first: OrderReference, second: OrderReference
    ) -> str:
        """Have the OCO engine enforce the pair from now on: once both legs are working, a fill
        of one cancels the other with confirmation, also after a restart. Returns the id of the
        journaled operation that carries the link."""
        ...


_STAT_KEYS = (
    "operations_started",
    "operations_completed",
    "operations_failed",
    "operations_rolled_back",
    "recovery_attempts",
    "successful_recoveries",
    "unknown_outcomes_seen",
    "unknown_outcomes_resolved",
    "flattens",
)

# Counters the journal's record counts cannot give back; persisted in a watermark instead.
_PERSISTED_KEYS = ("recovery_attempts", "successful_recoveries", "flattens")
_STATS_WATERMARK = "recovery.stats"
_BY_KIND = "recovery_by_kind"  # per kind of recovery: {"attempts": n, "succeeded": m}

# Operations whose legs' fills are exposure they own (see recovery/protection.py).
_HOLDERS = frozenset({OperationType.BRACKET_ORDER, OperationType.OCO_PAIR})

_TERMINAL_STAT = {
    OperationState.COMPLETED: "operations_completed",
    OperationState.FAILED: "operations_failed",
    OperationState.ROLLED_BACK: "operations_rolled_back",
}


async def _read_counters(
    journal: ReadableJournal, stats: dict[str, int]
) -> dict[str, dict[str, int]] | None:
    """Set ``stats`` from the journal: record counts, then the persisted counters. Returns the
    per-kind recovery counts persisted with them (None when nothing was persisted)."""
    counts = await journal.counts()
    by_state, outcomes = counts.operations_by_state, counts.outcomes
    stats["operations_started"] = sum(by_state.values())
    for state, key in _TERMINAL_STAT.items():
        stats[key] = by_state.get(state.value, 0)
    stats["unknown_outcomes_seen"] = outcomes.get(OutcomeKind.UNKNOWN.value, 0)
    stats["unknown_outcomes_resolved"] = outcomes.get(OutcomeKind.RESOLVED.value, 0)
    raw = await journal.get_watermark(_STATS_WATERMARK)
    if not raw:
        return None
    saved = json.loads(raw)
    for key in _PERSISTED_KEYS:
        stats[key] = int(saved.get(key, 0))
    return {
        str(kind): {"attempts": int(v.get("attempts", 0)), "succeeded": int(v.get("succeeded", 0))}
        for kind, v in dict(saved.get(_BY_KIND, {})).items()
    }


def _statistics(s: Mapping[str, int], by_kind: Mapping[str, Mapping[str, int]]) -> dict[str, Any]:
    """The counters with their rates and the per-kind breakdown (sorted by kind)."""
    finished = s["operations_completed"] + s["operations_failed"] + s["operations_rolled_back"]
    return {
        **s,
        "success_rate": (s["operations_completed"] / finished) if finished else 0.0,
        "recovery_success_rate": (
            s["successful_recoveries"] / s["recovery_attempts"] if s["recovery_attempts"] else 0.0
        ),
        "recovery_by_kind": {k: dict(v) for k, v in sorted(by_kind.items())},
    }


class ProtectionRollback(Protocol):
    """The protection executor as the recovery manager sees it (recovery/protection.py)."""

    def driving(self, operation_id: str) -> bool: ...

    async def roll_back(
        self,
        op: RecoveryOperation,
        reason: str,
        *,
        wait: float | None = None,
        truth: Any = None,
    ) -> bool: ...


def _seconds(value: object, name: str) -> float:
    """A finite, non-negative number of seconds (NaN, infinity and -0.0 refused)."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValidationError(f"{name} must be a number of seconds, got {value!r}")
    seconds = float(value)
    if not math.isfinite(seconds) or math.copysign(1.0, seconds) < 0:
        raise ValidationError(f"{name} must be finite and not negative, got {value!r}")
    return seconds


class OperationRecoveryManager:
    """Tracks operations durably and brings failed ones back to a safe state.

    It is also the single writer of intents and outcomes (for operation legs and for the
    OrderManager's stand-alone mutations), so the statistics it keeps are, by construction, a
    count of what the journal holds: ``operations_*`` equal the operations by current state,
    ``unknown_outcomes_seen``/``_resolved`` the ``unknown``/``resolved`` outcome records.
    A counter moves only after its record was accepted by the journal.

    Only intents are written durably before anything is sent; operation updates and outcomes are
    deferred writes (see :class:`~orderguard.journal.base.Journal` for why that is crash-safe).
    """

    def __init__(
        self,
        journal: Journal,
        clock: Clock,
        *,
        actions: RecoveryActions | None = None,
        max_history: int = 100,
        rng: random.Random | None = None,
        tag_prefix: str = "og",
        defer_writes: bool = True,
        default_account: Callable[[], int | None] | None = None,
    ) -> None:
        self.journal = journal
        # The OrderManager's account once it is started (None before): operations and legs
        # started without an account take it, as the seed's calls never name one.
        self._default_account = default_account or (lambda: None)
        self.clock = clock
        self.actions = actions
        self.max_history = max_history
        self._rng = rng or random.Random()
        self._tag_prefix = tag_prefix
        self._durable = not defer_writes
        self.active_operations: dict[str, RecoveryOperation] = {}
        self.operation_history: deque[RecoveryOperation] = deque(maxlen=max_history)
        self.recovery_stats: dict[str, int] = dict.fromkeys(_STAT_KEYS, 0)
        self.recovery_by_kind: dict[str, dict[str, int]] = {}
        """Per kind of recovery (see :meth:`note_recovery`): attempts and successes."""
        # (account, customTag) -> (operation id, leg) for the legs of active operations, so the
        # send path can attach its outcome to the right leg.
        self._tag_index: dict[tuple[int, str], tuple[str, str]] = {}
        # The last outcome kind journaled per active leg intent: a leg's outcome is written once
        # even when both the send path and the operation's owner report it.
        self._last_kind: dict[str, OutcomeKind] = {}
        self._leg_intents: set[str] = set()
        # Extra statistics (brackets: time to protection, unprotected exposure), merged in.
        self._stat_sources: list[Callable[[], Mapping[str, Any]]] = []
        # Operations whose rollback is running now (never two at once for one operation).
        self._rolling: set[str] = set()
        # Operations a caller (start-up recovery, the reconciler) is working on: not rolled
        # back by the reconciler meanwhile; the caller's own rollback of them still runs.
        self._claimed: set[str] = set()
        self.protection: ProtectionRollback | None = None
        """The protection executor every rollback goes through (the OrderManager sets it)."""
        # Intents of risk-reducing legs sent while the journal could not be written (F20),
        # and operations whose latest state is only in memory: written when it works again.
        self._backlog: list[IntentRecord] = []
        self._dirty: dict[str, RecoveryOperation] = {}
        # Finished operations that still own a position (their exits may still protect it):
        # kept up to date on every save, so the holdings follower never scans the history.
        self._holding: dict[str, RecoveryOperation] = {}

    # -- loading -----------------------------------------------------------------------------
    async def load(self) -> list[RecoveryOperation]:
        """Rebuild the in-memory view from the journal; returns the unfinished operations."""
        await self.journal.flush()
        by_kind = await _read_counters(self.journal, self.recovery_stats)
        if by_kind is not None:
            self.recovery_by_kind = by_kind
        self.active_operations.clear()
        self.operation_history.clear()
        self._holding.clear()
        self._tag_index.clear()
        self._leg_intents.clear()
        self._last_kind.clear()
        unfinished = [
            RecoveryOperation.from_record(r) for r in await self.journal.unfinished_operations()
        ]
        for op in unfinished:
            self.active_operations[op.operation_id] = op
            for ref in op.orders.values():
                self._tag_index[(ref.account_id, ref.custom_tag)] = (op.operation_id, ref.leg)
                self._leg_intents.add(ref.intent_id)
        for rec in reversed(await self.journal.operations(limit=self.max_history)):
            if rec.operation_id not in self.active_operations:
                op = RecoveryOperation.from_record(rec)
                self.operation_history.append(op)
                self._note_holding(op)
        return unfinished

    @staticmethod
    async def read_statistics(journal: ReadableJournal) -> dict[str, Any]:
        """:meth:`get_recovery_statistics` as a process that just loaded ``journal`` gives it,
        from a journal that is only read (the CLI's read-only reader). Figures that only live in
        one process's memory are absent: ``history_size``, and what engines register (bracket
        timings)."""
        stats = dict.fromkeys(_STAT_KEYS, 0)
        by_kind = await _read_counters(journal, stats) or {}
        active = len(await journal.unfinished_operations())
        return {**_statistics(stats, by_kind), "active_operations": active}

    async def _persist_counters(self) -> None:
        """Save the counters the journal cannot recount (recoveries and flattens).

        A deferred write: it commits with the next durable record, so counting a recovery never
        makes the protective or flattening work that follows wait for a disk flush. A crash can
        lose the last few counts, never a record that matters for safety.
        """
        payload = json.dumps(
            {
                **{k: self.recovery_stats[k] for k in _PERSISTED_KEYS},
                _BY_KIND: self.recovery_by_kind,
            },
            sort_keys=True,
        )
        try:
            await self.journal.set_watermark(_STATS_WATERMARK, payload, durable=False)
        except OrderGuardError as exc:
            log.warning("could not persist recovery counters: %s", exc)

    async def _bump(self, key: str) -> None:
        self.recovery_stats[key] += 1
        await self._persist_counters()

    async def note_recovery(
        self, kind: str, succeeded: bool, *, retry_of: str | None = None
    ) -> None:
        """Count one recovery attempt of ``kind`` and whether it reached its safe state.

        The one counter behind ``recovery_attempts``, ``successful_recoveries`` (hence
        ``recovery_success_rate``) and the per-kind breakdown ``recovery_by_kind`` of
        :meth:`get_recovery_statistics`, persisted across restarts. The engines call it where
        they recover: ``rollback`` (this manager), ``bracket_forward`` (a protective leg sent
        again after a failure), ``bracket_flatten``, ``oco_sibling_cancel``,
        ``oco_overfill_flatten``, ``startup`` (one per operation start-up recovery handled),
        ``reconciler_rollback`` and ``reconciler_resume``.

        ``retry_of`` names the operation a re-run was for: its ``retry_count`` grows (which
        spaces its next re-run, see :meth:`RecoveryOperation.rerun_spacing`), and once that
        reaches its own ``max_retries`` the operation records, once, that it is past its budget —
        the retries go on, at the schedule's last pause, for exposure is never abandoned (I7).
        """
        self.recovery_stats["recovery_attempts"] += 1
        counts = self.recovery_by_kind.setdefault(kind, {"attempts": 0, "succeeded": 0})
        counts["attempts"] += 1
        if succeeded:
            self.recovery_stats["successful_recoveries"] += 1
            counts["succeeded"] += 1
        await self._persist_counters()
        op = None if retry_of is None else self.active_operations.get(retry_of)
        if op is None:
            return
        op.retry_count += 1
        if op.retry_count == (op.max_retries or -1) and not succeeded:
            op.last_error = (
                f"recovery retried {op.retry_count} times (max_retries) without reaching a safe "
                "state; still retrying: owned exposure is never abandoned"
            )
            op.errors.append(op.last_error)
            log.error("operation %s: %s", op.operation_id, op.last_error)
        try:
            await self._save(op)
        except OrderGuardError as exc:
            log.warning("could not record the retry count of %s: %s", op.operation_id, exc)

    # -- the seed's API ----------------------------------------------------------------------
    def _new_id(self) -> str:
        return f"{self._rng.getrandbits(48):012x}"

    @property
    def default_account_id(self) -> int | None:
        """The OrderManager's account once it is started (None for a bare recovery manager)."""
        return self._default_account()

    async def start_operation(
        self,
        operation_type: OperationType | str,
        max_retries: int | None = None,
        retry_delay: float | None = None,
        *,
        account_id: int | None = None,
        contract_id: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> RecoveryOperation:
        """Start and journal a new operation in state ``pending``.

        ``account_id`` defaults to the OrderManager's account (the seed's calls never name one).
        ``max_retries`` and ``retry_delay`` are this operation's retry schedule, journaled with
        it: how many times each step of its rollback (a cancel until confirmed, a flatten) is
        tried in one run, and how long to pause between tries and between the reconciler's
        re-runs (see ``ProtectionExecutor`` and :meth:`RecoveryOperation.rerun_spacing`). The
        defaults (None) keep the engine's own pacing: up to three cancels per live leg and one
        flatten per run, back to back, and re-runs at the reconciler's ``reconcile_threshold``.

        Raises :class:`~orderguard.errors.ValidationError` for a bad account or schedule and
        :class:`~orderguard.errors.JournalError` if the journal refuses the record; nothing is
        tracked then.
        """
        try:
            op_type = OperationType(str(getattr(operation_type, "value", operation_type)).lower())
        except ValueError as exc:
            raise OperationError(f"unknown operation type {operation_type!r}") from exc
        if max_retries is not None and (
            isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 1
        ):
            raise ValidationError(f"max_retries must be an int >= 1, got {max_retries!r}")
        if retry_delay is not None:
            retry_delay = _seconds(retry_delay, "retry_delay")
        if account_id is None:
            account_id = self.default_account_id
        elif isinstance(account_id, bool) or not isinstance(account_id, int) or account_id <= 0:
            raise UnknownAccountError(f"account id must be a positive int, got {account_id!r}")
        now = self.clock.now()
        op = RecoveryOperation(
            operation_id=self._new_id(),
            operation_type=op_type,
            state=OperationState.PENDING,
            started_at=now,
            updated_at=now,
            account_id=account_id,
            contract_id=contract_id,
            max_retries=max_retries,
            retry_delay=retry_delay,
            extra=dict(extra or {}),
        )
        # Deferred: the operation becomes durable with its first intent, at the latest.
        await self.journal.start_operation(
            OperationRecord(
                operation_id=op.operation_id,
                type=op_type.value,
                state=op.state.value,
                created_at=now,
                updated_at=now,
                account_id=account_id,
                contract_id=contract_id,
                data=op.to_data(),
            ),
            durable=self._durable,
        )
        self.active_operations[op.operation_id] = op
        self.recovery_stats["operations_started"] += 1
        return op

    def tag_for(self, operation: RecoveryOperation, leg: str, generation: int = 0) -> str:
        """The deterministic customTag of an intent: operation id + leg + generation."""
        return f"{self._tag_prefix}-{operation.operation_id}-{leg}-{generation}"

    def get_operation(self, operation_id: str) -> RecoveryOperation | None:
        """The in-memory operation (active, or still in the bounded history)."""
        op = self.active_operations.get(operation_id)
        if op is None:
            op = next((o for o in self.operation_history if o.operation_id == operation_id), None)
        return op

    async def find_operation(self, operation_id: str) -> RecoveryOperation:
        """The operation from memory, or reloaded from the journal; OperationError if unknown."""
        op = self.get_operation(operation_id)
        return op if op is not None else await self._reload(operation_id)

    async def add_order_to_operation(
        self,
        operation: RecoveryOperation,
        contract_id: str,
        side: int,
        size: int,
        order_type: str,
        price: Decimal | float | int | str | None = None,
        *,
        leg: str | None = None,
        account_id: int | None = None,
        generation: int = 0,
        request: Mapping[str, Any] | None = None,
    ) -> OrderReference:
        """Register an order intent; its tag is durable in the journal before this returns."""
        spec = LegIntent(
            contract_id, side, size, order_type, price,
            leg=leg, account_id=account_id, generation=generation, request=request,
        )  # fmt: skip
        (ref,) = await self.add_orders_to_operation(operation, [spec])
        return ref

    async def add_orders_to_operation(
        self,
        operation: RecoveryOperation,
        legs: Sequence[LegIntent],
        *,
        finished_holder: bool = False,
    ) -> list[OrderReference]:
        """Register several order intents with one durable journal write (one commit, one wait).

        For legs known up front (a bracket's entry, stop and target): their tags are durable
        together before this returns. Returns the references in the order of ``legs``.

        A leg without ``account_id`` takes the operation's, else the OrderManager's; with none
        of them, or with a bad side, size or price, a
        :class:`~orderguard.errors.ValidationError` is raised before anything is written (a
        leg journaled on a made-up account 0 broke every later read of the broker).

        A finished operation takes no new leg, except with ``finished_holder`` (the holdings
        follower replacing the stop of a finished operation that still owns its position).
        """
        if operation.state.is_terminal and not finished_holder:
            raise OperationError(f"operation {operation.id} is {operation.state.value}")
        refs: list[OrderReference] = []
        records: list[IntentRecord] = []
        taken: set[str] = set()
        for spec in legs:
            leg = spec.leg or f"{spec.order_type}{len(operation.orders) + len(refs)}"
            existing = operation.orders.get(leg)
            if (existing is not None and existing.generation == spec.generation) or leg in taken:
                raise OperationError(f"leg {leg!r} already exists in operation {operation.id}")
            taken.add(leg)
            acct = self._leg_account(operation, spec, leg)
            spec, price = checked_leg(spec, leg)  # noqa: PLW2901  (the checked form from here)
            ref = OrderReference(
                leg=leg,
                custom_tag=self.tag_for(operation, leg, spec.generation),
                contract_id=spec.contract_id,
                side=int(spec.side),
                size=spec.size,
                order_type=spec.order_type,
                price=price,
                account_id=acct,
                generation=spec.generation,
                intent_id=f"{operation.operation_id}:{leg}:{spec.generation}",
            )
            refs.append(ref)
            records.append(
                IntentRecord(
                    intent_id=ref.intent_id,
                    operation_id=operation.operation_id,
                    leg=leg,
                    generation=spec.generation,
                    custom_tag=ref.custom_tag,
                    account_id=acct,
                    contract_id=spec.contract_id,
                    kind=IntentKind.PLACE,
                    request=intent_request(spec),
                    created_at=self.clock.now(),
                    correlation_id=operation.operation_id,
                )
            )
        if not records:
            return refs
        if operation.account_id is None:
            # Started before the manager knew its account: the legs' account is the operation's.
            operation.account_id = refs[0].account_id
        if len(records) == 1:
            # The one-leg path every placement takes keeps the journal's single-intent write
            # (crash-point tests and wrappers count record_intent steps).
            await self.journal.record_intent(records[0])
        else:
            await self.journal.record_intents(records)
        for ref in refs:
            operation.orders[ref.leg] = ref
            self._tag_index[(ref.account_id, ref.custom_tag)] = (operation.operation_id, ref.leg)
            self._leg_intents.add(ref.intent_id)
        if operation.state is OperationState.PENDING:
            await self._set_state(operation, OperationState.IN_PROGRESS, "first order intent")
        elif operation.state is OperationState.PARTIALLY_COMPLETED:
            await self._set_state(operation, OperationState.IN_PROGRESS, "retrying forward")
        else:
            await self._save(operation)
        return refs

    def remember_unjournaled(
        self,
        operation: RecoveryOperation,
        contract_id: str,
        side: int,
        size: int,
        order_type: str,
        price: Decimal | None = None,
        *,
        leg: str,
        account_id: int | None = None,
        generation: int = 0,
        error: BaseException | None = None,
    ) -> OrderReference:
        """A risk-reducing leg whose intent the journal refused (F20): kept in memory with its
        deterministic tag, sent anyway, and journaled by :meth:`flush_backlog` once the journal
        works again. Never for a leg that adds exposure (those are refused instead)."""
        spec = LegIntent(
            contract_id, side, size, order_type, price,
            leg=leg, account_id=account_id, generation=generation,
        )  # fmt: skip
        acct = self._leg_account(operation, spec, leg)
        ref = OrderReference(
            leg=leg,
            custom_tag=self.tag_for(operation, leg, generation),
            contract_id=contract_id,
            side=int(side),
            size=size,
            order_type=order_type,
            price=price,
            account_id=acct,
            generation=generation,
            intent_id=f"{operation.operation_id}:{leg}:{generation}",
        )
        self._backlog.append(
            IntentRecord(
                intent_id=ref.intent_id,
                operation_id=operation.operation_id,
                leg=leg,
                generation=generation,
                custom_tag=ref.custom_tag,
                account_id=acct,
                contract_id=contract_id,
                kind=IntentKind.PLACE,
                request=intent_request(spec),
                created_at=self.clock.now(),
                correlation_id=operation.operation_id,
            )
        )
        operation.orders[leg] = ref
        self._tag_index[(acct, ref.custom_tag)] = (operation.operation_id, leg)
        self._leg_intents.add(ref.intent_id)
        self._dirty[operation.operation_id] = operation
        self.recovery_stats["unjournaled_intents"] = (
            self.recovery_stats.get("unjournaled_intents", 0) + 1
        )
        log.error(
            "journal unavailable (%s): %s of operation %s kept in memory, sent anyway",
            error, leg, operation.operation_id,
        )  # fmt: skip
        return ref

    @property
    def backlog(self) -> int:
        """Records waiting for the journal (intents and operation states kept in memory)."""
        return len(self._backlog) + len(self._dirty)

    async def flush_backlog(self) -> int:
        """Write what was kept in memory while the journal failed; returns how many records.

        Raises JournalError (and keeps the rest) if the journal still refuses."""
        written = 0
        while self._backlog:
            await self.journal.record_intent(self._backlog[0])
            self._backlog.pop(0)
            written += 1
        for op_id, op in list(self._dirty.items()):
            await self._save(op)
            self._dirty.pop(op_id, None)
            written += 1
        return written

    def defer(self, operation: RecoveryOperation, error: BaseException) -> None:
        """A record of ``operation`` the journal refused: its state (kept in memory) is written
        by :meth:`flush_backlog` once the journal works again."""
        self._dirty[operation.operation_id] = operation
        log.warning("operation %s kept in memory: %s", operation.operation_id, error)

    async def save_quietly(self, operation: RecoveryOperation) -> None:
        """Persist ``operation``; while the journal refuses, keep it for :meth:`flush_backlog`
        (for records of risk-reducing work that must not stop it)."""
        try:
            await self._save(operation)
        except JournalError as exc:
            self._dirty[operation.operation_id] = operation
            log.warning("operation %s kept in memory: %s", operation.operation_id, exc)

    def _leg_account(self, operation: RecoveryOperation, spec: LegIntent, leg: str) -> int:
        """The leg's account: its own, else the operation's, else the OrderManager's."""
        for account in (spec.account_id, operation.account_id, self.default_account_id):
            if account is None:
                continue
            if isinstance(account, bool) or not isinstance(account, int) or account <= 0:
                raise UnknownAccountError(f"leg {leg!r}: account id {account!r} is not valid")
            return account
        raise UnknownAccountError(
            f"leg {leg!r} of operation {operation.id} has no account: pass account_id, or "
            "start the OrderManager first (its account is the default)"
        )

    async def record_intent(
        self,
        kind: IntentKind,
        *,
        account_id: int,
        contract_id: str,
        custom_tag: str,
        request: Mapping[str, Any],
        operation: RecoveryOperation | None = None,
        leg: str = "single",
        generation: int = 0,
    ) -> str:
        """Journal (durably) a mutation that is not an order leg: a stand-alone placement
        (``operation`` None, leg ``single``), a cancel, a modify. Returns the intent id."""
        intent_id = (
            f"{operation.operation_id}:{leg}:{generation}" if operation is not None else custom_tag
        )
        await self.journal.record_intent(
            IntentRecord(
                intent_id=intent_id,
                operation_id=None if operation is None else operation.operation_id,
                leg=leg,
                generation=generation,
                custom_tag=custom_tag,
                account_id=account_id,
                contract_id=contract_id,
                kind=kind,
                request=dict(request),
                created_at=self.clock.now(),
                correlation_id=intent_id if operation is None else operation.operation_id,
            )
        )
        return intent_id

    async def record_outcome(
        self,
        intent_id: str,
        custom_tag: str | None,
        kind: OutcomeKind,
        *,
        order_id: int | None = None,
        code: int | None = None,
        message: str = "",
    ) -> bool:
        """Journal one outcome (deferred) and count it; False if it repeats the last one."""
        if self._last_kind.get(intent_id) is kind or (
            kind is OutcomeKind.CONFIRMED and self._last_kind.get(intent_id) is OutcomeKind.RESOLVED
        ):
            return False  # already reported by the send path
        await self.journal.record_outcome(
            OutcomeRecord(
                intent_id=intent_id,
                custom_tag=custom_tag,
                kind=kind,
                order_id=order_id,
                code=code,
                message=message,
                recorded_at=self.clock.now(),
            ),
            durable=self._durable,
        )
        if intent_id in self._leg_intents:
            self._last_kind[intent_id] = kind
        if kind is OutcomeKind.UNKNOWN:
            self.recovery_stats["unknown_outcomes_seen"] += 1
        elif kind is OutcomeKind.RESOLVED:
            self.recovery_stats["unknown_outcomes_resolved"] += 1
        return True

    def leg_for_tag(
        self, account_id: int, custom_tag: str
    ) -> tuple[RecoveryOperation, OrderReference] | None:
        """The active operation leg carrying ``custom_tag``, if any."""
        where = self._tag_index.get((account_id, custom_tag))
        if where is None:
            return None
        op = self.active_operations.get(where[0])
        if op is None:
            return None
        ref = op.orders.get(where[1])
        return None if ref is None else (op, ref)

    async def record_order_success(
        self, operation: RecoveryOperation, order_ref: OrderReference, response: Any
    ) -> None:
        """Record that the broker acknowledged ``order_ref`` (a Confirmed outcome or a response)."""
        order_id = getattr(response, "order_id", None)
        if order_id is None:
            order_id = getattr(response, "orderId", None)
        if order_id is not None:
            order_ref.order_id = int(order_id)
        tag = getattr(response, "custom_tag", None)
        if isinstance(tag, str) and tag and tag != order_ref.custom_tag:
            # Sent under its own tag (place_limit_order & co.): after a restart the order is
            # found by that tag, not taken for "another intent's order" and dropped.
            order_ref.order_tag = tag
        order_ref.placed_successfully = True
        if order_ref.status not in _FINAL_REF:
            order_ref.status = RefStatus.CONFIRMED
        await self._outcome(order_ref, OutcomeKind.CONFIRMED, order_ref.order_id, None, "")
        await self._save(operation)

    async def record_order_failure(
        self,
        operation: RecoveryOperation,
        order_ref: OrderReference,
        error: Outcome | BaseException | str,
    ) -> None:
        """Record a failed or ambiguous placement (``Unknown`` stays unknown, never failed)."""
        if isinstance(error, OutcomeUnknownError):
            error = Unknown(_origin(error.origin), str(error))
        if isinstance(error, Unknown):
            order_ref.status = RefStatus.UNKNOWN
            order_ref.error_message = f"outcome unknown: {error.origin.value}"
            await self._outcome(
                order_ref, OutcomeKind.UNKNOWN, None, None, error.origin.value + " " + error.detail
            )
        elif isinstance(error, Rejected) and order_ref.status == RefStatus.UNKNOWN:
            # The same tag sent again while its first send is in doubt, and this copy refused:
            # most likely as a duplicate of the first, which then did arrive (a flatten read as
            # rejected was placed again under a new tag, and both filled: chaos seed 11014). The
            # leg stays in doubt, resolved by its tag like any other.
            order_ref.error_message = (
                f"a re-send was refused ({error.code}: {error.message}); the first is in doubt"
            )
        elif isinstance(error, Rejected):
            order_ref.status = RefStatus.REJECTED
            order_ref.error_code = error.code
            order_ref.error_message = error.message
            await self._outcome(
                order_ref, OutcomeKind.REJECTED, error.order_id, error.code, error.message
            )
        elif isinstance(error, Confirmed):
            raise OperationError("a Confirmed outcome is a success, not a failure")
        else:
            # Refused on our side of the wire (validation, latch, journal) or a definitive
            # rejection raised as an error: nothing exists at the broker.
            order_ref.status = RefStatus.REJECTED
            order_ref.error_message = str(error)
            code = getattr(error, "code", None)
            await self._outcome(
                order_ref,
                OutcomeKind.REJECTED,
                None,
                code if isinstance(code, int) else None,
                str(error),
            )
        message = f"{order_ref.leg}: {order_ref.error_message}"
        operation.errors.append(message)
        operation.last_error = message
        await self._save(operation)

    async def record_resolution(
        self, operation: RecoveryOperation, order_ref: OrderReference, order: Order | None
    ) -> None:
        """Record what a tag look-up found for a leg (the order, or absent).

        A leg whose placement answered Unknown gets a ``resolved`` outcome, the statistic
        ``unknown_outcomes_resolved`` counts. A leg that was only *intended* when the look-up ran
        (its answer not yet in, or lost with a crashed process) never had an Unknown outcome to
        resolve: it gets the plain truth, ``confirmed`` or ``rejected``, so the statistics never
        show more outcomes resolved than seen.
        """
        was_unknown = (
            order_ref.status is RefStatus.UNKNOWN
            or self._last_kind.get(order_ref.intent_id) is OutcomeKind.UNKNOWN
        )
        if order is None:
            order_ref.status = RefStatus.REJECTED
            order_ref.error_message = "not at the broker after the unknown outcome"
        else:
            order_ref.order_id = order.id
            order_ref.placed_successfully = order.status is not OrderStatus.REJECTED
            self._apply_order(order_ref, order)
        if was_unknown:
            kind = OutcomeKind.RESOLVED
        elif order is None or order.status is OrderStatus.REJECTED:
            kind = OutcomeKind.REJECTED
        else:
            kind = OutcomeKind.CONFIRMED
        await self._outcome(
            order_ref,
            kind,
            None if order is None else order.id,
            None,
            "absent" if order is None else f"found status={order.status.name}",
        )
        await self._save(operation)

    async def record_order_state(
        self, operation: RecoveryOperation, order_ref: OrderReference, order: Order
    ) -> None:
        """Fold broker truth about one order (status, fill volume) into the operation."""
        self._apply_order(order_ref, order)
        await self._save(operation)

    async def record_external_close(
        self, operation: RecoveryOperation, signed_qty: int, *, by: str | None = None
    ) -> None:
        """``signed_qty`` of what ``operation`` owned was flattened by a position-close.

        With ``by`` (the closing operation's id) the credit is idempotent: ``signed_qty`` is
        that close's total for this operation, and only what was not credited for it yet is
        added (a restart may credit a close again that its process had credited already)."""
        if by is not None:
            closes = operation.extra.setdefault("closed_by", {})
            done = int(closes.get(by, 0))
            closes[by] = signed_qty
            signed_qty -= done
            if signed_qty == 0:
                return
        operation.closed_externally += signed_qty
        await self._save(operation)

    @staticmethod
    def _apply_order(ref: OrderReference, order: Order) -> None:
        ref.filled_size = max(ref.filled_size, order.fill_volume)
        if ref.order_id is None:
            ref.order_id = order.id
        # The working price, not the requested one: a native child priced by the exchange
        # from the fill, a stop moved since (the record tells the truth).
        working = order.stop_price if order.type in STOP_TYPES else order.limit_price
        if working is not None and order.type is not OrderType.MARKET:
            ref.price = working
        if order.status is OrderStatus.FILLED:
            ref.status = RefStatus.FILLED
        elif order.status in (OrderStatus.CANCELLED, OrderStatus.EXPIRED):
            ref.status = RefStatus.CANCELLED
        elif order.status is OrderStatus.REJECTED:
            ref.status = RefStatus.REJECTED
        elif ref.status not in _FINAL_REF:
            ref.status = RefStatus.CONFIRMED

    async def add_oco_pair(
        self, operation: RecoveryOperation, order1_ref: OrderReference, order2_ref: OrderReference
    ) -> None:
        """Link two legs one-cancels-other; the link is journaled with the operation."""
        if order1_ref.leg == order2_ref.leg:
            raise OperationError("an order cannot be OCO-linked to itself")
        for ref in (order1_ref, order2_ref):
            if operation.orders.get(ref.leg) is not ref:
                raise OperationError(f"leg {ref.leg!r} is not part of operation {operation.id}")
        pair = (order1_ref.leg, order2_ref.leg)
        if pair not in operation.oco_pairs and pair[::-1] not in operation.oco_pairs:
            operation.oco_pairs.append(pair)
            await self._save(operation)

    async def add_position_tracking(
        self,
        operation: RecoveryOperation,
        contract_id: str,
        order_ref: OrderReference,
        tracking_type: str = "protective",
    ) -> None:
        """Record that ``order_ref`` protects (or enters) the position on ``contract_id``."""
        legs = operation.position_tracking.setdefault(contract_id, [])
        entry = f"{tracking_type}:{order_ref.leg}"
        if entry not in legs:
            legs.append(entry)
            await self._save(operation)

    async def complete_operation(self, operation: RecoveryOperation) -> bool:
        """Finish the operation: completed if every leg is at the broker, otherwise recover.

        Unknown legs are resolved by tag first. If any leg is definitively missing, the operation
        is rolled back (cancel what is live, confirm, flatten owned fills); returns True only when
        the operation completed as intended. A finished operation is left as it is.

        Its OCO pairs (:meth:`add_oco_pair`) are handed to the OCO engine *before* the operation
        is recorded completed, so no crash can leave a completed operation whose pair nobody
        enforces: from then on a fill of one leg cancels the other with confirmation, also
        across a restart (the link is its own journaled ``oco_pair`` operation, named in
        ``extra["oco_links"]``).
        """
        if operation.state.is_terminal:
            return operation.state is OperationState.COMPLETED
        await self._resolve_unknowns(operation)
        refs = list(operation.orders.values())
        if refs and all(r.placed_successfully for r in refs):
            if operation.state is OperationState.ROLLING_BACK:
                return False  # a rollback in progress is finished by the rollback, not here
            await self._link_pairs(operation)
            await self._set_state(operation, OperationState.COMPLETED, "all legs acknowledged")
            return True
        if not any(r.placed_successfully for r in refs) and not any(
            r.status == RefStatus.UNKNOWN for r in refs
        ):
            await self.transition_operation(
                operation, OperationState.FAILED, operation.last_error or "no leg was placed"
            )
            return False
        if any(r.status == RefStatus.UNKNOWN for r in refs):
            # Still ambiguous after resolution attempts: keep the record open for reconciliation.
            if operation.state is OperationState.IN_PROGRESS:
                await self._set_state(
                    operation, OperationState.PARTIALLY_COMPLETED, "unresolved outcome"
                )
            return False
        if operation.state is OperationState.IN_PROGRESS:
            await self._set_state(
                operation, OperationState.PARTIALLY_COMPLETED, operation.last_error or "leg failed"
            )
        safe = await self._rollback(operation, "a leg failed: " + (operation.last_error or ""))
        await self.note_recovery("rollback", safe)
        return False

    async def _link_pairs(self, operation: RecoveryOperation) -> None:
        """Hand every OCO pair of ``operation`` whose legs are both at the broker to the OCO
        engine (see :meth:`complete_operation`); the links are recorded on the operation."""
        links: list[str] = list(operation.extra.get("oco_links", []))
        for a, b in operation.oco_pairs:
            first, second = operation.orders.get(a), operation.orders.get(b)
            if first is None or second is None or first.order_id is None or second.order_id is None:
                operation.errors.append(f"OCO pair {a}/{b} not linked: an order id is unknown")
                continue
            if self.actions is None:
                operation.errors.append(f"OCO pair {a}/{b} not linked: no order manager")
                continue
            links.append(await self.actions.hand_off_oco_pair(operation, first, second))
        if links:
            operation.extra["oco_links"] = links

    async def force_rollback_operation(self, operation_id: str) -> bool:
        """Roll an operation back: cancel its live orders and flatten the fills it owns.

        False, as the seed returns, for an id no journal record knows (nothing to roll back)."""
        op = self.active_operations.get(operation_id)
        if op is None:
            try:
                op = await self.find_operation(operation_id)
            except OperationError:
                return False
        if op.state in (OperationState.ROLLED_BACK, OperationState.FAILED):
            return op.state is OperationState.ROLLED_BACK
        safe = await self._rollback(op, "forced by the caller")
        await self.note_recovery("rollback", safe)
        return safe

    def get_operation_status(self, operation_id: str) -> dict[str, Any] | None:
        """A snapshot of the operation in the seed's shape (plus outcome details)."""
        op = self.get_operation(operation_id)
        if op is None:
            return None
        end = op.completed_at or self.clock.now()
        return {
            "operation_id": op.operation_id,
            "id": op.operation_id,
            "type": op.type,
            "state": op.state.value,
            "started_at": op.started_at.isoformat(),
            "completed_at": None if op.completed_at is None else op.completed_at.isoformat(),
            "duration": (end - op.started_at).total_seconds(),
            "orders": {leg: r.as_dict() for leg, r in op.orders.items()},
            "oco_pairs": [list(p) for p in op.oco_pairs],
            "position_tracking": dict(op.position_tracking),
            "errors": list(op.errors),
            "last_error": op.last_error,
            "retry_count": op.retry_count,
            "max_retries": op.max_retries,
            "retry_delay": op.retry_delay,
            "account_id": op.account_id,
            "contract_id": op.contract_id,
            "required_orders": op.required_orders,
            "successful_orders": op.successful_orders,
            "net_filled": op.net_filled,
            "extra": dict(op.extra),
        }

    async def cleanup_stale_operations(self, max_age_hours: float = 24.0) -> int:
        """Close out operations stuck longer than ``max_age_hours``; returns how many.

        A stuck operation is reconciled against the broker first. One that still owns a position
        keeps its protective orders and stays active (cleaning up never strips protection); one
        that owns a position with no protection left is flattened (exactly its quantity); one
        whose orders are all final is closed out with a truthful state.
        """
        cutoff = self.clock.now() - timedelta(hours=max_age_hours)
        cleaned = 0
        for op in list(self.active_operations.values()):
            if (op.updated_at or op.started_at) > cutoff:
                continue
            await self._resolve_unknowns(op)
            await self._refresh(op)
            if any(r.status == RefStatus.UNKNOWN for r in op.orders.values()):
                log.info("stale operation %s has an unresolved leg; kept for reconciliation", op.id)
                continue
            net = op.net_filled
            if net != 0:
                # Live orders on the reducing side protect what the operation owns: keep them.
                reducing = OrderSide.SELL if net > 0 else OrderSide.BUY
                if any(
                    r.status == RefStatus.CONFIRMED and r.side == reducing
                    for r in op.orders.values()
                ):
                    log.info("stale operation %s still protects a position; kept", op.id)
                    continue
            if net != 0 or any(r.status == RefStatus.CONFIRMED for r in op.orders.values()):
                # Exposure with nothing protecting it, or live orders with nothing to protect:
                # roll back to a safe state.
                await self._rollback(op, f"stale for more than {max_age_hours} h")
            else:
                target = (
                    OperationState.COMPLETED
                    if op.orders and all(r.placed_successfully for r in op.orders.values())
                    else OperationState.FAILED
                )
                await self.transition_operation(
                    op, target, f"stale for more than {max_age_hours} h"
                )
            cleaned += 1
        return cleaned

    def get_recovery_statistics(self) -> dict[str, Any]:
        return {
            **_statistics(self.recovery_stats, self.recovery_by_kind),
            "active_operations": len(self.active_operations),
            "history_size": len(self.operation_history),
            **{k: v for source in self._stat_sources for k, v in source().items()},
        }

    # -- for sagas that decide their own outcome (orders/bracket/, orders/oco/) -----------------
    def register_statistics(self, source: Callable[[], Mapping[str, Any]]) -> None:
        """Merge ``source()`` into :meth:`get_recovery_statistics` (idempotent per source)."""
        if source not in self._stat_sources:
            self._stat_sources.append(source)

    async def save_operation(self, operation: RecoveryOperation) -> None:
        """Persist the operation's data (legs, ``extra``) without changing its state."""
        await self._save(operation)

    async def transition_operation(
        self, operation: RecoveryOperation, target: OperationState, reason: str
    ) -> None:
        """Move the operation to ``target`` along the shortest path of allowed rows.

        Each step is journaled with ``reason``; OperationError if no path exists.
        """
        if (
            target is OperationState.FAILED
            and self.protection is not None
            and operation.operation_type in _HOLDERS
            and operation.net_filled != 0
        ):
            # I7: no operation ends while exposure it owns may be left unprotected. It is
            # rolled back by the protection executor instead, and says why.
            log.warning(
                "operation %s would end failed holding %+d (%s): handed to the executor",
                operation.operation_id, operation.net_filled, reason,
            )  # fmt: skip
            await self.protection.roll_back(operation, f"{reason}; exposure left to flatten")
            return
        path = _path(operation.state, target)
        if path is None:
            check_transition(operation.state, target)  # raises with the standard message
        for step in path or (target,):
            await self._set_state(operation, step, reason)

    # -- internals ---------------------------------------------------------------------------
    async def _reload(self, operation_id: str) -> RecoveryOperation:
        await self.journal.flush()
        rec = await self.journal.get_operation(operation_id)
        if rec is None:
            raise OperationError(f"unknown operation {operation_id!r}")
        return RecoveryOperation.from_record(rec)

    def finished_holders(self) -> list[RecoveryOperation]:
        """Finished operations that still own a position (a fill nothing closed), or whose
        record still has an order acknowledged and not known final (an exit that may work on
        after its position: it is followed until its final state is recorded)."""
        return list(self._holding.values())

    def _note_holding(self, op: RecoveryOperation) -> None:
        if op.state.is_terminal and (op.net_filled or op.may_have_working_orders):
            self._holding[op.operation_id] = op
        else:
            self._holding.pop(op.operation_id, None)

    async def _save(self, op: RecoveryOperation) -> None:
        self._note_holding(op)  # before the write: memory is the truth even if it fails
        op.updated_at = self.clock.now()
        await self.journal.update_operation(
            op.operation_id,
            op.state.value,
            data=op.to_data(),
            at=op.updated_at,
            durable=self._durable,
        )

    async def _set_state(self, op: RecoveryOperation, target: OperationState, reason: str) -> None:
        """Move ``op`` along a TRANSITIONS row; memory changes only after the journal took it."""
        if op.state is target:
            await self._save(op)
            return
        check_transition(op.state, target)
        previous = op.state
        now = self.clock.now()
        completed_at = now if target.is_terminal else op.completed_at
        if previous.is_terminal and not target.is_terminal:
            completed_at = None  # a forced rollback reopens a completed operation
        data = {**op.to_data(), "completed_at": completed_at}
        await self.journal.update_operation(
            op.operation_id,
            target.value,
            data=data,
            reason=reason,
            at=now,
            durable=self._durable,
        )
        op.state = target
        op.updated_at = now
        op.completed_at = completed_at
        if previous in _TERMINAL_STAT:
            self.recovery_stats[_TERMINAL_STAT[previous]] -= 1
            self.active_operations[op.operation_id] = op
            self._holding.pop(op.operation_id, None)
            with contextlib.suppress(ValueError):
                self.operation_history.remove(op)
        if target.is_terminal:
            self._retire(op)
            self.recovery_stats[_TERMINAL_STAT[target]] += 1

    def _retire(self, op: RecoveryOperation) -> None:
        self.active_operations.pop(op.operation_id, None)
        self.operation_history.append(op)
        self._note_holding(op)
        for ref in op.orders.values():
            self._last_kind.pop(ref.intent_id, None)
            self._leg_intents.discard(ref.intent_id)
            self._tag_index.pop((ref.account_id, ref.custom_tag), None)

    async def _outcome(
        self,
        ref: OrderReference,
        kind: OutcomeKind,
        order_id: int | None,
        code: int | None,
        message: str,
    ) -> None:
        await self.record_outcome(
            ref.intent_id, ref.custom_tag, kind, order_id=order_id, code=code, message=message
        )

    async def _resolve_unknowns(self, op: RecoveryOperation) -> None:
        if self.actions is None:
            return
        for ref in op.orders.values():
            if ref.status not in (RefStatus.UNKNOWN, RefStatus.INTENDED):
                continue
            try:
                order = await self.actions.find_order_by_tag(ref.account_id, ref.custom_tag)
            except OrderGuardError as exc:
                log.warning("tag lookup for %s failed: %s", ref.custom_tag, exc)
                continue
            if order is None and ref.status == RefStatus.INTENDED:
                # Intended but never sent (or lost before the broker saw it): nothing exists.
                ref.status = RefStatus.REJECTED
                ref.error_message = "never reached the broker"
                await self._save(op)
                continue
            await self.record_resolution(op, ref, order)

    async def _refresh(self, op: RecoveryOperation) -> None:
        """Re-read every acknowledged order's final state from the broker."""
        if self.actions is None:
            return
        for ref in op.orders.values():
            if ref.order_id is None or ref.status in _FINAL_REF:
                continue
            try:
                order = await self.actions.find_order_by_tag(ref.account_id, ref.lookup_tag)
            except OrderGuardError as exc:
                log.warning("refresh of %s failed: %s", ref.lookup_tag, exc)
                continue
            if order is not None:
                self._apply_order(ref, order)
        await self._save(op)

    def rolling_back(self, operation_id: str) -> bool:
        """True while a rollback of the operation runs in this process, or a caller claimed it
        (:meth:`claimed`), so a reconciler never starts a second one beside it."""
        driven = self.protection is not None and self.protection.driving(operation_id)
        return driven or operation_id in self._rolling or operation_id in self._claimed

    @contextlib.contextmanager
    def claimed(self, operation_ids: Iterable[str]) -> Iterator[None]:
        """Mark operations as being rolled back or resumed by the caller (the reconciler), so
        no second rollback of them starts meanwhile."""
        ids = [i for i in operation_ids if i not in self._claimed]
        self._claimed.update(ids)
        try:
            yield
        finally:
            self._claimed.difference_update(ids)

    async def _rollback(self, op: RecoveryOperation, reason: str) -> bool:
        """Hand the rollback to the protection executor (recovery/protection.py): one place,
        one capped retry policy (paced by the operation's own ``retry_delay`` when it has one),
        never given up while exposure is held. True when it ended rolled back within a bounded
        wait; otherwise it goes on as a standing obligation (the operation stays
        ``rolling_back``) and False says the safe state is not confirmed yet."""
        if op.state is OperationState.PENDING and not op.orders:
            # Nothing was ever sent: there is nothing to undo.
            await self._set_state(op, OperationState.ROLLED_BACK, reason)
            return True
        if self.protection is None:
            raise OperationError(
                "rolling back needs the protection executor an OrderManager provides"
            )
        wait = max(10.0, (op.retry_delay or 1.0) * 10)
        return await self.protection.roll_back(op, reason, wait=wait)


def _path(source: OperationState, target: OperationState) -> list[OperationState] | None:
    """States after ``source`` on a shortest allowed path to ``target`` (BFS over the table)."""
    if source is target:
        return []
    frontier: list[list[OperationState]] = [[source]]
    seen = {source}
    while frontier:
        nxt: list[list[OperationState]] = []
        for route in frontier:
            for state in OperationState:
                if state in seen or not can_transition(route[-1], state):
                    continue
                if state is target:
                    return [*route[1:], state]
                seen.add(state)
                nxt.append([*route, state])
        frontier = nxt
    return None


def _origin(text: str) -> UnknownOrigin:
    try:
        return UnknownOrigin(text)
    except ValueError:
        return UnknownOrigin.TIMEOUT_AFTER_SEND


__all__ = [
    "DEFAULT_RETRY_BUDGET",
    "MAX_RETRY_PAUSE",
    "LegIntent",
    "OperationRecoveryManager",
    "OrderReference",
    "RecoveryActions",
    "RecoveryOperation",
    "RefStatus",
]
