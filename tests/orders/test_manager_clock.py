"""The manager and a simulated exchange share one time, or the manager refuses to be built.

Two clocks apart break recovery silently: the manager's order searches are windows on its clock,
and an exchange on a frozen virtual clock stamps its orders at that clock's epoch, so a restarted
manager found nothing and flattened a protected bracket (README durable-journal example).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from orderguard import OrderManager, SimBroker
from orderguard.clock import SystemClock, VirtualClock

MNQ = "CON.F.US.MNQ.Z26"


def test_without_a_clock_the_manager_takes_the_simulated_exchanges_virtual_clock() -> None:
    clock = VirtualClock()
    broker = SimBroker.create(clock, prices={MNQ: Decimal("21000")})
    assert OrderManager(broker).clock is clock


def test_without_a_clock_both_default_to_the_system_clock() -> None:
    broker = SimBroker.create(prices={MNQ: Decimal("21000")})
    assert isinstance(broker.clock, SystemClock)
    assert isinstance(OrderManager(broker).clock, SystemClock)


@pytest.mark.parametrize("broker_virtual", [True, False], ids=["virtual-broker", "virtual-manager"])
def test_a_virtual_clock_on_one_side_only_is_refused(broker_virtual: bool) -> None:
    broker_clock = VirtualClock() if broker_virtual else SystemClock()
    manager_clock = SystemClock() if broker_virtual else VirtualClock()
    broker = SimBroker.create(broker_clock, prices={MNQ: Decimal("21000")})
    with pytest.raises(ValueError, match="different clocks"):
        OrderManager(broker, clock=manager_clock)


def test_two_virtual_clocks_are_refused_too() -> None:
    broker = SimBroker.create(VirtualClock(), prices={MNQ: Decimal("21000")})
    with pytest.raises(ValueError, match=r"clock=broker\.clock"):
        OrderManager(broker, clock=VirtualClock())


def test_the_same_clock_given_to_both_is_accepted() -> None:
    clock = VirtualClock()
    broker = SimBroker.create(clock, prices={MNQ: Decimal("21000")})
    assert OrderManager(broker, clock=clock).clock is clock
