"""record_intents: several intents in one durable write (one commit, one wait)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from orderguard.errors import JournalError
from orderguard.journal import MemoryJournal, SqliteJournal
from orderguard.journal.testing import RecordFactory


async def test_every_intent_is_recorded_and_found_by_tag(
    journal: MemoryJournal | SqliteJournal, make: RecordFactory
) -> None:
    await journal.start_operation(make.op("op-1"))
    legs = [make.intent("op-1", leg) for leg in ("entry", "stop", "target")]
    await journal.record_intents(legs)
    assert [i.custom_tag for i in await journal.intents_for("op-1")] == [i.custom_tag for i in legs]
    for leg in legs:
        found = await journal.intent_by_tag(leg.custom_tag, leg.account_id)
        assert found is not None and found.intent_id == leg.intent_id


async def test_a_used_tag_is_refused(
    journal: MemoryJournal | SqliteJournal, make: RecordFactory
) -> None:
    await journal.start_operation(make.op("op-1"))
    first = make.intent("op-1", "entry")
    await journal.record_intent(first)
    with pytest.raises(JournalError):
        await journal.record_intents([make.intent("op-1", "stop"), first])


async def test_memory_refuses_the_whole_write_when_one_intent_is_bad(
    make: RecordFactory,
) -> None:
    """The memory journal checks every record first: a refused write changes nothing."""
    journal = MemoryJournal()
    await journal.open()
    await journal.start_operation(make.op("op-1"))
    used = make.intent("op-1", "entry")
    await journal.record_intent(used)
    with pytest.raises(JournalError):
        await journal.record_intents([make.intent("op-1", "stop"), used])
    assert [i.leg for i in await journal.intents_for("op-1")] == ["entry"]


async def test_sqlite_commits_the_intents_together_before_returning(
    tmp_path: Path, make: RecordFactory
) -> None:
    """One transaction for all of them, visible to an independent connection on return."""
    path = tmp_path / "j.db"
    async with SqliteJournal(path) as journal:
        await journal.start_operation(make.op("op-1"))
        before = journal.batches
        await journal.record_intents([make.intent("op-1", leg) for leg in ("a", "b", "c")])
        assert journal.batches == before + 1
        conn = sqlite3.connect(path)
        try:
            rows = conn.execute("SELECT leg FROM intents ORDER BY leg").fetchall()
        finally:
            conn.close()
        assert rows == [("a",), ("b",), ("c",)]
