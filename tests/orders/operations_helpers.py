"""Helpers for the journaled-operation tests: a harness whose broker can be told to fail."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from orderguard.broker.faults import FaultPlan, FaultyBroker
from orderguard.broker.sim import SimBroker
from orderguard.models import Order, OrderRequest, OrderSide, OrderType

from .conftest import MNQ, Harness, HarnessFactory
from .fakes import DelegatingBroker


async def faulty_harness(make_harness: HarnessFactory, **kw: Any) -> Harness:
    """A harness whose broker is DelegatingBroker(FaultyBroker(SimBroker)), no faults planned."""

    def wrap(sim: SimBroker) -> DelegatingBroker:
        return DelegatingBroker(FaultyBroker(sim, sim.clock, FaultPlan.none(), seed=3))

    harness: Harness = await make_harness(wrapper=wrap, **kw)
    return harness


def faults(h: Harness) -> FaultyBroker:
    inner = h.broker.inner
    assert isinstance(inner, FaultyBroker)
    return inner


def exchange_order(h: Harness, order_id: int) -> Order:
    order = h.exchange.order(1, order_id)
    assert order is not None
    return order


def tagged_market(tag: str, side: OrderSide, size: int) -> OrderRequest:
    return OrderRequest(1, MNQ, OrderType.MARKET, side, size, custom_tag=tag)


PRICE = Decimal("21000.00")
