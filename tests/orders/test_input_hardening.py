"""Out-of-range prices and durations are typed errors before anything is written or sent (10.9).

Prices at or above 1e27 (beyond the 28 digits of the default Decimal context: tick arithmetic
raised ``decimal.InvalidOperation``), NaN, infinities and negative zero give
:class:`~orderguard.errors.InvalidPriceError`; negative, NaN or infinite deadlines and timeouts
give :class:`~orderguard.errors.ValidationError`. Each test checks the exchange's order list and
the memory journal's records are exactly as before the call.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from orderguard import errors
from orderguard.broker.sim import SimBroker
from orderguard.clock import VirtualClock
from orderguard.journal import MemoryJournal
from orderguard.models import OrderSide
from orderguard.orders import OrderManager
from orderguard.orders.oco.engine import OcoLeg
from orderguard.recovery.operations import OperationType

MNQ = "CON.F.US.MNQ.Z26"
BUY, SELL = OrderSide.BUY, OrderSide.SELL
OK_STOP, OK_TARGET = Decimal("20990.00"), Decimal("21010.00")

BAD_PRICES: list[Any] = [
    Decimal("1e27"),
    Decimal("123456789012345678901234567890.25"),
    10**30,
    1e30,
    "1E+40",
    Decimal("NaN"),
    Decimal("sNaN"),
    float("nan"),
    "NaN",
    Decimal("Infinity"),
    float("inf"),
    "-Infinity",
    Decimal("-0"),
    -0.0,
]
BAD_SECONDS: list[Any] = [-1.0, -0.0, float("nan"), float("inf"), float("-inf")]


@dataclass
class World:
    clock: VirtualClock
    sim: SimBroker
    journal: MemoryJournal
    manager: OrderManager

    async def footprint(self) -> tuple[Any, ...]:
        """What a refused call must leave unchanged: the exchange's orders, the journal."""
        await self.journal.flush()
        counts = await self.journal.counts()
        return (
            [o.id for o in self.sim.exchange.orders(1)],
            dict(counts.operations),
            counts.intents,
            dict(counts.outcomes),
        )

    async def refused(
        self, error: type[BaseException], call: Callable[[], Awaitable[object]]
    ) -> None:
        before = await self.footprint()
        with pytest.raises(error):
            await self.clock.run(call())
        assert await self.footprint() == before


@pytest.fixture
async def world() -> AsyncIterator[World]:
    clock = VirtualClock()
    sim = SimBroker.create(clock, prices={MNQ: Decimal("21000.00")})
    journal = MemoryJournal(clock)
    manager = OrderManager(sim, clock=clock, journal=journal, rng=random.Random(5))
    await clock.run(manager.start())
    # A long position to protect, so position orders have something to act on.
    await clock.run(manager.place_market_order(MNQ, BUY, 1))
    await clock.advance(0)
    yield World(clock, sim, journal, manager)
    await manager.cleanup()


# -- prices --------------------------------------------------------------------------------------
@pytest.mark.parametrize("price", BAD_PRICES, ids=repr)
async def test_a_limit_or_stop_price_out_of_range_is_refused(world: World, price: Any) -> None:
    """place_limit_order / place_stop_order: InvalidPriceError, nothing journaled or sent."""
    m = world.manager
    await world.refused(errors.InvalidPriceError, lambda: m.place_limit_order(MNQ, BUY, 1, price))
    await world.refused(errors.InvalidPriceError, lambda: m.place_stop_order(MNQ, SELL, 1, price))


@pytest.mark.parametrize("price", BAD_PRICES, ids=repr)
async def test_a_bracket_price_out_of_range_is_refused(world: World, price: Any) -> None:
    """Entry, stop or target of place_bracket_order: refused before the operation starts."""
    m = world.manager
    for args in ((price, OK_STOP, OK_TARGET), (None, price, OK_TARGET), (None, OK_STOP, price)):
        entry_type = "limit" if args[0] is not None else "market"
        await world.refused(
            errors.InvalidPriceError,
            lambda a=args, t=entry_type: m.place_bracket_order(MNQ, BUY, 1, *a, entry_type=t),
        )


@pytest.mark.parametrize("price", BAD_PRICES, ids=repr)
async def test_other_price_inputs_out_of_range_are_refused(world: World, price: Any) -> None:
    """modify_order, add_stop_loss, add_take_profit, an OCO leg and a seed-API leg."""
    m = world.manager
    rec = m.recovery
    resting = await world.clock.run(m.place_limit_order(MNQ, BUY, 1, Decimal("20900.00")))
    op = await rec.start_operation(OperationType.BRACKET_ORDER)
    await world.refused(
        errors.InvalidPriceError, lambda: m.modify_order(resting.order_id, limit_price=price)
    )
    await world.refused(errors.InvalidPriceError, lambda: m.add_stop_loss(MNQ, price))
    await world.refused(errors.InvalidPriceError, lambda: m.add_take_profit(MNQ, price))
    await world.refused(
        errors.InvalidPriceError,
        lambda: m.place_oco_order(
            MNQ, OcoLeg(SELL, 1, price, "limit"), OcoLeg(SELL, 1, OK_STOP, "stop")
        ),
    )
    await world.refused(
        errors.InvalidPriceError,
        lambda: rec.add_order_to_operation(op, MNQ, SELL, 1, "stop", price),
    )


# -- durations -----------------------------------------------------------------------------------
@pytest.mark.parametrize("seconds", BAD_SECONDS, ids=repr)
async def test_bracket_deadlines_out_of_range_are_refused(world: World, seconds: float) -> None:
    """entry_timeout and protection_deadline: ValidationError before anything happens."""
    m = world.manager
    await world.refused(
        errors.ValidationError,
        lambda: m.place_bracket_order(
            MNQ,
            BUY,
            1,
            Decimal("20950.00"),
            Decimal("20940.00"),
            OK_TARGET,
            entry_timeout=seconds,
        ),
    )
    await world.refused(
        errors.ValidationError,
        lambda: m.place_bracket_order(
            MNQ, BUY, 1, None, OK_STOP, OK_TARGET, "market", protection_deadline=seconds
        ),
    )


@pytest.mark.parametrize("seconds", [0.0, 0])
async def test_zero_deadlines_are_refused(world: World, seconds: float) -> None:
    """A zero entry timeout or protection deadline would expire before anything can happen."""
    m = world.manager
    await world.refused(
        errors.ValidationError,
        lambda: m.place_bracket_order(
            MNQ, BUY, 1, None, OK_STOP, OK_TARGET, "market", protection_deadline=seconds
        ),
    )


@pytest.mark.parametrize("seconds", BAD_SECONDS, ids=repr)
async def test_wait_timeouts_out_of_range_are_refused(world: World, seconds: float) -> None:
    """wait_for_protection / wait_for_completion(timeout=...) and cleanup_stale_operations."""
    m = world.manager
    bracket = await world.clock.run(
        m.place_bracket_order(MNQ, BUY, 1, None, OK_STOP, OK_TARGET, "market")
    )
    await world.refused(
        errors.ValidationError, lambda: m.wait_for_protection(bracket.operation_id, seconds)
    )
    await world.refused(
        errors.ValidationError,
        lambda: m.wait_for_completion(bracket.operation_id, timeout=seconds),
    )
    await world.refused(errors.ValidationError, lambda: m.cleanup_stale_operations(seconds))


@pytest.mark.parametrize("seconds", BAD_SECONDS, ids=repr)
async def test_a_seed_retry_delay_out_of_range_is_refused(world: World, seconds: float) -> None:
    """start_operation(retry_delay=...): ValidationError, no operation journaled."""
    rec = world.manager.recovery
    await world.refused(
        errors.ValidationError,
        lambda: rec.start_operation(OperationType.BRACKET_ORDER, 3, seconds),
    )


@pytest.mark.parametrize(
    "key", ["reconcile_interval", "status_check_initial_delay", "rate_limit_window"]
)
@pytest.mark.parametrize("seconds", BAD_SECONDS, ids=repr)
def test_config_durations_out_of_range_are_refused(key: str, seconds: float) -> None:
    """A config duration that is negative, NaN or infinite is a ConfigurationError."""
    if seconds == 0 and key == "status_check_initial_delay":
        pytest.skip("-0.0 == 0.0 is a valid (no) initial delay for pydantic's ge=0")
    with pytest.raises(errors.ConfigurationError, match=key):
        OrderManager(SimBroker.create(), config={key: seconds})
