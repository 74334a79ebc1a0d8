"""Writer process for the crash test: appends records until killed.

Usage: ``python crash_writer.py DB_PATH [deferred|held]``. Eight tasks run operations
concurrently (so records are group-committed); once a record is durable, one line goes to stdout:
``op <id>`` (started), ``state <id> <state>``, ``intent <id>``, ``outcome <id>``.

With ``deferred``, operations, outcomes and state moves are written the way the recovery engine
writes them (``durable=False``): they are acknowledged only when the next intent of the same task
returns, since that is the journal's promise (everything queued before a durable write is durable
with it). ``held`` does the same on a journal that holds deferred records for the next intent
(``linger``).
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime

from orderguard.journal import (
    IntentKind,
    IntentRecord,
    OperationRecord,
    OutcomeKind,
    OutcomeRecord,
    SqliteJournal,
)

STATES = ("in_progress", "partially_completed", "completed")


def ack(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def worker(journal: SqliteJournal, w: int, deferred: bool) -> None:
    held: list[str] = []

    def done(line: str) -> None:
        if deferred:
            held.append(line)  # durable with the next intent, not yet
        else:
            ack(line)

    for n in range(1_000_000):
        op_id = f"w{w}-op{n}"
        now = datetime.now(UTC)
        await journal.start_operation(
            OperationRecord(op_id, "bracket_order", "pending", now, now, 1, "CON", {"n": n}),
            durable=not deferred,
        )
        done(f"op {op_id}")
        for i, state in enumerate(STATES):
            intent_id = f"{op_id}-i{i}"
            await journal.record_intent(
                IntentRecord(
                    intent_id,
                    op_id,
                    f"leg{i}",
                    0,
                    f"tag-{intent_id}",
                    1,
                    "CON",
                    IntentKind.PLACE,
                    {"size": 1},
                    now,
                    op_id,
                )
            )
            for line in held:
                ack(line)
            held.clear()
            ack(f"intent {intent_id}")
            await journal.record_outcome(
                OutcomeRecord(
                    intent_id, f"tag-{intent_id}", OutcomeKind.CONFIRMED, n, None, "", now
                ),
                durable=not deferred,
            )
            done(f"outcome {intent_id}")
            await journal.update_operation(
                op_id, state, data={"step": i}, reason=f"step {i}", durable=not deferred
            )
            done(f"state {op_id} {state}")


async def main() -> None:
    mode = sys.argv[2] if len(sys.argv) > 2 else ""
    async with SqliteJournal(sys.argv[1], linger=0.05 if mode == "held" else None) as journal:
        ack("ready")
        deferred = mode in ("deferred", "held")
        await asyncio.gather(*(worker(journal, w, deferred) for w in range(8)))


if __name__ == "__main__":
    asyncio.run(main())
