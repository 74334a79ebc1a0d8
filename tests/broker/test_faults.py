"""FaultyBroker around the simulated exchange: every fault kind, judged from exchange truth."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Coroutine
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

import pytest

from orderguard.broker.base import (
    Broker,
    BrokerEvent,
    Confirmed,
    ConnectionEvent,
    ConnectionState,
    OrderEvent,
    Rejected,
    Unknown,
    UnknownOrigin,
)
from orderguard.broker.faults import (
    EventFaults,
    FaultKind,
    FaultPlan,
    FaultyBroker,
    MutationFaults,
    QueryFaults,
    ScriptedFault,
)
from orderguard.broker.faults.plan import EVENT_KINDS, MUTATION_KINDS
from orderguard.broker.projectx.codes import PlaceCode
from orderguard.broker.sim import LatencyModel, SimBroker, SimExchange, default_contracts
from orderguard.clock import VirtualClock
from orderguard.errors import BrokerError, ConnectionFailedError, RateLimitedError
from orderguard.models import Order, OrderRequest, OrderSide, OrderStatus, OrderType

T = TypeVar("T")
MNQ = "CON.F.US.MNQ.Z26"
ACCOUNT = 1


@dataclass
class World:
    clock: VirtualClock
    exchange: SimExchange
    sim: SimBroker
    broker: FaultyBroker
    inner_events: list[BrokerEvent] = field(default_factory=list)
    events: list[BrokerEvent] = field(default_factory=list)

    def orders_tagged(self, tag: str) -> list[Order]:
        return [o for o in self.exchange.orders(ACCOUNT) if o.custom_tag == tag]

    def position_size(self) -> int:
        return sum(p.size for p in self.exchange.positions(ACCOUNT))


def make_world(plan: FaultPlan, seed: int = 1, *, subscribe: bool = True) -> World:
    clock = VirtualClock()
    exchange = SimExchange(clock, contracts=default_contracts())
    exchange.open_account(
        account_id=ACCOUNT,
        name="SIM-1",
        balance=Decimal("50000"),
        native_brackets=True,
        max_order_size=50,
    )
    exchange.set_price(MNQ, Decimal("21000.00"))
    sim = SimBroker(exchange, clock, latency=LatencyModel(request=0.0, response=0.0, event=0.0))
    world = World(clock, exchange, sim, FaultyBroker(sim, clock, plan, seed=seed))
    if subscribe:
        sim.subscribe(world.inner_events.append)  # the truth, unfaulted
        world.broker.subscribe(world.events.append)
    return world


def limit(tag: str, price: str = "20990.00") -> OrderRequest:
    """A buy limit below the market: it rests, so it stays visible at the exchange."""
    return OrderRequest(
        ACCOUNT, MNQ, OrderType.LIMIT, OrderSide.BUY, 1, limit_price=Decimal(price), custom_tag=tag
    )


def market(tag: str, size: int = 2) -> OrderRequest:
    return OrderRequest(ACCOUNT, MNQ, OrderType.MARKET, OrderSide.BUY, size, custom_tag=tag)


def scripted(
    *faults: str,
    place: MutationFaults | None = None,
    query: QueryFaults | None = None,
    events: EventFaults | None = None,
) -> FaultPlan:
    """A plan with only the given scripts (and, optionally, one family's parameters)."""
    plan = FaultPlan(
        place=place or MutationFaults(),
        query=query or QueryFaults(),
        events=events or EventFaults(),
    )
    return plan.script(*faults)


async def settle(world: World) -> None:
    await world.clock.advance(0)


async def make_events(world: World, count: int) -> None:
    """Generate ``count`` distinct order placements (each emits at least one event)."""
    for i in range(count):
        await world.sim.place_order(limit(f"gen-{i}"))
    await settle(world)


# ---------------------------------------------------------------------------------------------
# Mutations
# ---------------------------------------------------------------------------------------------


def test_faulty_broker_satisfies_the_broker_protocol() -> None:
    """The wrapper is itself a Broker, so it can wrap another wrapper or stand in anywhere."""
    world = make_world(FaultPlan.none(), subscribe=False)
    assert isinstance(world.broker, Broker)


async def test_no_faults_passes_placements_through() -> None:
    """With the none() preset a placement is confirmed and the order exists."""
    world = make_world(FaultPlan.none())
    outcome = await world.broker.place_order(limit("t1"))
    assert isinstance(outcome, Confirmed)
    assert [o.id for o in world.orders_tagged("t1")] == [outcome.order_id]
    assert world.broker.fault_log == []


async def test_reject_returns_rejected_and_never_reaches_the_exchange() -> None:
    """An injected reject carries the endpoint's plain rejection code and creates no order."""
    world = make_world(scripted("place_order#1=reject"))
    outcome = await world.broker.place_order(limit("t1"))
    assert outcome == Rejected(PlaceCode.ORDER_REJECTED, "injected rejection")
    assert world.orders_tagged("t1") == []


async def test_scripted_reject_can_carry_its_own_code() -> None:
    """``reject:N`` in a script sets the rejection code."""
    world = make_world(scripted(f"place_order#1=reject:{PlaceCode.INSUFFICIENT_FUNDS}"))
    outcome = await world.broker.place_order(limit("t1"))
    assert isinstance(outcome, Rejected)
    assert outcome.code == PlaceCode.INSUFFICIENT_FUNDS


async def test_fail_before_send_raises_and_places_nothing() -> None:
    """fail_before_send raises a retryable ConnectionFailedError; the order provably never left."""
    world = make_world(scripted("place_order#1=fail_before_send"))
    with pytest.raises(ConnectionFailedError) as info:
        await world.broker.place_order(limit("t1"))
    assert info.value.retryable
    assert world.orders_tagged("t1") == []


async def test_rate_limited_before_send_raises_retryable_and_places_nothing() -> None:
    """A 429 before execution is RateLimitedError(sent=False) with the plan's retry_after."""
    plan = scripted("place_order#1=rate_limited", place=MutationFaults(retry_after=7.5))
    world = make_world(plan)
    with pytest.raises(RateLimitedError) as info:
        await world.broker.place_order(limit("t1"))
    assert (info.value.sent, info.value.retryable, info.value.retry_after) == (False, True, 7.5)
    assert world.orders_tagged("t1") == []


@pytest.mark.parametrize(
    ("kind", "origin"),
    [
        (FaultKind.AMBIGUOUS, UnknownOrigin.TIMEOUT_AFTER_SEND),
        (FaultKind.SERVER_ERROR, UnknownOrigin.SERVER_ERROR),
        (FaultKind.PENDING, UnknownOrigin.PENDING),
        (FaultKind.UNKNOWN_CODE, UnknownOrigin.UNKNOWN_CODE),
        (FaultKind.RATE_LIMITED_AFTER_SEND, UnknownOrigin.RATE_LIMITED_AFTER_SEND),
    ],
)
async def test_executed_kinds_place_the_order_but_answer_unknown(
    kind: FaultKind, origin: UnknownOrigin
) -> None:
    """ "Executed, answer lost": the order EXISTS at the exchange and the caller got Unknown."""
    world = make_world(scripted(f"place_order#1={kind.value}"))
    outcome = await world.broker.place_order(limit("t1"))
    assert isinstance(outcome, Unknown)
    assert outcome.origin is origin
    assert [o.status for o in world.orders_tagged("t1")] == [OrderStatus.OPEN]


async def test_lost_answers_unknown_and_places_nothing() -> None:
    """LOST is the other half of F1: Unknown(CONNECTION_LOST) while nothing reached the exchange."""
    world = make_world(scripted("place_order#1=lost"))
    outcome = await world.broker.place_order(limit("t1"))
    assert outcome == Unknown(UnknownOrigin.CONNECTION_LOST, "injected: connection lost")
    assert world.orders_tagged("t1") == []


async def test_late_answers_unknown_and_the_order_appears_later() -> None:
    """LATE: Unknown now, nothing at the exchange yet, the order exists after the delay."""
    world = make_world(scripted("place_order#1=late:3"))
    outcome = await world.broker.place_order(limit("t1"))
    assert isinstance(outcome, Unknown)
    assert world.orders_tagged("t1") == []
    assert world.broker.pending_effects == 1
    await world.clock.advance(3)
    assert len(world.orders_tagged("t1")) == 1
    assert world.broker.pending_effects == 0


async def test_only_the_scripted_call_is_faulted() -> None:
    """``place_order#2`` hits the second placement only."""
    world = make_world(scripted("place_order#2=reject"))
    outcomes = [await world.broker.place_order(limit(f"t{i}")) for i in range(3)]
    assert [type(o) for o in outcomes] == [Confirmed, Rejected, Confirmed]


async def test_scripted_repeat_covers_consecutive_calls() -> None:
    """``#2x2`` faults the second and third calls only."""
    world = make_world(scripted("place_order#2x2=lost"))
    outcomes = [await world.broker.place_order(limit(f"t{i}")) for i in range(4)]
    assert [type(o) for o in outcomes] == [Confirmed, Unknown, Unknown, Confirmed]


async def test_fault_records_carry_virtual_time_target_and_position() -> None:
    """A record says when (virtual seconds), what kind, on which call, and what it hit."""
    world = make_world(scripted("place_order#2=ambiguous"))
    await world.broker.place_order(limit("t0"))
    await world.clock.advance(12.5)
    await world.broker.place_order(limit("t1"))
    [record] = world.broker.fault_log
    assert (record.at, record.kind, record.target, record.nth) == (
        12.5,
        FaultKind.AMBIGUOUS,
        "place_order",
        2,
    )
    assert "tag=t1" in record.detail and "Confirmed" in record.detail


async def test_fail_next_scripts_the_next_call_at_runtime() -> None:
    """fail_next applies to the next call of that operation from now on."""
    world = make_world(FaultPlan.none())
    await world.broker.place_order(limit("t0"))
    world.broker.fail_next("place_order", FaultKind.FAIL_BEFORE_SEND)
    with pytest.raises(ConnectionFailedError):
        await world.broker.place_order(limit("t1"))
    assert isinstance(await world.broker.place_order(limit("t2")), Confirmed)


async def test_ambiguous_cancel_cancels_at_the_exchange() -> None:
    """An ambiguous cancel still cancels the order at the exchange."""
    world = make_world(scripted("cancel_order#1=ambiguous"))
    placed = await world.broker.place_order(limit("t1"))
    assert isinstance(placed, Confirmed) and placed.order_id is not None
    outcome = await world.broker.cancel_order(ACCOUNT, placed.order_id)
    assert isinstance(outcome, Unknown)
    assert [o.status for o in world.orders_tagged("t1")] == [OrderStatus.CANCELLED]


async def test_fail_before_send_cancel_leaves_the_order_working() -> None:
    """A cancel that never left leaves the order open."""
    world = make_world(scripted("cancel_order#1=fail_before_send"))
    placed = await world.broker.place_order(limit("t1"))
    assert isinstance(placed, Confirmed) and placed.order_id is not None
    with pytest.raises(ConnectionFailedError):
        await world.broker.cancel_order(ACCOUNT, placed.order_id)
    assert [o.status for o in world.orders_tagged("t1")] == [OrderStatus.OPEN]


async def test_ambiguous_modify_changes_the_order_at_the_exchange() -> None:
    """An ambiguous modify is applied by the exchange."""
    world = make_world(scripted("modify_order#1=server_error"))
    placed = await world.broker.place_order(limit("t1"))
    assert isinstance(placed, Confirmed) and placed.order_id is not None
    outcome = await world.broker.modify_order(ACCOUNT, placed.order_id, size=3)
    assert isinstance(outcome, Unknown)
    assert [o.size for o in world.orders_tagged("t1")] == [3]


async def test_ambiguous_close_flattens_at_the_exchange() -> None:
    """An ambiguous close_position still flattens the position."""
    world = make_world(scripted("close_position#1=ambiguous"))
    assert isinstance(await world.broker.place_order(market("m1")), Confirmed)
    await settle(world)
    assert world.position_size() == 2
    outcome = await world.broker.close_position(ACCOUNT, MNQ)
    await settle(world)
    assert isinstance(outcome, Unknown)
    assert world.position_size() == 0


async def test_rejected_partial_close_leaves_the_position() -> None:
    """A rejected partial close never reaches the exchange; the position is unchanged."""
    world = make_world(scripted("partial_close_position#1=reject"))
    await world.broker.place_order(market("m1"))
    await settle(world)
    outcome = await world.broker.partial_close_position(ACCOUNT, MNQ, 1)
    assert isinstance(outcome, Rejected)
    assert world.position_size() == 2


async def test_ambiguous_partial_close_reduces_the_position() -> None:
    """A pending partial close is executed by the exchange."""
    world = make_world(scripted("partial_close_position#1=pending"))
    await world.broker.place_order(market("m1"))
    await settle(world)
    outcome = await world.broker.partial_close_position(ACCOUNT, MNQ, 1)
    await settle(world)
    assert isinstance(outcome, Unknown) and outcome.origin is UnknownOrigin.PENDING
    assert world.position_size() == 1


async def test_delay_holds_the_request_on_the_clock() -> None:
    """A scripted delay keeps the request from the exchange until the clock has moved."""
    world = make_world(scripted("place_order#1=delay:5"))
    task = asyncio.ensure_future(world.broker.place_order(limit("t1")))
    await world.clock.advance(4.9)
    assert world.orders_tagged("t1") == [] and not task.done()
    await world.clock.advance(0.2)
    assert isinstance(task.result(), Confirmed)
    assert len(world.orders_tagged("t1")) == 1


async def test_random_delay_costs_virtual_time_only() -> None:
    """Random delays (probability 1) make each call take virtual time within delay_range."""
    plan = FaultPlan.none().with_mutations(MutationFaults(delay=1.0, delay_range=(1.0, 2.0)))
    world = make_world(plan)
    start = world.clock.monotonic()
    outcome = await world.clock.run(world.broker.place_order(limit("t1")))
    assert isinstance(outcome, Confirmed)
    assert 1.0 <= world.clock.monotonic() - start <= 2.0


# ---------------------------------------------------------------------------------------------
# Queries
# ---------------------------------------------------------------------------------------------


async def test_query_error_raises_a_retryable_broker_error() -> None:
    """query_error raises a BrokerError marked retryable."""
    world = make_world(scripted("search_open_orders#1=query_error"))
    with pytest.raises(BrokerError) as info:
        await world.broker.search_open_orders(ACCOUNT)
    assert info.value.retryable


async def test_query_timeout_keeps_the_caller_waiting_then_raises() -> None:
    """query_timeout waits timeout_after seconds of virtual time, then raises retryable."""
    world = make_world(scripted("get_order#1=query_timeout", query=QueryFaults(timeout_after=4)))
    start = world.clock.monotonic()
    with pytest.raises(BrokerError) as info:
        await world.clock.run(world.broker.get_order(ACCOUNT, 1))
    assert info.value.retryable
    assert world.clock.monotonic() - start == 4


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        (FaultKind.FAIL_BEFORE_SEND, ConnectionFailedError),
        (FaultKind.RATE_LIMITED, RateLimitedError),
    ],
)
async def test_query_refused_before_send_raises_retryable(
    kind: FaultKind, error: type[BrokerError]
) -> None:
    """A query refused before sending raises the matching retryable error."""
    world = make_world(scripted(f"search_positions#1={kind.value}"))
    with pytest.raises(error) as info:
        await world.broker.search_positions(ACCOUNT)
    assert info.value.retryable


async def test_query_delay_then_answers_the_truth() -> None:
    """A delayed query takes virtual time and still returns the exchange's truth."""
    world = make_world(scripted("search_open_orders#1=delay:2"))
    await world.broker.place_order(limit("t1"))
    start = world.clock.monotonic()
    orders = await world.clock.run(world.broker.search_open_orders(ACCOUNT))
    assert world.clock.monotonic() - start == 2
    assert [o.custom_tag for o in orders] == ["t1"]


# ---------------------------------------------------------------------------------------------
# Event stream
# ---------------------------------------------------------------------------------------------


async def test_unfaulted_stream_matches_the_inner_stream() -> None:
    """With no event faults, outer handlers see exactly what the inner broker emits."""
    world = make_world(FaultPlan.none())
    await make_events(world, 3)
    assert world.inner_events and world.events == world.inner_events


async def test_drop_loses_exactly_that_event() -> None:
    """event#2=drop: the second event never arrives, everything else does, in order."""
    world = make_world(scripted("event#2=drop"))
    await make_events(world, 3)
    inner = world.inner_events
    assert world.events == inner[:1] + inner[2:]


async def test_duplicate_delivers_the_event_twice() -> None:
    """event#1=duplicate: the first event arrives twice in a row."""
    world = make_world(scripted("event#1=duplicate"))
    await make_events(world, 2)
    inner = world.inner_events
    assert world.events == inner[:1] + inner


async def test_event_delay_delivers_later_on_the_clock() -> None:
    """event#1=event_delay:2: the first event is overtaken and arrives after two seconds."""
    world = make_world(scripted("event#1=event_delay:2"))
    await make_events(world, 2)
    inner = list(world.inner_events)
    assert world.events == inner[1:]
    await world.clock.advance(2)
    assert world.events == inner[1:] + inner[:1]


async def test_reorder_swaps_with_the_next_event() -> None:
    """event#1=reorder: the first event is released right after the second."""
    world = make_world(scripted("event#1=reorder"))
    await make_events(world, 2)
    inner = world.inner_events
    assert world.events[:2] == [inner[1], inner[0]]
    assert world.events[2:] == inner[2:]


async def test_reordered_event_is_released_when_nothing_follows() -> None:
    """A held event is not lost: it arrives after reorder_max_hold even if the stream is idle."""
    n = 1
    world = make_world(scripted(f"event#{n}=reorder", events=EventFaults(reorder_max_hold=0.5)))
    await world.sim.place_order(limit("only"))
    await settle(world)
    inner = list(world.inner_events)
    # Everything but the held one arrived; the held one follows on the clock.
    assert world.events == inner[1:]
    await world.clock.advance(0.5)
    assert world.events == inner[1:] + inner[:1]


async def test_disconnect_loses_the_gap_and_announces_both_edges() -> None:
    """A disconnect emits DISCONNECTED, loses every event for G seconds, then RECONNECTED."""
    world = make_world(scripted("event#1=disconnect:5"))
    await world.sim.place_order(limit("in-gap"))
    await settle(world)
    assert world.events == [ConnectionEvent(ConnectionState.DISCONNECTED, "injected disconnect")]
    await world.clock.advance(5)
    assert world.events[-1] == ConnectionEvent(ConnectionState.RECONNECTED, "injected reconnect")
    await world.sim.place_order(limit("after"))
    await settle(world)
    # The gap's order exists at the exchange, but no event about it ever reached us.
    gap_order = world.orders_tagged("in-gap")[0]
    seen = {e.order.id for e in world.events if isinstance(e, OrderEvent)}
    assert seen == {world.orders_tagged("after")[0].id}
    assert gap_order.id not in seen
    assert world.broker.fault_counts[FaultKind.LOST_IN_GAP] >= 1


async def test_go_silent_loses_the_gap_without_notice() -> None:
    """go_silent loses every event for G seconds and emits no connection event at all."""
    world = make_world(scripted("event#1=go_silent:5"))
    await make_events(world, 2)
    assert world.events == []
    await world.clock.advance(5)
    await world.sim.place_order(limit("after"))
    await settle(world)
    assert world.events and not any(isinstance(e, ConnectionEvent) for e in world.events)


async def test_manual_disconnect_opens_a_gap_now() -> None:
    """broker.disconnect(G) starts a gap immediately, without waiting for an event."""
    world = make_world(FaultPlan.none())
    world.broker.disconnect(3)
    await make_events(world, 1)
    assert world.events == [ConnectionEvent(ConnectionState.DISCONNECTED, "injected disconnect")]
    await world.clock.advance(3)
    assert world.events[-1] == ConnectionEvent(ConnectionState.RECONNECTED, "injected reconnect")


async def test_delayed_event_due_inside_a_gap_is_lost() -> None:
    """An event delayed into a disconnect gap is lost with the gap, not delivered after it."""
    world = make_world(scripted("event#1=event_delay:2"))
    await make_events(world, 1)
    world.broker.disconnect(5)
    await world.clock.advance(6)
    inner = world.inner_events
    assert inner[0] not in world.events


async def test_inner_connection_events_pass_through_even_in_a_gap() -> None:
    """The inner adapter's own connection news is truth: never dropped, even during a gap."""
    world = make_world(scripted("event#1=drop"))
    world.broker.go_silent(10)
    news = ConnectionEvent(ConnectionState.SILENT, "inner keep-alive expired")
    world.sim.emit(news)
    await settle(world)
    assert world.events == [news]


async def test_raising_handler_is_isolated_and_counted() -> None:
    """A handler that raises is counted; the other handlers still get every event."""
    world = make_world(FaultPlan.none())

    def boom(event: BrokerEvent) -> None:
        raise RuntimeError("handler bug")

    world.broker.subscribe(boom)
    await make_events(world, 2)
    assert world.events == world.inner_events
    assert world.broker.handler_errors == len(world.inner_events)


async def test_closed_subscription_stops_delivery() -> None:
    """After close(), a handler receives nothing more; close is idempotent."""
    world = make_world(FaultPlan.none(), subscribe=False)
    got: list[BrokerEvent] = []
    sub = world.broker.subscribe(got.append)
    await make_events(world, 1)
    count = len(got)
    sub.close()
    sub.close()
    await make_events(world, 1)
    assert count > 0 and len(got) == count


# ---------------------------------------------------------------------------------------------
# The switch, determinism, bookkeeping
# ---------------------------------------------------------------------------------------------

HEAVY = dataclasses.replace(
    FaultPlan.all(),
    events=EventFaults(drop=0.15, duplicate=0.15, event_delay=0.15, reorder=0.15),
).with_mutations(MutationFaults.uniform(0.09, delay=0.5))


async def test_disabled_passes_everything_through() -> None:
    """enabled=False: no faults at all, even with a heavy plan and scripts."""
    world = make_world(HEAVY.script("place_order#1=reject", "event#1=drop"))
    world.broker.enabled = False
    outcomes = [await world.broker.place_order(limit(f"t{i}")) for i in range(20)]
    await world.broker.search_open_orders(ACCOUNT)
    await settle(world)
    assert all(isinstance(o, Confirmed) for o in outcomes)
    assert world.events == world.inner_events
    assert world.broker.fault_log == [] and world.broker.fault_counts == {}


async def test_disabling_ends_an_open_gap_at_once() -> None:
    """Turning faults off mid-disconnect emits RECONNECTED now, so the system can settle."""
    world = make_world(FaultPlan.none())
    world.broker.disconnect(60)
    world.broker.enabled = False
    assert [e.state for e in world.events if isinstance(e, ConnectionEvent)] == [
        ConnectionState.DISCONNECTED,
        ConnectionState.RECONNECTED,
    ]
    assert world.broker.pending_effects == 0


async def workload(seed: int, plan: FaultPlan = HEAVY, *, extra_queries: bool = False) -> World:
    """A fixed mixed workload: placements, cancels, queries, price moves, time passing."""
    world = make_world(plan, seed)

    async def attempt(coro: Coroutine[Any, Any, T]) -> T | BrokerError:
        try:
            return await world.clock.run(coro)
        except BrokerError as exc:
            return exc

    for i in range(40):
        placed = await attempt(world.broker.place_order(limit(f"w{i}", f"{20990 - i % 5}.00")))
        if extra_queries:
            await attempt(world.broker.get_accounts())
        if isinstance(placed, Confirmed) and placed.order_id is not None and i % 3 == 0:
            await attempt(world.broker.cancel_order(ACCOUNT, placed.order_id))
        await attempt(world.broker.search_open_orders(ACCOUNT))
        world.exchange.set_price(MNQ, Decimal("21000.00") + Decimal(i % 7) / 4)
        await world.clock.advance(0.7)
    world.broker.enabled = False
    await world.clock.advance(30)
    return world


async def test_same_seed_gives_identical_fault_logs_and_streams() -> None:
    """Two runs of the same seeded workload are identical: fault log and delivered events."""
    a, b = await workload(7), await workload(7)
    assert len(a.broker.fault_log) > 20
    assert a.broker.fault_log == b.broker.fault_log
    assert a.events == b.events


async def test_different_seed_gives_different_faults() -> None:
    """Another seed injects a different fault sequence."""
    a, b = await workload(7), await workload(8)
    assert a.broker.fault_log != b.broker.fault_log


async def test_heavy_workload_exercises_every_random_kind() -> None:
    """The HEAVY plan drives every mutation kind and every per-event kind through random draws."""
    counts = (await workload(7)).broker.fault_counts
    expected = {*MUTATION_KINDS, FaultKind.DELAY, *EVENT_KINDS} - {
        FaultKind.DISCONNECT,  # gaps are exercised by their own tests
        FaultKind.GO_SILENT,
    }
    assert expected <= set(counts)


async def test_extra_queries_do_not_shift_placement_or_event_faults() -> None:
    """Separate RNG streams: interleaving more queries leaves placement faults unchanged."""
    plan = dataclasses.replace(HEAVY, query=QueryFaults())  # queries themselves unfaulted
    a = await workload(3, plan)
    b = await workload(3, plan, extra_queries=True)

    def placement_faults(world: World) -> list[tuple[FaultKind, int]]:
        return [(r.kind, r.nth) for r in world.broker.fault_log if r.target == "place_order"]

    assert placement_faults(a) == placement_faults(b)
    assert a.events == b.events


async def test_disabled_wrapper_reaches_a_quiet_point() -> None:
    """After disabling and letting time pass, no delayed, held, gap or late effect is pending."""
    world = await workload(7)
    assert world.broker.pending_effects == 0


async def test_fault_counts_agree_with_the_log() -> None:
    """fault_counts is the fault log tallied by kind."""
    world = await workload(5)
    tally: dict[FaultKind, int] = {}
    for record in world.broker.fault_log:
        tally[record.kind] = tally.get(record.kind, 0) + 1
    assert world.broker.fault_counts == tally


async def test_random_event_disconnects_always_reconnect() -> None:
    """Random disconnects come in DISCONNECTED/RECONNECTED pairs, never nested."""
    plan = dataclasses.replace(
        FaultPlan.none(), events=EventFaults(disconnect=0.2, gap_range=(0.5, 1.0))
    )
    world = await workload(11, plan)
    states = [e.state for e in world.events if isinstance(e, ConnectionEvent)]
    assert states and states == [ConnectionState.DISCONNECTED, ConnectionState.RECONNECTED] * (
        len(states) // 2
    )


# ---------------------------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------------------------


def test_all_preset_turns_every_kind_on() -> None:
    """FaultPlan.all() gives every mutation, query and event kind a non-zero rate."""
    plan = FaultPlan.all()
    for family in (plan.place, plan.cancel, plan.modify, plan.close, plan.partial_close):
        assert all(
            getattr(family, f.name) > 0
            for f in dataclasses.fields(family)
            if isinstance(getattr(family, f.name), float) and f.name != "retry_after"
        )
    assert all(
        getattr(plan.query, k) > 0
        for k in ("query_error", "query_timeout", "fail_before_send", "rate_limited", "delay")
    )
    assert all(
        getattr(plan.events, k) > 0
        for k in ("drop", "duplicate", "event_delay", "reorder", "disconnect", "go_silent")
    )


def test_probabilities_beyond_one_are_refused() -> None:
    """Outcome rates that cannot fit one draw are a ValueError."""
    with pytest.raises(ValueError, match="sum"):
        MutationFaults(reject=0.6, ambiguous=0.6)


def test_script_syntax_parses_op_position_repeat_kind_and_seconds() -> None:
    """``OP#N[xR]=KIND[:ARG]`` parses into a ScriptedFault."""
    assert ScriptedFault.parse("get_order#2x3=delay:4") == ScriptedFault(
        "get_order", 2, FaultKind.DELAY, repeat=3, seconds=4.0
    )


def test_script_refuses_a_kind_that_makes_no_sense_for_the_target() -> None:
    """A query cannot be 'ambiguous' and an event cannot be 'reject'."""
    with pytest.raises(ValueError):
        ScriptedFault.parse("get_order#1=ambiguous")
    with pytest.raises(ValueError):
        ScriptedFault.parse("event#1=reject")
