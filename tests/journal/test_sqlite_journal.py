"""SQLite-only behaviour: files, schema versions, group commit, failures."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from orderguard.clock import VirtualClock
from orderguard.errors import JournalError
from orderguard.journal import SCHEMA_VERSION, SqliteJournal
from orderguard.journal.testing import RecordFactory


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _modes(directory: Path) -> dict[str, int]:
    return {p.name: _mode(p) for p in directory.iterdir()}


async def test_files_are_owner_only(tmp_path: Path, make: RecordFactory) -> None:
    """The database and its -wal and -shm files are created with mode 0600."""
    path = tmp_path / "j.db"
    async with SqliteJournal(path) as journal:
        await journal.start_operation(make.op())
        modes = _modes(tmp_path)
    assert modes == {"j.db": 0o600, "j.db-wal": 0o600, "j.db-shm": 0o600}


async def test_existing_world_readable_file_is_tightened(tmp_path: Path) -> None:
    """Opening a journal file readable by others makes it owner-only."""
    path = tmp_path / "j.db"
    async with SqliteJournal(path):
        pass  # an existing journal (an empty file is refused: test_sqlite_hardening.py)
    os.chmod(path, 0o644)
    async with SqliteJournal(path):
        pass
    assert _mode(path) == 0o600


async def test_new_file_gets_current_schema_version(tmp_path: Path) -> None:
    """A new journal is migrated to SCHEMA_VERSION."""
    path = tmp_path / "j.db"
    async with SqliteJournal(path):
        pass
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A journal written by a newer orderguard is refused, not guessed at."""
    path = tmp_path / "j.db"
    async with SqliteJournal(path):
        pass
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(JournalError, match="newer"):
        await SqliteJournal(path).open()


async def test_foreign_database_is_refused(tmp_path: Path) -> None:
    """A SQLite file that is not an orderguard journal is refused."""
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    with pytest.raises(JournalError, match="not an orderguard journal"):
        await SqliteJournal(path).open()


async def test_garbage_file_is_refused(tmp_path: Path) -> None:
    """A file that is not a database at all raises JournalError on open."""
    path = tmp_path / "j.db"
    path.write_bytes(b"not a database" * 100)
    with pytest.raises(JournalError):
        await SqliteJournal(path).open()


async def test_missing_directory_is_refused(tmp_path: Path) -> None:
    """A path whose directory does not exist raises JournalError on open."""
    with pytest.raises(JournalError):
        await SqliteJournal(tmp_path / "missing" / "j.db").open()


async def test_directory_path_is_refused(tmp_path: Path) -> None:
    """A path naming a directory raises JournalError on open."""
    with pytest.raises(JournalError):
        await SqliteJournal(tmp_path).open()


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs a read-only /sys")
async def test_read_only_location_is_refused() -> None:
    """A journal on a read-only file system raises JournalError on open (even as root)."""
    with pytest.raises(JournalError):
        await SqliteJournal("/sys/orderguard-journal.db").open()


async def test_history_tables_are_append_only(tmp_path: Path, make: RecordFactory) -> None:
    """Intents cannot be rewritten or deleted, even through another connection."""
    path = tmp_path / "j.db"
    async with SqliteJournal(path) as journal:
        await journal.start_operation(make.op("op-1"))
        await journal.record_intent(make.intent("op-1"))
    conn = sqlite3.connect(path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE intents SET custom_tag = 'x'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM intents")
    finally:
        conn.close()


async def test_concurrent_writes_share_commits(tmp_path: Path, make: RecordFactory) -> None:
    """Writes in flight together are group-committed in fewer transactions than records."""
    async with SqliteJournal(tmp_path / "j.db") as journal:
        ops = [make.op() for _ in range(50)]
        await asyncio.gather(*(journal.start_operation(op) for op in ops))
        assert journal.batches < 50
        assert len(await journal.operations(limit=100)) == 50


async def test_queued_writes_are_committed_by_close(tmp_path: Path, make: RecordFactory) -> None:
    """close() commits what was queued before it, and those callers get their acknowledgement."""
    path = tmp_path / "j.db"
    journal = SqliteJournal(path)
    await journal.open()
    writes = [asyncio.ensure_future(journal.start_operation(make.op())) for _ in range(20)]
    await asyncio.sleep(0)  # let every write reach the queue
    await journal.close()
    await asyncio.gather(*writes)
    async with SqliteJournal(path) as again:
        assert len(await again.operations()) == 20


async def test_disk_full_fails_the_batch_and_leaves_journal_usable(
    tmp_path: Path, make: RecordFactory
) -> None:
    """SQLITE_FULL (F15) raises a retryable JournalError; once space returns, writes succeed."""
    async with SqliteJournal(tmp_path / "j.db") as journal:
        await journal.start_operation(make.op("op-1"))
        writer = journal._thread  # white-box: cap the file size on the writer's own connection
        assert writer is not None and writer._conn is not None
        pages = writer._conn.execute("PRAGMA page_count").fetchone()[0]
        writer._conn.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(JournalError) as info:
            await journal.start_operation(make.op("op-2", data={"blob": "x" * 100_000}))
        assert info.value.retryable and journal.failed is None
        assert await journal.get_operation("op-1") is not None  # reads still work
        writer._conn.execute("PRAGMA max_page_count = 1073741823")
        await journal.start_operation(make.op("op-3"))
        assert await journal.get_operation("op-2") is None
        assert await journal.get_operation("op-3") is not None


async def test_writes_do_not_let_virtual_time_jump(tmp_path: Path, make: RecordFactory) -> None:
    """Under VirtualClock.run a journal write is I/O in flight: no timer fires during it."""
    clock = VirtualClock()
    fired: list[float] = []
    clock.call_later(0.001, lambda: fired.append(clock.monotonic()))

    async def main() -> float:
        async with SqliteJournal(tmp_path / "j.db", clock) as journal:
            for _ in range(5):
                await journal.start_operation(make.op())
        return clock.monotonic()

    assert await clock.run(main()) == 0.0
    assert fired == []
