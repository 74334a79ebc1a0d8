"""The bracket saga's in-memory state: the validated request and the records of its orders.

Plain values (no I/O): :class:`BracketRequest` is what is journaled with the operation; the slot,
and entry records are what :class:`~orderguard.orders.bracket.saga.BracketSaga` knows of
its orders between two looks at broker truth.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from orderguard.models import OrderSide
from orderguard.orders.bracket.leg_phases import leg_move, note_unlisted
from orderguard.orders.bracket.plan import (
    Action,
    CancelEntry,
    CancelLeg,
    CancelStray,
    EntryPhase,
    FindChildren,
    LegKind,
    LegPhase,
    PlaceLeg,
    ResizeLeg,
    RetryLeg,
)
from orderguard.recovery.manager import OrderReference


@dataclass(frozen=True, slots=True)
class BracketRequest:
    """A validated bracket: everything the saga needs, serialisable into the journal."""

    account_id: int
    contract_id: str
    side: OrderSide
    size: int
    market: bool
    entry_price: Decimal | None
    stop_price: Decimal
    target_price: Decimal
    entry_timeout: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "contract_id": self.contract_id,
            "side": int(self.side),
            "size": self.size,
            "market": self.market,
            "entry_price": None if self.entry_price is None else str(self.entry_price),
            "stop_price": str(self.stop_price),
            "target_price": str(self.target_price),
            "entry_timeout": self.entry_timeout,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BracketRequest:
        entry = d.get("entry_price")
        timeout = d.get("entry_timeout")
        return cls(
            account_id=int(d["account_id"]),
            contract_id=str(d["contract_id"]),
            side=OrderSide(int(d["side"])),
            size=int(d["size"]),
            market=bool(d["market"]),
            entry_price=None if entry is None else Decimal(str(entry)),
            stop_price=Decimal(str(d["stop_price"])),
            target_price=Decimal(str(d["target_price"])),
            entry_timeout=None if timeout is None else float(timeout),
        )


@dataclass(slots=True)
class Slot:
    """The current order of one exit kind (earlier ones keep counting in ``exit_ids``)."""

    kind: LegKind
    phase: LegPhase = LegPhase.NONE
    ref: OrderReference | None = None
    order_id: int | None = None
    size: int = 0
    native: bool = False
    count: int = 0  # intents made for this kind: the next leg is f"{kind}{count}"
    attempts: int = 0
    failures: int = 0  # failed cancels/resizes of the live order
    retry_at: float = 0.0
    error: str | None = None
    cancelling: bool = False  # we asked the broker to cancel the current order

    def move(self, phase: LegPhase) -> None:
        """The current order's phase changes (orders/bracket/leg_phases.py lists the moves)."""
        if leg_move(self.phase, phase) is None:
            note_unlisted(self.phase, phase, self.kind.value)
        self.phase = phase

    def restored(self, phase: LegPhase) -> None:
        """The phase rebuilt from the journal after a restart (not a move)."""
        self.phase = phase

    def renew(self, ref: OrderReference | None, size: int, *, native: bool = False) -> None:
        """A new generation of the leg: its phase starts again at NONE."""
        self.ref, self.size, self.native = ref, size, native
        self.phase, self.order_id, self.attempts, self.failures, self.error = (
            LegPhase.NONE,
            None,
            0,
            0,
            None,
        )
        self.cancelling = False


@dataclass(slots=True)
class EntryState:
    ref: OrderReference | None = None
    order_id: int | None = None
    phase: EntryPhase = EntryPhase.UNKNOWN
    lookups: int = 0
    cancel_attempts: int = 0
    cancel_retry_at: float = 0.0
    acked_at: float | None = None
    cancel_reason: str | None = None
    journaled: bool = True  # False: found by tag/event, resolution not yet journaled


@dataclass(slots=True)
class Wake:
    """An event the listener sets and the driver waits on, plus pulse for ``wait`` callers."""

    news: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Event = field(default_factory=asyncio.Event)


def action_target(action: Action) -> str:
    """What an action acts on: two actions on one target never run at the same time."""
    if isinstance(action, PlaceLeg | RetryLeg | ResizeLeg | CancelLeg):
        return f"leg:{action.kind.value}"
    if isinstance(action, CancelStray):
        return f"order:{action.order_id}"
    if isinstance(action, CancelEntry):
        return "entry"
    if isinstance(action, FindChildren):
        return "refresh"  # the same REST read
    return type(action).__name__


__all__ = ["BracketRequest", "EntryState", "Slot", "Wake", "action_target"]
