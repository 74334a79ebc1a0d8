"""Faults over the wire, armed through the gateway's control API, with FAILURES.md holding:
lost and late answers (F1), 5xx, 429 (F9), Pending and unknown codes (F16), 401 mid-session
(F10), a dropped hub and a silent one (F7), duplicated and reordered events (F8)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable
from decimal import Decimal
from pathlib import Path

import pytest

from conftest import FAST, MNQ, Control, eventually, settings_for
from orderguard.broker.base import BrokerEvent, ConnectionEvent, ConnectionState, EventFeed
from orderguard.broker.projectx import ProjectXBroker
from orderguard.gateway import Gateway
from orderguard.journal.sqlite import SqliteJournal
from orderguard.orders import OrderManager
from orderguard.orders.bracket.values import BracketOutcome
from orderguard.orders.metrics import Metric

D = Decimal


async def assert_safe(control: Control, account: int = 1) -> None:
    """Invariants from the gateway's truth: unique tags (I3); the position covered by working
    stops of exactly its size (I1); no working exit on a flat contract (I2)."""
    truth = await control.truth(account)
    tags = Counter(o["customTag"] for o in truth["orders"] if o.get("customTag"))
    assert all(n == 1 for n in tags.values()), f"duplicate intents: {tags}"
    position = await control.position(account)
    working = [o for o in truth["orders"] if o["status"] in (1, 6, 7)]
    stops = sum(o["size"] for o in working if o["type"] in (4, 5))
    if position == 0:
        assert working == [], f"orders left on a flat contract: {working}"
    else:
        assert stops == abs(position), f"position {position} covered by {stops}"


async def protected(manager: OrderManager, control: Control) -> None:
    r = await manager.place_bracket_order(
        MNQ, 0, 1, None, D("20990"), D("21010"), entry_type="market"
    )
    if r.outcome is not BracketOutcome.PROTECTED:
        r = await manager.wait_for_protection(r.operation_id, 15)
    assert r.outcome is BracketOutcome.PROTECTED, r
    await eventually(lambda: _safe(control), what="invariants")


async def _safe(control: Control) -> bool:
    try:
        await assert_safe(control)
    except AssertionError:
        return False
    return True


@pytest.mark.parametrize(
    "kind", ["ambiguous", "server_error", "pending", "unknown_code", "rate_limited_after_send"]
)
async def test_place_executed_but_answer_lost_or_unclear(
    kind: str, manager: OrderManager, control: Control
) -> None:
    """The entry executes but the answer is lost, a 500, Pending, an unknown code or a 429:
    Unknown, resolved by its customTag; exactly one entry; protected (F1, F9, F16)."""
    await control.fault("Order/place", kind)
    await protected(manager, control)
    assert manager.stats[Metric.CONNECT_RETRIES] == 0


async def test_place_whose_answer_never_comes(
    gateway: Gateway, control: Control, tmp_path: Path
) -> None:
    """The gateway holds the answer past our read timeout: Unknown after 1 s, resolved by tag."""
    broker = ProjectXBroker(settings_for(gateway, read_timeout=1.0))
    om = OrderManager(broker, account_id=1, journal=SqliteJournal(tmp_path / "j.db"), config=FAST)
    await om.start()
    try:
        await control.fault("Order/place", "hold", seconds=30)
        await protected(om, control)
    finally:
        await om.cleanup()
        await om.journal.close()
        await broker.aclose()


async def test_refused_then_rate_limited_queries_and_mutations(
    manager: OrderManager, control: Control
) -> None:
    """429 bursts on everything (not executed): reads retry, the entry is resolved and sent."""
    await control.fault("*", "rate_limited", count=3)
    await protected(manager, control)


async def test_401_mid_session(
    broker: ProjectXBroker, manager: OrderManager, control: Control
) -> None:
    """Every token revoked: the next request is answered 401, the adapter logs in again,
    re-sends once, and the hubs come back on the new token (F10)."""
    events: list[BrokerEvent] = []
    broker.subscribe(events.append)
    await control.post("tokens", {"action": "revoke"})
    await protected(manager, control)
    assert broker.stats["http_401"] >= 1 and broker.stats["resent_after_401"] >= 1
    await eventually(lambda: _state_seen(events, ConnectionState.RECONNECTED), what="hub back")


async def _state_seen(events: list[BrokerEvent], state: ConnectionState) -> bool:
    return any(isinstance(e, ConnectionEvent) and e.state is state for e in events)


async def test_dropped_hub_reconnects_and_events_resume(
    broker: ProjectXBroker, manager: OrderManager, control: Control
) -> None:
    events: list[BrokerEvent] = []
    broker.subscribe(events.append)
    await control.post("hubs", {"hub": "user", "action": "disconnect"})
    await eventually(lambda: _state_seen(events, ConnectionState.RECONNECTED), what="reconnected")
    before = broker.stats["events"]
    await protected(manager, control)
    assert broker.stats["events"] > before


async def test_silent_hub_with_its_socket_open(
    broker: ProjectXBroker, manager: OrderManager, control: Control
) -> None:
    """No pings, no events, socket open: SILENT after our 2 s silence timeout; the gateway keeps
    new sockets of that hub silent too for its 3 s, then we are RECONNECTED."""
    events: list[BrokerEvent] = []
    broker.subscribe(events.append)
    await control.post("hubs", {"hub": "user", "action": "silence", "seconds": 3})
    await eventually(lambda: _state_seen(events, ConnectionState.SILENT), what="silent")
    await eventually(lambda: _state_seen(events, ConnectionState.RECONNECTED), what="reconnected")
    await protected(manager, control)


@pytest.mark.parametrize("kind", ["duplicate", "reorder", "drop"])
async def test_duplicated_reordered_and_lost_events(
    kind: str, manager: OrderManager, control: Control
) -> None:
    """Events sent twice, out of order, or lost: the bracket is protected, then exits once."""
    await control.fault("hub:user", kind, count=6)
    r = await manager.place_bracket_order(
        MNQ, 0, 1, None, D("20990"), D("21010"), entry_type="market"
    )
    r = await manager.wait_for_protection(r.operation_id, 15)
    assert r.outcome is BracketOutcome.PROTECTED
    await control.price(D("21011"))
    done = await manager.wait_for_completion(r.operation_id, 15)
    assert done.finished
    await eventually(lambda: _safe(control), what="invariants")
    assert await control.position() == 0


async def test_malformed_payloads_are_counted_not_fatal(
    broker: ProjectXBroker, manager: OrderManager, control: Control
) -> None:
    """A payload we cannot decode is logged and counted; the session goes on (F14)."""
    broker._on_user_event("GatewayUserOrder", [{"action": 1, "data": {"id": "not-a-number"}}])
    assert broker.stats["malformed_events"] == 1
    await protected(manager, control)


def _quote_gap(event: BrokerEvent, state: ConnectionState) -> bool:
    return (
        isinstance(event, ConnectionEvent)
        and event.state is state
        and event.feed is EventFeed.QUOTES
    )


async def test_market_hub_gap_is_reported_and_its_quotes_are_not_served_stale(
    broker: ProjectXBroker, manager: OrderManager, control: Control
) -> None:
    """The market hub goes silent with its socket open while the price moves: the manager is
    told (a quote-feed ConnectionEvent, SILENT then RECONNECTED) and resyncs; the quote from
    before the gap is dropped at once, and the price after it is the new one."""
    await protected(manager, control)
    assert await broker.get_last_price(MNQ) == D("21000.00")
    events: list[BrokerEvent] = []
    held_at_silence: list[Decimal | None] = []

    def seen(event: BrokerEvent) -> None:
        events.append(event)
        if _quote_gap(event, ConnectionState.SILENT):
            held_at_silence.append(broker.quotes.last_price(MNQ))

    broker.subscribe(seen)
    resyncs = manager.reconciler.stats["full_resyncs"]
    await control.post("hubs", {"hub": "market", "action": "silence", "seconds": 3})
    await control.price(D("21002.00"))
    await eventually(
        lambda: _any(events, ConnectionState.SILENT), what="the market hub reported silent"
    )
    assert held_at_silence == [None], "a quote from before the gap was still served"
    assert broker.stats["stale_quotes_dropped"] >= 1
    await eventually(lambda: _any(events, ConnectionState.RECONNECTED), what="the market hub back")
    await eventually(
        lambda: _equals(broker.get_last_price(MNQ), D("21002.00")), what="the fresh price"
    )
    await eventually(
        lambda: _more(manager.reconciler.stats["full_resyncs"], resyncs), what="a resync"
    )
    orders_feed = [
        e for e in events if isinstance(e, ConnectionEvent) and e.feed is EventFeed.ORDERS
    ]
    assert orders_feed == [], "the user hub had no gap"
    await eventually(lambda: _safe(control), what="invariants")


async def _any(events: list[BrokerEvent], state: ConnectionState) -> bool:
    return any(_quote_gap(e, state) for e in events)


async def _equals(value: Awaitable[Decimal | None], expected: Decimal) -> bool:
    return await value == expected


async def _more(value: int, than: int) -> bool:
    return value > than
