"""Error recovery demo: each feature of the seed, on the embedded exchange, replayable.

Runs offline (no credentials, no network) on the simulated exchange with a virtual clock and a
seeded fault injector, so every run prints the same story::

    .venv/bin/python examples/99_error_recovery_demo.py

1. transaction-like bracket placement (``place_bracket_order``) on ES, closed by its target with
   the stop cancelled as its OCO sibling;
2. position order management on MNQ: a position protected by ``add_stop_loss`` /
   ``add_take_profit`` (the stop's placement answer is lost on the way back and recovered by its
   customTag), protective sizes that follow the position, ``cancel_position_orders`` with counts
   per type and each order's final state, and no exit left once the position is flat;
3. recovery statistics and circuit breaker status.

The exit status is 0 only if the exchange itself ends flat with no working order.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from collections.abc import Awaitable
from decimal import Decimal
from typing import TypeVar

from orderguard import (
    FaultKind,
    FaultPlan,
    FaultyBroker,
    OrderManager,
    OrderSide,
    SimBroker,
    VirtualClock,
)

MNQ = "CON.F.US.MNQ.Z26"
ES = "CON.F.US.EP.Z26"
T = TypeVar("T")


def show(title: str, value: object = None) -> None:
    print(f"\n== {title}")
    if value is not None:
        print(json.dumps(value, indent=2, default=str, sort_keys=True))


def book(sim: SimBroker, contract: str | None = None) -> list[str]:
    """Working orders as the exchange sees them (the truth, not our bookkeeping)."""
    return [
        f"#{o.id} {o.type.name} {o.side.name} {o.remaining} @ {o.stop_price or o.limit_price}"
        f" ({o.status.name.lower()})"
        for o in sim.exchange.orders(1)
        if o.is_working and (contract is None or o.contract_id == contract)
    ]


async def main() -> int:
    clock = VirtualClock()
    sim = SimBroker.create(clock, prices={MNQ: Decimal("21000.00"), ES: Decimal("6000.00")})
    # The stop's placement answer (the 3rd placement) is lost after the exchange executed it,
    # and a cancel is refused: recovery finds the order by its tag and repeats the cancel.
    plan = FaultPlan.none().script("place_order#3=ambiguous", "cancel_order#2=reject")
    broker = FaultyBroker(sim, clock, plan, seed=99)
    manager = OrderManager(broker, clock=clock, rng=random.Random(99))

    async def run(aw: Awaitable[T]) -> T:
        # Virtual time only moves while the demo waits for something (retries, look-ups).
        return await clock.run(aw)

    async def settle(seconds: float = 0.0) -> None:
        await clock.advance(seconds)

    await manager.start()
    try:
        # 1. transaction-like bracket placement (on ES) -----------------------------------------
        bracket = await run(
            manager.place_bracket_order(
                ES, OrderSide.BUY, 1, None, Decimal("5990.00"), Decimal("6010.00"), "market"
            )
        )
        show(
            "bracket order: entry, stop and target as one journaled operation",
            {
                "operation_id": bracket.operation_id,
                "outcome": bracket.outcome,
                "filled_size": bracket.filled_size,
                "protected_size": bracket.protected_size,
                "average_fill_price": bracket.average_fill_price,
                "native": bracket.native,
                "exchange": book(sim, ES),
            },
        )
        sim.exchange.set_price(ES, Decimal("6012.00"))  # the target fills; its sibling must go
        await settle(1.0)
        show(
            "ES target filled: the stop is cancelled with it (OCO)",
            {"position": sim.exchange.position_size(1, ES), "exchange": book(sim, ES)},
        )

        # 2. position order management (on MNQ, outside any bracket) ----------------------------
        await run(manager.place_market_order(MNQ, OrderSide.BUY, 2))
        await settle()
        stop = await run(manager.add_stop_loss(MNQ, Decimal("20990.00")))
        target = await run(manager.add_take_profit(MNQ, Decimal("21010.00")))
        await settle()
        show(
            "protected position (the stop's answer was lost; found by its customTag)",
            {
                "position": sim.exchange.position_size(1, MNQ),
                "stop": {"order_id": stop.order_id, "tag": stop.custom_tag, "how": stop.resolution},
                "target": {"order_id": target.order_id, "tag": target.custom_tag},
                "exchange": book(sim),
            },
        )

        await run(manager.place_market_order(MNQ, OrderSide.BUY, 1))
        await settle()
        show(
            "bought 1 more outside any bracket: the exits follow",
            {"position": sim.exchange.position_size(1, MNQ), "exchange": book(sim)},
        )
        await run(manager.place_limit_order(MNQ, OrderSide.BUY, 1, Decimal("20950.00")))
        result = await run(manager.cancel_position_orders(MNQ, order_types=("entry", "target")))
        show("cancel_position_orders(entry, target): detailed result", result.as_dict())
        show("still working (the stop was not asked for)", book(sim))
        await run(broker.close_position(1, MNQ))
        await settle(1.0)
        await settle(manager.config.position_recheck_interval)
        show(
            "Position/closeContract leaves exits behind at the broker; the watcher cancels them",
            {"position": sim.exchange.position_size(1, MNQ), "exchange": book(sim)},
        )

        # 3. statistics ---------------------------------------------------------------------------
        show("recovery statistics", manager.get_recovery_statistics())
        show("stop operation", await manager.get_operation_status(stop.operation_id))
        show("circuit breaker status", manager.get_circuit_breaker_status())
        show("injected faults", {k.value: v for k, v in broker.fault_counts.items()})
        assert FaultKind.AMBIGUOUS in broker.fault_counts
    finally:
        await manager.cleanup()

    flat = all(sim.exchange.position_size(1, c) == 0 for c in (MNQ, ES))
    safe = flat and not book(sim)
    print("\nresult:", "SAFE: flat, no working order" if safe else "UNSAFE")
    return 0 if safe else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
