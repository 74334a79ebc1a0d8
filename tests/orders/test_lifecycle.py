"""start/cleanup: account resolution, subscriptions and background tasks never leak."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest

from orderguard.config import OrderManagerConfig
from orderguard.errors import OutcomeUnknownError, UnknownAccountError
from orderguard.orders import OrderManager

from .conftest import MNQ, Harness, make_sim
from .fakes import RequestLostBroker


async def test_start_picks_first_tradable_account() -> None:
    """Without an account id the first tradable account is used."""
    clock, exchange, broker = make_sim()
    exchange.open_account(account_id=2, name="SIM-2")
    async with OrderManager(broker, clock=clock) as manager:
        assert manager.account_id == 1


async def test_start_uses_given_account() -> None:
    """A given account id is used when the broker knows it."""
    clock, exchange, broker = make_sim()
    exchange.open_account(account_id=2, name="SIM-2")
    async with OrderManager(broker, clock=clock, account_id=2) as manager:
        result = await manager.place_limit_order(MNQ, 0, 1, Decimal("20990.00"))
    assert exchange.order(2, result.order_id) is not None


async def test_start_with_unknown_account_fails_cleanly() -> None:
    """An unknown account id fails start and leaves no subscription behind."""
    clock, _, broker = make_sim()
    manager = OrderManager(broker, clock=clock, account_id=77)
    with pytest.raises(UnknownAccountError):
        await manager.start()
    assert not manager.subscribed
    assert broker._subscriptions == ()


async def test_methods_before_start_raise() -> None:
    """Placing before start raises a clear error and sends nothing."""
    clock, exchange, broker = make_sim()
    manager = OrderManager(broker, clock=clock)
    with pytest.raises(UnknownAccountError):
        await manager.place_market_order(MNQ, 0, 1)
    assert exchange.orders(1) == []


async def test_cleanup_unsubscribes(h: Harness) -> None:
    """After cleanup the broker has no handler of the manager."""
    assert len(h.sim._subscriptions) == 1
    await h.manager.cleanup()
    assert len(h.sim._subscriptions) == 0
    assert not h.manager.subscribed


async def test_cleanup_cancels_background_tasks(make_harness: Any) -> None:
    """Background re-checks of an unresolved outcome are cancelled by cleanup."""
    config = OrderManagerConfig(status_check_initial_delay=0.1, status_check_max_delay=0.2)
    h: Harness = await make_harness(RequestLostBroker, config=config)
    with pytest.raises(OutcomeUnknownError):
        await h.clock.run(h.manager.place_limit_order(MNQ, 0, 1, Decimal("20990.00")))
    assert h.manager.background_tasks == 1
    await h.manager.cleanup()
    assert h.manager.background_tasks == 0
    assert h.clock.pending_timers == 0


async def test_cleanup_is_idempotent(h: Harness) -> None:
    """Calling cleanup twice is harmless."""
    await h.manager.cleanup()
    await h.manager.cleanup()
    assert not h.manager.started


async def test_no_updates_after_cleanup(h: Harness) -> None:
    """Events after cleanup no longer reach the manager."""
    order_id = (await h.manager.place_limit_order(MNQ, 0, 1, Decimal("20990.00"))).order_id
    await h.settle()
    await h.manager.cleanup()
    await h.sim.cancel_order(1, order_id)
    await h.settle()
    order = h.manager.tracker.get(order_id)
    assert order is not None and order.is_working


async def test_many_managers_leak_no_handlers() -> None:
    """Starting and cleaning up many managers leaves the broker without handlers."""
    clock, _, broker = make_sim()
    for seed in range(20):
        async with OrderManager(broker, clock=clock, rng=random.Random(seed)):
            pass
    assert broker._subscriptions == ()


async def test_start_is_idempotent(h: Harness) -> None:
    """A second start does not subscribe twice."""
    await h.manager.start()
    assert len(h.sim._subscriptions) == 1
