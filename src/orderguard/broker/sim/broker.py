"""``SimBroker``: the :class:`~orderguard.broker.base.Broker` port over the simulated exchange.

It adds what a network adds, deterministically: each request waits ``latency.request`` on the
clock before it reaches the exchange and ``latency.response`` before the answer returns; each
exchange event reaches subscribers ``latency.event`` later. ``jitter`` adds a seeded uniform
``[0, jitter)`` to each of those delays. Events keep their order (a later event is never
delivered before an earlier one; reordering is the fault injector's job).

With zero latency the answer returns without yielding, and events are delivered from the event
loop (``call_soon``) right after, never synchronously inside the caller's ``await``. A handler that
raises is logged and counted in ``handler_errors``; the other handlers still get the event.

Outcomes: the exchange is truth and answers at once, so this adapter returns only
:class:`~orderguard.broker.base.Confirmed` and :class:`~orderguard.broker.base.Rejected`; wrap it
in the fault injector to get ``Unknown``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TypeVar

from orderguard.broker.base import (
    AccountCapabilities,
    BrokerEvent,
    Confirmed,
    EventHandler,
    Outcome,
    Rejected,
)
from orderguard.clock import Clock, SystemClock
from orderguard.errors import OrderRejectedError, UnknownAccountError
from orderguard.models import Account, Contract, Order, OrderRequest, Position, Trade

from .exchange import SimExchange
from .records import SimOrderResult, SimResult
from .rules import ExchangeRules

log = logging.getLogger(__name__)

T = TypeVar("T")

# Every query endpoint answers errorCode 1 for an unknown account.
_ACCOUNT_NOT_FOUND = 1


@dataclass(frozen=True, slots=True)
class LatencyModel:
    """Simulated latency in seconds of the injected clock; ``seed`` seeds the jitter."""

    request: float = 0.0
    response: float = 0.0
    event: float = 0.0
    jitter: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("request", "response", "event", "jitter"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"latency {name} must be a finite number >= 0, got {value}")


class SimSubscription:
    """Handle of one event handler; ``close()`` stops delivery (idempotent)."""

    __slots__ = ("_broker", "active", "handler")

    def __init__(self, broker: SimBroker, handler: EventHandler) -> None:
        self._broker = broker
        self.handler = handler
        self.active = True

    def close(self) -> None:
        if self.active:
            self.active = False
            self._broker._unsubscribe(self)


def _outcome(result: SimResult) -> Outcome:
    order_id = result.order_id if isinstance(result, SimOrderResult) else None
    if result.success:
        return Confirmed(order_id)
    return Rejected(result.error_code, result.error_message or "", order_id)


def _in_window(stamp: datetime, start: datetime, end: datetime | None) -> bool:
    return start <= stamp and (end is None or stamp <= end)


class SimBroker:
    """The async Broker port over a :class:`SimExchange`. See the module docstring."""

    def __init__(
        self, exchange: SimExchange, clock: Clock, latency: LatencyModel | None = None
    ) -> None:
        self._exchange = exchange
        self._clock = clock
        self._latency = latency or LatencyModel()
        self._rng = random.Random(self._latency.seed)
        self._subscriptions: tuple[SimSubscription, ...] = ()
        self._outbox: deque[BrokerEvent] = deque()
        self._last_due = -math.inf
        self._loop: asyncio.AbstractEventLoop | None = None
        self.handler_errors = 0
        self.events_delivered = 0
        self._listener = exchange.listen(self._on_exchange_event)

    @classmethod
    def create(
        cls,
        clock: Clock | None = None,
        *,
        account_id: int = 1,
        balance: Decimal = Decimal("50000"),
        native_brackets: bool = True,
        max_order_size: int | None = 50,
        prices: Mapping[str, Decimal] | None = None,
        latency: LatencyModel | None = None,
        liquidity: int | None = None,
        rules: ExchangeRules | None = None,
    ) -> SimBroker:
        """A ready broker: one account, default contracts, optional starting prices.

        The exchange is reachable as ``broker.exchange`` and the clock as ``broker.clock``;
        ``rules`` picks its readings of unconfirmed ProjectX behaviour (default: the defaults).
        Without a clock it runs on the system clock, as an :class:`OrderManager` does by default:
        the two must share one time, or the manager's order searches (windows on its clock)
        miss what the exchange stamped on its own. Pass a ``VirtualClock`` (to both) for
        deterministic runs.
        """
        clock = clock or SystemClock()
        exchange = SimExchange(clock, liquidity=liquidity, rules=rules)
        exchange.open_account(
            account_id,
            f"SIM-{account_id}",
            balance,
            native_brackets=native_brackets,
            max_order_size=max_order_size,
        )
        for contract_id, price in (prices or {}).items():
            exchange.set_price(contract_id, price)
        return cls(exchange, clock, latency)

    @property
    def exchange(self) -> SimExchange:
        return self._exchange

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def latency(self) -> LatencyModel:
        return self._latency

    def close(self) -> None:
        """Stop listening to the exchange (events already scheduled are still delivered)."""
        self._listener.close()

    # -- plumbing ---------------------------------------------------------------------------------
    def _delay(self, base: float) -> float:
        jitter = self._latency.jitter
        return base + self._rng.uniform(0.0, jitter) if jitter > 0 else base

    async def _wait(self, base: float) -> None:
        delay = self._delay(base)
        if delay > 0:
            await self._clock.sleep(delay)

    async def _call(self, action: Callable[[], T]) -> T:
        """One request: latency there, the exchange call, latency back."""
        self._loop = asyncio.get_running_loop()
        await self._wait(self._latency.request)
        try:
            return action()
        except UnknownAccountError as exc:
            raise OrderRejectedError(str(exc), code=_ACCOUNT_NOT_FOUND) from exc
        finally:
            await self._wait(self._latency.response)

    # -- events -----------------------------------------------------------------------------------
    def subscribe(self, handler: EventHandler) -> SimSubscription:
        """Deliver each later event to ``handler``, from the event loop, ``latency.event`` later."""
        with contextlib.suppress(RuntimeError):  # subscribing outside a loop is allowed
            self._loop = asyncio.get_running_loop()
        subscription = SimSubscription(self, handler)
        self._subscriptions = (*self._subscriptions, subscription)
        return subscription

    def _unsubscribe(self, subscription: SimSubscription) -> None:
        self._subscriptions = tuple(s for s in self._subscriptions if s is not subscription)

    def emit(self, event: BrokerEvent) -> None:
        """Send an extra event down the same path (e.g. a ``ConnectionEvent`` in a test)."""
        self._on_exchange_event(event)

    def _on_exchange_event(self, event: BrokerEvent) -> None:
        if not self._subscriptions:
            return  # nobody listens; a later subscriber must not see old events
        self._outbox.append(event)
        now = self._clock.monotonic()
        # Never earlier than the previous event: delivery keeps the exchange's order.
        due = max(now + self._delay(self._latency.event), self._last_due)
        self._last_due = due
        if due > now:
            self._clock.call_later(due - now, self._deliver_next)
            return
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = self._loop if self._loop is not None and not self._loop.is_closed() else None
        if loop is not None:
            loop.call_soon(self._deliver_next)
        else:
            self._deliver_next()  # no event loop at all (a plain script): deliver in line

    def _deliver_next(self) -> None:
        # One callback per event, each taking the oldest: order holds even if timers due at the
        # same instant fire in another order.
        if not self._outbox:
            return
        event = self._outbox.popleft()
        self.events_delivered += 1
        for subscription in self._subscriptions:
            if not subscription.active:
                continue
            try:
                subscription.handler(event)
            except Exception:
                self.handler_errors += 1
                log.exception("broker event handler failed on %r", event)

    # -- mutations --------------------------------------------------------------------------------
    async def place_order(self, request: OrderRequest) -> Outcome:
        return _outcome(await self._call(lambda: self._exchange.place(request)))

    async def cancel_order(self, account_id: int, order_id: int) -> Outcome:
        return _outcome(await self._call(lambda: self._exchange.cancel(account_id, order_id)))

    async def modify_order(
        self,
        account_id: int,
        order_id: int,
        *,
        size: int | None = None,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
        trail_price: Decimal | None = None,
    ) -> Outcome:
        def action() -> SimResult:
            return self._exchange.modify(
                account_id,
                order_id,
                size=size,
                limit_price=limit_price,
                stop_price=stop_price,
                trail_price=trail_price,
            )

        return _outcome(await self._call(action))

    async def close_position(self, account_id: int, contract_id: str) -> Outcome:
        return _outcome(
            await self._call(lambda: self._exchange.close_position(account_id, contract_id))
        )

    async def partial_close_position(self, account_id: int, contract_id: str, size: int) -> Outcome:
        return _outcome(
            await self._call(lambda: self._exchange.partial_close(account_id, contract_id, size))
        )

    # -- queries ----------------------------------------------------------------------------------
    async def search_orders(
        self, account_id: int, start: datetime, end: datetime | None = None
    ) -> list[Order]:
        """All orders created in ``[start, end]`` (inclusive), every status, in creation order."""
        return await self._call(lambda: self._exchange.orders(account_id, start, end))

    async def search_open_orders(self, account_id: int) -> list[Order]:
        return await self._call(lambda: self._exchange.open_orders(account_id))

    async def get_order(self, account_id: int, order_id: int) -> Order | None:
        return await self._call(lambda: self._exchange.order(account_id, order_id))

    async def search_positions(self, account_id: int) -> list[Position]:
        return await self._call(lambda: self._exchange.positions(account_id))

    async def search_trades(
        self, account_id: int, start: datetime, end: datetime | None = None
    ) -> list[Trade]:
        trades = await self._call(lambda: self._exchange.trades(account_id))
        return [t for t in trades if _in_window(t.creation_timestamp, start, end)]

    async def get_accounts(self) -> list[Account]:
        return await self._call(self._exchange.accounts)

    async def get_contract(self, contract_id: str) -> Contract | None:
        return await self._call(lambda: self._exchange.contract(contract_id))

    async def search_contracts(self, text: str) -> list[Contract]:
        return await self._call(lambda: self._exchange.search_contracts(text))

    async def get_capabilities(self, account_id: int) -> AccountCapabilities:
        return await self._call(lambda: self._exchange.capabilities(account_id))

    async def get_last_price(self, contract_id: str) -> Decimal | None:
        return await self._call(lambda: self._exchange.last_price(contract_id))


__all__ = ["LatencyModel", "SimBroker", "SimSubscription"]
