"""The durable set of exits the position watcher manages.

An exit enters the registry *before* its order is sent (keyed by its customTag, with no order id
yet), so a crash between the send and the acknowledgement still leaves a record the next process
resolves by tag. The registry is one JSON document in the journal's watermark table: small (a few
entries per contract), rewritten whole on each change, and read back by
:meth:`ExitRegistry.load` after a restart.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from orderguard.journal.base import Journal, dumps
from orderguard.models import OrderSide
from orderguard.orders.positions.rules import ExitKind

WATERMARK_KEY = "orderguard.position_orders.managed"


@dataclass(slots=True)
class ManagedExit:
    """One stop or target whose size follows its position.

    ``cover`` is None when it covers the whole position, else the fixed quantity asked for.
    ``operation_id`` names the journaled operation that placed it (None for a registered order).
    ``adopted``: an exit orderguard placed without sizing it (a plain stop or limit, an OCO
    leg) that the watcher found on the position's reducing side: it is shrunk and cancelled
    with the position but never grown. ``price`` is its stop or limit price and
    ``generation`` counts its re-placements (a stop the platform cancelled is placed again).
    ``size`` is the quantity it was placed for: while the placement is in flight (no order id
    yet) the other exits leave that much of the position to it. ``dormant``: a stop the
    watcher cancelled because the others covered the position; it is placed again when the
    position needs it (a misjudged moment must not lose protection for good), and forgotten
    when the position is flat.
    """

    account_id: int
    contract_id: str
    kind: ExitKind
    side: OrderSide
    created_at: datetime
    custom_tag: str | None = None
    order_id: int | None = None
    cover: int | None = None
    operation_id: str | None = None
    adopted: bool = False
    price: Decimal | None = None
    generation: int = 0
    size: int | None = None
    dormant: bool = False

    @property
    def key(self) -> str:
        # The tag is known before the order id (journal first); registered orders may lack one.
        return self.custom_tag if self.custom_tag else f"id:{self.order_id}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "contract_id": self.contract_id,
            "kind": self.kind.value,
            "side": int(self.side),
            "created_at": self.created_at,
            "custom_tag": self.custom_tag,
            "order_id": self.order_id,
            "cover": self.cover,
            "operation_id": self.operation_id,
            "adopted": self.adopted,
            "price": None if self.price is None else str(self.price),
            "generation": self.generation,
            "size": self.size,
            "dormant": self.dormant,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ManagedExit:
        return cls(
            account_id=int(d["account_id"]),
            contract_id=str(d["contract_id"]),
            kind=ExitKind(d["kind"]),
            side=OrderSide(int(d["side"])),
            created_at=datetime.fromisoformat(str(d["created_at"])),
            custom_tag=None if d.get("custom_tag") is None else str(d["custom_tag"]),
            order_id=None if d.get("order_id") is None else int(d["order_id"]),
            cover=None if d.get("cover") is None else int(d["cover"]),
            operation_id=None if d.get("operation_id") is None else str(d["operation_id"]),
            adopted=bool(d.get("adopted", False)),
            price=None if d.get("price") is None else Decimal(str(d["price"])),
            generation=int(d.get("generation") or 0),
            size=None if d.get("size") is None else int(d["size"]),
            dormant=bool(d.get("dormant", False)),
        )


class ExitRegistry:
    """Managed exits in memory, persisted through the journal on every change."""

    __slots__ = ("_exits", "_journal")

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self._exits: dict[str, ManagedExit] = {}

    async def load(self) -> list[ManagedExit]:
        """Merge what the journal holds into memory (entries already known are kept)."""
        text = await self._journal.get_watermark(WATERMARK_KEY)
        if text:
            for item in json.loads(text):
                managed = ManagedExit.from_dict(item)
                self._exits.setdefault(managed.key, managed)
        return list(self._exits.values())

    async def add(self, managed: ManagedExit) -> None:
        self._exits[managed.key] = managed
        await self._persist()

    async def update(self, managed: ManagedExit) -> None:
        """Persist a change made to an entry in place (its order id became known)."""
        if managed.key in self._exits:
            await self._persist()

    async def discard(self, *entries: ManagedExit) -> None:
        removed = [e for e in entries if self._exits.pop(e.key, None) is not None]
        if removed:
            await self._persist()

    def by_order_id(self, order_id: int) -> ManagedExit | None:
        return next((e for e in self._exits.values() if e.order_id == order_id), None)

    def by_tag(self, custom_tag: str) -> ManagedExit | None:
        return self._exits.get(custom_tag)

    def for_contract(self, account_id: int, contract_id: str) -> list[ManagedExit]:
        return [
            e
            for e in self._exits.values()
            if e.account_id == account_id and e.contract_id == contract_id
        ]

    def contracts(self) -> set[tuple[int, str]]:
        return {(e.account_id, e.contract_id) for e in self._exits.values()}

    def __iter__(self) -> Iterator[ManagedExit]:
        return iter(list(self._exits.values()))

    def __len__(self) -> int:
        return len(self._exits)

    def __contains__(self, managed: object) -> bool:
        return isinstance(managed, ManagedExit) and managed.key in self._exits

    async def _persist(self) -> None:
        # Sorted by key: the same registry always writes the same document.
        items = [self._exits[k].as_dict() for k in sorted(self._exits)]
        await self._journal.set_watermark(WATERMARK_KEY, dumps(items))


__all__ = ["WATERMARK_KEY", "ExitRegistry", "ManagedExit"]
