"""customTag generation.

ProjectX requires ``customTag`` to be unique per account, and it echoes the tag on the order. That
makes the tag our idempotency key: it is fixed before the request is sent, reused by every re-send
of the same intent, and the only reliable way to find an order whose placement answer was lost.

Two shapes, both short and made only of ``[A-Za-z0-9-]``:

* ``<prefix>-<session>-<seq>`` for a plain placement (``next_tag``): ``session`` comes from the
  injected ``random.Random`` so a seeded run replays the same tags, while two processes on one
  account (unseeded) do not collide.
* ``<prefix>-<operation>-<leg>-<generation>`` for one leg of a multi-step operation (``tag``): the
  recovery engine re-derives the same tag for the same intent after a restart.
"""

from __future__ import annotations

import itertools
import random
import re

from orderguard.recovery.legs import leg_tag

_PART = re.compile(r"^[A-Za-z0-9]+$")


class TagFactory:
    """Deterministic, per-session unique customTags."""

    __slots__ = ("_aux", "_issued", "_prefix", "_seq", "session")

    def __init__(self, prefix: str, rng: random.Random) -> None:
        if not _PART.match(prefix):
            raise ValueError(f"tag prefix must be alphanumeric, got {prefix!r}")
        self._prefix = prefix
        # 40 random bits as 8 base-32 characters: collisions between sessions are negligible.
        self.session = _b32(rng.getrandbits(40), 8)
        self._seq = itertools.count(1)
        self._aux = itertools.count(1)  # separate, so journal keys never shift order tags

    @property
    def prefix(self) -> str:
        return self._prefix

    def next_tag(self) -> str:
        """A fresh tag for a stand-alone placement."""
        return f"{self._prefix}-{self.session}-{next(self._seq)}"

    def journal_key(self, kind: str) -> str:
        """A unique journal key for a mutation that carries no customTag (cancel, modify).

        It is never sent to the broker; it only keys the intent in the journal.
        """
        if not _PART.match(kind):
            raise ValueError(f"kind must be alphanumeric, got {kind!r}")
        return f"{self._prefix}-{self.session}-{kind}{next(self._aux)}"

    def tag(self, operation_id: str, leg: str, generation: int) -> str:
        """The tag of ``leg`` of ``operation_id`` at ``generation`` (bumped per re-placement)."""
        for name, part in (("operation_id", operation_id), ("leg", leg)):
            if not _PART.match(part):
                raise ValueError(f"{name} must be alphanumeric, got {part!r}")
        if generation < 0:
            raise ValueError("generation must be >= 0")
        return f"{self._prefix}-{operation_id}-{leg}-{generation}"

    def leg_of(self, custom_tag: str) -> tuple[str, str] | None:
        """``(operation_id, leg)`` of a tag :meth:`tag` made with this prefix; None for any
        other tag (see :func:`~orderguard.recovery.legs.leg_tag`)."""
        parsed = leg_tag(custom_tag)
        if parsed is None or parsed[0] != self._prefix:
            return None
        return parsed[1], parsed[2]


_ALPHABET = "0123456789abcdefghijklmnopqrstuv"


def _b32(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


__all__ = ["TagFactory"]
