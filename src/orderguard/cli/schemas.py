"""The JSON the operator commands print with ``--json``: one pydantic model per command.

These models are the contract: each command builds its model and prints
``model_dump_json()``, so the output always validates against them, and a script can validate
what it reads the same way (``StatusReport.model_validate_json(text)``) or get a JSON Schema
(``orderguard schema status``). Prices and money are decimal strings (never floats); times are
ISO 8601 in UTC. Unknown keys are refused (``extra="forbid"``): an added field is a new version
of the contract, not a surprise.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Coverage = Literal["flat", "protected", "naked", "over_covered"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ErrorReport(_Model):
    """What a command prints with ``--json`` when it fails (exit status in ``exit_code``)."""

    ok: Literal[False] = False
    error: str
    """The error's type, e.g. ``RiskLimitError``."""
    message: str
    exit_code: int


class WorkingOrder(_Model):
    id: int
    account_id: int
    contract_id: str
    type: str
    side: str
    size: int
    filled: int
    limit_price: Decimal | None
    stop_price: Decimal | None
    status: str
    custom_tag: str | None
    role: str
    """``entry`` (adds to the position or opens one), ``stop`` or ``target`` (reduce it)."""


class PositionStatus(_Model):
    account_id: int
    contract_id: str
    size: int
    """Signed: long positive, short negative."""
    average_price: Decimal
    stops: int
    """Contracts covered by working reduce-side stop orders."""
    targets: int
    """Contracts covered by working reduce-side limit orders."""
    coverage: Coverage
    """``protected``: stops cover exactly the size; ``naked``: less; ``over_covered``: more."""


class AccountStatus(_Model):
    id: int
    name: str
    balance: Decimal
    can_trade: bool
    positions: list[PositionStatus]
    working_orders: list[WorkingOrder]


class OpenOperation(_Model):
    operation_id: str
    type: str
    state: str
    account_id: int | None
    contract_id: str | None
    since: datetime
    """When it entered its current state (``rolling_back``: when the obligation began)."""
    age_seconds: float
    obligation: bool
    """True for a standing protection obligation (``rolling_back``): exposure it owns is being
    flattened or protected by the executor until it is safe."""


class StatusReport(_Model):
    ok: bool
    """No naked or over-covered position."""
    broker: str
    at: datetime
    journal: str | None
    journal_error: str | None = None
    accounts: list[AccountStatus]
    obligations: list[OpenOperation]
    """Open protection obligations, oldest first."""
    unfinished_operations: list[OpenOperation]
    """Every operation of the journal not in a terminal state (obligations included)."""


class BracketReport(_Model):
    ok: bool
    operation_id: str
    contract_id: str
    side: str
    size: int
    entry_type: Literal["market", "limit"]
    outcome: Literal["protected", "pending_entry", "flat", "naked", "unknown"]
    native: bool
    entry_order_id: int | None
    stop_order_id: int | None
    target_order_id: int | None
    entry_price: Decimal | None
    average_fill_price: Decimal | None
    stop_price: Decimal
    target_price: Decimal
    filled_size: int
    protected_size: int
    reason: str | None
    note: str | None = None


class CloseReport(_Model):
    ok: bool
    operation_id: str | None
    contract_id: str
    outcome: str
    requested_size: int
    closed_size: int
    position_before: int
    final_position: int | None
    order_id: int | None
    detail: str


class CancelledOrder(_Model):
    order_id: int
    cancelled: bool
    status: str | None
    detail: str | None


class CancelAllReport(_Model):
    ok: bool
    operation_id: str | None
    total: int
    cancelled: int
    failed: int
    orders: list[CancelledOrder]
    naked_after: list[PositionStatus]
    """Positions the cancel left without a covering stop (cancel-all also cancels stops)."""


class OperationSummary(_Model):
    operation_id: str
    type: str
    state: str
    created_at: datetime
    updated_at: datetime
    account_id: int | None
    contract_id: str | None
    legs: int


class OpsList(_Model):
    journal: str
    active_only: bool
    operations: list[OperationSummary]


class TimelineEntry(_Model):
    at: datetime
    kind: Literal["state", "intent", "outcome", "event"]
    what: str
    detail: dict[str, Any] = Field(default_factory=dict)


class OperationTimeline(_Model):
    journal: str
    operation: OperationSummary
    data: dict[str, Any]
    timeline: list[TimelineEntry]


class RollbackReport(_Model):
    ok: bool
    operation_id: str
    state_before: str
    state_after: str
    confirmed: bool
    """The rollback ended safe: nothing owned, nothing working."""
    detail: str


class RecoveredOperation(_Model):
    operation_id: str
    type: str
    state_before: str
    state_after: str
    actions: list[str]


class RecoverReport(_Model):
    ok: bool
    broker: str
    journal: str | None
    error: str | None
    operations: list[RecoveredOperation]
    obligations_open: list[str]
    """Operations still rolling back when the command gave up waiting (exit status 3)."""
    statistics: dict[str, Any]


SCHEMAS: dict[str, type[BaseModel]] = {
    "status": StatusReport,
    "bracket": BracketReport,
    "close": CloseReport,
    "cancel-all": CancelAllReport,
    "ops": OpsList,
    "ops-id": OperationTimeline,
    "rollback": RollbackReport,
    "recover": RecoverReport,
    "error": ErrorReport,
}

__all__ = [
    "SCHEMAS",
    "AccountStatus",
    "BracketReport",
    "CancelAllReport",
    "CancelledOrder",
    "CloseReport",
    "ErrorReport",
    "OpenOperation",
    "OperationSummary",
    "OperationTimeline",
    "OpsList",
    "PositionStatus",
    "RecoverReport",
    "RecoveredOperation",
    "RollbackReport",
    "StatusReport",
    "TimelineEntry",
    "WorkingOrder",
]
