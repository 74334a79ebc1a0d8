"""SimBroker: the Broker port over the exchange, with latency, ordered events and isolation."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest

from orderguard.broker.base import (
    Broker,
    BrokerEvent,
    Confirmed,
    ConnectionEvent,
    ConnectionState,
    OrderEvent,
    QuoteEvent,
    Rejected,
)
from orderguard.broker.sim import (
    LatencyModel,
    MarketDriver,
    RandomWalkPrices,
    SimBroker,
    SimExchange,
)
from orderguard.clock import VirtualClock
from orderguard.errors import BrokerError
from orderguard.models import BracketSpec, OrderRequest, OrderSide, OrderStatus, OrderType

D = Decimal
MNQ = "CON.F.US.MNQ.Z26"


def market_buy(size: int = 1, **fields: object) -> OrderRequest:
    return OrderRequest(1, MNQ, OrderType.MARKET, OrderSide.BUY, size, **fields)  # type: ignore[arg-type]


def limit_buy(price: str, **fields: object) -> OrderRequest:
    return OrderRequest(1, MNQ, OrderType.LIMIT, OrderSide.BUY, 1, D(price), **fields)  # type: ignore[arg-type]


def test_sim_broker_implements_the_broker_port(market: SimExchange, clock: VirtualClock) -> None:
    """SimBroker satisfies the runtime-checkable Broker protocol."""
    assert isinstance(SimBroker(market, clock), Broker)


async def test_place_returns_confirmed_with_the_order_id(
    market: SimExchange, clock: VirtualClock
) -> None:
    """An accepted order comes back Confirmed with the exchange's order id."""
    outcome = await SimBroker(market, clock).place_order(market_buy())
    assert outcome == Confirmed(order_id=market.orders(1)[0].id)


async def test_rejection_returns_rejected_with_the_code(
    market: SimExchange, clock: VirtualClock
) -> None:
    """A gateway rejection is a Rejected outcome, never an exception."""
    outcome = await SimBroker(market, clock).place_order(market_buy(0))
    assert isinstance(outcome, Rejected)
    assert outcome.code == 2


async def test_cancel_of_a_filled_order_is_rejected_not_raised(
    market: SimExchange, clock: VirtualClock
) -> None:
    """Cancelling a filled order is Rejected with cancel code 3."""
    broker = SimBroker(market, clock)
    placed = await broker.place_order(market_buy())
    assert isinstance(placed, Confirmed) and placed.order_id is not None
    outcome = await broker.cancel_order(1, placed.order_id)
    assert isinstance(outcome, Rejected) and outcome.code == 3


async def test_request_latency_delays_reaching_the_exchange(
    market: SimExchange, clock: VirtualClock
) -> None:
    """With 0.2 s request latency the exchange sees the order only after 0.2 s."""
    broker = SimBroker(market, clock, LatencyModel(request=0.2))
    task = asyncio.ensure_future(broker.place_order(market_buy()))
    await clock.advance(0.19)
    assert market.orders(1) == []
    await clock.advance(0.01)
    assert len(market.orders(1)) == 1
    assert isinstance(await task, Confirmed)


async def test_response_latency_delays_the_answer(market: SimExchange, clock: VirtualClock) -> None:
    """With 0.3 s response latency the order exists at once but the answer comes 0.3 s later."""
    broker = SimBroker(market, clock, LatencyModel(response=0.3))
    task = asyncio.ensure_future(broker.place_order(market_buy()))
    await clock.advance(0.1)
    assert len(market.orders(1)) == 1 and not task.done()
    await clock.advance(0.2)
    assert task.done()


async def test_zero_latency_events_arrive_from_the_loop_not_inside_the_call(
    market: SimExchange, clock: VirtualClock
) -> None:
    """With no latency the answer returns before any event; events follow on the next loop turn."""
    broker = SimBroker(market, clock)
    seen: list[BrokerEvent] = []
    broker.subscribe(seen.append)
    await broker.place_order(market_buy())
    assert seen == []
    await clock.settle()
    assert [type(e).__name__ for e in seen] == [
        "OrderEvent", "OrderEvent", "TradeEvent", "PositionEvent", "AccountEvent",
    ]  # fmt: skip


async def test_event_latency_delays_delivery(market: SimExchange, clock: VirtualClock) -> None:
    """Events reach subscribers only after latency.event seconds."""
    broker = SimBroker(market, clock, LatencyModel(event=0.5))
    seen: list[BrokerEvent] = []
    broker.subscribe(seen.append)
    market.set_price(MNQ, D("21001"))
    await clock.advance(0.49)
    assert seen == []
    await clock.advance(0.01)
    assert len(seen) == 1 and isinstance(seen[0], QuoteEvent)


async def test_jittered_events_keep_their_order(market: SimExchange, clock: VirtualClock) -> None:
    """Random per-event delays never reorder events."""
    broker = SimBroker(market, clock, LatencyModel(event=0.01, jitter=0.5, seed=3))
    seen: list[BrokerEvent] = []
    broker.subscribe(seen.append)
    prices = [D("21000") + D("0.25") * i for i in range(20)]
    for price in prices:
        market.set_price(MNQ, price)
    await clock.advance(10)
    assert [e.last_price for e in seen if isinstance(e, QuoteEvent)] == prices


async def test_raising_handler_is_counted_and_isolated(
    market: SimExchange, clock: VirtualClock
) -> None:
    """A handler that raises is counted; other handlers still get every event."""
    broker = SimBroker(market, clock)
    seen: list[BrokerEvent] = []

    def broken(event: BrokerEvent) -> None:
        raise RuntimeError("boom")

    broker.subscribe(broken)
    broker.subscribe(seen.append)
    market.set_price(MNQ, D("21001"))
    market.set_price(MNQ, D("21002"))
    await clock.settle()
    assert broker.handler_errors == 2
    assert len(seen) == 2


async def test_closed_subscription_receives_nothing(
    market: SimExchange, clock: VirtualClock
) -> None:
    """After close() a handler gets no further events, even ones already scheduled."""
    broker = SimBroker(market, clock, LatencyModel(event=0.1))
    seen: list[BrokerEvent] = []
    subscription = broker.subscribe(seen.append)
    market.set_price(MNQ, D("21001"))
    subscription.close()
    subscription.close()
    await clock.advance(1)
    assert seen == []


async def test_emit_sends_connection_events_down_the_same_path(
    market: SimExchange, clock: VirtualClock
) -> None:
    """emit() injects an extra event (e.g. a reconnect) in order with exchange events."""
    broker = SimBroker(market, clock)
    seen: list[BrokerEvent] = []
    broker.subscribe(seen.append)
    broker.emit(ConnectionEvent(ConnectionState.RECONNECTED))
    await clock.settle()
    assert seen == [ConnectionEvent(ConnectionState.RECONNECTED)]


async def test_search_open_orders_excludes_suspended_legs(
    market: SimExchange, clock: VirtualClock
) -> None:
    """searchOpen lists the resting entry only; search_orders lists its Suspended legs too."""
    broker = SimBroker(market, clock)
    await broker.place_order(
        limit_buy("20990", stop_loss_bracket=BracketSpec(-8, OrderType.STOP),
                  take_profit_bracket=BracketSpec(8, OrderType.LIMIT))
    )  # fmt: skip
    assert len(await broker.search_open_orders(1)) == 1
    everything = await broker.search_orders(1, clock.now() - timedelta(minutes=1))
    assert [o.status for o in everything] == [
        OrderStatus.OPEN, OrderStatus.SUSPENDED, OrderStatus.SUSPENDED,
    ]  # fmt: skip


async def test_search_orders_covers_every_status_in_the_window(
    market: SimExchange, clock: VirtualClock
) -> None:
    """Order/search returns filled and cancelled orders created in the window, not before it."""
    broker = SimBroker(market, clock)
    await broker.place_order(market_buy())
    await clock.advance(60)
    start = clock.now()
    await broker.place_order(market_buy())
    placed = await broker.place_order(limit_buy("20990"))
    assert isinstance(placed, Confirmed) and placed.order_id is not None
    await broker.cancel_order(1, placed.order_id)
    found = await broker.search_orders(1, start)
    assert [o.status for o in found] == [OrderStatus.FILLED, OrderStatus.CANCELLED]
    assert await broker.search_orders(1, start, start - timedelta(seconds=1)) == []


async def test_get_order_finds_any_status_or_none(market: SimExchange, clock: VirtualClock) -> None:
    """get_order returns a filled order, and None for an id that never existed."""
    broker = SimBroker(market, clock)
    placed = await broker.place_order(market_buy())
    assert isinstance(placed, Confirmed) and placed.order_id is not None
    order = await broker.get_order(1, placed.order_id)
    assert order is not None and order.status is OrderStatus.FILLED
    assert await broker.get_order(1, 999) is None


async def test_queries_for_an_unknown_account_raise_broker_error(
    market: SimExchange, clock: VirtualClock
) -> None:
    """A query the gateway answers with AccountNotFound raises a BrokerError (code 1)."""
    with pytest.raises(BrokerError):
        await SimBroker(market, clock).search_open_orders(42)


async def test_capabilities_reflect_the_account_settings(
    market: SimExchange, clock: VirtualClock
) -> None:
    """get_capabilities reports the bracket mode and size limit of the account."""
    broker = SimBroker(market, clock)
    market.set_native_brackets(1, False)
    capabilities = await broker.get_capabilities(1)
    assert (capabilities.native_brackets, capabilities.max_order_size) == (False, 50)


async def test_positions_trades_accounts_and_prices_are_queryable(
    market: SimExchange, clock: VirtualClock
) -> None:
    """The remaining queries read the exchange's truth."""
    broker = SimBroker(market, clock)
    await broker.place_order(market_buy(2))
    [position] = await broker.search_positions(1)
    assert position.size == 2
    assert len(await broker.search_trades(1, clock.now())) == 1
    assert [a.id for a in await broker.get_accounts()] == [1]
    assert await broker.get_last_price(MNQ) == D("21000")
    contract = await broker.get_contract("NQ")
    assert contract is not None and contract.id == "CON.F.US.ENQ.Z26"
    assert await broker.search_contracts("MES")


async def test_close_and_partial_close_outcomes(market: SimExchange, clock: VirtualClock) -> None:
    """Closes return Confirmed, and Rejected with the close endpoints' codes."""
    broker = SimBroker(market, clock)
    await broker.place_order(market_buy(3))
    assert isinstance(await broker.partial_close_position(1, MNQ, 1), Confirmed)
    rejected = await broker.partial_close_position(1, MNQ, 5)
    assert isinstance(rejected, Rejected) and rejected.code == 5
    assert isinstance(await broker.close_position(1, MNQ), Confirmed)
    flat = await broker.close_position(1, MNQ)
    assert isinstance(flat, Rejected) and flat.code == 2


async def test_modify_through_the_broker(market: SimExchange, clock: VirtualClock) -> None:
    """modify_order changes a resting order's price."""
    broker = SimBroker(market, clock)
    placed = await broker.place_order(limit_buy("20990"))
    assert isinstance(placed, Confirmed) and placed.order_id is not None
    assert isinstance(
        await broker.modify_order(1, placed.order_id, limit_price=D("20995")), Confirmed
    )
    order = market.order(1, placed.order_id)
    assert order is not None and order.limit_price == D("20995")


async def test_create_builds_a_ready_broker() -> None:
    """SimBroker.create gives one account and the requested starting prices."""
    broker = SimBroker.create(prices={MNQ: D("21000")}, native_brackets=False)
    assert broker.exchange.last_price(MNQ) == D("21000")
    assert (await broker.get_capabilities(1)).native_brackets is False


async def run_session(seed: int) -> list[BrokerEvent]:
    clock = VirtualClock()
    exchange = SimExchange(clock, liquidity=2)
    exchange.open_account()
    broker = SimBroker(exchange, clock, LatencyModel(0.01, 0.01, 0.02, jitter=0.05, seed=seed))
    seen: list[BrokerEvent] = []
    broker.subscribe(seen.append)
    driver = MarketDriver(exchange, clock, MNQ, RandomWalkPrices(seed=seed), interval=0.25)

    async def trade() -> None:
        await driver.start()
        for i in range(10):
            side = OrderSide.BUY if i % 2 else OrderSide.SELL
            await broker.place_order(OrderRequest(1, MNQ, OrderType.MARKET, side, 3))
            await clock.sleep(0.3)
        await driver.stop()

    await clock.run(trade())
    await clock.advance(1)
    return seen


async def test_same_seed_gives_the_same_event_sequence() -> None:
    """Two runs with one seed produce identical events; another seed differs."""
    first = await run_session(11)
    assert first == await run_session(11)
    assert any(isinstance(e, OrderEvent) for e in first)
    assert first != await run_session(12)
