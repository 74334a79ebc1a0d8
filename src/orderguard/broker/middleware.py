"""BrokerMiddleware: the one delegating base for everything that wraps a Broker.

A wrapper — the fault injector, the guarded gateway, the chaos process boundary, the counting
broker — differs from the broker inside it only in what happens *around* each call. So the port is
forwarded once, here: every method describes its call as a :class:`BrokerCall` and hands it to
:meth:`~BrokerMiddleware.around_mutation` or :meth:`~BrokerMiddleware.around_query`. By default
those run :meth:`~BrokerMiddleware.before`, the call on the inner broker, then
:meth:`~BrokerMiddleware.after`. A subclass overrides the hooks it needs:

* ``before``/``after`` to watch or stop a call (count it, refuse it from a dead process);
* ``around_*`` to decide whether, when and how often the inner call runs (inject a fault, queue
  for the rate limiter, retry a read);
* a port method itself only where the call changes shape (the gateway's coalesced reads).

Every method also takes an optional ``priority``: the lane the caller asks for (protective,
flatten, normal, query). Only middleware that orders calls (the guarded gateway) reads it; the
others let it pass, and it never reaches the inner broker, whose port has no lanes.
``subscribe`` is forwarded as is unless a subclass overrides it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

from orderguard.broker.base import (
    AccountCapabilities,
    Broker,
    EventHandler,
    Outcome,
    Subscription,
)
from orderguard.models import Account, Contract, Order, OrderRequest, Position, Trade
from orderguard.resilience.ratelimit import Priority

T = TypeVar("T")

MUTATIONS = (
    "place_order",
    "cancel_order",
    "modify_order",
    "close_position",
    "partial_close_position",
)
"""The port's mutations by name, in the order the port lists them."""

QUERIES = (
    "search_orders",
    "search_open_orders",
    "get_order",
    "search_positions",
    "search_trades",
    "get_accounts",
    "get_contract",
    "search_contracts",
    "get_capabilities",
    "get_last_price",
)
"""The port's queries by name, in the order the port lists them."""


def _describe_place(call: BrokerCall[Any]) -> str:
    r = call.request
    assert r is not None
    return f"{r.side.name} {r.size} {r.type.name} {r.contract_id} tag={r.custom_tag}"


def _describe_modify(call: BrokerCall[Any]) -> str:
    order_id, size, limit_price, stop_price = call.args
    return f"order {order_id} size={size} limit={limit_price} stop={stop_price}"


def _describe_partial_close(call: BrokerCall[Any]) -> str:
    contract_id, size = call.args
    return f"{contract_id} size={size}"


_DESCRIBE: dict[str, Callable[[BrokerCall[Any]], str]] = {
    "place_order": _describe_place,
    "cancel_order": lambda call: f"order {call.args[0]}",
    "modify_order": _describe_modify,
    "close_position": lambda call: str(call.args[0]),
    "partial_close_position": _describe_partial_close,
}


@dataclass(frozen=True, slots=True)
class BrokerCall(Generic[T]):
    """One call of the port, as the middleware sees it.

    ``run`` makes the same call on the inner broker (it can be awaited once, later or never).
    ``request`` is set for ``place_order``; ``args`` holds what :attr:`what` describes.
    """

    op: str
    run: Callable[[], Awaitable[T]]
    account_id: int | None = None
    priority: Priority | None = None
    request: OrderRequest | None = None
    args: tuple[object, ...] = ()

    @property
    def what(self) -> str:
        """For logs: what a mutation changes ("" for a query). Formatted only when asked."""
        describe = _DESCRIBE.get(self.op)
        return "" if describe is None else describe(self)


class BrokerMiddleware:
    """The :class:`~orderguard.broker.base.Broker` port over ``inner`` (see the module)."""

    def __init__(self, inner: Broker) -> None:
        self.inner = inner

    # -- hooks -------------------------------------------------------------------------------
    def before(self, call: BrokerCall[Any]) -> None:
        """Runs before every call reaches the inner broker; raising stops the call."""

    def after(self, call: BrokerCall[Any], result: object) -> None:
        """Runs after every call that returned (not after one that raised)."""

    async def around_mutation(self, call: BrokerCall[Outcome]) -> Outcome:
        """One mutation: by default ``before``, the inner call, ``after``."""
        self.before(call)
        outcome = await call.run()
        self.after(call, outcome)
        return outcome

    async def around_query(self, call: BrokerCall[T]) -> T:
        """One read: by default ``before``, the inner call, ``after``."""
        self.before(call)
        result = await call.run()
        self.after(call, result)
        return result

    # -- mutations ---------------------------------------------------------------------------
    async def place_order(
        self, request: OrderRequest, *, priority: Priority | None = None
    ) -> Outcome:
        return await self.around_mutation(
            BrokerCall(
                "place_order",
                lambda: self.inner.place_order(request),
                request.account_id,
                priority,
                request,
            )
        )

    async def cancel_order(
        self, account_id: int, order_id: int, *, priority: Priority | None = None
    ) -> Outcome:
        return await self.around_mutation(
            BrokerCall(
                "cancel_order",
                lambda: self.inner.cancel_order(account_id, order_id),
                account_id,
                priority,
                args=(order_id,),
            )
        )

    async def modify_order(
        self,
        account_id: int,
        order_id: int,
        *,
        size: int | None = None,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
        trail_price: Decimal | None = None,
        priority: Priority | None = None,
    ) -> Outcome:
        return await self.around_mutation(
            BrokerCall(
                "modify_order",
                lambda: self.inner.modify_order(
                    account_id,
                    order_id,
                    size=size,
                    limit_price=limit_price,
                    stop_price=stop_price,
                    trail_price=trail_price,
                ),
                account_id,
                priority,
                args=(order_id, size, limit_price, stop_price),
            )
        )

    async def close_position(
        self, account_id: int, contract_id: str, *, priority: Priority | None = None
    ) -> Outcome:
        return await self.around_mutation(
            BrokerCall(
                "close_position",
                lambda: self.inner.close_position(account_id, contract_id),
                account_id,
                priority,
                args=(contract_id,),
            )
        )

    async def partial_close_position(
        self, account_id: int, contract_id: str, size: int, *, priority: Priority | None = None
    ) -> Outcome:
        return await self.around_mutation(
            BrokerCall(
                "partial_close_position",
                lambda: self.inner.partial_close_position(account_id, contract_id, size),
                account_id,
                priority,
                args=(contract_id, size),
            )
        )

    # -- queries -----------------------------------------------------------------------------
    async def search_orders(
        self,
        account_id: int,
        start: datetime,
        end: datetime | None = None,
        *,
        priority: Priority | None = None,
    ) -> list[Order]:
        return await self.around_query(
            BrokerCall(
                "search_orders",
                lambda: self.inner.search_orders(account_id, start, end),
                account_id,
                priority,
            )
        )

    async def search_open_orders(
        self, account_id: int, *, priority: Priority | None = None
    ) -> list[Order]:
        return await self.around_query(
            BrokerCall(
                "search_open_orders",
                lambda: self.inner.search_open_orders(account_id),
                account_id,
                priority,
            )
        )

    async def get_order(
        self, account_id: int, order_id: int, *, priority: Priority | None = None
    ) -> Order | None:
        return await self.around_query(
            BrokerCall(
                "get_order",
                lambda: self.inner.get_order(account_id, order_id),
                account_id,
                priority,
            )
        )

    async def search_positions(
        self, account_id: int, *, priority: Priority | None = None
    ) -> list[Position]:
        return await self.around_query(
            BrokerCall(
                "search_positions",
                lambda: self.inner.search_positions(account_id),
                account_id,
                priority,
            )
        )

    async def search_trades(
        self,
        account_id: int,
        start: datetime,
        end: datetime | None = None,
        *,
        priority: Priority | None = None,
    ) -> list[Trade]:
        return await self.around_query(
            BrokerCall(
                "search_trades",
                lambda: self.inner.search_trades(account_id, start, end),
                account_id,
                priority,
            )
        )

    async def get_accounts(self, *, priority: Priority | None = None) -> list[Account]:
        return await self.around_query(
            BrokerCall("get_accounts", self.inner.get_accounts, None, priority)
        )

    async def get_contract(
        self, contract_id: str, *, priority: Priority | None = None
    ) -> Contract | None:
        return await self.around_query(
            BrokerCall("get_contract", lambda: self.inner.get_contract(contract_id), None, priority)
        )

    async def search_contracts(
        self, text: str, *, priority: Priority | None = None
    ) -> list[Contract]:
        return await self.around_query(
            BrokerCall(
                "search_contracts", lambda: self.inner.search_contracts(text), None, priority
            )
        )

    async def get_capabilities(
        self, account_id: int, *, priority: Priority | None = None
    ) -> AccountCapabilities:
        return await self.around_query(
            BrokerCall(
                "get_capabilities",
                lambda: self.inner.get_capabilities(account_id),
                account_id,
                priority,
            )
        )

    async def get_last_price(
        self, contract_id: str, *, priority: Priority | None = None
    ) -> Decimal | None:
        return await self.around_query(
            BrokerCall(
                "get_last_price", lambda: self.inner.get_last_price(contract_id), None, priority
            )
        )

    # -- events ------------------------------------------------------------------------------
    def subscribe(self, handler: EventHandler) -> Subscription:
        return self.inner.subscribe(handler)


__all__ = ["MUTATIONS", "QUERIES", "BrokerCall", "BrokerMiddleware"]
