"""The manager builds its engines in its constructor, with the settings it is given."""

from __future__ import annotations

import random

from orderguard.broker.sim import SimBroker, SimExchange, default_contracts
from orderguard.clock import VirtualClock
from orderguard.orders import OrderManager
from orderguard.orders.bracket.engine import BracketSettings
from orderguard.orders.oco.engine import OcoSettings
from orderguard.recovery.operations import OperationType
from orderguard.recovery.startup import ResumeContext


def _manager(**kwargs: object) -> OrderManager:
    clock = VirtualClock()
    broker = SimBroker(SimExchange(clock, contracts=default_contracts()), clock)
    return OrderManager(broker, clock=clock, rng=random.Random(1), **kwargs)  # type: ignore[arg-type]


def test_engine_settings_are_given_to_the_manager() -> None:
    brackets = BracketSettings(poll_interval=0.25, protection_deadline=3.0)
    oco = OcoSettings(poll_interval=0.5, poll_max_interval=4.0, max_attempts=7)
    manager = _manager(bracket_settings=brackets, oco_settings=oco)
    assert manager.brackets.settings is brackets
    assert (manager.oco.poll_interval, manager.oco.poll_max_interval) == (0.5, 4.0)
    assert manager.oco.max_attempts == 7


def test_defaults_without_settings() -> None:
    manager = _manager()
    assert manager.brackets.settings == BracketSettings()
    assert manager.oco.max_attempts == OcoSettings().max_attempts


def test_each_manager_recovers_with_its_own_engines() -> None:
    """Two managers in one process (the chaos runner has several): each one's start-up
    recovery is handed its own bracket engine's resumer, plus the resumers it was given."""

    async def mine(ctx: ResumeContext) -> None:
        await ctx.settle()

    first, second = _manager(), _manager(resumers={"mine": mine})
    bracket = OperationType.BRACKET_ORDER.value
    assert first.resumers()[bracket] == first.brackets.resume_at_startup
    assert second.resumers()[bracket] == second.brackets.resume_at_startup
    assert first.resumers()[bracket] != second.resumers()[bracket]
    assert "mine" not in first.resumers() and second.resumers()["mine"] is mine
