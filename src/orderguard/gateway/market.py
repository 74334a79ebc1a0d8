"""The simulated market behind the market hub: price paths, trade prints, quotes and depth.

Each listed contract gets a :class:`~orderguard.broker.sim.driver.MarketDriver` that steps a seeded
random walk (or a replayed series) on the injected clock. Every new price — from a driver or from
the control API — reaches :meth:`MarketFeed.on_quote` through the exchange's event stream, and
becomes one trade print (recorded in the bar history) and the three market-hub payloads:

* ``GatewayQuote`` — one object: symbolId, last, best bid/ask, session open/high/low/volume.
* ``GatewayTrade`` — an array of prints: ``{symbolId, price, timestamp, type, volume}``; an up
  move is a buy (``type`` 0), a down move a sell (1), an unchanged price repeats the last side.
* ``GatewayDepth`` — an array of levels ``{timestamp, type, price, volume, currentVolume}``: the
  best bid/ask (types 4/3) and ``depth_levels - 1`` more on each side (2 Bid, 1 Ask), each a
  full replacement of the size at its price (§6.3), sizes drawn from the seeded generator.

Sizes and volumes come from one ``random.Random`` per contract derived from the seed, so the same
seed and the same price path give the same prints.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from orderguard.broker.base import QuoteEvent
from orderguard.broker.sim import MarketDriver, RandomWalkPrices, ScriptedPrices, SimExchange
from orderguard.clock import Clock
from orderguard.models import Contract

from .bars import BarHistory

# Where each default contract starts when nothing else is said (near 2026 levels).
DEFAULT_START = {"MNQ": Decimal("21000"), "ENQ": Decimal("21000"), "MES": Decimal("6000")}
FALLBACK_START = Decimal("6000")


class DomType:
    """``DomType`` wire values (§4)."""

    UNKNOWN = 0
    ASK = 1
    BID = 2
    BEST_ASK = 3
    BEST_BID = 4
    TRADE = 5
    RESET = 6


@dataclass(frozen=True, slots=True)
class MarketUpdate:
    """The market-hub payloads of one price step of one contract."""

    contract_id: str
    quote: dict[str, Any]
    trades: list[dict[str, Any]]
    depth: list[dict[str, Any]]


def start_price(contract: Contract, overrides: Mapping[str, Decimal]) -> Decimal:
    for key in (contract.id, contract.symbol_id, contract.symbol_id.rsplit(".", 1)[-1]):
        if key in overrides:
            return contract.align(overrides[key])
    root = contract.symbol_id.rsplit(".", 1)[-1]
    return contract.align(DEFAULT_START.get(root, FALLBACK_START))


def load_price_file(text: str) -> dict[str, list[Decimal]]:
    """A replay file: one ``CONTRACT,PRICE`` per line (``#`` comments, a header is skipped)."""
    series: dict[str, list[Decimal]] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        contract_id, _, price_text = line.replace(";", ",").partition(",")
        try:
            price = Decimal(price_text.strip())
        except ArithmeticError:
            if number == 1:
                continue  # a header line
            raise ValueError(f"line {number}: {price_text.strip()!r} is not a price") from None
        series.setdefault(contract_id.strip(), []).append(price)
    return series


class MarketFeed:
    """Owns the price drivers and turns quote events into market-hub payloads and bars."""

    def __init__(
        self,
        exchange: SimExchange,
        clock: Clock,
        *,
        seed: int,
        interval: float,
        depth_levels: int,
        history: BarHistory,
    ) -> None:
        self._exchange = exchange
        self._clock = clock
        self._seed = seed
        self._interval = interval
        self._levels = max(1, depth_levels)
        self.history = history
        self.drivers: dict[str, MarketDriver] = {}
        self._rngs: dict[str, random.Random] = {}
        self._last: dict[str, Decimal] = {}
        self._last_side: dict[str, int] = {}
        self.depth_size: int | None = None  # control API: fixed size per level (None: random)

    def _rng(self, contract_id: str) -> random.Random:
        rng = self._rngs.get(contract_id)
        if rng is None:
            rng = random.Random(f"orderguard.gateway.market:{self._seed}:{contract_id}")
            self._rngs[contract_id] = rng
        return rng

    def add_driver(self, contract: Contract, prices: Iterator[Decimal]) -> MarketDriver:
        driver = MarketDriver(self._exchange, self._clock, contract.id, prices, self._interval)
        self.drivers[contract.id] = driver
        return driver

    def random_walk(self, contract: Contract, start: Decimal, index: int) -> RandomWalkPrices:
        return RandomWalkPrices(
            seed=self._seed * 1000 + index, start=start, tick=contract.tick_size
        )

    @staticmethod
    def replay(prices: list[Decimal], loop: bool) -> ScriptedPrices:
        return ScriptedPrices(prices, loop=loop)

    async def start(self) -> None:
        for driver in self.drivers.values():
            await driver.start()

    async def stop(self) -> None:
        for driver in self.drivers.values():
            await driver.stop()

    # -- quote events -> payloads ---------------------------------------------------------------
    def on_quote(self, event: QuoteEvent) -> MarketUpdate | None:
        contract = self._exchange.contract(event.contract_id)
        if contract is None:
            return None
        rng = self._rng(contract.id)
        volume = rng.randint(1, 12)
        previous = self._last.get(contract.id)
        side = self._last_side.get(contract.id, 0)
        if previous is not None and event.last_price != previous:
            side = 0 if event.last_price > previous else 1
        self._last[contract.id] = event.last_price
        self._last_side[contract.id] = side
        self.history.record(contract.id, event.timestamp, event.last_price, volume)
        return MarketUpdate(
            contract.id,
            self.quote_payload(contract, event.timestamp),
            [
                {
                    "symbolId": contract.symbol_id,
                    "price": event.last_price,
                    "timestamp": event.timestamp,
                    "type": side,
                    "volume": volume,
                }
            ],
            self.depth_payload(contract, event.timestamp),
        )

    def quote_payload(self, contract: Contract, now: datetime) -> dict[str, Any]:
        quote = self._exchange.quote(contract.id)
        session = self.history.session(contract.id, now)
        last = quote.last if quote else None
        open_ = session.open if session else last
        change = last - open_ if last is not None and open_ is not None else Decimal(0)
        percent = (change / open_ * 100).quantize(Decimal("0.0001")) if open_ else Decimal(0)
        root = contract.symbol_id.rsplit(".", 1)[-1]
        return {
            "symbol": contract.symbol_id,
            "symbolName": f"/{root}",
            "lastPrice": last,
            "bestBid": quote.bid if quote else None,
            "bestAsk": quote.ask if quote else None,
            "change": change,
            "changePercent": percent,
            "open": open_,
            "high": session.high if session else last,
            "low": session.low if session else last,
            "volume": session.volume if session else 0,
            "lastUpdated": now,
            "timestamp": now,
        }

    def depth_payload(
        self, contract: Contract, now: datetime, *, reset: bool = False
    ) -> list[dict[str, Any]]:
        quote = self._exchange.quote(contract.id)
        if quote is None:
            return []
        rng = self._rng(contract.id)
        levels: list[dict[str, Any]] = []
        if reset:
            levels.append(
                {"timestamp": now, "type": DomType.RESET, "price": 0, "volume": 0,
                 "currentVolume": 0}
            )  # fmt: skip
        tick = contract.tick_size
        for index in range(self._levels):
            for side_type, best_type, price in (
                (DomType.BID, DomType.BEST_BID, quote.bid - tick * index),
                (DomType.ASK, DomType.BEST_ASK, quote.ask + tick * index),
            ):
                if price <= 0:
                    continue
                size = self.depth_size if self.depth_size is not None else rng.randint(1, 60)
                levels.append(
                    {
                        "timestamp": now,
                        "type": best_type if index == 0 else side_type,
                        "price": price,
                        "volume": size,
                        "currentVolume": size,
                    }
                )
        return levels


__all__ = [
    "DEFAULT_START",
    "DomType",
    "MarketFeed",
    "MarketUpdate",
    "load_price_file",
    "start_price",
]
