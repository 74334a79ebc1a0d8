"""Test-local broker wrappers around SimBroker (fakes, not mocks).

Each wraps a real SimBroker and changes one thing: records mutations, loses answers after applying
the request, drops requests, refuses connections, or reorders/drops events.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from orderguard.broker.base import (
    BrokerEvent,
    EventHandler,
    OrderEvent,
    Outcome,
    Subscription,
    TradeEvent,
    Unknown,
    UnknownOrigin,
)
from orderguard.broker.sim import SimBroker
from orderguard.errors import ConnectionFailedError
from orderguard.models import Order, OrderRequest


class DelegatingBroker:
    """Forwards every Broker call to ``inner`` and records mutations in ``calls``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[str, Any]] = []
        self.placed_tags: list[str | None] = []
        self.searches = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def mutations(self) -> list[tuple[str, Any]]:
        return list(self.calls)

    async def place_order(self, request: OrderRequest) -> Outcome:
        self.calls.append(("place", request))
        self.placed_tags.append(request.custom_tag)
        return await self._place(request)

    async def _place(self, request: OrderRequest) -> Outcome:
        return await self.inner.place_order(request)  # type: ignore[no-any-return]

    async def cancel_order(self, account_id: int, order_id: int) -> Outcome:
        self.calls.append(("cancel", order_id))
        return await self.inner.cancel_order(account_id, order_id)  # type: ignore[no-any-return]

    async def modify_order(self, account_id: int, order_id: int, **changes: Any) -> Outcome:
        self.calls.append(("modify", order_id))
        return await self._modify(account_id, order_id, **changes)

    async def _modify(self, account_id: int, order_id: int, **changes: Any) -> Outcome:
        return await self.inner.modify_order(account_id, order_id, **changes)  # type: ignore[no-any-return]

    async def search_orders(self, account_id: int, start: Any, end: Any = None) -> list[Order]:
        self.searches += 1
        return await self.inner.search_orders(account_id, start, end)  # type: ignore[no-any-return]


class AnswerLostBroker(DelegatingBroker):
    """The first ``lose`` placements/modifies reach the exchange but their answers are lost."""

    def __init__(self, inner: SimBroker, lose: int = 1) -> None:
        super().__init__(inner)
        self.lose = lose

    async def _place(self, request: OrderRequest) -> Outcome:
        outcome: Outcome = await self.inner.place_order(request)
        if self.lose > 0:
            self.lose -= 1
            return Unknown(UnknownOrigin.TIMEOUT_AFTER_SEND, "answer lost")
        return outcome

    async def _modify(self, account_id: int, order_id: int, **changes: Any) -> Outcome:
        outcome: Outcome = await self.inner.modify_order(account_id, order_id, **changes)
        if self.lose > 0:
            self.lose -= 1
            return Unknown(UnknownOrigin.TIMEOUT_AFTER_SEND, "answer lost")
        return outcome


class RequestLostBroker(DelegatingBroker):
    """Placements are swallowed (never reach the exchange) and answered Unknown; kept for later."""

    def __init__(self, inner: SimBroker) -> None:
        super().__init__(inner)
        self.swallowed: list[OrderRequest] = []
        self.losing = True

    async def _place(self, request: OrderRequest) -> Outcome:
        if not self.losing:
            return await super()._place(request)
        self.swallowed.append(request)
        return Unknown(UnknownOrigin.CONNECTION_LOST, "request lost")

    async def deliver_late(self) -> None:
        """The swallowed requests finally reach the exchange (a very late retransmit)."""
        for request in self.swallowed:
            await self.inner.place_order(request)
        self.swallowed.clear()


class RefusingBroker(DelegatingBroker):
    """The first ``refuse`` placements fail with ConnectionFailedError (provably never sent)."""

    def __init__(self, inner: SimBroker, refuse: int) -> None:
        super().__init__(inner)
        self.refuse = refuse

    async def _place(self, request: OrderRequest) -> Outcome:
        if self.refuse > 0:
            self.refuse -= 1
            raise ConnectionFailedError("connection refused")
        return await self.inner.place_order(request)  # type: ignore[no-any-return]


class EventFilterBroker(DelegatingBroker):
    """Delivers events through ``transform`` (drop or reorder); returns what to deliver now."""

    def __init__(
        self, inner: SimBroker, transform: Callable[[BrokerEvent], list[BrokerEvent]]
    ) -> None:
        super().__init__(inner)
        self.transform = transform

    def subscribe(self, handler: EventHandler) -> Subscription:
        def filtered(event: BrokerEvent) -> None:
            for out in self.transform(event):
                handler(out)

        return self.inner.subscribe(filtered)  # type: ignore[no-any-return]


def drop_fill_order_events(event: BrokerEvent) -> list[BrokerEvent]:
    """Lose every order update that reports a fill: only the trades tell."""
    if isinstance(event, OrderEvent) and event.order.fill_volume > 0:
        return []
    return [event]


class TradeFirst:
    """Hold each filled-order update until its trade arrives, then deliver the trade first."""

    def __init__(self) -> None:
        self.held: list[BrokerEvent] = []

    def __call__(self, event: BrokerEvent) -> list[BrokerEvent]:
        if isinstance(event, OrderEvent) and event.order.fill_volume > 0:
            self.held.append(event)
            return []
        if isinstance(event, TradeEvent):
            held, self.held = self.held, []
            return [event, *held]
        return [event]


class OpenOnlyGetOrderBroker(DelegatingBroker):
    """An adapter whose get_order only sees working orders (as some gateways do)."""

    async def get_order(self, account_id: int, order_id: int) -> Order | None:
        order = await self.inner.get_order(account_id, order_id)
        return order if order is not None and order.is_working else None


PRICE = Decimal("21000.00")
