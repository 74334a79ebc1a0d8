"""The ambiguity latch (DESIGN principle 8).

While a mutation on (account, contract) has an unresolved outcome, new exposure there is refused:
the unknown order may be live, and stacking another on top of it could double the position. Cancels
and flattening stay allowed. The latch is a small class of its own so the recovery engine can own
it later (persist it, clear it after reconciliation).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from orderguard.errors import ExposureRefusedError


@dataclass(frozen=True, slots=True)
class LatchEntry:
    """One unresolved mutation: which request, why unknown, since when."""

    account_id: int
    contract_id: str
    custom_tag: str | None
    origin: str
    since: datetime


class AmbiguityLatch:
    """Unresolved outcomes by (account, contract); a key is latched while any entry remains."""

    __slots__ = ("_entries", "hold_reason")

    def __init__(self) -> None:
        self._entries: dict[tuple[int, str], dict[str | None, LatchEntry]] = {}
        # Everything latched at once (start-up recovery could not read broker truth): until
        # the reconciler has reconciled, no contract is known to be free of unknown orders.
        self.hold_reason: str | None = None

    def hold(self, reason: str) -> None:
        """Refuse new exposure everywhere until :meth:`lift`."""
        self.hold_reason = reason

    def lift(self) -> None:
        self.hold_reason = None

    def latch(self, entry: LatchEntry) -> None:
        self._entries.setdefault((entry.account_id, entry.contract_id), {})[entry.custom_tag] = (
            entry
        )

    def release(self, account_id: int, contract_id: str, custom_tag: str | None) -> bool:
        """Drop the entry for ``custom_tag``; True if it was there."""
        key = (account_id, contract_id)
        bucket = self._entries.get(key)
        if bucket is None or custom_tag not in bucket:
            return False
        del bucket[custom_tag]
        if not bucket:
            del self._entries[key]
        return True

    def release_all(self, account_id: int, contract_id: str) -> int:
        """Operator override after a manual check: clear every entry of the key."""
        return len(self._entries.pop((account_id, contract_id), {}))

    def is_latched(self, account_id: int, contract_id: str) -> bool:
        return (account_id, contract_id) in self._entries

    def check(self, account_id: int, contract_id: str) -> None:
        """Raise :class:`ExposureRefusedError` if the key is latched (or everything is held)."""
        if self.hold_reason is not None:
            raise ExposureRefusedError(
                f"new exposure on {contract_id} (account {account_id}) refused: {self.hold_reason}"
            )
        bucket = self._entries.get((account_id, contract_id))
        if bucket:
            tags = ", ".join(sorted(str(t) for t in bucket))
            raise ExposureRefusedError(
                f"new exposure on {contract_id} (account {account_id}) refused: unresolved "
                f"outcome of {tags}"
            )

    def entries(self) -> list[LatchEntry]:
        return [e for bucket in self._entries.values() for e in bucket.values()]

    def __len__(self) -> int:
        return sum(len(b) for b in self._entries.values())


__all__ = ["AmbiguityLatch", "LatchEntry"]
