"""Writer process for the crash test: appends records until killed.

Usage: ``python crash_writer.py DB_PATH``. Eight tasks run operations concurrently (so records are
group-committed); after each write's await returns, one line goes to stdout:
``op <id>`` (started), ``state <id> <state>``, ``intent <id>``, ``outcome <id>``.
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


async def worker(journal: SqliteJournal, w: int) -> None:
    for n in range(1_000_000):
        op_id = f"w{w}-op{n}"
        now = datetime.now(UTC)
        await journal.start_operation(
            OperationRecord(op_id, "bracket_order", "pending", now, now, 1, "CON", {"n": n})
        )
        ack(f"op {op_id}")
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
            ack(f"intent {intent_id}")
            await journal.record_outcome(
                OutcomeRecord(
                    intent_id, f"tag-{intent_id}", OutcomeKind.CONFIRMED, n, None, "", now
                )
            )
            ack(f"outcome {intent_id}")
            await journal.update_operation(op_id, state, data={"step": i}, reason=f"step {i}")
            ack(f"state {op_id} {state}")


async def main() -> None:
    async with SqliteJournal(sys.argv[1]) as journal:
        ack("ready")
        await asyncio.gather(*(worker(journal, w) for w in range(8)))


if __name__ == "__main__":
    asyncio.run(main())
