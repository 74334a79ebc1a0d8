"""Price paths for the simulated market: a seeded random walk and a scripted replay.

Both are plain iterators of ``Decimal`` prices on the tick grid, so a run is a pure function of
the seed (or the script). They know nothing about time;
:class:`~orderguard.broker.sim.driver.MarketDriver` paces them on the injected clock.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from decimal import Decimal


class RandomWalkPrices(Iterator[Decimal]):
    """A seeded random walk on the tick grid.

    The first value is ``start`` (aligned to the tick); each later value moves by a uniformly drawn
    whole number of ticks in ``[-max_ticks_per_step, +max_ticks_per_step]``. The walk never goes
    below ``floor`` (default: one tick), so a long run cannot produce a non-positive price.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        start: Decimal = Decimal("21000"),
        tick: Decimal = Decimal("0.25"),
        max_ticks_per_step: int = 4,
        floor: Decimal | None = None,
    ) -> None:
        if tick <= 0:
            raise ValueError("tick must be positive")
        if max_ticks_per_step < 0:
            raise ValueError("max_ticks_per_step must be >= 0")
        self._rng = random.Random(seed)
        self._tick = tick
        self._max = max_ticks_per_step
        self._floor = tick if floor is None else floor
        # Work in integer ticks: exact, and cheaper than Decimal arithmetic per step.
        self._ticks = int((start / tick).to_integral_value())
        self._floor_ticks = int((self._floor / tick).to_integral_value())
        self._started = False

    def __iter__(self) -> RandomWalkPrices:
        return self

    def __next__(self) -> Decimal:
        if self._started:
            step = self._rng.randint(-self._max, self._max)
            self._ticks = max(self._floor_ticks, self._ticks + step)
        self._started = True
        return (self._tick * self._ticks).quantize(self._tick)


class ScriptedPrices(Iterator[Decimal]):
    """Replays a fixed list of prices once (or forever with ``loop=True``), then stops."""

    def __init__(self, prices: Iterable[Decimal | int | str], *, loop: bool = False) -> None:
        self._prices = [Decimal(p) for p in prices]
        self._loop = loop
        self._index = 0

    @property
    def remaining(self) -> int:
        """Prices not yet replayed (always the full length when looping)."""
        return len(self._prices) if self._loop else len(self._prices) - self._index

    def __iter__(self) -> ScriptedPrices:
        return self

    def __next__(self) -> Decimal:
        if self._index >= len(self._prices):
            if not self._loop or not self._prices:
                raise StopIteration
            self._index = 0
        price = self._prices[self._index]
        self._index += 1
        return price


__all__ = ["RandomWalkPrices", "ScriptedPrices"]
