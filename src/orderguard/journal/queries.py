"""The SQLite journal's reads, written once: the SQL, its parameters and the row converter.

Two classes read the same schema: :class:`~orderguard.journal.sqlite.SqliteJournal` (through its
asynchronous reader connection) and :class:`~orderguard.journal.reader.JournalReader` (the CLI's
read-only view, synchronous). Each read here is a :data:`Read`: ``(convert, sql, params)``; the
two journals only differ in how they run it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, TypeVar

from orderguard.journal.base import (
    EventRecord,
    IntentKind,
    IntentRecord,
    JournalCounts,
    OperationRecord,
    OutcomeKind,
    OutcomeRecord,
    StateChangeRecord,
    loads,
    parse_time,
)

_R = TypeVar("_R")

Read = tuple[Callable[[Sequence[Any]], _R], str, tuple[Any, ...]]
"""A read: the converter of one row, the SQL, its parameters."""

OP_COLUMNS = "operation_id, type, state, created_at, updated_at, account_id, contract_id, data"
INTENT_COLUMNS = (
    "intent_id, operation_id, leg, generation, custom_tag, account_id, contract_id, kind, "
    "request, created_at, correlation_id"
)
OUTCOME_COLUMNS = "intent_id, custom_tag, kind, order_id, code, message, recorded_at"
_STATE_CHANGE_COLUMNS = "operation_id, from_state, to_state, reason, at"
_EVENT_COLUMNS = "operation_id, kind, key, payload, at"


def operation_record(row: Sequence[Any]) -> OperationRecord:
    return OperationRecord(
        operation_id=row[0],
        type=row[1],
        state=row[2],
        created_at=parse_time(row[3]),
        updated_at=parse_time(row[4]),
        account_id=row[5],
        contract_id=row[6],
        data=loads(row[7]),
    )


def intent_record(row: Sequence[Any]) -> IntentRecord:
    return IntentRecord(
        intent_id=row[0],
        operation_id=row[1],
        leg=row[2],
        generation=row[3],
        custom_tag=row[4],
        account_id=row[5],
        contract_id=row[6],
        kind=IntentKind(row[7]),
        request=loads(row[8]),
        created_at=parse_time(row[9]),
        correlation_id=row[10],
    )


def outcome_record(row: Sequence[Any]) -> OutcomeRecord:
    return OutcomeRecord(
        intent_id=row[0],
        custom_tag=row[1],
        kind=OutcomeKind(row[2]),
        order_id=row[3],
        code=row[4],
        message=row[5],
        recorded_at=parse_time(row[6]),
    )


def _state_change(row: Sequence[Any]) -> StateChangeRecord:
    return StateChangeRecord(row[0], row[1], row[2], row[3], parse_time(row[4]))


def _event(row: Sequence[Any]) -> EventRecord:
    return EventRecord(row[0], row[1], row[2], loads(row[3]), parse_time(row[4]))


def _text(row: Sequence[Any]) -> str:
    return str(row[0])


def watermark(key: str) -> Read[str]:
    return _text, "SELECT value FROM watermarks WHERE key = ?", (key,)


def operation(operation_id: str) -> Read[OperationRecord]:
    return (
        operation_record,
        f"SELECT {OP_COLUMNS} FROM operations WHERE operation_id = ?",
        (operation_id,),
    )


def unfinished_operations(terminal_states: Collection[str]) -> Read[OperationRecord]:
    terminal = tuple(sorted(terminal_states))
    marks = ", ".join("?" * len(terminal))
    return (
        operation_record,
        f"SELECT {OP_COLUMNS} FROM operations WHERE state NOT IN ({marks}) "
        "ORDER BY created_at, rowid",
        terminal,
    )


def operations(limit: int, offset: int) -> Read[OperationRecord]:
    return (
        operation_record,
        f"SELECT {OP_COLUMNS} FROM operations ORDER BY created_at DESC, rowid DESC "
        "LIMIT ? OFFSET ?",
        (limit, offset),
    )


def intents_for(operation_id: str) -> Read[IntentRecord]:
    return (
        intent_record,
        f"SELECT {INTENT_COLUMNS} FROM intents WHERE operation_id = ? ORDER BY rowid",
        (operation_id,),
    )


def intent_by_tag(custom_tag: str, account_id: int | None) -> Read[IntentRecord]:
    return (
        intent_record,
        f"SELECT {INTENT_COLUMNS} FROM intents WHERE custom_tag = ? "
        "AND (? IS NULL OR account_id = ?) ORDER BY rowid LIMIT 1",
        (custom_tag, account_id, account_id),
    )


def latest_outcome(intent_id: str) -> Read[OutcomeRecord]:
    return (
        outcome_record,
        f"SELECT {OUTCOME_COLUMNS} FROM outcomes WHERE intent_id = ? ORDER BY seq DESC LIMIT 1",
        (intent_id,),
    )


def outcomes_for(intent_id: str) -> Read[OutcomeRecord]:
    return (
        outcome_record,
        f"SELECT {OUTCOME_COLUMNS} FROM outcomes WHERE intent_id = ? ORDER BY seq",
        (intent_id,),
    )


def state_changes(operation_id: str) -> Read[StateChangeRecord]:
    return (
        _state_change,
        f"SELECT {_STATE_CHANGE_COLUMNS} FROM state_changes WHERE operation_id = ? ORDER BY seq",
        (operation_id,),
    )


def events_for(operation_id: str) -> Read[EventRecord]:
    return (
        _event,
        f"SELECT {_EVENT_COLUMNS} FROM events WHERE operation_id = ? ORDER BY seq",
        (operation_id,),
    )


# One statement, so one consistent snapshot of all four totals.
COUNTS_SQL = (
    "SELECT 'op', type, state, count(*) FROM operations GROUP BY type, state "
    "UNION ALL SELECT 'outcome', kind, NULL, count(*) FROM outcomes GROUP BY kind "
    "UNION ALL SELECT 'intents', NULL, NULL, count(*) FROM intents "
    "UNION ALL SELECT 'events', NULL, NULL, count(*) FROM events"
)


def counts(rows: Iterable[Sequence[Any]]) -> JournalCounts:
    """The totals from the rows of :data:`COUNTS_SQL`."""
    ops: dict[tuple[str, str], int] = {}
    outcomes: dict[str, int] = {}
    totals = {"intents": 0, "events": 0}
    for what, a, b, n in rows:
        if what == "op":
            ops[(a, b)] = n
        elif what == "outcome":
            outcomes[a] = n
        else:
            totals[what] = n
    return JournalCounts(ops, outcomes, totals["intents"], totals["events"])


def first(rows: list[_R]) -> _R | None:
    return rows[0] if rows else None
