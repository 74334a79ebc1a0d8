"""The journal contract, run against MemoryJournal and SqliteJournal alike."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from enum import Enum
from typing import Any

import pytest

from orderguard.errors import JournalError, OperationError
from orderguard.journal import (
    IntentKind,
    Journal,
    JournalCounts,
    MemoryJournal,
    OutcomeKind,
    SqliteJournal,
)
from orderguard.journal.testing import RecordFactory

AnyJournal = MemoryJournal | SqliteJournal


def test_both_backends_satisfy_the_protocol(journal: AnyJournal) -> None:
    """Each backend is usable where a Journal is expected (checked by mypy on this line)."""
    port: Journal = journal
    assert port.terminal_states == {"completed", "failed", "rolled_back"}


async def test_operation_round_trips_in_json_form(journal: AnyJournal, make: RecordFactory) -> None:
    """An operation reads back field for field, its data in JSON form (Decimal as str)."""
    op = make.op(data={"price": Decimal("21000.25"), "legs": ["stop", "target"]})
    await journal.start_operation(op)
    got = await journal.get_operation(op.operation_id)
    assert got is not None
    assert (got.operation_id, got.type, got.state) == (op.operation_id, "bracket_order", "pending")
    assert (got.created_at, got.updated_at) == (op.created_at, op.updated_at)
    assert (got.account_id, got.contract_id) == (1001, "CON.F.US.MNQ.Z26")
    assert got.data == {"price": "21000.25", "legs": ["stop", "target"]}


async def test_unknown_operation_reads_as_none(journal: AnyJournal) -> None:
    """get_operation of an id never recorded is None."""
    assert await journal.get_operation("nope") is None


async def test_start_operation_records_its_first_state_change(
    journal: AnyJournal, make: RecordFactory
) -> None:
    """Creating an operation logs None -> its initial state."""
    op = make.op()
    await journal.start_operation(op)
    [change] = await journal.state_changes(op.operation_id)
    assert (change.from_state, change.to_state, change.reason) == (None, "pending", "started")
    assert change.at == op.created_at


async def test_duplicate_operation_id_is_refused(journal: AnyJournal, make: RecordFactory) -> None:
    """The same operation id cannot be started twice."""
    await journal.start_operation(make.op("op-x"))
    with pytest.raises(JournalError):
        await journal.start_operation(make.op("op-x"))


async def test_enum_states_are_stored_as_their_values(
    journal: AnyJournal, make: RecordFactory
) -> None:
    """A (str, Enum) state is stored as its value, not its member name."""

    class State(str, Enum):  # noqa: UP042 - the mixin form is the one str() gets wrong
        PENDING = "pending"
        IN_PROGRESS = "in_progress"

    op = make.op(state=State.PENDING)
    await journal.start_operation(op)
    await journal.update_operation(op.operation_id, State.IN_PROGRESS)
    got = await journal.get_operation(op.operation_id)
    assert got is not None and got.state == "in_progress"


async def test_update_moves_state_and_logs_the_change(
    journal: AnyJournal, make: RecordFactory
) -> None:
    """update_operation sets state and updated_at and logs from -> to with the reason."""
    op = make.op()
    await journal.start_operation(op)
    at = make.at(100)
    await journal.update_operation(op.operation_id, "in_progress", reason="placing", at=at)
    got = await journal.get_operation(op.operation_id)
    assert got is not None and (got.state, got.updated_at) == ("in_progress", at)
    changes = await journal.state_changes(op.operation_id)
    assert [(c.from_state, c.to_state, c.reason) for c in changes] == [
        (None, "pending", "started"),
        ("pending", "in_progress", "placing"),
    ]


async def test_update_without_time_uses_the_clock(journal: AnyJournal, make: RecordFactory) -> None:
    """Without ``at`` the change is stamped with the injected clock's now."""
    op = make.op()
    await journal.start_operation(op)
    await journal.update_operation(op.operation_id, "in_progress")
    changes = await journal.state_changes(op.operation_id)
    assert changes[-1].at == make.t0


async def test_update_to_same_state_logs_no_change(
    journal: AnyJournal, make: RecordFactory
) -> None:
    """A data-only update (same state) adds no state-change record."""
    op = make.op()
    await journal.start_operation(op)
    await journal.update_operation(op.operation_id, "pending", data={"size": 3})
    assert len(await journal.state_changes(op.operation_id)) == 1


async def test_update_data_none_keeps_and_mapping_replaces(
    journal: AnyJournal, make: RecordFactory
) -> None:
    """data=None keeps the stored data; a mapping replaces it whole."""
    op = make.op(data={"a": 1, "b": 2})
    await journal.start_operation(op)
    await journal.update_operation(op.operation_id, "in_progress")
    kept = await journal.get_operation(op.operation_id)
    await journal.update_operation(op.operation_id, "in_progress", data={"c": 3})
    replaced = await journal.get_operation(op.operation_id)
    assert kept is not None and kept.data == {"a": 1, "b": 2}
    assert replaced is not None and replaced.data == {"c": 3}


async def test_update_of_unknown_operation_raises(journal: AnyJournal) -> None:
    """Updating an operation that was never started is an OperationError."""
    with pytest.raises(OperationError):
        await journal.update_operation("ghost", "failed")


async def test_intents_read_back_in_recorded_order(
    journal: AnyJournal, make: RecordFactory
) -> None:
    """intents_for lists an operation's intents in the order they were written."""
    op = make.op()
    await journal.start_operation(op)
    legs = [make.intent(op.operation_id, leg) for leg in ("entry", "stop", "target")]
    for intent in legs:
        await journal.record_intent(intent)
    got = await journal.intents_for(op.operation_id)
    assert got == legs
    assert got[0].kind is IntentKind.PLACE


async def test_intent_by_tag_finds_it_and_filters_by_account(
    journal: AnyJournal, make: RecordFactory
) -> None:
    """intent_by_tag finds the intent; an account filter that does not match finds nothing."""
    await journal.start_operation(make.op("op-1"))
    intent = make.intent("op-1", custom_tag="og-op-1-entry-0")
    await journal.record_intent(intent)
    assert await journal.intent_by_tag("og-op-1-entry-0") == intent
    assert await journal.intent_by_tag("og-op-1-entry-0", account_id=1001) == intent
    assert await journal.intent_by_tag("og-op-1-entry-0", account_id=7) is None
    assert await journal.intent_by_tag("missing") is None


async def test_same_tag_twice_on_one_account_is_refused(
    journal: AnyJournal, make: RecordFactory
) -> None:
    """A customTag is unique per account (I3): a second intent with it is refused."""
    await journal.start_operation(make.op("op-1"))
    await journal.record_intent(make.intent("op-1", custom_tag="tag-1"))
    with pytest.raises(JournalError):
        await journal.record_intent(make.intent("op-1", custom_tag="tag-1"))


async def test_same_tag_on_another_account_is_allowed(
    journal: AnyJournal, make: RecordFactory
) -> None:
    """Tag uniqueness is per account, as ProjectX defines it."""
    await journal.start_operation(make.op("op-1"))
    await journal.record_intent(make.intent("op-1", custom_tag="tag-1", account_id=1))
    await journal.record_intent(make.intent("op-1", custom_tag="tag-1", account_id=2))
    assert len(await journal.intents_for("op-1")) == 2


async def test_duplicate_intent_id_is_refused(journal: AnyJournal, make: RecordFactory) -> None:
    """The same intent id cannot be recorded twice."""
    await journal.start_operation(make.op("op-1"))
    await journal.record_intent(make.intent("op-1", intent_id="i-1"))
    with pytest.raises(JournalError):
        await journal.record_intent(make.intent("op-1", intent_id="i-1"))


async def test_intent_for_unknown_operation_is_refused(
    journal: AnyJournal, make: RecordFactory
) -> None:
    """An intent must belong to a recorded operation (or to none)."""
    with pytest.raises(JournalError):
        await journal.record_intent(make.intent("ghost"))


async def test_intent_without_operation_is_allowed(
    journal: AnyJournal, make: RecordFactory
) -> None:
    """A standalone order's intent has no operation and is found by its tag."""
    intent = make.intent(None, custom_tag="solo-1")
    await journal.record_intent(intent)
    assert await journal.intent_by_tag("solo-1") == intent


async def test_outcome_for_returns_the_latest(journal: AnyJournal, make: RecordFactory) -> None:
    """After unknown then resolved, outcome_for is the resolution; outcomes_for lists both."""
    await journal.start_operation(make.op("op-1"))
    intent = make.intent("op-1")
    await journal.record_intent(intent)
    unknown = make.outcome(intent, "unknown", order_id=None, message="timeout after send")
    resolved = make.outcome(intent, "resolved", order_id=42)
    await journal.record_outcome(unknown)
    await journal.record_outcome(resolved)
    assert await journal.outcome_for(intent.intent_id) == resolved
    assert await journal.outcomes_for(intent.intent_id) == [unknown, resolved]


async def test_rejection_keeps_its_code(journal: AnyJournal, make: RecordFactory) -> None:
    """A rejected outcome reads back with the endpoint's error code and message."""
    await journal.start_operation(make.op("op-1"))
    intent = make.intent("op-1")
    await journal.record_intent(intent)
    await journal.record_outcome(make.outcome(intent, "rejected", code=2, message="bad price"))
    got = await journal.outcome_for(intent.intent_id)
    assert got is not None
    assert (got.kind, got.code, got.message) == (OutcomeKind.REJECTED, 2, "bad price")


async def test_no_outcome_reads_as_none(journal: AnyJournal, make: RecordFactory) -> None:
    """An intent without outcome (sent, crashed) has outcome_for None."""
    await journal.start_operation(make.op("op-1"))
    intent = make.intent("op-1")
    await journal.record_intent(intent)
    assert await journal.outcome_for(intent.intent_id) is None


async def test_outcome_for_unknown_intent_is_refused(
    journal: AnyJournal, make: RecordFactory
) -> None:
    """An outcome must refer to a recorded intent."""
    ghost = make.intent("op-ghost")
    with pytest.raises(JournalError):
        await journal.record_outcome(make.outcome(ghost))


async def test_event_with_seen_key_is_deduplicated(
    journal: AnyJournal, make: RecordFactory
) -> None:
    """record_event is True the first time a key is seen and False after (F8)."""
    assert await journal.record_event(make.event("trade:1:77:1")) is True
    assert await journal.record_event(make.event("trade:1:77:1")) is False
    assert await journal.record_event(make.event("trade:1:77:2")) is True


async def test_events_for_lists_applied_events(journal: AnyJournal, make: RecordFactory) -> None:
    """events_for returns the operation's events in order, payloads in JSON form."""
    await journal.record_event(make.event("k1", "op-1", {"price": Decimal("1.25")}))
    await journal.record_event(make.event("k1", "op-1", {"price": Decimal("9")}))  # duplicate
    await journal.record_event(make.event("k2", "op-1"))
    await journal.record_event(make.event("k3", "op-2"))
    got = await journal.events_for("op-1")
    assert [e.key for e in got] == ["k1", "k2"]
    assert got[0].payload == {"price": "1.25"}


async def test_unfinished_operations_skip_terminal_states(
    journal: AnyJournal, make: RecordFactory
) -> None:
    """unfinished_operations lists non-terminal operations, oldest first."""
    for oid, state in [("a", "in_progress"), ("b", "completed"), ("c", "pending")]:
        await journal.start_operation(make.op(oid))
        await journal.update_operation(oid, state)
    for oid, state in [("d", "failed"), ("e", "rolled_back"), ("f", "rolling_back")]:
        await journal.start_operation(make.op(oid, state=state))
    got = await journal.unfinished_operations()
    assert [o.operation_id for o in got] == ["a", "c", "f"]


async def test_unfinished_operations_take_a_terminal_set(
    journal: AnyJournal, make: RecordFactory
) -> None:
    """A caller may pass its own set of terminal states."""
    await journal.start_operation(make.op("a", state="done"))
    await journal.start_operation(make.op("b", state="completed"))
    got = await journal.unfinished_operations(terminal_states={"done"})
    assert [o.operation_id for o in got] == ["b"]


async def test_operations_are_listed_newest_first(journal: AnyJournal, make: RecordFactory) -> None:
    """operations() pages newest first."""
    for oid in ("a", "b", "c", "d"):
        await journal.start_operation(make.op(oid))
    assert [o.operation_id for o in await journal.operations()] == ["d", "c", "b", "a"]
    page = await journal.operations(limit=2, offset=1)
    assert [o.operation_id for o in page] == ["c", "b"]


async def test_counts_total_operations_and_outcomes(
    journal: AnyJournal, make: RecordFactory
) -> None:
    """counts() groups operations by (type, state) and outcomes by kind."""
    await journal.start_operation(make.op("a"))
    await journal.start_operation(make.op("b", type="oco_pair"))
    await journal.update_operation("b", "completed")
    intent = make.intent("a")
    await journal.record_intent(intent)
    await journal.record_outcome(make.outcome(intent, "unknown"))
    await journal.record_outcome(make.outcome(intent, "resolved"))
    await journal.record_event(make.event("k"))
    counts = await journal.counts()
    assert counts == JournalCounts(
        operations={("bracket_order", "pending"): 1, ("oco_pair", "completed"): 1},
        outcomes={"unknown": 1, "resolved": 1},
        intents=1,
        events=1,
    )
    assert counts.operations_by_state == {"pending": 1, "completed": 1}
    assert counts.operations_by_type == {"bracket_order": 1, "oco_pair": 1}


async def test_counts_of_an_empty_journal_are_zero(journal: AnyJournal) -> None:
    """An empty journal counts nothing."""
    assert await journal.counts() == JournalCounts({}, {}, 0, 0)


async def test_watermark_is_set_read_and_overwritten(journal: AnyJournal) -> None:
    """A watermark is None until set, then holds the last value set."""
    assert await journal.get_watermark("reconcile:1001") is None
    await journal.set_watermark("reconcile:1001", "2026-01-05T14:30:00+00:00")
    await journal.set_watermark("reconcile:1001", "2026-01-05T14:31:00+00:00")
    assert await journal.get_watermark("reconcile:1001") == "2026-01-05T14:31:00+00:00"


async def test_records_survive_close_and_reopen(
    journal: AnyJournal, make: RecordFactory, reopen: Any
) -> None:
    """Everything acknowledged is there after the journal is closed and opened again."""
    await journal.start_operation(make.op("op-1"))
    intent = make.intent("op-1")
    await journal.record_intent(intent)
    await journal.set_watermark("w", "1")
    again = await reopen()
    try:
        assert await again.intent_by_tag(intent.custom_tag) == intent
        assert await again.get_watermark("w") == "1"
    finally:
        await again.close()


async def test_writes_after_close_raise(journal: AnyJournal, make: RecordFactory) -> None:
    """A closed journal refuses writes with JournalError; closing twice is fine."""
    await journal.close()
    await journal.close()
    with pytest.raises(JournalError):
        await journal.start_operation(make.op())


async def test_context_manager_opens_and_closes(journal: AnyJournal, make: RecordFactory) -> None:
    """``async with`` opens the journal and closes it on exit."""
    await journal.close()
    async with journal as j:
        await j.start_operation(make.op("op-1"))
    with pytest.raises(JournalError):
        await journal.start_operation(make.op("op-2"))


async def test_one_bad_record_does_not_sink_concurrent_ones(
    journal: AnyJournal, make: RecordFactory
) -> None:
    """Among concurrent writes, only the conflicting one fails; the others are recorded."""
    await journal.start_operation(make.op("op-1"))
    good = [make.intent("op-1", leg) for leg in ("stop", "target")]
    bad = make.intent("op-1", custom_tag=good[0].custom_tag)
    results = await asyncio.gather(
        journal.record_intent(good[0]),
        journal.record_intent(bad),
        journal.record_intent(good[1]),
        journal.update_operation("op-1", "in_progress"),
        return_exceptions=True,
    )
    assert [type(r) for r in results] == [type(None), JournalError, type(None), type(None)]
    assert await journal.intents_for("op-1") == good
