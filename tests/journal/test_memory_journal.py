"""MemoryJournal-only behaviour: the disk-full switch and surviving a simulated crash."""

from __future__ import annotations

import pytest

from orderguard.errors import JournalError
from orderguard.journal import MemoryJournal
from orderguard.journal.testing import RecordFactory


async def test_fail_writes_refuses_every_write(make: RecordFactory) -> None:
    """With fail_writes set, every kind of write raises JournalError and records nothing."""
    async with MemoryJournal() as journal:
        await journal.start_operation(make.op("op-1"))
        intent = make.intent("op-1")
        await journal.record_intent(intent)
        journal.fail_writes = True
        attempts = [
            journal.start_operation(make.op("op-2")),
            journal.update_operation("op-1", "failed"),
            journal.record_intent(make.intent("op-1")),
            journal.record_outcome(make.outcome(intent)),
            journal.record_event(make.event("k")),
            journal.set_watermark("w", "1"),
        ]
        for attempt in attempts:
            with pytest.raises(JournalError):
                await attempt
        assert await journal.counts() == await journal.counts()  # reads keep working
        assert (await journal.counts()).intents == 1
        assert await journal.get_operation("op-2") is None


async def test_clearing_fail_writes_resumes_writing(make: RecordFactory) -> None:
    """Once the simulated disk has space again, writes succeed."""
    async with MemoryJournal() as journal:
        journal.fail_writes = True
        with pytest.raises(JournalError):
            await journal.start_operation(make.op("op-1"))
        journal.fail_writes = False
        await journal.start_operation(make.op("op-1"))
        assert await journal.get_operation("op-1") is not None


async def test_records_outlive_a_crash_without_close(make: RecordFactory) -> None:
    """A new "process" opening the same object sees what the crashed one wrote."""
    disk = MemoryJournal()
    await disk.open()
    await disk.start_operation(make.op("op-1"))
    # crash: no close(); the restarted process opens the same journal object
    await disk.open()
    assert [o.operation_id for o in await disk.unfinished_operations()] == ["op-1"]


async def test_reads_of_a_closed_journal_raise(make: RecordFactory) -> None:
    """A journal that is not open refuses reads too, like the SQLite one."""
    journal = MemoryJournal()
    with pytest.raises(JournalError):
        await journal.get_operation("op-1")


async def test_returned_data_is_a_copy(make: RecordFactory) -> None:
    """Mutating a returned record's data does not change the journal."""
    async with MemoryJournal() as journal:
        await journal.start_operation(make.op("op-1", data={"legs": ["stop"]}))
        got = await journal.get_operation("op-1")
        assert got is not None
        got.data["legs"].append("target")
        again = await journal.get_operation("op-1")
        assert again is not None and again.data == {"legs": ["stop"]}
