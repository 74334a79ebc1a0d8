"""An in-memory journal with the same contract as the SQLite one.

For unit tests and the deterministic chaos runner: the object plays the disk, so it outlives a
simulated crash (a new "process" simply calls :meth:`MemoryJournal.open` on it again). Payloads are
stored in their JSON form, so reads return exactly what the SQLite journal would return.
``fail_writes`` simulates a journal that cannot be written (F15: disk full). Deferred writes
(``durable=False``) are applied at once here, and fail at once under ``fail_writes``: memory has no
commit to wait for, and raising early is the stricter behaviour for tests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from orderguard.clock import Clock, SystemClock
from orderguard.errors import JournalError, OperationError
from orderguard.journal.base import (
    DEFAULT_TERMINAL_STATES,
    EventRecord,
    IntentRecord,
    JournalCounts,
    OperationRecord,
    OutcomeRecord,
    StateChangeRecord,
    dumps,
    loads,
)


def _canonical(payload: Mapping[str, Any]) -> str:
    return dumps(dict(payload))


class MemoryJournal:
    """The :class:`~orderguard.journal.base.Journal` contract, held in memory."""

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        terminal_states: Collection[str] = DEFAULT_TERMINAL_STATES,
    ) -> None:
        self._clock: Clock = clock or SystemClock()
        self.terminal_states = frozenset(terminal_states)
        self.fail_writes = False
        """When True every write raises JournalError (disk full); reads keep working."""
        self.deferred_failures = 0  # always 0: deferred writes raise at once here
        self._open = False
        # Operations and intents keep the payload as canonical JSON text, decoded on each read.
        self._ops: dict[str, tuple[OperationRecord, str]] = {}
        self._changes: dict[str, list[StateChangeRecord]] = {}
        self._intents: dict[str, tuple[IntentRecord, str]] = {}
        self._intents_by_op: dict[str, list[str]] = {}
        self._tags: dict[tuple[str, int], str] = {}
        self._outcomes: dict[str, list[OutcomeRecord]] = {}
        self._events: dict[str, tuple[EventRecord, str]] = {}
        self._events_by_op: dict[str, list[str]] = {}
        self._watermarks: dict[str, str] = {}

    # -- lifecycle -------------------------------------------------------------------------------
    async def open(self) -> None:
        self._open = True

    async def close(self) -> None:
        self._open = False

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _check_writable(self) -> None:
        if not self._open:
            raise JournalError("journal is not open")
        if self.fail_writes:
            raise JournalError("journal write failed: simulated disk full")

    def _check_readable(self) -> None:
        if not self._open:
            raise JournalError("journal is not open")

    # -- writes ----------------------------------------------------------------------------------
    async def start_operation(self, rec: OperationRecord, *, durable: bool = True) -> None:
        self._check_writable()
        if rec.operation_id in self._ops:
            raise JournalError(f"operation {rec.operation_id!r} already recorded")
        self._ops[rec.operation_id] = (rec, _canonical(rec.data))
        self._changes[rec.operation_id] = [
            StateChangeRecord(rec.operation_id, None, rec.state, "started", rec.created_at)
        ]

    async def update_operation(
        self,
        operation_id: str,
        state: str,
        *,
        data: Mapping[str, Any] | None = None,
        reason: str = "",
        at: datetime | None = None,
        durable: bool = True,
    ) -> None:
        self._check_writable()
        try:
            current, text = self._ops[operation_id]
        except KeyError:
            raise OperationError(f"unknown operation {operation_id!r}") from None
        at = at or self._clock.now()
        new_text = text if data is None else _canonical(data)
        updated = dataclasses.replace(current, state=state, updated_at=at)
        if updated.state != current.state:
            self._changes[operation_id].append(
                StateChangeRecord(operation_id, current.state, updated.state, reason, at)
            )
        self._ops[operation_id] = (updated, new_text)

    async def record_intent(self, rec: IntentRecord) -> None:
        self._check_writable()
        self._check_intent(rec)
        self._add_intent(rec)

    async def record_intents(self, recs: Sequence[IntentRecord]) -> None:
        self._check_writable()
        ids = [r.intent_id for r in recs]
        tags = [(r.custom_tag, r.account_id) for r in recs]
        if len(set(ids)) != len(ids) or len(set(tags)) != len(tags):
            raise JournalError("the intents of one write repeat an intent id or a customTag")
        for rec in recs:
            self._check_intent(rec)
        for rec in recs:
            self._add_intent(rec)

    def _check_intent(self, rec: IntentRecord) -> None:
        if rec.intent_id in self._intents:
            raise JournalError(f"intent {rec.intent_id!r} already recorded")
        tag_key = (rec.custom_tag, rec.account_id)
        if tag_key in self._tags:
            raise JournalError(f"customTag {rec.custom_tag!r} already used on this account")
        if rec.operation_id is not None and rec.operation_id not in self._ops:
            raise JournalError(f"intent for unknown operation {rec.operation_id!r}")

    def _add_intent(self, rec: IntentRecord) -> None:
        tag_key = (rec.custom_tag, rec.account_id)
        self._intents[rec.intent_id] = (rec, _canonical(rec.request))
        self._tags[tag_key] = rec.intent_id
        if rec.operation_id is not None:
            self._intents_by_op.setdefault(rec.operation_id, []).append(rec.intent_id)

    async def record_outcome(self, rec: OutcomeRecord, *, durable: bool = True) -> None:
        self._check_writable()
        if rec.intent_id not in self._intents:
            raise JournalError(f"outcome for unknown intent {rec.intent_id!r}")
        self._outcomes.setdefault(rec.intent_id, []).append(rec)

    async def record_event(self, rec: EventRecord) -> bool:
        self._check_writable()
        if rec.key in self._events:
            return False
        self._events[rec.key] = (rec, _canonical(rec.payload))
        if rec.operation_id is not None:
            self._events_by_op.setdefault(rec.operation_id, []).append(rec.key)
        return True

    async def set_watermark(self, key: str, value: str, *, durable: bool = True) -> None:
        self._check_writable()
        self._watermarks[key] = value

    async def flush(self) -> None:
        """Nothing is ever queued in memory."""
        self._check_readable()

    # -- reads -----------------------------------------------------------------------------------
    def _op(self, operation_id: str) -> OperationRecord:
        rec, text = self._ops[operation_id]
        return dataclasses.replace(rec, data=loads(text))

    def _intent(self, intent_id: str) -> IntentRecord:
        rec, text = self._intents[intent_id]
        return dataclasses.replace(rec, request=loads(text))

    async def get_watermark(self, key: str) -> str | None:
        self._check_readable()
        return self._watermarks.get(key)

    async def get_operation(self, operation_id: str) -> OperationRecord | None:
        self._check_readable()
        return self._op(operation_id) if operation_id in self._ops else None

    async def unfinished_operations(
        self, terminal_states: Collection[str] | None = None
    ) -> list[OperationRecord]:
        self._check_readable()
        terminal = self.terminal_states if terminal_states is None else frozenset(terminal_states)
        ids = [oid for oid, (rec, _) in self._ops.items() if rec.state not in terminal]
        return sorted((self._op(oid) for oid in ids), key=lambda r: r.created_at)

    async def operations(self, limit: int = 100, offset: int = 0) -> list[OperationRecord]:
        self._check_readable()
        # Insertion order breaks ties in created_at, like the rowid in SQLite.
        order = {oid: n for n, oid in enumerate(self._ops)}
        ids = sorted(self._ops, key=lambda oid: (self._ops[oid][0].created_at, order[oid]))
        ids.reverse()
        return [self._op(oid) for oid in ids[offset : offset + limit]]

    async def intents_for(self, operation_id: str) -> list[IntentRecord]:
        self._check_readable()
        return [self._intent(iid) for iid in self._intents_by_op.get(operation_id, [])]

    async def intent_by_tag(
        self, custom_tag: str, account_id: int | None = None
    ) -> IntentRecord | None:
        self._check_readable()
        for (tag, account), intent_id in self._tags.items():
            if tag == custom_tag and (account_id is None or account == account_id):
                return self._intent(intent_id)
        return None

    async def outcome_for(self, intent_id: str) -> OutcomeRecord | None:
        self._check_readable()
        outcomes = self._outcomes.get(intent_id)
        return outcomes[-1] if outcomes else None

    async def outcomes_for(self, intent_id: str) -> list[OutcomeRecord]:
        self._check_readable()
        return list(self._outcomes.get(intent_id, []))

    async def state_changes(self, operation_id: str) -> list[StateChangeRecord]:
        self._check_readable()
        return list(self._changes.get(operation_id, []))

    async def events_for(self, operation_id: str) -> list[EventRecord]:
        self._check_readable()
        out = []
        for key in self._events_by_op.get(operation_id, []):
            rec, text = self._events[key]
            out.append(dataclasses.replace(rec, payload=loads(text)))
        return out

    async def counts(self) -> JournalCounts:
        self._check_readable()
        ops: dict[tuple[str, str], int] = {}
        for rec, _ in self._ops.values():
            ops[(rec.type, rec.state)] = ops.get((rec.type, rec.state), 0) + 1
        outcomes: dict[str, int] = {}
        for recs in self._outcomes.values():
            for o in recs:
                outcomes[o.kind.value] = outcomes.get(o.kind.value, 0) + 1
        return JournalCounts(ops, outcomes, len(self._intents), len(self._events))


__all__ = ["MemoryJournal"]
