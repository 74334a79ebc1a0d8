"""Simulated fills per second on the synchronous core of the simulated exchange.

Workload: one account on MNQ with a listener attached (as SimBroker always has). Each price step
keeps about ``BOOK`` resting limit orders on both sides of a seeded random walk (1 to 8 ticks away)
and sends a few market orders; a step moves the market, which fills every crossed limit. Bracketed
entries (native SL/TP legs) are mixed in so the OCO path is exercised too. The clock is virtual (no
event loop), the timer is wall time. Prints each run and the median fills/s.

Run: ``.venv/bin/python benchmarks/bench_sim_fills.py [--fills N] [--runs R]``
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from decimal import Decimal

from orderguard.broker.base import BrokerEvent, OrderEvent, TradeEvent
from orderguard.broker.sim import RandomWalkPrices, SimExchange
from orderguard.clock import VirtualClock
from orderguard.models import BracketSpec, OrderRequest, OrderSide, OrderType

MNQ = "CON.F.US.MNQ.Z26"
TICK = Decimal("0.25")
BOOK = 200  # resting orders kept working
MARKETS_PER_STEP = 4
BRACKET_EVERY = 10  # every 10th market order carries native brackets
SL = BracketSpec(-8, OrderType.STOP)
TP = BracketSpec(8, OrderType.LIMIT)


class Counter:
    """The listener: counts fills and tracks working orders, like a client's order tracker."""

    def __init__(self) -> None:
        self.fills = 0
        self.events = 0
        self.working: set[int] = set()

    def __call__(self, event: BrokerEvent) -> None:
        self.events += 1
        if isinstance(event, TradeEvent):
            self.fills += 1
        elif isinstance(event, OrderEvent):
            order = event.order
            if order.is_terminal:
                self.working.discard(order.id)
            else:
                self.working.add(order.id)


def run_once(target_fills: int, seed: int) -> tuple[int, int, float]:
    """Return (fills, events, seconds) for one run of at least ``target_fills`` fills."""
    clock = VirtualClock()
    exchange = SimExchange(clock)
    exchange.open_account(1, "BENCH", Decimal("10000000"), max_order_size=None)
    counter = Counter()
    exchange.listen(counter)
    rng = random.Random(seed)
    prices = RandomWalkPrices(seed=seed, start=Decimal("21000"), tick=TICK, max_ticks_per_step=4)
    exchange.set_price(MNQ, next(prices))
    markets = 0
    started = time.perf_counter()
    while counter.fills < target_fills:
        last = exchange.last_price(MNQ) or Decimal("21000")
        while len(counter.working) < BOOK:
            buy = rng.random() < 0.5
            offset = TICK * rng.randint(1, 8)
            exchange.place(
                OrderRequest(
                    1, MNQ, OrderType.LIMIT,
                    OrderSide.BUY if buy else OrderSide.SELL,
                    rng.randint(1, 3),
                    limit_price=last - offset if buy else last + offset,
                )
            )  # fmt: skip
        for _ in range(MARKETS_PER_STEP):
            markets += 1
            bracket = markets % BRACKET_EVERY == 0
            exchange.place(
                OrderRequest(
                    1, MNQ, OrderType.MARKET, OrderSide.BUY, rng.randint(1, 3),
                    stop_loss_bracket=SL if bracket else None,
                    take_profit_bracket=TP if bracket else None,
                )
            )  # fmt: skip
            exchange.place(
                OrderRequest(1, MNQ, OrderType.MARKET, OrderSide.SELL, rng.randint(1, 3))
            )
        exchange.set_price(MNQ, next(prices))
    elapsed = time.perf_counter() - started
    return counter.fills, counter.events, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fills", type=int, default=100_000, help="fills per run")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rates: list[float] = []
    for run in range(args.runs):
        fills, events, seconds = run_once(args.fills, seed=run)
        rate = fills / seconds
        rates.append(rate)
        print(f"run {run}: {fills} fills, {events} events in {seconds:.3f} s = {rate:,.0f} fills/s")
    print(f"median: {statistics.median(rates):,.0f} fills/s over {args.runs} runs")


if __name__ == "__main__":
    main()
