"""Price history for ``History/retrieveBars``: base bars recorded from the simulated price path.

Every price step of the simulated market is one trade print; it lands in a one-second bar and a
one-minute bar. Requests aggregate those base bars into the asked unit (seconds from second bars,
everything else from minute bars). Before the server starts, :func:`backfill` makes a few days of
seeded minute bars that end at the starting price, so a client that loads history at start-up
(project-x-py's TradingSuite does) sees a market with a past.

Buckets are aligned to the epoch in UTC: a 5-minute bar starts at a multiple of 300 s, a day bar
at 00:00 UTC (real futures trade dates roll at 17:00 Chicago — a simplification), a week on
Sunday 00:00 UTC, a month on its first day. A bar's ``t`` is its start. Pure: no I/O, no clock.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import IntEnum


class BarUnit(IntEnum):
    """``AggregateBarUnit``; 7 Tick is RS-only (UNCONFIRMED) and served only behind a switch."""

    SECOND = 1
    MINUTE = 2
    HOUR = 3
    DAY = 4
    WEEK = 5
    MONTH = 6
    TICK = 7


_SECONDS = {BarUnit.SECOND: 1, BarUnit.MINUTE: 60, BarUnit.HOUR: 3600, BarUnit.DAY: 86400}
_WEEK = 7 * 86400
_SUNDAY_OFFSET = 4 * 86400  # 1970-01-01 was a Thursday; Sunday 1970-01-04 starts week 0
SECOND_BARS_KEPT = 6 * 3600  # six hours of one-second bars per contract


@dataclass(slots=True)
class Bar:
    """One OHLCV bar; ``start`` is epoch seconds (UTC)."""

    start: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int

    def add(self, price: Decimal, volume: int) -> None:
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        self.close = price
        self.volume += volume

    def merge(self, other: Bar) -> None:
        self.high = max(self.high, other.high)
        self.low = min(self.low, other.low)
        self.close = other.close
        self.volume += other.volume

    def copy(self, start: int | None = None) -> Bar:
        return Bar(
            self.start if start is None else start,
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
        )


def bucket_start(epoch: int, unit: BarUnit, number: int) -> int:
    """The start (epoch seconds) of the ``number``-``unit`` bucket holding ``epoch``."""
    if unit in _SECONDS:
        size = _SECONDS[unit] * number
        return epoch - epoch % size
    if unit is BarUnit.WEEK:
        size = _WEEK * number
        shifted = epoch + _SUNDAY_OFFSET
        return shifted - shifted % size - _SUNDAY_OFFSET
    if unit is BarUnit.MONTH:
        moment = datetime.fromtimestamp(epoch, UTC)
        index = moment.year * 12 + moment.month - 1
        index -= index % number
        return int(datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC).timestamp())
    raise ValueError(f"no time buckets for {unit!r}")


def bucket_end(start: int, unit: BarUnit, number: int) -> int:
    if unit in _SECONDS:
        return start + _SECONDS[unit] * number
    if unit is BarUnit.WEEK:
        return start + _WEEK * number
    moment = datetime.fromtimestamp(start, UTC)
    index = moment.year * 12 + moment.month - 1 + number
    return int(datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC).timestamp())


class ContractHistory:
    """Second and minute bars of one contract, oldest first, plus a tick tape for unit 7."""

    def __init__(self) -> None:
        self.seconds: deque[Bar] = deque(maxlen=SECOND_BARS_KEPT)
        self.minutes: list[Bar] = []
        self.ticks: deque[Bar] = deque(maxlen=SECOND_BARS_KEPT)

    def record(self, epoch: int, price: Decimal, volume: int) -> None:
        for bars, size in ((self.seconds, 1), (self.minutes, 60)):
            start = epoch - epoch % size
            if bars and bars[-1].start == start:
                bars[-1].add(price, volume)
            elif not bars or bars[-1].start < start:
                bars.append(Bar(start, price, price, price, price, volume))
            else:  # a clock that went backwards: fold into the newest bar
                bars[-1].add(price, volume)
        self.ticks.append(Bar(epoch, price, price, price, price, volume))


class BarHistory:
    """Bars of every contract the market has traded."""

    def __init__(self) -> None:
        self._contracts: dict[str, ContractHistory] = {}

    def contract(self, contract_id: str) -> ContractHistory:
        return self._contracts.setdefault(contract_id, ContractHistory())

    def record(self, contract_id: str, when: datetime, price: Decimal, volume: int) -> None:
        self.contract(contract_id).record(int(when.timestamp()), price, volume)

    def backfill(
        self,
        contract_id: str,
        *,
        end: datetime,
        last_price: Decimal,
        tick: Decimal,
        days: float,
        seed: int,
    ) -> None:
        """Seeded minute bars for ``days`` before ``end``, the last one closing at ``last_price``.

        Only fills an empty history (a restored or live one is kept).
        """
        history = self.contract(contract_id)
        if history.minutes or days <= 0:
            return
        rng = random.Random(f"orderguard.gateway.bars:{seed}:{contract_id}")
        count = int(days * 1440)
        end_minute = int(end.timestamp()) // 60 * 60
        # Walk backwards from the last price in whole ticks, then build bars forwards.
        ticks = int(last_price / tick)
        closes = [ticks]
        for _ in range(count - 1):
            ticks = max(1, ticks - rng.randint(-6, 6))
            closes.append(ticks)
        closes.reverse()
        previous = closes[0]
        for index, close in enumerate(closes):
            start = end_minute - (count - index) * 60
            wiggle_up, wiggle_down = rng.randint(0, 3), rng.randint(0, 3)
            high = max(previous, close) + wiggle_up
            low = max(1, min(previous, close) - wiggle_down)
            history.minutes.append(
                Bar(
                    start,
                    tick * previous,
                    tick * high,
                    tick * low,
                    tick * close,
                    rng.randint(5, 400),
                )
            )
            previous = close

    def bars(
        self,
        contract_id: str,
        *,
        unit: BarUnit,
        number: int,
        start: datetime,
        end: datetime,
        limit: int,
        include_partial: bool,
        now: datetime,
    ) -> list[Bar]:
        """Bars in ``[start, end]`` (by bar start), newest first, at most ``limit``."""
        history = self._contracts.get(contract_id)
        if history is None:
            return []
        lo, hi, now_epoch = int(start.timestamp()), int(end.timestamp()), int(now.timestamp())
        if unit is BarUnit.TICK:
            ticks = [b for b in history.ticks if lo <= b.start <= hi]
            return [b.copy() for b in reversed(ticks[-limit:])]
        base = history.seconds if unit is BarUnit.SECOND else history.minutes
        out: list[Bar] = []
        current: Bar | None = None
        for bar in base:
            start_of = bucket_start(bar.start, unit, number)
            if start_of < lo or start_of > hi:
                continue
            if current is not None and current.start == start_of:
                current.merge(bar)
            else:
                current = bar.copy(start_of)
                out.append(current)
        if out and not include_partial and bucket_end(out[-1].start, unit, number) > now_epoch:
            out.pop()
        out.reverse()
        return out[:limit]

    def session(self, contract_id: str, now: datetime) -> Bar | None:
        """Today's (UTC) aggregate: open, high, low and cumulative volume for quotes."""
        history = self._contracts.get(contract_id)
        if history is None or not history.minutes:
            return None
        day = bucket_start(int(now.timestamp()), BarUnit.DAY, 1)
        total: Bar | None = None
        for bar in reversed(history.minutes):
            if bar.start < day:
                break
            if total is None:
                total = bar.copy(day)
            else:
                total.open = bar.open
                total.high = max(total.high, bar.high)
                total.low = min(total.low, bar.low)
                total.volume += bar.volume
        return total


def bar_time(bar: Bar) -> datetime:
    return datetime.fromtimestamp(bar.start, UTC)


ONE_DAY = timedelta(days=1)

__all__ = [
    "SECOND_BARS_KEPT",
    "Bar",
    "BarHistory",
    "BarUnit",
    "ContractHistory",
    "bar_time",
    "bucket_end",
    "bucket_start",
]
