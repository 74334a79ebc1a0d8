"""JournalReader: read-only, one snapshot, and a second read when a writer appears mid-read."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from orderguard.clock import VirtualClock
from orderguard.journal import SqliteJournal
from orderguard.journal.base import WRITES
from orderguard.journal.reader import JournalReader, read_journal
from orderguard.journal.testing import RecordFactory


@pytest.fixture
async def path(tmp_path: Path, make: RecordFactory) -> Path:
    """A journal with one operation, one intent and its outcome, closed cleanly."""
    db = tmp_path / "j.db"
    async with SqliteJournal(db, VirtualClock()) as journal:
        await journal.start_operation(make.op("op-a"))
        intent = make.intent("op-a")
        await journal.record_intent(intent)
        await journal.record_outcome(make.outcome(intent))
    return db


async def test_reads_records_like_the_writer_wrote_them(path: Path) -> None:
    """Read first (the writer below may write the file), then compare with SqliteJournal."""
    async with JournalReader(path) as reader:
        [op] = await reader.operations()
        [intent] = await reader.intents_for("op-a")
        outcome = await reader.outcome_for(intent.intent_id)
        counts = await reader.counts()
    async with SqliteJournal(path) as real:
        assert [op] == await real.operations()
        assert [intent] == await real.intents_for("op-a")
        assert outcome == await real.outcome_for(intent.intent_id)
        assert counts == await real.counts()


def _content(path: Path) -> bytes:
    return path.read_bytes()


async def test_the_reader_has_no_writes(path: Path) -> None:
    """A reader is a ReadableJournal only: there is no write to call by mistake, and reading
    leaves the file byte for byte as it was."""
    before = _content(path)
    async with JournalReader(path) as reader:
        for name in (*WRITES, "flush"):
            assert not hasattr(reader, name), name
        assert (await reader.counts()).intents == 1
    assert _content(path) == before


async def test_a_writer_appearing_mid_read_makes_it_read_again(path: Path) -> None:
    """The first (immutable) read is discarded once a -wal shows up; the second sees the write."""
    seen: list[list[str]] = []

    async def body(reader: JournalReader) -> list[str]:
        ids = [op.operation_id for op in await reader.operations()]
        seen.append(ids)
        if len(seen) == 1:  # another process starts writing while we read
            writer = sqlite3.connect(path, isolation_level=None)
            writer.execute(
                "INSERT INTO operations (operation_id, type, state, created_at, updated_at, "
                "data) VALUES ('op-late', 'bulk_cancel', 'pending', ?, ?, '{}')",
                ("2030-01-01T00:00:00.000000+00:00",) * 2,
            )
            writers.append(writer)  # kept open: its -wal stays
        return ids

    writers: list[sqlite3.Connection] = []
    try:
        result = await read_journal(path, body)
    finally:
        for writer in writers:
            writer.close()
    assert seen == [["op-a"], ["op-late", "op-a"]]
    assert result == ["op-late", "op-a"]


async def test_an_undisturbed_read_runs_once_and_creates_nothing(path: Path) -> None:
    calls = 0

    async def body(reader: JournalReader) -> int:
        nonlocal calls
        calls += 1
        return (await reader.counts()).intents

    assert await read_journal(path, body) == 1
    assert calls == 1
    assert sorted(p.name for p in path.parent.iterdir()) == ["j.db"]
