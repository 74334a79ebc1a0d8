"""OrderManager overhead per order: place + cancel of a resting limit order.

Compares, on the simulated exchange under a VirtualClock with zero latency:

* **direct** – ``SimBroker.place_order`` + ``SimBroker.cancel_order`` with a hand-built request (and
  a no-op event subscriber, so the broker schedules the same event deliveries);
* **manager** – ``OrderManager.place_limit_order`` + ``OrderManager.cancel_order`` (validation,
  tag, outcome handling, tracker merge of every event, cancel final-state confirmation).

Each iteration is timed from the first call until its events have been delivered. The figure is the
median manager iteration minus the median direct iteration. Run::

    .venv/bin/python benchmarks/bench_manager_overhead.py [-n 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import time
from decimal import Decimal

from orderguard.broker.base import BrokerEvent, Confirmed
from orderguard.broker.sim import LatencyModel, SimBroker, SimExchange, default_contracts
from orderguard.clock import VirtualClock
from orderguard.config import OrderManagerConfig
from orderguard.models import OrderRequest, OrderSide, OrderType
from orderguard.orders import OrderManager

MNQ = "CON.F.US.MNQ.Z26"
PRICE = Decimal("20990.00")


def _sim() -> tuple[VirtualClock, SimBroker]:
    clock = VirtualClock()
    exchange = SimExchange(clock, contracts=default_contracts())
    exchange.open_account(account_id=1, name="SIM-1", balance=Decimal("50000"), max_order_size=50)
    exchange.set_price(MNQ, Decimal("21000.00"))
    return clock, SimBroker(exchange, clock, latency=LatencyModel())


async def bench_direct(n: int, warmup: int) -> list[float]:
    clock, broker = _sim()

    def ignore(event: BrokerEvent) -> None:
        return None

    subscription = broker.subscribe(ignore)
    samples: list[float] = []
    for i in range(n + warmup):
        start = time.perf_counter_ns()
        request = OrderRequest(
            1, MNQ, OrderType.LIMIT, OrderSide.BUY, 1, PRICE, custom_tag=f"direct-{i}"
        )
        outcome = await broker.place_order(request)
        assert isinstance(outcome, Confirmed) and outcome.order_id is not None
        await broker.cancel_order(1, outcome.order_id)
        await clock.settle()
        if i >= warmup:
            samples.append((time.perf_counter_ns() - start) / 1000)
    subscription.close()
    return samples


async def bench_manager(n: int, warmup: int) -> list[float]:
    clock, broker = _sim()
    samples: list[float] = []
    # The gateway's 200 requests / 60 s budget would make the limiter wait (virtual) time, which is
    # not manager overhead: give it room, but keep it (and the journal, breakers) in the path.
    config = OrderManagerConfig(rate_limit_requests=10**9)
    async with OrderManager(broker, clock=clock, rng=random.Random(1), config=config) as manager:
        for i in range(n + warmup):
            start = time.perf_counter_ns()
            placed = await manager.place_limit_order(MNQ, OrderSide.BUY, 1, PRICE)
            result = await manager.cancel_order(placed.order_id)
            await clock.settle()
            if i >= warmup:
                samples.append((time.perf_counter_ns() - start) / 1000)
            assert result.cancelled
    return samples


def _describe(name: str, samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=10)
    median = statistics.median(samples)
    return f"{name:8s} median {median:8.1f} us   p10 {q[0]:8.1f}   p90 {q[-1]:8.1f}"


async def main(n: int, warmup: int) -> None:
    gc.collect()
    direct = await bench_direct(n, warmup)
    gc.collect()
    managed = await bench_manager(n, warmup)
    print(f"place + cancel of one resting limit order, n={n} (after {warmup} warm-up)")
    print(_describe("direct", direct))
    print(_describe("manager", managed))
    overhead = statistics.median(managed) - statistics.median(direct)
    print(f"manager overhead per order (median): {overhead:.1f} us   (target <= 150 us)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(main(args.n, args.warmup))
