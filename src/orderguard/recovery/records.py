"""The records of an operation: its orders (:class:`OrderReference`) and itself
(:class:`RecoveryOperation`), as the journal keeps them and as they are folded in memory.

Plain data with their (de)serialisation and the few facts derived from them (net filled, whether
exits may still work, the retry spacing). The recovery manager
(:class:`~orderguard.recovery.manager.OperationRecoveryManager`) owns and writes them; every
engine reads them. ``recovery.manager`` re-exports them, where most modules import them from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from orderguard.journal.base import OperationRecord
from orderguard.models import OrderSide
from orderguard.recovery.operations import OperationState, OperationType


class RefStatus:
    """Where one order of an operation stands, as far as the broker has told us."""

    INTENDED = "intended"  # journaled, not (yet) known to be at the broker
    CONFIRMED = "confirmed"  # acknowledged; working or later
    REJECTED = "rejected"  # definitively refused; nothing exists
    UNKNOWN = "unknown"  # sent, no proof either way
    FILLED = "filled"
    CANCELLED = "cancelled"  # final: cancelled or expired (check ``filled_size``)


FINAL_REF = frozenset({RefStatus.REJECTED, RefStatus.FILLED, RefStatus.CANCELLED})

DEFAULT_RETRY_BUDGET = 3
"""Failed attempts of one rollback step after which an operation without its own
``max_retries`` notes that its budget is spent (it goes on trying: I7)."""
MAX_RETRY_PAUSE = 60.0
"""Cap of one pause of an operation's own retry schedule (``retry_delay`` doubling per retry):
exposure is never given up on, so the pause between two tries must stay bounded."""


@dataclass(slots=True)
class OrderReference:
    """One order of an operation, keyed by its leg name and fixed customTag."""

    leg: str
    custom_tag: str
    contract_id: str
    side: int
    size: int
    order_type: str
    price: Decimal | None = None
    account_id: int = 0
    generation: int = 0
    intent_id: str = ""
    order_id: int | None = None
    status: str = RefStatus.INTENDED
    filled_size: int = 0
    placed_successfully: bool = False
    cancel_attempted: bool = False
    cancel_successful: bool = False
    error_message: str | None = None
    error_code: int | None = None
    order_tag: str | None = None
    """The customTag the order actually carries, when the caller sent it under another tag than
    the leg's (the seed's flow: ``place_limit_order`` then ``record_order_success``)."""

    @property
    def lookup_tag(self) -> str:
        """The tag to find this leg's order by at the broker."""
        return self.order_tag or self.custom_tag

    def as_dict(self) -> dict[str, Any]:
        return {
            "leg": self.leg,
            "custom_tag": self.custom_tag,
            "contract_id": self.contract_id,
            "side": self.side,
            "size": self.size,
            "order_type": self.order_type,
            "price": None if self.price is None else str(self.price),
            "account_id": self.account_id,
            "generation": self.generation,
            "intent_id": self.intent_id,
            "order_id": self.order_id,
            "status": self.status,
            "filled_size": self.filled_size,
            "placed_successfully": self.placed_successfully,
            "cancel_attempted": self.cancel_attempted,
            "cancel_successful": self.cancel_successful,
            "error_message": self.error_message,
            "error_code": self.error_code,
            "order_tag": self.order_tag,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OrderReference:
        price = d.get("price")
        return cls(
            leg=str(d["leg"]),
            custom_tag=str(d["custom_tag"]),
            contract_id=str(d["contract_id"]),
            side=int(d["side"]),
            size=int(d["size"]),
            order_type=str(d["order_type"]),
            price=None if price is None else Decimal(str(price)),
            account_id=int(d.get("account_id", 0)),
            generation=int(d.get("generation", 0)),
            intent_id=str(d.get("intent_id", "")),
            order_id=None if d.get("order_id") is None else int(d["order_id"]),
            status=str(d.get("status", RefStatus.INTENDED)),
            filled_size=int(d.get("filled_size", 0)),
            placed_successfully=bool(d.get("placed_successfully", False)),
            cancel_attempted=bool(d.get("cancel_attempted", False)),
            cancel_successful=bool(d.get("cancel_successful", False)),
            error_message=d.get("error_message"),
            error_code=d.get("error_code"),
            order_tag=None if d.get("order_tag") is None else str(d["order_tag"]),
        )

    @property
    def signed_filled(self) -> int:
        return self.filled_size if self.side == OrderSide.BUY else -self.filled_size


@dataclass(slots=True)
class RecoveryOperation:
    """In-memory mirror of one journaled operation."""

    operation_id: str
    operation_type: OperationType
    state: OperationState
    started_at: datetime
    account_id: int | None = None
    contract_id: str | None = None
    completed_at: datetime | None = None
    updated_at: datetime | None = None
    orders: dict[str, OrderReference] = field(default_factory=dict)
    oco_pairs: list[tuple[str, str]] = field(default_factory=list)
    position_tracking: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    last_error: str | None = None
    max_retries: int | None = None
    """Failed attempts of one rollback step after which the record notes the budget is spent
    (the protection executor never stops trying while exposure is held), and where the
    re-run schedule stops growing; None: ``DEFAULT_RETRY_BUDGET``."""
    retry_count: int = 0
    """Recovery runs after the first (the reconciler's re-runs), persisted."""
    retry_delay: float | None = None
    """Base pause of this operation's own retry schedule, doubling per retry (capped); None:
    the protection executor's policy (``ProtectionPolicy``)."""
    extra: dict[str, Any] = field(default_factory=dict)
    closed_externally: int = 0
    """Signed quantity position-close operations flattened on this operation's behalf."""

    @property
    def id(self) -> str:
        return self.operation_id

    @property
    def type(self) -> str:
        return self.operation_type.value

    @property
    def required_orders(self) -> int:
        return len(self.orders)

    @property
    def successful_orders(self) -> int:
        return sum(1 for r in self.orders.values() if r.placed_successfully)

    def rerun_spacing(self, default: float) -> float:
        """Seconds between the end of one recovery run and the next (the reconciler's re-run
        of a rollback that could not confirm a safe state): ``default`` (the reconciler's
        threshold) unless the operation has its own ``retry_delay``, which doubles with each
        re-run up to the ``max_retries``-th and then stays (retries never stop: I7)."""
        if self.retry_delay is None:
            return default
        budget = self.max_retries or DEFAULT_RETRY_BUDGET
        step = min(self.retry_count, budget - 1, 32)
        return min(self.retry_delay * 2.0**step, MAX_RETRY_PAUSE)

    @property
    def may_have_working_orders(self) -> bool:
        """An order of the record is acknowledged and not known final (it may still work)."""
        return any(r.status == RefStatus.CONFIRMED for r in self.orders.values())

    @property
    def net_filled(self) -> int:
        """Signed quantity this operation still owns: its legs' fills, plus what position-close
        operations flattened on its behalf (so the same quantity is never flattened twice)."""
        return sum(r.signed_filled for r in self.orders.values()) + self.closed_externally

    def to_data(self) -> dict[str, Any]:
        return {
            "orders": {k: r.as_dict() for k, r in self.orders.items()},
            "oco_pairs": [list(p) for p in self.oco_pairs],
            "position_tracking": self.position_tracking,
            "errors": self.errors[-20:],
            "last_error": self.last_error,
            "max_retries": self.max_retries,
            "retry_count": self.retry_count,
            "retry_delay": self.retry_delay,
            "completed_at": self.completed_at,
            "extra": self.extra,
            "closed_externally": self.closed_externally,
        }

    @classmethod
    def from_record(cls, rec: OperationRecord) -> RecoveryOperation:
        d = rec.data
        completed = d.get("completed_at")
        return cls(
            operation_id=rec.operation_id,
            operation_type=OperationType(rec.type),
            state=OperationState(rec.state),
            started_at=rec.created_at,
            updated_at=rec.updated_at,
            account_id=rec.account_id,
            contract_id=rec.contract_id,
            completed_at=None if completed is None else datetime.fromisoformat(str(completed)),
            orders={k: OrderReference.from_dict(v) for k, v in dict(d.get("orders", {})).items()},
            oco_pairs=[(str(a), str(b)) for a, b in d.get("oco_pairs", [])],
            position_tracking={k: list(v) for k, v in dict(d.get("position_tracking", {})).items()},
            errors=list(d.get("errors", [])),
            last_error=d.get("last_error"),
            max_retries=None if d.get("max_retries") is None else int(d["max_retries"]),
            retry_count=int(d.get("retry_count", 0)),
            retry_delay=None if d.get("retry_delay") is None else float(d["retry_delay"]),
            extra=dict(d.get("extra", {})),
            closed_externally=int(d.get("closed_externally", 0)),
        )


__all__ = [
    "DEFAULT_RETRY_BUDGET",
    "FINAL_REF",
    "MAX_RETRY_PAUSE",
    "OrderReference",
    "RecoveryOperation",
    "RefStatus",
]
