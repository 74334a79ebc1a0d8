"""Journal records, the :class:`Journal` port and deterministic JSON.

The journal is append-only: operations (with their current state and free-form ``data``), order
intents written *before* a mutation is sent, outcomes written after, applied broker events (deduped
by key) and every operation state change. Recovery replays it after a crash; the CLI and dashboard
read it. Records are frozen and carry only plain values so every backend stores them the same way.

Free-form payloads (``data``, ``request``, ``payload``) go through :func:`dumps`/:func:`loads`:
``Decimal`` becomes its string, datetimes UTC ISO-8601 strings, enums their value, dataclasses
dicts. What a backend hands back is therefore the JSON form (a ``Decimal`` comes back as ``str``),
identical for the memory and the SQLite journal.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum, StrEnum
from types import TracebackType
from typing import Any, Protocol, Self
from uuid import UUID

from orderguard.errors import JournalError

DEFAULT_TERMINAL_STATES: frozenset[str] = frozenset({"completed", "failed", "rolled_back"})
"""Operation states after which recovery has nothing left to do."""


class IntentKind(StrEnum):
    """What mutation an intent announces."""

    PLACE = "place"
    CANCEL = "cancel"
    MODIFY = "modify"
    CLOSE = "close"
    PARTIAL_CLOSE = "partial_close"


class OutcomeKind(StrEnum):
    """The three outcomes of a mutation, plus the later resolution of an ``unknown`` one."""

    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    UNKNOWN = "unknown"
    RESOLVED = "resolved"


# -- JSON ----------------------------------------------------------------------------------------


def _default(obj: Any) -> Any:
    # Called by json only for types it cannot encode itself; IntEnum/StrEnum never get here.
    if isinstance(obj, Decimal):
        return str(obj)
    if isinstance(obj, datetime):
        return format_time(obj)
    if isinstance(obj, date):
        return obj.isoformat()
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, UUID):
        return str(obj)
    if isinstance(obj, set | frozenset):
        return sorted(obj, key=dumps)  # sets have no order; sort by encoded form
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def dumps(obj: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, no NaN; raises :class:`JournalError`."""
    try:
        return json.dumps(
            obj,
            default=_default,
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )
    except (TypeError, ValueError) as exc:
        raise JournalError(f"cannot serialise journal payload: {exc}") from exc


def loads(text: str) -> Any:
    return json.loads(text)


def format_time(at: datetime) -> str:
    """Fixed-width UTC ISO-8601, so stored times sort as text."""
    if at.tzinfo is None:
        raise ValueError("journal times must be timezone-aware")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def enum_text(value: Any) -> str:
    """An enum's value or the string itself: ``str()`` of a ``(str, Enum)`` is its member name."""
    return str(value.value) if isinstance(value, Enum) else str(value)


def _aware(*times: datetime) -> None:
    for at in times:
        if at.tzinfo is None:
            raise ValueError("journal times must be timezone-aware")


# -- records -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OperationRecord:
    """A multi-step operation; ``data`` is the recovery engine's own JSON state."""

    operation_id: str
    type: str
    state: str
    created_at: datetime
    updated_at: datetime
    account_id: int | None = None
    contract_id: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _aware(self.created_at, self.updated_at)
        object.__setattr__(self, "type", enum_text(self.type))
        object.__setattr__(self, "state", enum_text(self.state))


@dataclass(frozen=True, slots=True)
class IntentRecord:
    """A mutation about to be sent, keyed by its deterministic ``custom_tag``."""

    intent_id: str
    operation_id: str | None
    leg: str
    generation: int
    custom_tag: str
    account_id: int
    contract_id: str
    kind: IntentKind
    request: Mapping[str, Any]
    created_at: datetime
    correlation_id: str

    def __post_init__(self) -> None:
        _aware(self.created_at)
        object.__setattr__(self, "kind", IntentKind(self.kind))


@dataclass(frozen=True, slots=True)
class OutcomeRecord:
    """What became of an intent; an intent may collect several (``unknown`` then ``resolved``)."""

    intent_id: str
    custom_tag: str | None
    kind: OutcomeKind
    order_id: int | None
    code: int | None
    message: str
    recorded_at: datetime

    def __post_init__(self) -> None:
        _aware(self.recorded_at)
        object.__setattr__(self, "kind", OutcomeKind(self.kind))


@dataclass(frozen=True, slots=True)
class StateChangeRecord:
    """One transition of an operation; ``from_state`` is None for its creation."""

    operation_id: str
    from_state: str | None
    to_state: str
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class EventRecord:
    """A broker event that was applied; ``key`` (e.g. order id + trade id + fillVolume) dedupes."""

    operation_id: str | None
    kind: str
    key: str
    payload: Mapping[str, Any]
    at: datetime

    def __post_init__(self) -> None:
        _aware(self.at)
        object.__setattr__(self, "kind", enum_text(self.kind))


@dataclass(frozen=True, slots=True)
class JournalCounts:
    """Totals for a statistics recount; ``outcomes`` counts every outcome record by kind."""

    operations: Mapping[tuple[str, str], int]  # (type, state) -> count
    outcomes: Mapping[str, int]
    intents: int
    events: int

    @property
    def operations_by_type(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for (op_type, _), n in self.operations.items():
            out[op_type] = out.get(op_type, 0) + n
        return out

    @property
    def operations_by_state(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for (_, state), n in self.operations.items():
            out[state] = out.get(state, 0) + n
        return out


# -- the port ------------------------------------------------------------------------------------


class ReadableJournal(Protocol):
    """What a journal's readers need: open it, read it, close it.

    The CLI's read-only :class:`~orderguard.journal.reader.JournalReader` is one; every
    :class:`Journal` is one too.
    """

    terminal_states: frozenset[str]

    async def open(self) -> None: ...

    async def close(self) -> None:
        """Flush pending writes (if it writes) and release resources; idempotent."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def get_watermark(self, key: str) -> str | None: ...

    async def get_operation(self, operation_id: str) -> OperationRecord | None: ...

    async def unfinished_operations(
        self, terminal_states: Collection[str] | None = None
    ) -> list[OperationRecord]:
        """Operations not in a terminal state, oldest first."""
        ...

    async def operations(self, limit: int = 100, offset: int = 0) -> list[OperationRecord]:
        """Operations newest first."""
        ...

    async def intents_for(self, operation_id: str) -> list[IntentRecord]:
        """The operation's intents in the order they were recorded."""
        ...

    async def intent_by_tag(
        self, custom_tag: str, account_id: int | None = None
    ) -> IntentRecord | None: ...

    async def outcome_for(self, intent_id: str) -> OutcomeRecord | None:
        """The latest outcome recorded for the intent."""
        ...

    async def outcomes_for(self, intent_id: str) -> list[OutcomeRecord]: ...

    async def state_changes(self, operation_id: str) -> list[StateChangeRecord]: ...

    async def events_for(self, operation_id: str) -> list[EventRecord]: ...

    async def counts(self) -> JournalCounts: ...


class WritableJournal(Protocol):
    """The writes of a journal (see :class:`Journal` for durability and deferred writes)."""

    async def start_operation(self, rec: OperationRecord, *, durable: bool = True) -> None:
        """Create the operation and its first state change (``None -> rec.state``) atomically."""
        ...

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
        """Set state (and replace ``data`` unless None); a new state also logs its change.

        Raises :class:`~orderguard.errors.OperationError` for an unknown operation id (a deferred
        write logs and counts it instead).
        """
        ...

    async def record_intent(self, rec: IntentRecord) -> None:
        """Always durable on return: the mutation it announces is sent only afterwards."""
        ...

    async def record_intents(self, recs: Sequence[IntentRecord]) -> None:
        """Several intents in one durable write: one transaction, one wait.

        For an operation that knows several legs up front (a bracket's entry, stop and target).
        Each record is checked as by :meth:`record_intent`; on return every one is durable, or
        the first failure is raised (an intent whose order was never sent is harmless: recovery
        looks its tag up and finds nothing).
        """
        ...

    async def record_outcome(self, rec: OutcomeRecord, *, durable: bool = True) -> None: ...

    async def record_event(self, rec: EventRecord) -> bool:
        """Record an applied event; False (nothing written) if its key was already recorded."""
        ...

    async def set_watermark(self, key: str, value: str, *, durable: bool = True) -> None:
        """Set ``key`` to ``value`` (``durable=False``: a deferred write, as above)."""
        ...

    async def flush(self) -> None:
        """Return once every write queued so far (deferred ones too) is durable or has failed."""
        ...


WRITES: frozenset[str] = frozenset(
    {
        "start_operation",
        "update_operation",
        "record_intent",
        "record_intents",
        "record_outcome",
        "record_event",
        "set_watermark",
    }
)
"""The methods of :class:`WritableJournal` that write a record (all of it but ``flush``)."""


class Journal(ReadableJournal, WritableJournal, Protocol):
    """Durable, append-only record of what orderguard intends and what happened.

    Every write returns only once its record is durable; a write that cannot be made durable raises
    :class:`~orderguard.errors.JournalError` (callers then refuse new exposure). Duplicate ids or
    tags, and outcomes for unknown intents, are refused with ``JournalError`` too.

    The exception is a write made with ``durable=False`` (operations, state updates, outcomes):
    it is queued and returns at once, and becomes durable no later than the next durable write
    (a backend may hold it until then, or until ``flush``/``close`` or a short timer). That is safe
    because of two properties every backend keeps: (1) records commit in the order they were
    written, so once a later durable write (an intent) returns, every earlier deferred record is
    durable too; (2) what a crash can lose is only a *suffix* of deferred records — an outcome or a
    state update after the last intent — and recovery rebuilds exactly those from the broker: an
    intent without an outcome is resolved by its customTag, and an operation's state is
    re-derived from its legs. Intents are therefore always durable before their mutation is sent.
    A deferred write that fails later is logged and counted (``deferred_failures``); a failure
    that breaks the journal makes the next durable write raise.
    """


__all__ = [
    "DEFAULT_TERMINAL_STATES",
    "WRITES",
    "EventRecord",
    "IntentKind",
    "IntentRecord",
    "Journal",
    "JournalCounts",
    "OperationRecord",
    "OutcomeKind",
    "OutcomeRecord",
    "ReadableJournal",
    "StateChangeRecord",
    "WritableJournal",
    "dumps",
    "enum_text",
    "format_time",
    "loads",
    "parse_time",
]
