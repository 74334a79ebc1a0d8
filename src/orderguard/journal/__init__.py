"""The journal: durable, append-only records of what orderguard intends and what happened.

An intent is written (and durable) before its mutation is sent; the outcome is written after. If
the journal cannot be written, writes raise :class:`~orderguard.errors.JournalError` and callers
refuse new exposure. :class:`SqliteJournal` is the embedded default; :class:`MemoryJournal` serves
unit tests and deterministic simulations.
"""

from orderguard.journal.base import (
    DEFAULT_TERMINAL_STATES,
    EventRecord,
    IntentKind,
    IntentRecord,
    Journal,
    JournalCounts,
    OperationRecord,
    OutcomeKind,
    OutcomeRecord,
    StateChangeRecord,
    dumps,
    loads,
)
from orderguard.journal.memory import MemoryJournal
from orderguard.journal.schema import SCHEMA_VERSION
from orderguard.journal.sqlite import SqliteJournal

__all__ = [
    "DEFAULT_TERMINAL_STATES",
    "SCHEMA_VERSION",
    "EventRecord",
    "IntentKind",
    "IntentRecord",
    "Journal",
    "JournalCounts",
    "MemoryJournal",
    "OperationRecord",
    "OutcomeKind",
    "OutcomeRecord",
    "SqliteJournal",
    "StateChangeRecord",
    "dumps",
    "loads",
]
