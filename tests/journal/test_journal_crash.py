"""Crash durability (F6): SIGKILL a writer process and check what the reopened journal holds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orderguard.journal import Journal, OperationRecord, SqliteJournal
from orderguard.journal.reader import JournalReader, read_journal

WRITER = Path(__file__).with_name("crash_writer.py")
STATES = ["pending", "in_progress", "partially_completed", "completed"]


def _run_and_kill(db: Path, acks_before_kill: int, *args: str) -> list[str]:
    """Start the writer, SIGKILL it after that many acknowledgements; return the acked lines."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), str(db), *args], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    acked: list[str] = []
    deadline = time.monotonic() + 20
    try:
        while len(acked) < acks_before_kill + 1:  # +1 for "ready"
            line = proc.stdout.readline()
            assert line, f"writer exited early with {proc.poll()}"
            acked.append(line.strip())
            assert time.monotonic() < deadline, "writer too slow"
        os.kill(proc.pid, signal.SIGKILL)
        # Lines the writer printed before it died were acknowledged too.
        acked.extend(line.strip() for line in proc.stdout)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    return acked[1:]


@pytest.mark.slow
@pytest.mark.parametrize("kill_after", [1, 37, 400, 1500, 5000])
async def test_every_acknowledged_record_survives_sigkill(tmp_path: Path, kill_after: int) -> None:
    """After SIGKILL, every acknowledged record is there and no operation is half-written."""
    db = tmp_path / "crash.db"
    acked = _run_and_kill(db, kill_after)
    async with SqliteJournal(db) as journal:
        await _check(journal, acked)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kill_after", "mode"), [(3, "deferred"), (2500, "deferred"), (3, "held"), (1500, "held")]
)
async def test_deferred_records_survive_sigkill_with_the_next_intent(
    tmp_path: Path, kill_after: int, mode: str
) -> None:
    """Deferred operations, outcomes and moves (held until the next intent) obey the same
    rules after SIGKILL, and an intent on disk implies everything its task queued before it."""
    db = tmp_path / "crash.db"
    acked = _run_and_kill(db, kill_after, mode)
    async with SqliteJournal(db) as journal:
        ops = await _check(journal, acked)
        for op in ops.values():
            step = STATES.index(op.state) - 1
            intents = await journal.intents_for(op.operation_id)
            # Intent k is queued after step k-1's move: on disk, so is the move.
            assert len(intents) <= step + 2
            if intents:  # ...and after the task's previous operation had completed
                worker, n = op.operation_id.split("-op")
                if int(n) > 0:
                    previous = ops[f"{worker}-op{int(n) - 1}"]
                    assert previous.state == "completed"


async def _check(journal: Journal, acked: list[str]) -> dict[str, OperationRecord]:
    ops = {o.operation_id: o for o in await journal.operations(limit=1_000_000)}
    for line in acked:
        kind, ident, *rest = line.split()
        if kind == "op":
            assert ident in ops
        elif kind == "intent":
            assert await journal.intent_by_tag(f"tag-{ident}") is not None
        elif kind == "outcome":
            assert await journal.outcome_for(ident) is not None
        else:
            reached = STATES.index(ops[ident].state)
            assert reached >= STATES.index(rest[0])
    for op in ops.values():
        # The state-change log is a gapless chain from creation to the current state, and
        # the data written with each move is the data of that move: nothing torn.
        changes = await journal.state_changes(op.operation_id)
        chain = [c.to_state for c in changes]
        assert chain == STATES[: len(chain)] and chain[-1] == op.state
        assert [c.from_state for c in changes] == [None, *chain[:-1]]
        step = STATES.index(op.state) - 1
        assert op.data == ({"n": op.data["n"]} if step < 0 else {"step": step})
        intents = await journal.intents_for(op.operation_id)
        for i, intent in enumerate(intents):
            assert intent.intent_id == f"{op.operation_id}-i{i}"
        # Each step is intent, outcome, then the state move: never a move without both.
        assert len(intents) >= step + 1
        for intent in intents[: step + 1]:
            assert await journal.outcome_for(intent.intent_id) is not None
    return ops


@pytest.mark.slow
async def test_a_killed_writers_journal_reads_whole_through_the_read_only_reader(
    tmp_path: Path,
) -> None:
    """What `orderguard journal` sees right after a crash, before any process reopens the file
    (its -wal still holds the last commits): every acknowledged record, nothing torn, and the
    main database file left as the dead writer left it."""
    db = tmp_path / "crash.db"
    acked = _run_and_kill(db, 400)
    wal = db.with_name(db.name + "-wal")
    assert wal.exists()  # the dead writer's commits are (at least partly) only in the WAL
    before = db.read_bytes()

    async def check(reader: JournalReader) -> dict[str, OperationRecord]:
        return await _check(reader, acked)

    ops = await read_journal(db, check)
    assert ops and db.read_bytes() == before
