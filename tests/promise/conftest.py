"""Tests of issue 10's reported breaks. Each failed on the main they were written against; the
ones whose fix has not landed yet are marked as expected failures (strict: a fix must remove
its entry, or the suite fails)."""

from __future__ import annotations

import pytest

PENDING: frozenset[str] = frozenset(
    {
        "test_exits_follow_position.py",
        "test_never_abandoned.py",
        "test_caller_cancellation.py",
        "test_protective_is_a_fact.py",
    }
)
PASSING: frozenset[str] = frozenset(
    {
        # The fill-soon reading of item 8 already held on main: recovery's polling confirmed
        # the fill before it touched the exits.
        "test_startup_rollback_keeps_the_stop_until_the_entry_cancel_is_confirmed[True-0.3]",
        "test_startup_rollback_keeps_the_stop_until_the_entry_cancel_is_confirmed[False-0.3]",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in PENDING and item.name not in PASSING:
            item.add_marker(pytest.mark.xfail(strict=True, reason="issue 10: fix pending"))
