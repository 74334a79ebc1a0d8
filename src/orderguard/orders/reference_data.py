"""Broker reference data the OrderManager checks requests against: accounts, size caps, the market.

Accounts are read at start and again when an id is not among them, before it is refused (the
account may have been opened since); each account's maximum order size is read once and cached for
the manager's life. The last price is read on every check that needs it: it is the one that moves.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal

from orderguard.broker.base import Broker
from orderguard.config import OrderManagerConfig
from orderguard.errors import UnknownAccountError
from orderguard.models import Account, Contract, Order, OrderSide
from orderguard.orders.send.validation import check_account_id, check_stop_vs_market


class ReferenceData:
    """Accounts, order-size caps, stop-vs-market checks and the order-search window.

    ``default_account`` returns the manager's default account (it raises while the manager is not
    started); requests that name no account use it.
    """

    def __init__(
        self,
        broker: Broker,
        config: OrderManagerConfig,
        default_account: Callable[[], int],
    ) -> None:
        self._broker = broker
        self._config = config
        self._default_account = default_account
        self._accounts: dict[int, Account] = {}
        self._max_size: dict[int, int] = {}

    async def resolve_default(self, requested: int | None) -> Account:
        """The account to start on: ``requested`` if the broker knows it, else the first
        tradable one the broker lists."""
        await self._load_accounts()
        if requested is not None:
            return await self._known_account(requested)
        tradable = [a for a in self._accounts.values() if a.can_trade]
        if not tradable:
            raise UnknownAccountError("the broker lists no tradable account")
        return tradable[0]

    async def _load_accounts(self) -> None:
        self._accounts = {a.id: a for a in await self._broker.get_accounts()}

    async def _known_account(self, account_id: object) -> Account:
        acct = check_account_id(account_id)
        account = self._accounts.get(acct)
        if account is None:
            await self._load_accounts()  # opened since we last looked?
            account = self._accounts.get(acct)
        if account is None:
            raise UnknownAccountError(f"account {acct} is not known to the broker")
        return account

    async def trading_account(self, account_id: int | None) -> int:
        if account_id is None:
            return self._default_account()
        account = await self._known_account(account_id)
        if not account.can_trade:
            raise UnknownAccountError(f"account {account.id} is not allowed to trade")
        return account.id

    async def any_account(self, account_id: int | None, known: Order | None) -> int:
        if account_id is not None:
            return (await self._known_account(account_id)).id
        if known is not None:
            return known.account_id
        return self._default_account()

    def cached_max_order_size(self, account_id: int) -> int | None:
        """The account's maximum order size if it was read already (no I/O)."""
        return self._max_size.get(account_id)

    async def max_order_size(self, account_id: int) -> int:
        cached = self._max_size.get(account_id)
        if cached is not None:
            return cached
        caps = await self._broker.get_capabilities(account_id)
        limit = self._config.max_order_size
        if caps.max_order_size is not None:
            limit = min(limit, caps.max_order_size)
        self._max_size[account_id] = limit
        return limit

    async def check_stop(self, contract: Contract, side: OrderSide, stop: Decimal) -> None:
        if not self._config.validate_stop_against_market:
            return
        last = await self._broker.get_last_price(contract.id)
        check_stop_vs_market(
            side, stop, last, allow_unknown=self._config.allow_stop_without_last_price
        )

    def window_start(self, reference: datetime) -> datetime:
        return reference - timedelta(hours=self._config.unknown_resolution_window_hours)


__all__ = ["ReferenceData"]
