"""Drives a simulated market: feeds a price path into the exchange, paced by the injected clock."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from decimal import Decimal
from types import TracebackType

from orderguard.clock import Clock

from .exchange import SimExchange
from .prices import RandomWalkPrices


class MarketDriver:
    """Moves one contract's price every ``interval`` seconds of the clock.

    ``step()`` applies the next price synchronously (handy in tests). ``start()`` applies the first
    price at once, so the market is priced when it returns, then steps every ``interval`` in a
    background task until ``stop()`` or until the price source is exhausted.
    """

    def __init__(
        self,
        exchange: SimExchange,
        clock: Clock,
        contract_id: str,
        prices: Iterator[Decimal] | None = None,
        interval: float = 0.25,
    ) -> None:
        contract = exchange.contract(contract_id)
        if contract is None:
            raise ValueError(f"unknown contract {contract_id!r}")
        if interval <= 0:
            raise ValueError("interval must be positive")
        self._exchange = exchange
        self._clock = clock
        self.contract_id = contract.id
        self._prices: Iterator[Decimal] = prices or RandomWalkPrices(tick=contract.tick_size)
        self.interval = interval
        self.steps = 0
        self.exhausted = False
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def step(self) -> Decimal | None:
        """Apply the next price; None (and ``exhausted``) when the source has no more."""
        price = next(self._prices, None)
        if price is None:
            self.exhausted = True
            return None
        self._exchange.set_price(self.contract_id, price)
        self.steps += 1
        return price

    async def start(self) -> None:
        if self.running:
            return
        if self.step() is None:
            return
        self._task = asyncio.create_task(self._loop(), name=f"market-driver-{self.contract_id}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _loop(self) -> None:
        while True:
            await self._clock.sleep(self.interval)
            if self.step() is None:
                return

    async def __aenter__(self) -> MarketDriver:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


__all__ = ["MarketDriver"]
