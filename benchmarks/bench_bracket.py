"""Bracket benchmarks: time to protection in round trips, and brackets per second in-process.

1. Time to protection (fill event -> stop confirmed) with the exchange's latency model at a fixed
   20 ms each way (request, response and event), on the virtual clock, in client-side mode (stop
   and target sent in parallel: target p99 <= 1.2 round trips) and native mode (0: the legs are
   created by the exchange with the fill). Market and resting-limit entries both.
2. Brackets per second in-process: market brackets placed, protected and closed by their target
   with zero latency (wall time, virtual clock), client-side and native.

Run: ``.venv/bin/python benchmarks/bench_bracket.py [--brackets N]``
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import time
from decimal import Decimal

from orderguard.broker.sim import LatencyModel, SimBroker
from orderguard.clock import VirtualClock
from orderguard.config import OrderManagerConfig
from orderguard.models import OrderSide
from orderguard.orders import OrderManager
from orderguard.orders.exposure import percentile

MNQ = "CON.F.US.MNQ.Z26"
D = Decimal
ONE_WAY = 0.020
ROUND_TRIP = 2 * ONE_WAY


async def _manager(
    native: bool, latency: LatencyModel | None, *, market_check: bool = True
) -> tuple[VirtualClock, SimBroker, OrderManager]:
    clock = VirtualClock()
    sim = SimBroker.create(
        clock,
        prices={MNQ: D("21000")},
        native_brackets=native,
        latency=latency,
        max_order_size=None,
    )
    config = OrderManagerConfig(validate_stop_against_market=market_check)
    manager = OrderManager(sim, clock=clock, rng=random.Random(1), config=config)
    await clock.run(manager.start())
    return clock, sim, manager


async def time_to_protection(native: bool, n: int, *, market_check: bool = True) -> list[float]:
    """Round trips from the fill event to the confirmed stop, one sample per bracket."""
    latency = LatencyModel(request=ONE_WAY, response=ONE_WAY, event=ONE_WAY)
    clock, sim, manager = await _manager(native, latency, market_check=market_check)
    samples: list[float] = []
    for i in range(n):
        market = i % 2 == 0
        if market:
            r = await clock.run(
                manager.place_bracket_order(
                    MNQ, OrderSide.BUY, 1, None, D("20990"), D("21010"), entry_type="market"
                )
            )
        else:
            r = await clock.run(
                manager.place_bracket_order(
                    MNQ, OrderSide.BUY, 1, D("20999"), D("20990"), D("21010")
                )
            )
            sim.exchange.set_price(MNQ, D("20998"))  # the resting entry fills
            await clock.run(manager.wait_for_protection(r.operation_id))
        saga = manager.brackets._sagas[r.operation_id]
        samples.extend(t / ROUND_TRIP for t in saga.meter.times_to_protection)
        sim.exchange.set_price(MNQ, D("21012"))  # close every bracket by its target
        await clock.run(manager.wait_for_completion(r.operation_id))
        sim.exchange.set_price(MNQ, D("21000"))
        await clock.advance(1.0)
    await manager.cleanup()
    return samples


async def throughput(native: bool, n: int) -> float:
    """Market brackets per wall-clock second: placed, protected, closed, finished."""
    clock, sim, manager = await _manager(native, None)
    started = time.perf_counter()
    batch = 50
    for start in range(0, n, batch):
        ids = []
        for _ in range(min(batch, n - start)):
            r = await clock.run(
                manager.place_bracket_order(
                    MNQ, OrderSide.BUY, 1, None, D("20990"), D("21010"), entry_type="market"
                )
            )
            ids.append(r.operation_id)
        sim.exchange.set_price(MNQ, D("21012"))
        for op_id in ids:
            await clock.run(manager.wait_for_completion(op_id))
        sim.exchange.set_price(MNQ, D("21000"))
    elapsed = time.perf_counter() - started
    await manager.cleanup()
    return n / elapsed


async def main(brackets: int, samples: int) -> None:
    logging.disable(logging.WARNING)
    print(f"time to protection, latency {ONE_WAY * 1000:.0f} ms each way ({samples} brackets):")
    modes = (
        ("client-side", False, True),
        ("client-side, no stop-vs-market query", False, False),
        ("native", True, True),
    )
    for label, native, check in modes:
        rt = sorted(await time_to_protection(native, samples, market_check=check))
        print(
            f"  {label:38s} p50 {percentile(rt, 0.5):.3f} RT   p99 {percentile(rt, 0.99):.3f} RT"
            f"   max {max(rt):.3f} RT   (n={len(rt)})"
        )
    print(f"throughput, zero latency ({brackets} market brackets, placed -> protected -> closed):")
    for native in (False, True):
        rate = await throughput(native, brackets)
        mode = "native     " if native else "client-side"
        print(f"  {mode}  {rate:,.0f} brackets/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brackets", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.brackets, args.samples))
