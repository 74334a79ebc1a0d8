"""Tests of issue 10's reported breaks. Each failed on the main they were written against
(commit 03a8c4a); the ones whose fix has not landed yet are marked as expected failures (strict:
a fix must remove its entry here, or the suite fails)."""

from __future__ import annotations

import pytest

PENDING: frozenset[str] = frozenset({})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        name = f"{item.path.name}::{item.originalname}"  # type: ignore[attr-defined]
        if name in PENDING:
            item.add_marker(pytest.mark.xfail(strict=True, reason="issue 10: fix pending"))
