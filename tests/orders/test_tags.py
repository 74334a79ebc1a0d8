"""customTag factory: unique, deterministic, operation-leg-generation tags."""

from __future__ import annotations

import random

import pytest

from orderguard.orders import TagFactory


def test_next_tags_are_unique_and_prefixed() -> None:
    """Sequential tags are distinct and carry the prefix and session."""
    f = TagFactory("og", random.Random(1))
    tags = [f.next_tag() for _ in range(1000)]
    assert len(set(tags)) == 1000
    assert all(t.startswith(f"og-{f.session}-") for t in tags)


def test_same_seed_same_tags() -> None:
    """The same rng seed replays the same tags."""
    a, b = TagFactory("og", random.Random(5)), TagFactory("og", random.Random(5))
    assert [a.next_tag() for _ in range(3)] == [b.next_tag() for _ in range(3)]


def test_operation_tag_is_stable() -> None:
    """tag(operation, leg, generation) is a pure function of its inputs and the prefix."""
    f = TagFactory("og", random.Random(1))
    assert f.tag("op42", "stop", 1) == "og-op42-stop-1"
    assert f.tag("op42", "stop", 1) == TagFactory("og", random.Random(2)).tag("op42", "stop", 1)


@pytest.mark.parametrize(
    ("op", "leg", "gen"), [("op-1", "stop", 0), ("op", "a b", 0), ("op", "x", -1)]
)
def test_operation_tag_refuses_bad_parts(op: str, leg: str, gen: int) -> None:
    """Parts with separators or negative generations are refused (tags must stay parseable)."""
    with pytest.raises(ValueError):
        TagFactory("og", random.Random(1)).tag(op, leg, gen)
