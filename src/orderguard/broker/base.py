"""The Broker port: the one small async protocol every adapter implements.

Mutations (place, cancel, modify, close) never raise for broker-side outcomes: they return a
three-valued :data:`Outcome`:
:class:`Confirmed`, :class:`Rejected` (definitive, with the endpoint's
error code) or :class:`Unknown` (sent, no proof either way). ``Unknown`` is never failure; it is
resolved by asking the broker (for placements: by ``customTag`` among all orders of the account).

Queries return broker truth or raise a :class:`~orderguard.errors.BrokerError`; an empty answer is
only ever evidence when the query itself succeeded.

Events arrive through :meth:`Broker.subscribe` as plain values (past tense: something happened at
the broker). Handlers are called from the event loop, never under an adapter lock, and must not
block; a handler that raises is logged and counted by the adapter, never propagated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol, runtime_checkable

from orderguard.models import Account, Contract, Order, OrderRequest, Position, Trade

# ---------------------------------------------------------------------------------------------
# Mutation outcomes
# ---------------------------------------------------------------------------------------------


class UnknownOrigin(StrEnum):
    """Why an outcome is unknown."""

    TIMEOUT_AFTER_SEND = "timeout_after_send"
    CONNECTION_LOST = "connection_lost"
    SERVER_ERROR = "server_error"  # HTTP 5xx
    UNKNOWN_CODE = "unknown_code"  # an error code we have no definitive meaning for
    RATE_LIMITED_AFTER_SEND = "rate_limited_after_send"
    PENDING = "pending"  # ProjectX errorCode 6 (place) / 4 (cancel, modify)


@dataclass(frozen=True, slots=True)
class Confirmed:
    """The broker accepted the mutation. ``order_id`` is set for placements."""

    order_id: int | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """A definitive rejection. ``code`` is the endpoint's ProjectX error code.

    ``order_id`` may be set: ProjectX can create a rejected order record (status 5).
    """

    code: int
    message: str
    order_id: int | None = None


@dataclass(frozen=True, slots=True)
class Unknown:
    """Sent, but no proof either way. Never retried blindly; resolved by asking the broker."""

    origin: UnknownOrigin
    detail: str = ""
    retry_after: float | None = None
    """Seconds the broker asked us to wait before the next request (HTTP 429 ``Retry-After``)."""


Outcome = Confirmed | Rejected | Unknown


# ---------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------


class ConnectionState(StrEnum):
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    RECONNECTED = "reconnected"  # events in the gap are lost: reconcile from REST
    SILENT = "silent"  # no traffic for longer than the keep-alive allows


@dataclass(frozen=True, slots=True)
class OrderEvent:
    order: Order


@dataclass(frozen=True, slots=True)
class PositionEvent:
    position: Position


@dataclass(frozen=True, slots=True)
class TradeEvent:
    trade: Trade


@dataclass(frozen=True, slots=True)
class AccountEvent:
    account: Account


@dataclass(frozen=True, slots=True)
class QuoteEvent:
    contract_id: str
    last_price: Decimal
    best_bid: Decimal
    best_ask: Decimal
    timestamp: datetime


class EventFeed(StrEnum):
    """Which realtime feed a :class:`ConnectionEvent` is about."""

    ORDERS = "orders"  # accounts, orders, positions, trades (ProjectX's user hub)
    QUOTES = "quotes"  # market data (ProjectX's market hub): a gap loses quotes, not order truth


@dataclass(frozen=True, slots=True)
class ConnectionEvent:
    state: ConnectionState
    detail: str = ""
    feed: EventFeed = EventFeed.ORDERS


BrokerEvent = OrderEvent | PositionEvent | TradeEvent | AccountEvent | QuoteEvent | ConnectionEvent
EventHandler = Callable[[BrokerEvent], None]


@dataclass(frozen=True, slots=True)
class AccountCapabilities:
    """What an account allows. ``native_brackets`` is the "Auto OCO Brackets" setting."""

    native_brackets: bool
    max_order_size: int | None = None


class Subscription(Protocol):
    def close(self) -> None:
        """Stop delivering events to this handler. Idempotent."""
        ...


# ---------------------------------------------------------------------------------------------
# The port
# ---------------------------------------------------------------------------------------------


@runtime_checkable
class BrokerOrders(Protocol):
    """The mutations: each returns an :data:`Outcome` and never raises for a broker-side result."""

    async def place_order(self, request: OrderRequest) -> Outcome: ...

    async def cancel_order(self, account_id: int, order_id: int) -> Outcome: ...

    async def modify_order(
        self,
        account_id: int,
        order_id: int,
        *,
        size: int | None = None,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
        trail_price: Decimal | None = None,
    ) -> Outcome: ...

    async def close_position(self, account_id: int, contract_id: str) -> Outcome: ...

    async def partial_close_position(
        self, account_id: int, contract_id: str, size: int
    ) -> Outcome: ...


@runtime_checkable
class BrokerQueries(Protocol):
    """The reads: broker truth, or a raised :class:`~orderguard.errors.BrokerError`."""

    async def search_orders(
        self, account_id: int, start: datetime, end: datetime | None = None
    ) -> list[Order]:
        """All orders created in the window, in every status (filled, cancelled, rejected too)."""
        ...

    async def search_open_orders(self, account_id: int) -> list[Order]:
        """Working orders. Like ProjectX, excludes Suspended bracket children."""
        ...

    async def get_order(self, account_id: int, order_id: int) -> Order | None:
        """One order in any status, or None when the broker says it does not exist."""
        ...

    async def search_positions(self, account_id: int) -> list[Position]: ...

    async def search_trades(
        self, account_id: int, start: datetime, end: datetime | None = None
    ) -> list[Trade]: ...

    async def get_accounts(self) -> list[Account]: ...

    async def get_contract(self, contract_id: str) -> Contract | None: ...

    async def search_contracts(self, text: str) -> list[Contract]: ...

    async def get_capabilities(self, account_id: int) -> AccountCapabilities: ...

    async def get_last_price(self, contract_id: str) -> Decimal | None:
        """Last traded price, for validating stops against the market; None if unknown."""
        ...


@runtime_checkable
class BrokerEvents(Protocol):
    """The event stream (see the module docstring for the handler rules)."""

    def subscribe(self, handler: EventHandler) -> Subscription: ...


@runtime_checkable
class Broker(BrokerOrders, BrokerQueries, BrokerEvents, Protocol):
    """What orderguard needs from a broker: its orders, queries and events in one port.

    All prices are ``Decimal``; ids are ProjectX's. Code that needs only one part of the port
    can ask for that part alone (:class:`BrokerOrders`, :class:`BrokerQueries`,
    :class:`BrokerEvents`)."""


__all__ = [
    "AccountCapabilities",
    "AccountEvent",
    "Broker",
    "BrokerEvent",
    "BrokerEvents",
    "BrokerOrders",
    "BrokerQueries",
    "Confirmed",
    "ConnectionEvent",
    "ConnectionState",
    "EventFeed",
    "EventHandler",
    "OrderEvent",
    "Outcome",
    "PositionEvent",
    "QuoteEvent",
    "Rejected",
    "Subscription",
    "TradeEvent",
    "Unknown",
    "UnknownOrigin",
]
