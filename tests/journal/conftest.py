"""Fixtures for the journal tests: one behaviour suite, run against every backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from orderguard.clock import VirtualClock
from orderguard.journal import MemoryJournal, SqliteJournal
from orderguard.journal.testing import RecordFactory


@pytest.fixture
def make() -> RecordFactory:
    return RecordFactory()


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture(params=["memory", "sqlite"])
async def journal(
    request: pytest.FixtureRequest, tmp_path: Path, clock: VirtualClock
) -> AsyncIterator[MemoryJournal | SqliteJournal]:
    """An open journal of each backend, closed after the test."""
    j: MemoryJournal | SqliteJournal
    if request.param == "memory":
        j = MemoryJournal(clock)
    else:
        j = SqliteJournal(tmp_path / "journal.db", clock)
    await j.open()
    try:
        yield j
    finally:
        await j.close()


@pytest.fixture
async def reopen(journal: MemoryJournal | SqliteJournal, clock: VirtualClock) -> Any:
    """Close the journal and return a freshly opened one over the same storage."""

    async def _reopen() -> MemoryJournal | SqliteJournal:
        await journal.close()
        if isinstance(journal, MemoryJournal):
            await journal.open()  # the object is the disk
            return journal
        fresh = SqliteJournal(journal.path, clock)
        await fresh.open()
        return fresh

    return _reopen
