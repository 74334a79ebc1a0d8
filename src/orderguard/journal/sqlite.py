"""The embedded journal: SQLite in WAL mode with ``synchronous=FULL`` and group commit.

One writer connection lives on one dedicated thread (``writer.py`` says why not aiosqlite).
Durable writes enqueue a single statement and await a future; the thread takes everything queued,
runs it in one transaction and resolves the futures only after ``COMMIT`` returned, so every
acknowledged record is durable, and records queued while a commit is in flight share the next one
(group commit: one fsync for many callers). Batches commit in queue order, so a durable record
implies that every record queued before it is durable too.

Each record is exactly one statement (triggers add the state-change rows), so a constraint failure
of one record aborts only that statement and the rest of the batch still commits. Any other SQLite
error rolls the whole batch back and every caller in it gets :class:`JournalError`: disk full, busy
or read-only leave the journal usable (the error is ``retryable``); I/O errors, corruption or a lost
connection mark it failed for good, because after a failed fsync the file can no longer be trusted.

Deferred writes (``durable=False``: operations, state updates, outcomes) return at once; nobody
awaits them, so they carry no future (a future each cost the loop one callback per record); their
results are checked where their batch is delivered. By default they go to the writer at once and
commit with whatever is queued with them. With ``linger`` set they wait on the event loop's side,
in order, for the next durable write (or :meth:`~SqliteJournal.flush`,
:meth:`~SqliteJournal.close`, or ``linger`` seconds), then go to the writer ahead of it in the
same transaction: an operation's start record then never occupies the writer while its first
intent waits (one fsync per operation instead of two or three in a row). Measured on the bracket
benchmark (see ``benchmarks/RESULTS.md``) that raises throughput with one operation in flight
but lengthens the intents' waits with twenty, because every held record rides in an intent's
transaction; hence off by default. Only intents must be durable before their mutation is sent,
and because batches commit in queue order, an intent that returns durable carries every record
queued before it into the same or an earlier commit. A crash can therefore lose only deferred
records queued after the last durable write (with ``linger``, at most that long's worth when no
intent follows), which recovery re-derives from the broker (see
:class:`~orderguard.journal.base.Journal`). Concurrent intents (a stop and a target) queued
together share one commit. A deferred write that later fails is logged and counted in
``deferred_failures``; a fatal failure marks the journal failed, so the next intent raises.

Reads use a second, query-only connection: in WAL mode it sees only committed data and never waits
for the writer (call :meth:`SqliteJournal.flush` first to read deferred records back).

Over 500 lines: one method per Journal operation, each a single SQL statement; the writer thread is
writer.py, the schema schema.py, the read queries queries.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import aiosqlite

from orderguard.clock import Clock, SystemClock
from orderguard.errors import JournalCorruptError, JournalError, OperationError
from orderguard.journal import queries
from orderguard.journal.base import (
    DEFAULT_TERMINAL_STATES,
    EventRecord,
    IntentRecord,
    JournalCounts,
    OperationRecord,
    OutcomeRecord,
    StateChangeRecord,
    dumps,
    enum_text,
    format_time,
)
from orderguard.journal.writer import BatchFailedError, Write, WriterThread, is_corruption

_R = TypeVar("_R")

log = logging.getLogger(__name__)

# Primary result codes after which the database file is not trusted again (see module docstring).
_FATAL_CODES = frozenset(
    {
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_NOTADB,
        sqlite3.SQLITE_CANTOPEN,
    }
)


def _journal_error(message: str, exc: BaseException) -> JournalError:
    err = JournalError(f"{message}: {exc}")
    code = getattr(exc, "sqlite_errorcode", None)
    # Busy, locked, full, read-only: the same write may succeed later.
    err.retryable = code is not None and (code & 0xFF) not in _FATAL_CODES
    err.__cause__ = exc
    return err


def _is_fatal(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:  # not from SQLite itself: a closed or broken connection
        return True
    return (code & 0xFF) in _FATAL_CODES


class SqliteJournal:
    """The :class:`~orderguard.journal.base.Journal` contract on a SQLite file.

    ``max_batch`` caps the records of one transaction (records submitted together, such as held
    deferred records and the intent they ride with, are never split); ``busy_timeout`` is how
    long a write waits for another connection's lock. ``linger`` (seconds, default None: off)
    holds deferred records for the next durable write; see the module docstring for the
    trade-off.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        clock: Clock | None = None,
        *,
        terminal_states: Collection[str] = DEFAULT_TERMINAL_STATES,
        max_batch: int = 512,
        busy_timeout: float = 5.0,
        linger: float | None = None,
    ) -> None:
        if linger is not None and linger < 0:
            raise ValueError(f"linger must be None or >= 0, got {linger!r}")
        self.path = Path(path)
        self.terminal_states = frozenset(terminal_states)
        self._clock: Clock = clock or SystemClock()
        self._max_batch = max_batch
        self._busy_ms = int(busy_timeout * 1000)
        self._thread: WriterThread | None = None
        self._reader: aiosqlite.Connection | None = None
        self._accepting = False
        self._failure: JournalError | None = None
        self._batches_before = 0
        # Deferred writes queued and settled (committed or failed) so far: batches settle in
        # queue order, so flush() waits for the settled count to reach the queued count.
        self._deferred_queued = 0
        self._deferred_settled = 0
        self._flush_waiters: list[tuple[int, asyncio.Future[None]]] = []
        # Deferred writes not yet handed to the writer (see module docstring), in queue order.
        self._held: list[Write] = []
        self._linger = linger
        self._linger_timer: asyncio.TimerHandle | None = None
        self.deferred_failures = 0
        """Deferred writes that failed after their caller had moved on (logged)."""

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def failed(self) -> JournalError | None:
        """Why the journal stopped accepting writes for good, or None."""
        return self._failure

    async def writer_pragmas(self) -> dict[str, int | str]:
        """``journal_mode``, ``synchronous`` and ``foreign_keys`` of the *writer* connection
        (the one whose commits must be durable): ``wal``, 2 (FULL), 1."""
        thread = self._thread
        if thread is None:
            raise JournalError(f"journal {self.path} is not open")
        async with self._clock.io():
            return await asyncio.to_thread(thread.pragmas)

    @property
    def batches(self) -> int:
        """Transactions committed so far (for tests and benchmarks of group commit)."""
        return self._thread.batches if self._thread is not None else self._batches_before

    async def open(self) -> None:
        """Create or open the file, apply migrations and start the writer; idempotent.

        A missing file is created (complete, atomically); an existing one must be a sound
        journal: an empty file, a file that is not a database, or one that fails SQLite's
        ``quick_check`` raises :class:`~orderguard.errors.JournalCorruptError`."""
        if self._thread is not None:
            return
        writer = WriterThread(self.path, self._busy_ms, self._max_batch)
        reader: aiosqlite.Connection | None = None
        try:
            async with self._clock.io():
                await asyncio.to_thread(writer.connect)
                reader = await aiosqlite.connect(self.path, isolation_level=None)
                await reader.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
                await reader.execute("PRAGMA query_only = ON")
        except (OSError, sqlite3.Error, JournalError) as exc:
            async with self._clock.io():
                await asyncio.to_thread(writer.close)
                if reader is not None:
                    await reader.close()
            if isinstance(exc, JournalError):
                raise
            if is_corruption(exc):
                raise JournalCorruptError(f"journal {self.path} is corrupt: {exc}") from exc
            raise _journal_error(f"cannot open journal {self.path}", exc) from exc
        writer.start(asyncio.get_running_loop(), self._deliver)
        self._thread, self._reader = writer, reader
        self._failure = None
        self._accepting = True

    async def close(self) -> None:
        """Commit what is queued, stop the writer and close both connections; idempotent."""
        if self._thread is not None and self._accepting:
            await self.flush()
        self._accepting = False
        self._release()  # normally empty after flush(); never leave a held write behind
        thread, self._thread = self._thread, None
        reader, self._reader = self._reader, None
        async with self._clock.io():
            if thread is not None:
                self._batches_before = thread.batches
                thread.stop()  # the thread commits what was queued before it stops
                await asyncio.to_thread(thread.join)
            if reader is not None:
                with contextlib.suppress(Exception):
                    await reader.close()
        # Deliveries scheduled by the thread's last batch run on the loop before this returns.
        await asyncio.sleep(0)

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- the writer ------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._failure is not None:
            raise JournalError(f"journal {self.path} has failed: {self._failure}")
        if not self._accepting or self._thread is None:
            raise JournalError(f"journal {self.path} is not open")

    def _release(self, *durable: Write) -> None:
        """Hand the held deferred writes (then ``durable``) to the writer as one submission."""
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None
        writes, self._held = self._held, []
        writes.extend(durable)
        if not writes:
            return
        if self._thread is None:  # closed meanwhile: nobody will commit these
            self._deliver(
                writes, BatchFailedError(JournalError("journal closed"), rolled_back=True)
            )
            return
        self._thread.submit(writes)

    async def _submit(self, sql: str, params: Sequence[Any], conflict: str) -> int:
        """Queue one statement; return its row count once it is committed."""
        self._check_open()
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        # What was held goes first and in the same transaction: one commit, not two.
        self._release(Write(sql, params, future, conflict))
        # The caller is waiting on disk I/O: a virtual clock must not jump meanwhile.
        async with self._clock.io():
            return await future

    def _defer(
        self, sql: str, params: Sequence[Any], conflict: str, *, must_change: str = ""
    ) -> None:
        """Hold one statement for the next commit; failures are logged and counted later."""
        self._check_open()
        self._held.append(Write(sql, params, None, conflict, must_change))
        self._deferred_queued += 1
        if self._linger is None:
            self._release()  # to the writer now: it commits with whatever is queued with it
        elif self._linger_timer is None:
            loop = asyncio.get_running_loop()
            self._linger_timer = loop.call_later(self._linger, self._release)

    async def flush(self) -> None:
        """Wait until every deferred write queued so far has committed (or failed)."""
        self._release()
        await self._settled(self._deferred_queued)

    async def _settled(self, count: int) -> None:
        """Wait until the first ``count`` deferred writes have committed or failed."""
        if self._deferred_settled >= count:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._flush_waiters.append((count, waiter))
        async with self._clock.io():
            await waiter

    def _deferred_done(self, error: BaseException | str | None) -> None:
        self._deferred_settled += 1
        if error is not None:
            self.deferred_failures += 1
            log.error("deferred journal write failed: %s", error)

    def _deliver(
        self, batch: list[Write], outcome: list[int | sqlite3.IntegrityError] | BatchFailedError
    ) -> None:
        """On the loop: hand each caller its result once the batch's transaction has ended."""
        if isinstance(outcome, BatchFailedError):
            if _is_fatal(outcome.cause) or not outcome.rolled_back:
                self._failure = _journal_error("journal failed", outcome.cause)
                self._accepting = False
            for w in batch:
                error = _journal_error(f"journal write failed ({self.path})", outcome.cause)
                if w.future is None:
                    self._deferred_done(error)
                else:
                    _fail(w.future, error)
        else:
            for w, result in zip(batch, outcome, strict=True):
                if w.future is None:
                    if isinstance(result, BaseException):
                        self._deferred_done(_journal_error(w.conflict, result))
                    else:
                        self._deferred_done(w.must_change if w.must_change and not result else None)
                elif isinstance(result, BaseException):
                    _fail(w.future, _journal_error(w.conflict, result))
                elif not w.future.done():
                    w.future.set_result(result)
        if self._flush_waiters:
            settled = self._deferred_settled
            still = []
            for count, waiter in self._flush_waiters:
                if count <= settled:
                    if not waiter.done():
                        waiter.set_result(None)
                else:
                    still.append((count, waiter))
            self._flush_waiters = still

    # -- writes ----------------------------------------------------------------------------------
    async def start_operation(self, rec: OperationRecord, *, durable: bool = True) -> None:
        write = self._submit if durable else self._defer
        await _maybe(
            write,
            f"INSERT INTO operations ({queries.OP_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                rec.operation_id,
                rec.type,
                rec.state,
                format_time(rec.created_at),
                format_time(rec.updated_at),
                rec.account_id,
                rec.contract_id,
                dumps(dict(rec.data)),
            ),
            f"operation {rec.operation_id!r} already recorded",
        )

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
        # The operations_moved trigger logs the state change inside this same statement.
        sql = (
            "UPDATE operations SET state = ?, last_reason = ?, updated_at = ?, "
            "data = coalesce(?, data) WHERE operation_id = ?"
        )
        params = (
            enum_text(state),
            reason,
            format_time(at or self._clock.now()),
            None if data is None else dumps(dict(data)),
            operation_id,
        )
        conflict = f"cannot update operation {operation_id!r}"
        if not durable:
            self._defer(sql, params, conflict, must_change=f"unknown operation {operation_id!r}")
            return
        changed = await self._submit(sql, params, conflict)
        if changed == 0:
            raise OperationError(f"unknown operation {operation_id!r}")

    async def record_intent(self, rec: IntentRecord) -> None:
        await self._submit(*_intent_write(rec))

    async def record_intents(self, recs: Sequence[IntentRecord]) -> None:
        """One submission: the intents commit in one transaction (never split), one wait."""
        self._check_open()
        if not recs:
            return
        loop = asyncio.get_running_loop()
        writes = []
        for rec in recs:
            sql, params, conflict = _intent_write(rec)
            writes.append(Write(sql, params, loop.create_future(), conflict))
        self._release(*writes)
        async with self._clock.io():
            results = await asyncio.gather(
                *(w.future for w in writes if w.future is not None), return_exceptions=True
            )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def record_outcome(self, rec: OutcomeRecord, *, durable: bool = True) -> None:
        write = self._submit if durable else self._defer
        await _maybe(
            write,
            f"INSERT INTO outcomes ({queries.OUTCOME_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                rec.intent_id,
                rec.custom_tag,
                rec.kind.value,
                rec.order_id,
                rec.code,
                rec.message,
                format_time(rec.recorded_at),
            ),
            f"outcome for unknown intent {rec.intent_id!r}",
        )

    async def record_event(self, rec: EventRecord) -> bool:
        inserted = await self._submit(
            "INSERT OR IGNORE INTO events (operation_id, kind, key, payload, at) "
            "VALUES (?, ?, ?, ?, ?)",
            (rec.operation_id, rec.kind, rec.key, dumps(dict(rec.payload)), format_time(rec.at)),
            f"cannot record event {rec.key!r}",
        )
        return inserted > 0

    async def set_watermark(self, key: str, value: str, *, durable: bool = True) -> None:
        write = self._submit if durable else self._defer
        await _maybe(
            write,
            "INSERT INTO watermarks (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
            f"cannot set watermark {key!r}",
        )

    # -- reads -----------------------------------------------------------------------------------
    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        conn = self._reader
        if conn is None:
            raise JournalError(f"journal {self.path} is not open")
        try:
            async with self._clock.io():
                return list(await conn.execute_fetchall(sql, params))
        except (sqlite3.Error, ValueError) as exc:
            raise _journal_error(f"journal read failed ({self.path})", exc) from exc

    async def _read(self, query: queries.Read[_R]) -> list[_R]:
        convert, sql, params = query
        return [convert(row) for row in await self._fetch(sql, params)]

    async def get_watermark(self, key: str) -> str | None:
        return queries.first(await self._read(queries.watermark(key)))

    async def get_operation(self, operation_id: str) -> OperationRecord | None:
        return queries.first(await self._read(queries.operation(operation_id)))

    async def unfinished_operations(
        self, terminal_states: Collection[str] | None = None
    ) -> list[OperationRecord]:
        terminal = self.terminal_states if terminal_states is None else terminal_states
        return await self._read(queries.unfinished_operations(terminal))

    async def operations(self, limit: int = 100, offset: int = 0) -> list[OperationRecord]:
        return await self._read(queries.operations(limit, offset))

    async def intents_for(self, operation_id: str) -> list[IntentRecord]:
        return await self._read(queries.intents_for(operation_id))

    async def intent_by_tag(
        self, custom_tag: str, account_id: int | None = None
    ) -> IntentRecord | None:
        return queries.first(await self._read(queries.intent_by_tag(custom_tag, account_id)))

    async def outcome_for(self, intent_id: str) -> OutcomeRecord | None:
        return queries.first(await self._read(queries.latest_outcome(intent_id)))

    async def outcomes_for(self, intent_id: str) -> list[OutcomeRecord]:
        return await self._read(queries.outcomes_for(intent_id))

    async def state_changes(self, operation_id: str) -> list[StateChangeRecord]:
        return await self._read(queries.state_changes(operation_id))

    async def events_for(self, operation_id: str) -> list[EventRecord]:
        return await self._read(queries.events_for(operation_id))

    async def counts(self) -> JournalCounts:
        return queries.counts(await self._fetch(queries.COUNTS_SQL))


async def _maybe(
    write: Callable[[str, Sequence[Any], str], Awaitable[int] | None],
    sql: str,
    params: Sequence[Any],
    conflict: str,
) -> None:
    """Run a durable (awaitable) or deferred (returns None) write the same way."""
    result = write(sql, params, conflict)
    if result is not None:
        await result


def _fail(future: asyncio.Future[int], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


__all__ = ["SqliteJournal"]


def _intent_write(rec: IntentRecord) -> tuple[str, tuple[Any, ...], str]:
    """The INSERT of one intent: statement, parameters, conflict message."""
    return (
        f"INSERT INTO intents ({queries.INTENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            rec.intent_id,
            rec.operation_id,
            rec.leg,
            rec.generation,
            rec.custom_tag,
            rec.account_id,
            rec.contract_id,
            rec.kind.value,
            dumps(dict(rec.request)),
            format_time(rec.created_at),
            rec.correlation_id,
        ),
        f"intent {rec.intent_id!r} (customTag {rec.custom_tag!r}) conflicts with the journal",
    )
