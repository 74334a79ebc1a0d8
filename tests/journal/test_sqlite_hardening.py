"""The SQLite journal's durability settings and its refusal of empty or damaged files (10.9).

A missing path is created (complete, atomically); an existing file must be a sound journal. The
writer, the read-only reader and ``orderguard journal`` all refuse an empty or corrupt file with
:class:`~orderguard.errors.JournalCorruptError`, and none of them changes the file.
"""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from orderguard import errors
from orderguard.cli.app import app
from orderguard.journal import SqliteJournal
from orderguard.journal.reader import read_journal
from orderguard.journal.testing import RecordFactory

PAGE = 4096


def _names(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


async def _journal_with_records(path: Path, make: RecordFactory, n: int = 300) -> None:
    async with SqliteJournal(path) as journal:
        for i in range(n):
            await journal.start_operation(make.op(f"op-{i}"))


def _damage(path: Path, page: int = 3) -> None:
    """Overwrite the start of one b-tree page: the header (page 1) still says SQLite."""
    data = bytearray(path.read_bytes())
    assert len(data) > (page + 1) * PAGE
    data[page * PAGE : page * PAGE + 200] = b"\xff" * 200
    path.write_bytes(bytes(data))


def _cli(*args: str) -> Result:
    return CliRunner().invoke(app, ["journal", *args], env={"COLUMNS": "200"})


def _one_error_line(result: Result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# -- durability settings of the writer connection ------------------------------------------------
async def test_the_writer_connection_is_wal_with_synchronous_full(tmp_path: Path) -> None:
    """PRAGMA synchronous on the writer connection is FULL (2), journal_mode WAL."""
    async with SqliteJournal(tmp_path / "j.db") as journal:
        pragmas = await journal.writer_pragmas()
    assert pragmas["synchronous"] == 2
    assert pragmas["journal_mode"] == "wal"
    assert pragmas["foreign_keys"] == 1


async def test_a_reopened_journal_keeps_its_settings(tmp_path: Path, make: RecordFactory) -> None:
    """The settings hold on an existing journal too, not only on a new one."""
    path = tmp_path / "j.db"
    await _journal_with_records(path, make, n=3)
    async with SqliteJournal(path) as journal:
        pragmas = await journal.writer_pragmas()
    assert (pragmas["journal_mode"], pragmas["synchronous"]) == ("wal", 2)


# -- creation ------------------------------------------------------------------------------------
async def test_a_missing_path_is_created_complete_and_owner_only(tmp_path: Path) -> None:
    """A new journal appears at its path already migrated; no temporary file is left."""
    path = tmp_path / "j.db"
    async with SqliteJournal(path):
        assert _names(tmp_path) <= {"j.db", "j.db-wal", "j.db-shm"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_size > 0


# -- refusals ------------------------------------------------------------------------------------
async def test_an_existing_empty_file_is_refused_untouched(tmp_path: Path) -> None:
    """A zero-length file is JournalCorruptError, not silently adopted as a new journal."""
    path = tmp_path / "j.db"
    path.touch(mode=0o600)
    before = _files(tmp_path)
    with pytest.raises(errors.JournalCorruptError, match="empty"):
        await SqliteJournal(path).open()
    assert _files(tmp_path) == before


async def test_a_damaged_journal_is_refused_at_open(tmp_path: Path, make: RecordFactory) -> None:
    """A journal whose pages fail quick_check is JournalCorruptError (a JournalError)."""
    path = tmp_path / "j.db"
    await _journal_with_records(path, make)
    _damage(path)
    with pytest.raises(errors.JournalCorruptError, match="corrupt") as caught:
        await SqliteJournal(path).open()
    assert isinstance(caught.value, errors.JournalError)
    assert "\n" not in str(caught.value)


async def test_a_file_that_is_not_a_database_is_corrupt(tmp_path: Path) -> None:
    """Bytes that are no SQLite file at all: JournalCorruptError too."""
    path = tmp_path / "j.db"
    path.write_bytes(b"not a database" * 400)
    with pytest.raises(errors.JournalCorruptError):
        await SqliteJournal(path).open()


async def test_the_reader_refuses_an_empty_and_a_damaged_journal(
    tmp_path: Path, make: RecordFactory
) -> None:
    """The read-only reader raises the same typed error and changes nothing."""
    empty = tmp_path / "empty.db"
    empty.touch()
    damaged = tmp_path / "damaged.db"
    await _journal_with_records(damaged, make)
    _damage(damaged)
    before = _files(tmp_path)

    async def body(reader: object) -> None:
        return None

    for path in (empty, damaged):
        with pytest.raises(errors.JournalCorruptError):
            await read_journal(path, body)  # type: ignore[arg-type]
    assert _files(tmp_path) == before


@pytest.mark.parametrize("command", ["show", "stats"])
def test_journal_commands_print_one_line_for_an_empty_or_damaged_file(
    tmp_path: Path, make: RecordFactory, command: str
) -> None:
    """`orderguard journal show|stats` on an empty or damaged file: one line, exit 2."""
    empty = tmp_path / "empty.db"
    empty.touch()
    damaged = tmp_path / "damaged.db"
    asyncio.run(_journal_with_records(damaged, make))
    _damage(damaged)
    line = _one_error_line(_cli(command, str(empty)))
    assert line == f"error: {empty} is an empty file, not an orderguard journal"
    line = _one_error_line(_cli(command, str(damaged)))
    assert line.startswith(f"error: journal {damaged} is corrupt: ")
