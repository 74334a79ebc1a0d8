"""Protection coverage per position, from orders and positions (pure; no I/O).

A position is covered by the working stops on its closing side (a Suspended bracket child does not
protect yet: it works only once its entry fills). The status says what an operator must look at:

* ``protected`` — stops cover the whole position;
* ``partial`` — some of it is not covered;
* ``naked`` — nothing covers it;
* ``over`` — stops would close more than the position (filled, they open one the other way);
* ``orphan`` — stops on a contract with no position (I2).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from orderguard.models import STOP_TYPES, Order, OrderSide, OrderStatus, OrderType, Position


class Coverage(StrEnum):
    PROTECTED = "protected"
    PARTIAL = "partial"
    NAKED = "naked"
    OVER = "over"
    ORPHAN = "orphan"


@dataclass(frozen=True, slots=True)
class PositionCoverage:
    account_id: int
    contract_id: str
    size: int
    """Signed net position (positive long)."""
    stop_cover: int
    """Contracts the working stops on the closing side would close."""
    target_cover: int
    status: Coverage

    @property
    def uncovered(self) -> int:
        return max(0, abs(self.size) - self.stop_cover)

    @property
    def flagged(self) -> bool:
        return self.status is not Coverage.PROTECTED

    def as_dict(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "contract_id": self.contract_id,
            "size": self.size,
            "stop_cover": self.stop_cover,
            "target_cover": self.target_cover,
            "uncovered": self.uncovered,
            "status": self.status.value,
        }


def _closing_side(size: int) -> OrderSide:
    return OrderSide.SELL if size > 0 else OrderSide.BUY


def coverage(positions: Iterable[Position], orders: Iterable[Order]) -> list[PositionCoverage]:
    """One row per (account, contract) with a position or a working exit order."""
    sizes: dict[tuple[int, str], int] = {}
    for p in positions:
        if p.signed_size:
            key = (p.account_id, p.contract_id)
            sizes[key] = sizes.get(key, 0) + p.signed_size
    stops: dict[tuple[int, str, OrderSide], int] = {}
    targets: dict[tuple[int, str, OrderSide], int] = {}
    for o in orders:
        if o.status is not OrderStatus.OPEN or o.remaining <= 0:
            continue  # Suspended children protect nothing yet; Pending is not at the exchange
        book = stops if o.type in STOP_TYPES else targets if o.type is OrderType.LIMIT else None
        if book is not None:
            key3 = (o.account_id, o.contract_id, o.side)
            book[key3] = book.get(key3, 0) + o.remaining
    rows: list[PositionCoverage] = []
    keys = set(sizes) | {(a, c) for (a, c, _) in stops}
    for account_id, contract_id in sorted(keys):
        size = sizes.get((account_id, contract_id), 0)
        if size == 0:
            orphan = sum(stops.get((account_id, contract_id, s), 0) for s in OrderSide)
            rows.append(PositionCoverage(account_id, contract_id, 0, orphan, 0, Coverage.ORPHAN))
            continue
        side = _closing_side(size)
        cover = stops.get((account_id, contract_id, side), 0)
        target = targets.get((account_id, contract_id, side), 0)
        if cover > abs(size):
            status = Coverage.OVER
        elif cover == abs(size):
            status = Coverage.PROTECTED
        elif cover == 0:
            status = Coverage.NAKED
        else:
            status = Coverage.PARTIAL
        rows.append(PositionCoverage(account_id, contract_id, size, cover, target, status))
    return rows


__all__ = ["Coverage", "PositionCoverage", "coverage"]
