"""Read a SQLite journal file without ever writing it: for the CLI, while a process may hold it.

:class:`~orderguard.journal.sqlite.SqliteJournal` is no use here: opening it creates a missing
file, migrates the schema and starts a writer. :class:`JournalReader` opens the file with the
SQLite URI ``mode=ro``, refuses anything that is not an orderguard journal of exactly the schema
version this code knows (a newer one is not guessed at; an older one is migrated only by a
writer), and reads every query in one read transaction, so all figures come from one snapshot.

One trap: a ``mode=ro`` connection to a WAL database whose ``-wal`` file does not exist (every
connection was closed cleanly) *creates* ``-wal`` and ``-shm`` and leaves them behind. So when
there is no ``-wal``, the file is read with ``immutable=1`` (no locks, no WAL) instead: the whole
database is then in the main file. A writer that opens the file meanwhile would make that read
unsafe, and it leaves a trace (its ``-wal`` appears; a checkpoint changes the file's size or
mtime). :func:`read_journal` therefore checks for that trace after the read and, if it finds it,
reads again with ``mode=ro``, which is safe next to a live writer (and the ``-wal`` exists then).

The reader is a :class:`~orderguard.journal.base.ReadableJournal`: it has the journal's reads and
no writes at all, so code that only reads a journal (the recovery statistics,
:meth:`~orderguard.recovery.manager.OperationRecoveryManager.read_statistics`) runs on it.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from orderguard.errors import JournalCorruptError, JournalError
from orderguard.journal import queries
from orderguard.journal.base import (
    DEFAULT_TERMINAL_STATES,
    EventRecord,
    IntentRecord,
    JournalCounts,
    OperationRecord,
    OutcomeRecord,
    StateChangeRecord,
)
from orderguard.journal.schema import APPLICATION_ID, SCHEMA_VERSION
from orderguard.journal.writer import check_integrity, is_corruption

_R = TypeVar("_R")
_T = TypeVar("_T")

_BUSY_MS = 5000  # a reader waits only while another connection rebuilds the WAL index
_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class _FileMark:
    """What a writer changes in the main file: checked around an ``immutable`` read."""

    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, path: Path) -> _FileMark:
        st = path.stat()
        return cls(st.st_size, st.st_mtime_ns, st.st_ino)


def _wal(path: Path) -> Path:
    return path.with_name(path.name + "-wal")


class JournalReader:
    """Read-only access to one journal file; use through :func:`read_journal`."""

    def __init__(
        self, path: str | os.PathLike[str], *, terminal_states: Collection[str] | None = None
    ) -> None:
        self.path = Path(path)
        self.terminal_states = frozenset(
            DEFAULT_TERMINAL_STATES if terminal_states is None else terminal_states
        )
        self._conn: sqlite3.Connection | None = None
        self._mark: _FileMark | None = None  # set while reading with immutable=1

    # -- lifecycle (synchronous: local file reads; the async ones are for the Journal port) -----
    def open_sync(self) -> None:
        if self._conn is not None:
            return
        if not self.path.is_file():
            raise JournalError(f"no journal file at {self.path}")
        if self.path.stat().st_size == 0:
            # SQLite would read an empty file as an empty database; it is a damaged journal.
            raise JournalCorruptError(f"{self.path} is an empty file, not an orderguard journal")
        # SQLite names the -wal after the resolved path, so look for it there too.
        real = self.path.resolve()
        immutable = not _wal(real).exists()
        self._mark = _FileMark.of(real) if immutable else None
        uri = real.as_uri() + ("?mode=ro&immutable=1" if immutable else "?mode=ro")
        try:
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open journal {self.path}: {exc}") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_MS}")
            conn.execute("PRAGMA query_only = ON")
            conn.execute("BEGIN")  # one snapshot for the version check and every read after it
            self._check_schema(conn)
            check_integrity(conn, self.path)  # the same refusal as the writer's at open
        except sqlite3.DatabaseError as exc:
            conn.close()
            error = JournalCorruptError if is_corruption(exc) else JournalError
            raise error(f"{self.path} is not an orderguard journal ({exc})") from exc
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _check_schema(self, conn: sqlite3.Connection) -> None:
        app_id = _scalar(conn, "PRAGMA application_id")
        version = _scalar(conn, "PRAGMA user_version")
        # Stricter than migrate(), which accepts application_id 0 for a file it is about to
        # create: every journal at version >= 1 carries the id (set in the same transaction).
        if app_id != APPLICATION_ID:
            raise JournalError(
                f"{self.path} is not an orderguard journal (application_id {app_id:#x})"
            )
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"journal {self.path} has schema version {version}, newer than this orderguard "
                f"reads ({SCHEMA_VERSION}); upgrade orderguard"
            )
        if version < SCHEMA_VERSION:
            raise JournalError(
                f"journal {self.path} has schema version {version}, older than this orderguard "
                f"reads ({SCHEMA_VERSION}); open it once with orderguard to migrate it"
            )

    def close_sync(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()  # the read transaction ends with it; nothing to commit

    @property
    def disturbed(self) -> bool:
        """True if a writer may have changed the file during an ``immutable`` read."""
        if self._mark is None:
            return False
        real = self.path.resolve()
        try:
            return _wal(real).exists() or _FileMark.of(real) != self._mark
        except OSError:
            return True

    async def open(self) -> None:
        self.open_sync()

    async def close(self) -> None:
        self.close_sync()

    async def __aenter__(self) -> Self:
        self.open_sync()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close_sync()

    # -- reads -----------------------------------------------------------------------------------
    def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        if self._conn is None:
            raise JournalError(f"journal {self.path} is not open")
        try:
            return self._conn.execute(sql, params).fetchall()
        except (sqlite3.Error, ValueError) as exc:
            raise JournalError(f"journal read failed ({self.path}): {exc}") from exc

    def _read(self, query: queries.Read[_R]) -> list[_R]:
        convert, sql, params = query
        try:
            return [convert(row) for row in self._fetch(sql, params)]
        except (KeyError, TypeError, ValueError) as exc:  # a row our records refuse
            raise JournalError(f"journal {self.path} holds a malformed record: {exc}") from exc

    async def get_watermark(self, key: str) -> str | None:
        return queries.first(self._read(queries.watermark(key)))

    async def get_operation(self, operation_id: str) -> OperationRecord | None:
        return queries.first(self._read(queries.operation(operation_id)))

    async def unfinished_operations(
        self, terminal_states: Collection[str] | None = None
    ) -> list[OperationRecord]:
        terminal = self.terminal_states if terminal_states is None else terminal_states
        return self._read(queries.unfinished_operations(terminal))

    async def operations(self, limit: int = 100, offset: int = 0) -> list[OperationRecord]:
        return self._read(queries.operations(limit, offset))

    async def intents_for(self, operation_id: str) -> list[IntentRecord]:
        return self._read(queries.intents_for(operation_id))

    async def intent_by_tag(
        self, custom_tag: str, account_id: int | None = None
    ) -> IntentRecord | None:
        return queries.first(self._read(queries.intent_by_tag(custom_tag, account_id)))

    async def outcome_for(self, intent_id: str) -> OutcomeRecord | None:
        return queries.first(self._read(queries.latest_outcome(intent_id)))

    async def outcomes_for(self, intent_id: str) -> list[OutcomeRecord]:
        return self._read(queries.outcomes_for(intent_id))

    async def state_changes(self, operation_id: str) -> list[StateChangeRecord]:
        return self._read(queries.state_changes(operation_id))

    async def events_for(self, operation_id: str) -> list[EventRecord]:
        return self._read(queries.events_for(operation_id))

    async def counts(self) -> JournalCounts:
        return queries.counts(self._fetch(queries.COUNTS_SQL))


def _scalar(conn: sqlite3.Connection, sql: str) -> int:
    row = conn.execute(sql).fetchone()
    return int(row[0]) if row is not None else 0


async def read_journal(
    path: str | os.PathLike[str], body: Callable[[JournalReader], Awaitable[_T]]
) -> _T:
    """Run ``body`` on a fresh reader of ``path``; again if a writer disturbed the read.

    Raises :class:`~orderguard.errors.JournalError` for a missing or foreign file, a schema
    version this code does not read, or a file that kept changing under every attempt.
    """
    for _ in range(_ATTEMPTS):
        reader = JournalReader(path)
        async with reader:
            try:
                result = await body(reader)
            except JournalError:
                if reader.disturbed:  # a torn read, not a bad file: read again
                    continue
                raise
            if not reader.disturbed:
                return result
    raise JournalError(f"journal {path} kept changing while it was read; try again")


__all__ = ["JournalReader", "read_journal"]
