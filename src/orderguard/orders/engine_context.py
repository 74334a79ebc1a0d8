"""What an engine (brackets, OCO pairs, position orders, operations) is given by the manager.

The :class:`~orderguard.orders.manager.OrderManager` builds its engines in its constructor and
hands each one :class:`EngineContext`: the clock, the journaled mutations (:class:`Sending`),
the reads of broker truth (:class:`TruthReads`), the journal of operations, the event stream and
the protection executor, plus the shared collaborators behind them (tracker, feed, reference
data, contracts, tags, counters). Nothing here is the manager itself, so no engine imports
``orders.manager`` and the package has no import cycle (``tests/test_architecture.py``).

``send`` and ``truth`` are protocols: the manager's own methods serve them (its inner paths,
which an engine's cancellation relies on, not the public calls that survive their caller).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from orderguard.broker.base import AccountCapabilities, BrokerEvent
from orderguard.clock import Clock
from orderguard.config import OrderManagerConfig
from orderguard.journal.base import Journal
from orderguard.models import Order, OrderRequest
from orderguard.ops.hooks import RecoveryHooks
from orderguard.ops.telemetry import Telemetry
from orderguard.orders.contracts import ContractResolver
from orderguard.orders.feed.order_feed import OrderFeed
from orderguard.orders.feed.tracking import OrderTracker
from orderguard.orders.metrics import Counters
from orderguard.orders.positions.holdings import HoldingsFollower
from orderguard.orders.reference_data import ReferenceData
from orderguard.orders.results import CancelResult, ModifyResult, OrderPlaceResponse
from orderguard.orders.send.journaled_send import JournaledSend
from orderguard.orders.send.risk import RiskGate
from orderguard.orders.tags import TagFactory
from orderguard.recovery.manager import OperationRecoveryManager, RecoveryOperation
from orderguard.recovery.protection import ProtectionExecutor
from orderguard.resilience import Priority

Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]
"""Run a coroutine as a background task the manager owns (cancelled by ``cleanup``)."""

Listen = Callable[[Callable[[BrokerEvent], None]], Callable[[], None]]
"""Add an event listener (after the tracker applied the event); returns its remover."""


class BrokerReads(Protocol):
    """The broker as an engine reads it: through the rate limiter and the breakers, queries
    only. Every mutation goes through ``send`` (and so through the one journaled send)."""

    async def search_orders(
        self,
        account_id: int,
        start: datetime,
        end: datetime | None = None,
        *,
        priority: Priority = Priority.QUERY,
    ) -> list[Order]: ...

    async def get_last_price(
        self, contract_id: str, *, priority: Priority = Priority.QUERY
    ) -> Decimal | None: ...

    async def get_capabilities(self, account_id: int) -> AccountCapabilities: ...


class Sending(Protocol):
    """The journaled mutations an engine sends (see the manager's methods of the same name)."""

    async def submit(
        self,
        request: OrderRequest,
        *,
        respect_latch: bool = True,
        priority: Priority | None = None,
        exit_only: bool = False,
    ) -> OrderPlaceResponse: ...

    async def cancel_order(self, order_id: int, account_id: int | None = None) -> CancelResult: ...

    async def cancel_journaled(
        self,
        order_id: int,
        account_id: int | None = None,
        *,
        operation: RecoveryOperation | None = None,
        priority: Priority = Priority.NORMAL,
        settle: bool = True,
    ) -> CancelResult: ...

    async def modify_order(
        self,
        order_id: int,
        limit_price: Decimal | float | int | str | None = None,
        stop_price: Decimal | float | int | str | None = None,
        size: int | None = None,
        *,
        trail_price: Decimal | float | int | str | None = None,
        account_id: int | None = None,
        priority: Priority = Priority.NORMAL,
    ) -> ModifyResult: ...

    async def flatten_quantity(
        self,
        account_id: int,
        contract_id: str,
        signed_size: int,
        custom_tag: str,
        *,
        exit_only: bool = False,
    ) -> Order | None: ...

    def cancel_requested(self, order_id: int) -> bool:
        """Whether this process sent (or tried to send) a cancel of ``order_id``."""
        ...


class TruthReads(Protocol):
    """Reads of broker truth, folded into the tracker as they come back."""

    async def owned_position(
        self, account_id: int, contract_id: str, *, priority: Priority = Priority.QUERY
    ) -> int: ...

    async def get_order_by_id(
        self, order_id: int, account_id: int | None = None, *, refresh: bool = False
    ) -> Order | None: ...

    async def search_open_orders(
        self,
        contract_id: str | None = None,
        side: int | None = None,
        account_id: int | None = None,
    ) -> list[Order]: ...

    async def find_order_by_tag(self, account_id: int, custom_tag: str) -> Order | None: ...


@dataclass(frozen=True, slots=True, eq=False)
class EngineContext:
    """Everything an engine of one manager may use (see the module docstring)."""

    clock: Clock
    config: OrderManagerConfig
    send: Sending
    truth: TruthReads
    recovery: OperationRecoveryManager
    """The journal of operations (their legs, states and statistics)."""
    journal: Journal
    journaled: JournaledSend
    """The one journaled send (intent, send, outcome) every mutation goes through."""
    gateway: BrokerReads
    """The broker through the rate limiter and breakers, for reads."""
    tracker: OrderTracker
    feed: OrderFeed
    listen: Listen
    reference: ReferenceData
    contracts: ContractResolver
    tags: TagFactory
    stats: Counters
    spawn: Spawn
    protection: ProtectionExecutor
    holdings: HoldingsFollower
    risk: RiskGate
    """The risk limits (orders/send/risk.py), checked before new exposure only."""
    hooks: RecoveryHooks
    """The user's recovery hooks (ops/hooks.py), consulted at named points."""
    telemetry: Telemetry
    """Episode histograms for /metrics (ops/telemetry.py)."""


__all__ = ["BrokerReads", "EngineContext", "Listen", "Sending", "Spawn", "TruthReads"]
