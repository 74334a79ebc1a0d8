"""Typed leg ids: what an operation's leg name says, parsed in one place.

An operation names its legs in the journal (``OrderReference.leg``) and their customTags are
derived from those names, so the text stays what it is: ``"entry"``, ``"a"``, ``"modify"``, and
for the legs that are placed again as new generations a role and an index — ``"stop3"`` is the
fourth stop of a bracket, ``"flatten0"`` the first flattening order of a rollback. Engines used
to take those strings apart with ``startswith`` and slicing in a dozen places; :class:`LegId`
is that parse, once, and its inverse (``str(LegId("stop", 3)) == "stop3"``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

ENTRY = "entry"
STOP = "stop"
TARGET = "target"
FLATTEN = "flatten"
"""The roles orderguard's own engines give numbered legs (and the bracket's one entry)."""

_DIGITS = "0123456789"
_DIGITS_SET = frozenset(_DIGITS)


@dataclass(frozen=True, slots=True)
class LegId:
    """A leg name as a role and, for a numbered leg, its generation index."""

    role: str
    index: int | None = None

    @classmethod
    def parse(cls, name: str) -> LegId:
        """``"stop3"`` -> ``LegId("stop", 3)``; a name without trailing digits has no index."""
        role = name.rstrip(_DIGITS)
        tail = name[len(role) :]
        return cls(role, int(tail)) if tail else cls(name)

    def is_numbered(self, role: str) -> bool:
        """A generation of ``role`` (``"stop3"`` is a numbered stop; ``"stop"`` is not)."""
        return self.role == role and self.index is not None

    @property
    def sort_key(self) -> tuple[str, int]:
        """By role, then by index (``stop2`` before ``stop10``; an unnumbered leg first)."""
        return self.role, -1 if self.index is None else self.index

    def __str__(self) -> str:
        return self.role if self.index is None else f"{self.role}{self.index}"


def numbered(role: str, index: int) -> str:
    """The leg name of generation ``index`` of ``role`` (``numbered("flatten", 0)``)."""
    return str(LegId(role, index))


def has_role(name: str, role: str) -> bool:
    """The leg ``name`` is a numbered leg of ``role`` (``LegId.parse(name).is_numbered(role)``,
    without building the LegId: the bracket's facts ask this of every leg on every look)."""
    if not name.startswith(role) or role[-1:] in _DIGITS_SET:
        return False
    tail = name[len(role) :]
    return tail != "" and all(c in _DIGITS_SET for c in tail)


def count_numbered(names: Iterable[str], role: str) -> int:
    """How many numbered legs of ``role`` there are (the next one's index, when they are
    numbered from 0 without gaps, as the engines number them)."""
    return sum(1 for name in names if has_role(name, role))


def leg_tag(custom_tag: str) -> tuple[str, str, str] | None:
    """``(prefix, operation_id, leg)`` of a leg's customTag, ``<prefix>-<operation>-<leg>-<gen>``
    (``orders/tags.py`` makes them); None for any other tag. A leg whose intent the journal
    could not record before a crash is known by this alone: the tag says whose it is."""
    parts = custom_tag.split("-")
    if len(parts) != 4 or not parts[3].isdigit():
        return None
    return parts[0], parts[1], parts[2]


__all__ = [
    "ENTRY",
    "FLATTEN",
    "STOP",
    "TARGET",
    "LegId",
    "count_numbered",
    "has_role",
    "leg_tag",
    "numbered",
]
