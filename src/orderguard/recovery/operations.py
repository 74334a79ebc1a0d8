"""Operation types, states and the transition table (pure data, no I/O).

An *operation* is a multi-step broker mutation (a bracket, an OCO pair, a position close, a bulk
cancel, a modification) tracked with transaction-like semantics. Its state moves only along the rows
of :data:`TRANSITIONS`; every unusual row carries the reason it exists, so the table doubles as the
specification.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from orderguard.errors import OperationError


class OperationType(StrEnum):
    BRACKET_ORDER = "bracket_order"
    OCO_PAIR = "oco_pair"
    POSITION_CLOSE = "position_close"
    BULK_CANCEL = "bulk_cancel"
    ORDER_MODIFICATION = "order_modification"
    # A stop loss or take profit added to an existing position (orders/positions/engine.py).
    PROTECTIVE_ORDER = "protective_order"


class OperationState(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    PARTIALLY_COMPLETED = "partially_completed"
    COMPLETED = "completed"
    FAILED = "failed"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset(
    {OperationState.COMPLETED, OperationState.FAILED, OperationState.ROLLED_BACK}
)


@dataclass(frozen=True, slots=True)
class Transition:
    source: OperationState
    target: OperationState
    reason: str = ""


_S = OperationState

TRANSITIONS: tuple[Transition, ...] = (
    Transition(_S.PENDING, _S.IN_PROGRESS),
    Transition(_S.PENDING, _S.COMPLETED, "nothing to do (e.g. a bulk cancel with no orders)"),
    Transition(_S.PENDING, _S.FAILED, "refused before anything was sent: nothing is live"),
    Transition(_S.PENDING, _S.ROLLED_BACK, "forced rollback before anything was sent"),
    Transition(_S.IN_PROGRESS, _S.PARTIALLY_COMPLETED),
    Transition(_S.IN_PROGRESS, _S.COMPLETED),
    Transition(
        _S.IN_PROGRESS,
        _S.FAILED,
        "every mutation definitively rejected: nothing changed at the broker",
    ),
    Transition(_S.IN_PROGRESS, _S.ROLLING_BACK),
    Transition(_S.PARTIALLY_COMPLETED, _S.IN_PROGRESS, "recovery retries forward (same tags)"),
    Transition(_S.PARTIALLY_COMPLETED, _S.COMPLETED),
    Transition(_S.PARTIALLY_COMPLETED, _S.ROLLING_BACK),
    Transition(
        _S.PARTIALLY_COMPLETED,
        _S.FAILED,
        "a bulk cancel or modification ended with some orders in an unwanted but known state",
    ),
    Transition(_S.ROLLING_BACK, _S.ROLLED_BACK),
    Transition(
        _S.ROLLING_BACK,
        _S.FAILED,
        "rollback could not reach a confirmed safe state; the record says exactly what is live",
    ),
    Transition(
        _S.COMPLETED,
        _S.ROLLING_BACK,
        "forced rollback of a completed operation: flatten what it owns and cancel its exits",
    ),
)

_ALLOWED: dict[tuple[OperationState, OperationState], Transition] = {
    (t.source, t.target): t for t in TRANSITIONS
}


def can_transition(source: OperationState, target: OperationState) -> bool:
    return (source, target) in _ALLOWED


def check_transition(source: OperationState, target: OperationState) -> Transition:
    """The table row for ``source -> target``; raises :class:`OperationError` if there is none."""
    row = _ALLOWED.get((source, target))
    if row is None:
        raise OperationError(f"operation state {source.value} cannot move to {target.value}")
    return row


__all__ = [
    "TERMINAL_STATES",
    "TRANSITIONS",
    "OperationState",
    "OperationType",
    "Transition",
    "can_transition",
    "check_transition",
]
