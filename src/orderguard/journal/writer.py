"""The SQLite journal's write path: one connection owned by one dedicated thread.

Why not aiosqlite for writes: aiosqlite hops to its thread once per statement, so a group commit
of 20 records costs 22 round trips through the event loop. Measured on the benchmark (20 brackets
in flight, 10 durable writes each): 837 operations/s and 28 ms of journal time per operation with
aiosqlite, against a 2 ms target. One whole transaction per hop on a single-thread executor gave
4 056 operations/s and 4.5 ms; this thread, which pulls records itself and so overlaps its
commits with the event loop's work, does better still (see benchmarks/bench_journal.py). Reads
still go through aiosqlite.
"""

from __future__ import annotations

import asyncio
import os
import queue
import sqlite3
import stat
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orderguard.errors import JournalCorruptError, JournalError
from orderguard.journal.schema import migrate

Statement = tuple[str, Sequence[Any]]


class BatchFailedError(Exception):
    """The transaction was rolled back; ``rolled_back`` is False if even that failed."""

    def __init__(self, cause: BaseException, *, rolled_back: bool) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.rolled_back = rolled_back


# SQLite result codes (primary) that mean the file is damaged or not a database at all.
_CORRUPT_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


def is_corruption(exc: BaseException) -> bool:
    """Whether a SQLite error says the file is damaged or not a database."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and (code & 0xFF) in _CORRUPT_CODES


def prepare_file(path: Path) -> bool:
    """Make sure ``path`` is a journal file orderguard may open; True if it was created now.

    A missing file is created *complete*: a fresh journal is built (owner-only, WAL mode,
    migrated) under a temporary name in the same directory and linked into place, so the path
    never names a half-made file, even if the process dies in between. An existing file is
    never re-created: a zero-length one is refused (:class:`JournalCorruptError`) instead of
    being silently adopted as a new, empty journal — that is what a journal truncated by a
    broken disk or a careless copy looks like, and adopting it would forget every unfinished
    operation. An existing file readable by others is tightened to owner-only (SQLite gives the
    -wal and -shm files the database file's mode, so they follow).
    """
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return _create(path)
    try:
        st = os.fstat(fd)
        if stat.S_IMODE(st.st_mode) & 0o077:
            os.fchmod(fd, 0o600)
        if st.st_size == 0:
            raise JournalCorruptError(
                f"journal {path} is an empty file: refused (orderguard creates a journal only "
                "where no file exists; move it away if it is not needed)"
            )
    finally:
        os.close(fd)
    return False


def _create(path: Path) -> bool:
    """Build a complete journal at a temporary name and link it to ``path`` (see above)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.new")
    try:
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            migrate(conn)
        finally:
            conn.close()  # the last connection: checkpoints into the file, removes the -wal
        try:
            os.link(tmp, path)  # atomic, and never replaces a file made meanwhile
        except FileExistsError:
            return False  # another process created it first: open theirs
        _sync_directory(path.parent)
        return True
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
            leftover.unlink(missing_ok=True)


def _sync_directory(directory: Path) -> None:
    """Make the new directory entry durable (a crash must not lose the file we just linked)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # not every platform opens directories; the file's own data is synced
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_integrity(conn: sqlite3.Connection, path: Path) -> None:
    """``PRAGMA quick_check``: page structure, free list and record formats, without the
    index-content cross check of ``integrity_check`` (see benchmarks/RESULTS.md for the cost
    on a large journal). Raises :class:`JournalCorruptError` on any finding."""
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        raise JournalCorruptError(f"journal {path} is corrupt: {exc}") from exc
    findings = [" ".join(str(row[0]).split()) for row in rows]  # one line each
    if findings != ["ok"]:
        raise JournalCorruptError(
            f"journal {path} is corrupt: "
            + "; ".join(findings[:3])
            + (f" (+{len(findings) - 3} more)" if len(findings) > 3 else "")
        )


@dataclass(slots=True)
class Write:
    """One queued record: a single statement, and the future of the caller awaiting its commit.

    A deferred record has no future (nobody awaits it; a future per record would cost the loop a
    callback each): its result is checked where the batch is delivered.
    """

    sql: str
    params: Sequence[Any]
    future: asyncio.Future[int] | None
    conflict: str  # message if the statement breaks a constraint
    must_change: str = ""  # deferred only: failure message if the statement changed no row


Deliver = Callable[[list[Write], "list[int | sqlite3.IntegrityError] | BatchFailedError"], None]


class WriterThread:
    """Owns the writer connection and commits queued records in batches on its own thread.

    The thread wakes the moment a record is queued, so it commits while the event loop is still
    preparing further records (SQLite releases the GIL while it writes and syncs); whatever queues
    up during one commit forms the next batch. Results go back to the loop in one
    ``call_soon_threadsafe`` per batch.
    """

    def __init__(self, path: Path, busy_ms: int, max_batch: int) -> None:
        self._path = path
        self._busy_ms = busy_ms
        self._max_batch = max_batch
        self._conn: sqlite3.Connection | None = None
        # One item per submission: writes submitted together always share a transaction.
        self._queue: queue.SimpleQueue[list[Write] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.batches = 0

    # -- called from the event loop ----------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop, deliver: Deliver) -> None:
        # Daemon: a journal that was never closed must not keep the interpreter alive. Any
        # transaction cut short that way is rolled back by SQLite on the next open.
        self._thread = threading.Thread(
            target=self._run, args=(loop, deliver), name="orderguard-journal-writer", daemon=True
        )
        self._thread.start()

    def submit(self, writes: list[Write]) -> None:
        """Queue writes that must commit together (the list may exceed ``max_batch``)."""
        self._queue.put(writes)

    def stop(self) -> None:
        """Ask the thread to commit what is queued, close the connection and end."""
        self._queue.put(None)

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()

    # -- on the writer thread ----------------------------------------------------------------
    def connect(self) -> None:
        """Open, check, configure and migrate (runs before :meth:`start`, on a worker thread).

        A journal that existed before is integrity-checked first (``check_integrity``); a
        damaged one, or a file that is not a database, raises :class:`JournalCorruptError`.
        """
        created = prepare_file(self._path)
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            if not created:
                check_integrity(conn, self._path)
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            if mode is None or mode[0] != "wal":
                raise JournalError(f"journal {self._path} cannot use WAL mode")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            migrate(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            if is_corruption(exc):
                raise JournalCorruptError(f"journal {self._path} is corrupt: {exc}") from exc
            raise
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def pragmas(self) -> dict[str, int | str]:
        """``journal_mode``, ``synchronous`` and ``foreign_keys`` as the writer connection has
        them (for tests and diagnostics; the connection is shared safely: sqlite3 serialises
        calls on one connection)."""
        conn = self._conn
        if conn is None:
            raise JournalError(f"journal {self._path} is not open")
        found: dict[str, int | str] = {}
        for name in ("journal_mode", "synchronous", "foreign_keys"):
            row = conn.execute(f"PRAGMA {name}").fetchone()
            found[name] = row[0]
        return found

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _run(self, loop: asyncio.AbstractEventLoop, deliver: Deliver) -> None:
        try:
            stopping = False
            while not stopping:
                first = self._queue.get()
                if first is None:
                    break
                batch = list(first)
                while len(batch) < self._max_batch:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        stopping = True
                        break
                    batch.extend(more)
                outcome: list[int | sqlite3.IntegrityError] | BatchFailedError
                try:
                    outcome = self.commit([(w.sql, w.params) for w in batch])
                except BatchFailedError as exc:
                    outcome = exc
                try:
                    loop.call_soon_threadsafe(deliver, batch, outcome)
                except RuntimeError:  # the loop is closed: nobody is waiting any more
                    return
        finally:
            self.close()

    def commit(self, statements: Sequence[Statement]) -> list[int | sqlite3.IntegrityError]:
        """Run every statement in one transaction; per statement its row count or its conflict.

        A constraint failure aborts only its own statement (SQLite's default ABORT resolution),
        so the other records still commit. Any other error rolls everything back.
        """
        conn = self._conn
        if conn is None:
            raise BatchFailedError(JournalError("journal is closed"), rolled_back=True)
        results: list[int | sqlite3.IntegrityError] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for sql, params in statements:
                try:
                    results.append(conn.execute(sql, params).rowcount)
                except sqlite3.IntegrityError as exc:
                    results.append(exc)
            conn.execute("COMMIT")
        except Exception as exc:  # not only sqlite3.Error: the thread must never die silently
            raise BatchFailedError(exc, rolled_back=self._rollback()) from exc
        self.batches += 1
        return results

    def _rollback(self) -> bool:
        conn = self._conn
        if conn is None:
            return False
        try:
            if conn.in_transaction:  # SQLite may already have rolled back (e.g. disk full)
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            return False
        return True


__all__ = [
    "BatchFailedError",
    "Deliver",
    "Statement",
    "Write",
    "WriterThread",
    "check_integrity",
    "is_corruption",
    "prepare_file",
]
