"""Price paths and the market driver: seeded, on the tick grid, paced by the virtual clock."""

from __future__ import annotations

from decimal import Decimal
from itertools import islice, pairwise

import pytest

from orderguard.broker.sim import MarketDriver, RandomWalkPrices, ScriptedPrices, SimExchange
from orderguard.clock import VirtualClock

D = Decimal
MNQ = "CON.F.US.MNQ.Z26"


def test_random_walk_is_reproducible_from_its_seed() -> None:
    """The same seed gives the same path; another seed a different one."""
    first = list(islice(RandomWalkPrices(seed=7), 50))
    assert first == list(islice(RandomWalkPrices(seed=7), 50))
    assert first != list(islice(RandomWalkPrices(seed=8), 50))


def test_random_walk_starts_at_start_and_moves_on_the_grid() -> None:
    """The first price is ``start``; every step is a whole number of ticks within the bound."""
    path = list(islice(RandomWalkPrices(seed=1, start=D("21000"), max_ticks_per_step=4), 200))
    assert path[0] == D("21000")
    steps = [(b - a) / D("0.25") for a, b in pairwise(path)]
    assert all(step == int(step) and abs(step) <= 4 for step in steps)


def test_random_walk_never_goes_below_its_floor() -> None:
    """Starting one tick above zero, the walk stays at or above one tick."""
    walk = RandomWalkPrices(seed=2, start=D("0.5"), max_ticks_per_step=4)
    assert min(islice(walk, 500)) >= D("0.25")


def test_scripted_prices_replay_then_stop() -> None:
    """ScriptedPrices yields its list once and is then exhausted."""
    assert list(ScriptedPrices(["1", 2, D("3.25")])) == [D("1"), D("2"), D("3.25")]


def test_scripted_prices_can_loop() -> None:
    """With loop=True the script repeats."""
    assert list(islice(ScriptedPrices([D("1"), D("2")], loop=True), 5)) == [
        D("1"), D("2"), D("1"), D("2"), D("1"),
    ]  # fmt: skip


def test_driver_step_moves_the_market(market: SimExchange, clock: VirtualClock) -> None:
    """step() applies the next scripted price and returns it; None once exhausted."""
    driver = MarketDriver(market, clock, MNQ, ScriptedPrices([D("21001")]))
    assert driver.step() == D("21001")
    assert market.last_price(MNQ) == D("21001")
    assert driver.step() is None
    assert driver.exhausted


async def test_driver_paces_steps_on_the_clock(exchange: SimExchange, clock: VirtualClock) -> None:
    """start() prices the market at once, then steps every interval until stopped."""
    driver = MarketDriver(
        exchange, clock, "MNQ", RandomWalkPrices(seed=7, start=D("21000")), interval=0.25
    )
    await driver.start()
    assert exchange.last_price(MNQ) == D("21000")
    await clock.advance(1.0)
    assert driver.steps == 5
    await driver.stop()
    await clock.advance(1.0)
    assert driver.steps == 5 and not driver.running


async def test_driver_ends_when_the_script_runs_out(
    exchange: SimExchange, clock: VirtualClock
) -> None:
    """A scripted driver stops by itself after its last price."""
    prices = ScriptedPrices([D("21000"), D("21001"), D("21002")])
    async with MarketDriver(exchange, clock, MNQ, prices, interval=1) as driver:
        await clock.advance(5)
        assert not driver.running
        assert exchange.last_price(MNQ) == D("21002")


def test_driver_refuses_an_unknown_contract(exchange: SimExchange, clock: VirtualClock) -> None:
    """A driver for an unlisted contract is a configuration error."""
    with pytest.raises(ValueError, match="unknown contract"):
        MarketDriver(exchange, clock, "CL")


def test_set_price_refuses_off_grid_prices(exchange: SimExchange) -> None:
    """The market itself only trades on the tick grid."""
    with pytest.raises(ValueError):
        exchange.set_price(MNQ, D("21000.1"))
