"""Leg ids: the journal's leg names parsed in one place, and written back the same."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from orderguard.recovery.legs import FLATTEN, STOP, LegId, count_numbered, has_role, numbered


def test_a_numbered_leg_is_a_role_and_an_index() -> None:
    assert LegId.parse("stop3") == LegId(STOP, 3)
    assert LegId.parse("flatten0") == LegId(FLATTEN, 0)
    assert LegId.parse("entry") == LegId("entry")
    assert numbered("target", 12) == "target12"


def test_a_role_is_matched_whole_and_numbered() -> None:
    assert has_role("stop3", STOP)
    assert not has_role("stop", STOP)  # not a generation
    assert not has_role("stop_loss3", STOP)  # another role
    assert not has_role("target3", STOP)
    assert count_numbered(["entry", "stop0", "stop1", "target0", "stopx"], STOP) == 2


def test_generations_sort_by_number_not_text() -> None:
    names = ["stop10", "stop2", "entry", "stop0", "target1"]
    ordered = sorted(names, key=lambda n: LegId.parse(n).sort_key)
    assert ordered == ["entry", "stop0", "stop2", "stop10", "target1"]


@given(st.text(alphabet="abcdefghij_", max_size=10), st.integers(min_value=0, max_value=10**6))
def test_a_numbered_name_parses_back_to_its_role_and_index(role: str, index: int) -> None:
    assert LegId.parse(numbered(role, index)) == LegId(role, index)
    assert str(LegId.parse(role)) == role  # no digits: no index, the name unchanged


@given(st.text(alphabet="abs_to0123456789", max_size=8), st.sampled_from(["stop", "s", "to", ""]))
def test_has_role_is_the_parse(name: str, role: str) -> None:
    assert has_role(name, role) == LegId.parse(name).is_numbered(role)
