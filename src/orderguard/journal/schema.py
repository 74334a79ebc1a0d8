"""The SQLite journal's schema, as a table of migrations keyed by ``PRAGMA user_version``.

Migration ``n`` (1-based) takes a database from version ``n - 1`` to ``n`` in one transaction. Only
append to :data:`MIGRATIONS`; never edit a released entry. A database newer than this code knows is
refused rather than guessed at.

Atomicity lives in the schema, not in the caller: triggers write the state change of an operation
in the same statement that creates or moves it, so no reader (and no crash) can ever see an
operation without its state change. History tables refuse UPDATE and DELETE (append-only).
"""

from __future__ import annotations

import sqlite3

from orderguard.errors import JournalError

APPLICATION_ID = 0x4F474A4E  # "OGJN": marks the file as an orderguard journal

_APPEND_ONLY = ("state_changes", "intents", "outcomes", "events")

_V1: tuple[str, ...] = (
    f"PRAGMA application_id = {APPLICATION_ID}",
    """
    CREATE TABLE operations (
        operation_id TEXT PRIMARY KEY,
        type         TEXT NOT NULL,
        state        TEXT NOT NULL,
        last_reason  TEXT NOT NULL DEFAULT 'started',
        created_at   TEXT NOT NULL,
        updated_at   TEXT NOT NULL,
        account_id   INTEGER,
        contract_id  TEXT,
        data         TEXT NOT NULL
    )
    """,
    "CREATE INDEX operations_state ON operations (state)",
    "CREATE INDEX operations_created ON operations (created_at)",
    """
    CREATE TABLE state_changes (
        seq          INTEGER PRIMARY KEY,
        operation_id TEXT NOT NULL REFERENCES operations (operation_id),
        from_state   TEXT,
        to_state     TEXT NOT NULL,
        reason       TEXT NOT NULL,
        at           TEXT NOT NULL
    )
    """,
    "CREATE INDEX state_changes_operation ON state_changes (operation_id, seq)",
    """
    CREATE TRIGGER operations_started AFTER INSERT ON operations
    BEGIN
        INSERT INTO state_changes (operation_id, from_state, to_state, reason, at)
        VALUES (NEW.operation_id, NULL, NEW.state, NEW.last_reason, NEW.created_at);
    END
    """,
    """
    CREATE TRIGGER operations_moved AFTER UPDATE OF state ON operations
    WHEN OLD.state IS NOT NEW.state
    BEGIN
        INSERT INTO state_changes (operation_id, from_state, to_state, reason, at)
        VALUES (NEW.operation_id, OLD.state, NEW.state, NEW.last_reason, NEW.updated_at);
    END
    """,
    """
    CREATE TABLE intents (
        intent_id      TEXT PRIMARY KEY,
        operation_id   TEXT REFERENCES operations (operation_id),
        leg            TEXT NOT NULL,
        generation     INTEGER NOT NULL,
        custom_tag     TEXT NOT NULL,
        account_id     INTEGER NOT NULL,
        contract_id    TEXT NOT NULL,
        kind           TEXT NOT NULL,
        request        TEXT NOT NULL,
        created_at     TEXT NOT NULL,
        correlation_id TEXT NOT NULL,
        UNIQUE (custom_tag, account_id)
    )
    """,
    "CREATE INDEX intents_operation ON intents (operation_id)",
    """
    CREATE TABLE outcomes (
        seq         INTEGER PRIMARY KEY,
        intent_id   TEXT NOT NULL REFERENCES intents (intent_id),
        custom_tag  TEXT,
        kind        TEXT NOT NULL,
        order_id    INTEGER,
        code        INTEGER,
        message     TEXT NOT NULL,
        recorded_at TEXT NOT NULL
    )
    """,
    "CREATE INDEX outcomes_intent ON outcomes (intent_id, seq)",
    """
    CREATE TABLE events (
        seq          INTEGER PRIMARY KEY,
        operation_id TEXT,
        kind         TEXT NOT NULL,
        key          TEXT NOT NULL UNIQUE,
        payload      TEXT NOT NULL,
        at           TEXT NOT NULL
    )
    """,
    "CREATE INDEX events_operation ON events (operation_id, seq)",
    """
    CREATE TABLE watermarks (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )
    """,
    *(
        f"""
        CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table}
        BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END
        """
        for table in _APPEND_ONLY
        for verb in ("UPDATE", "DELETE")
    ),
)

MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1,)
SCHEMA_VERSION = len(MIGRATIONS)


def _scalar(conn: sqlite3.Connection, sql: str) -> int:
    row = conn.execute(sql).fetchone()
    return int(row[0]) if row is not None else 0


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database to :data:`SCHEMA_VERSION`; return the version found.

    ``conn`` must be in autocommit mode (``isolation_level=None``).
    """
    found = _scalar(conn, "PRAGMA user_version")
    app_id = _scalar(conn, "PRAGMA application_id")
    if app_id not in (0, APPLICATION_ID):
        raise JournalError(f"not an orderguard journal (application_id {app_id:#x})")
    if found == 0 and _scalar(conn, "SELECT count(*) FROM sqlite_schema") > 0:
        raise JournalError("not an orderguard journal (unversioned database with tables)")
    if found > SCHEMA_VERSION:
        raise JournalError(
            f"journal schema version {found} is newer than this orderguard knows "
            f"({SCHEMA_VERSION}); upgrade orderguard"
        )
    for target in range(found + 1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-read under the write lock: another process may have migrated meanwhile.
            if _scalar(conn, "PRAGMA user_version") < target:
                for statement in MIGRATIONS[target - 1]:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {target}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return found


__all__ = ["APPLICATION_ID", "MIGRATIONS", "SCHEMA_VERSION", "migrate"]
