"""Value types of bracket orders: settings, the outcome vocabulary and the result.

:class:`BracketOrderResponse` keeps project-x-py's field names (``success``, ``entry_order_id``,
``stop_order_id``, ``target_order_id``, ``entry_price``, ``stop_loss_price``,
``take_profit_price``, ``error_message``) and adds what the seed could not say truthfully: the
operation id, the outcome, the filled and protected sizes and the actual average fill price.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum


class BracketOutcome(StrEnum):
    """Where a bracket stands, from broker truth as far as we know it."""

    PROTECTED = "protected"  # filled quantity covered by a working stop of exactly its size
    PENDING_ENTRY = "pending_entry"  # entry working, nothing filled yet
    FLAT = "flat"  # the bracket owns nothing (never filled, closed, or flattened; see reason)
    NAKED = "naked"  # owns a position that is not (yet) covered by a stop
    UNKNOWN = "unknown"  # the entry's placement outcome is not known yet


@dataclass(frozen=True, slots=True)
class BracketSettings:
    """Timing of the bracket saga. Seconds of the injected clock.

    ``protection_deadline`` bounds every unprotected episode: forced flattening starts after
    ``flatten_fraction * protection_deadline`` so that the flatten itself (a market order and its
    confirmation) still fits inside the deadline.
    """

    protection_deadline: float = 5.0
    flatten_fraction: float = 0.5
    poll_interval: float = 1.0
    """REST re-read when no event arrived for this long (events can be lost: never wait forever)."""
    poll_max_interval: float = 8.0
    """Quiet polls back off (x2) up to this, and reset as soon as anything changes."""
    retry_delay: float = 0.25
    """Pause before re-sending a leg that provably never left, or re-checking an unknown one."""
    max_attempts: int = 4
    """Sends (same tag) of one leg, resizes, cancels or flattens before giving up on it."""
    entry_lookups: int = 10
    """Polls for an entry whose placement outcome stayed unknown, before reporting UNKNOWN."""
    history: int = 1000
    """Finished brackets kept in memory for wait_* and status calls."""

    def __post_init__(self) -> None:
        for name in ("protection_deadline", "poll_interval", "poll_max_interval", "retry_delay"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number, got {value}")
        if not 0 < self.flatten_fraction < 1:
            raise ValueError("flatten_fraction must be in (0, 1)")
        if self.max_attempts < 1 or self.entry_lookups < 1 or self.history < 1:
            raise ValueError("max_attempts, entry_lookups and history must be >= 1")

    @property
    def flatten_after(self) -> float:
        return self.protection_deadline * self.flatten_fraction


@dataclass(frozen=True, slots=True)
class BracketOrderResponse:
    """Result of :meth:`OrderManager.place_bracket_order` (and of the ``wait_*`` calls)."""

    success: bool
    entry_order_id: int | None
    stop_order_id: int | None
    target_order_id: int | None
    entry_price: Decimal | None
    stop_loss_price: Decimal
    """The working stop's price once it works (a native child's is set by the exchange from
    the fill), else the requested one."""
    take_profit_price: Decimal
    """The working target's price once it works, else the requested one."""
    error_message: str | None = None
    operation_id: str = ""
    outcome: BracketOutcome = BracketOutcome.UNKNOWN
    filled_size: int = 0
    """Contracts the entry filled."""
    protected_size: int = 0
    """Of the contracts the bracket still owns, how many a working stop covers."""
    average_fill_price: Decimal | None = None
    """The entry's actual average fill price (not the requested one)."""
    owned_size: int = 0
    """Contracts the bracket still owns (entry fills minus exits and flattening)."""
    native: bool = False
    """Exits are server-side bracket children (True) or client-side OCO orders (False)."""
    finished: bool = False
    """The operation is over: nothing working, nothing owned (or a truthful failure)."""
    reason: str | None = None
    """Why the bracket ended where it did (e.g. why it was flattened)."""
    stop_filled: int = 0
    """Contracts its stops filled (every generation)."""
    target_filled: int = 0
    """Contracts its targets filled (every generation)."""

    @property
    def both_exits_filled(self) -> bool:
        """Stop and target both traded (an OCO race the saga had to repair)."""
        return self.stop_filled > 0 and self.target_filled > 0

    def __bool__(self) -> bool:
        return self.success


__all__ = ["BracketOrderResponse", "BracketOutcome", "BracketSettings"]
