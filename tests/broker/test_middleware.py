"""BrokerMiddleware: the port forwarded once, every call seen by the hooks, nothing changed."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from orderguard.broker.base import (
    Broker,
    BrokerEvent,
    BrokerEvents,
    BrokerOrders,
    BrokerQueries,
    Confirmed,
    Outcome,
    Rejected,
)
from orderguard.broker.middleware import MUTATIONS, QUERIES, BrokerCall, BrokerMiddleware
from orderguard.broker.sim import SimBroker
from orderguard.clock import VirtualClock
from orderguard.errors import OrderRejectedError
from orderguard.models import OrderRequest, OrderSide, OrderType
from orderguard.resilience import Priority

MNQ = "CON.F.US.MNQ.Z26"


class Recorder(BrokerMiddleware):
    """Records what the hooks see: (hook, op, account, priority)."""

    def __init__(self, inner: Broker) -> None:
        super().__init__(inner)
        self.seen: list[tuple[str, str, int | None, Priority | None]] = []
        self.results: list[object] = []

    def before(self, call: BrokerCall[Any]) -> None:
        self.seen.append(("before", call.op, call.account_id, call.priority))

    def after(self, call: BrokerCall[Any], result: object) -> None:
        self.seen.append(("after", call.op, call.account_id, call.priority))
        self.results.append(result)


def _port_methods(*protocols: type) -> set[str]:
    return {
        name
        for proto in protocols
        for name, value in vars(proto).items()
        if callable(value) and not name.startswith("_")
    }


def test_the_port_is_its_three_parts() -> None:
    assert _port_methods(BrokerOrders) == set(MUTATIONS)
    assert _port_methods(BrokerQueries) == set(QUERIES)
    assert _port_methods(BrokerEvents) == {"subscribe"}
    # Broker adds nothing of its own: it is the union of its parts.
    assert _port_methods(Broker) == set()


def test_the_middleware_implements_every_method_of_the_port() -> None:
    for name in (*MUTATIONS, *QUERIES, "subscribe"):
        assert name in vars(BrokerMiddleware), name
    assert isinstance(BrokerMiddleware(SimBroker.create(VirtualClock())), Broker)


async def test_every_call_reaches_the_inner_broker_through_the_hooks() -> None:
    clock = VirtualClock()
    sim = SimBroker.create(clock, prices={MNQ: Decimal("21000.00")})
    broker = Recorder(sim)
    events: list[BrokerEvent] = []
    broker.subscribe(events.append)
    start = clock.now() - timedelta(minutes=1)

    placed = await broker.place_order(
        OrderRequest(1, MNQ, OrderType.LIMIT, OrderSide.BUY, 1, limit_price=Decimal("20990.00")),
        priority=Priority.PROTECTIVE,
    )
    assert isinstance(placed, Confirmed) and placed.order_id is not None
    order_id = placed.order_id
    assert isinstance(await broker.modify_order(1, order_id, size=2), Confirmed)
    [working] = await broker.search_open_orders(1)
    assert working.id == order_id and working.size == 2
    assert (await broker.get_order(1, order_id)) == working
    assert [o.id for o in await broker.search_orders(1, start)] == [order_id]
    assert isinstance(await broker.cancel_order(1, order_id), Confirmed)
    assert await broker.search_positions(1) == []
    assert await broker.search_trades(1, start) == []
    assert [a.id for a in await broker.get_accounts()] == [1]
    contract = await broker.get_contract(MNQ)
    assert contract is not None and contract.id == MNQ
    assert MNQ in [c.id for c in await broker.search_contracts("MNQ")]
    assert (await broker.get_capabilities(1)).native_brackets
    assert await broker.get_last_price(MNQ) == Decimal("21000.00")
    # No position: both closes are answered with a definitive rejection, not raised.
    assert isinstance(await broker.close_position(1, MNQ), Rejected)
    assert isinstance(await broker.partial_close_position(1, MNQ, 1), Rejected)
    await clock.advance(0)

    ops = [op for hook, op, _, _ in broker.seen if hook == "before"]
    assert ops == [
        "place_order",
        "modify_order",
        "search_open_orders",
        "get_order",
        "search_orders",
        "cancel_order",
        "search_positions",
        "search_trades",
        "get_accounts",
        "get_contract",
        "search_contracts",
        "get_capabilities",
        "get_last_price",
        "close_position",
        "partial_close_position",
    ]
    assert sorted(ops) == sorted((*MUTATIONS, *QUERIES))
    # Each call: before, then after, with the same description.
    assert [hook for hook, *_ in broker.seen] == ["before", "after"] * len(ops)
    assert broker.seen[0] == ("before", "place_order", 1, Priority.PROTECTIVE)
    assert broker.seen[2] == ("before", "modify_order", 1, None)
    assert broker.results[0] == placed
    assert events, "subscribe is forwarded: the inner broker's events arrive"


async def test_after_does_not_run_for_a_call_that_raised() -> None:
    broker = Recorder(SimBroker.create(VirtualClock()))
    with pytest.raises(OrderRejectedError):
        await broker.search_positions(99)
    assert broker.seen == [("before", "search_positions", 99, None)]


async def test_a_raising_before_hook_stops_the_call() -> None:
    class Refuser(BrokerMiddleware):
        def before(self, call: BrokerCall[Any]) -> None:
            raise RuntimeError(f"refused {call.op}")

    clock = VirtualClock()
    sim = SimBroker.create(clock, prices={MNQ: Decimal("21000.00")})
    with pytest.raises(RuntimeError, match="refused place_order"):
        await Refuser(sim).place_order(
            OrderRequest(1, MNQ, OrderType.MARKET, OrderSide.BUY, 1, custom_tag="t1")
        )
    assert sim.exchange.orders(1) == []


async def test_middleware_stacks() -> None:
    """A middleware is a broker: wrapping one in another sees every call once per layer."""
    clock = VirtualClock()
    inner = Recorder(SimBroker.create(clock, prices={MNQ: Decimal("21000.00")}))
    outer = Recorder(inner)
    outcome: Outcome = await outer.place_order(
        OrderRequest(1, MNQ, OrderType.MARKET, OrderSide.BUY, 1, custom_tag="t1")
    )
    assert isinstance(outcome, Confirmed)
    assert [s[:2] for s in outer.seen] == [("before", "place_order"), ("after", "place_order")]
    assert [s[:2] for s in inner.seen] == [("before", "place_order"), ("after", "place_order")]
    # The lane is a hint for this layer only: it never travels to the broker inside.
    await outer.get_last_price(MNQ, priority=Priority.FLATTEN)
    assert outer.seen[-1][3] is Priority.FLATTEN and inner.seen[-1][3] is None


async def test_a_mutation_says_what_it_changes() -> None:
    """``what`` (the fault log's description of a call) for each mutation; "" for a read."""

    class Describer(BrokerMiddleware):
        def __init__(self, inner: Broker) -> None:
            super().__init__(inner)
            self.whats: list[str] = []

        def before(self, call: BrokerCall[Any]) -> None:
            self.whats.append(call.what)

    clock = VirtualClock()
    broker = Describer(SimBroker.create(clock, prices={MNQ: Decimal("21000.00")}))
    await broker.place_order(
        OrderRequest(
            1,
            MNQ,
            OrderType.LIMIT,
            OrderSide.BUY,
            2,
            limit_price=Decimal("20990.00"),
            custom_tag="t",
        )
    )
    await broker.modify_order(1, 1, size=1, limit_price=Decimal("20980.00"))
    await broker.cancel_order(1, 1)
    await broker.close_position(1, MNQ)
    await broker.partial_close_position(1, MNQ, 1)
    await broker.get_accounts()
    assert broker.whats == [
        f"BUY 2 LIMIT {MNQ} tag=t",
        "order 1 size=1 limit=20980.00 stop=None",
        "order 1",
        MNQ,
        f"{MNQ} size=1",
        "",
    ]
