"""A fill's order event can arrive before its position event: the stop waits a moment for the
position event instead of reading the position (a round trip) — and still reads when it never
comes."""

from __future__ import annotations

from typing import Any

import pytest

from orderguard.broker.base import Broker, BrokerEvent, EventHandler, PositionEvent, Subscription
from orderguard.broker.sim import LatencyModel, SimBroker
from orderguard.models import Position

from .bracket_helpers import BUY, MNQ, D, Rig, make_rig

ONE_WAY = 0.02
LAT = LatencyModel(request=ONE_WAY, response=ONE_WAY, event=ONE_WAY)


class Counting:
    """Forwards every call; counts position reads and can swallow position events."""

    def __init__(self, inner: Broker, *, drop_positions: bool = False) -> None:
        self.inner = inner
        self.drop_positions = drop_positions
        self.position_reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def search_positions(self, account_id: int) -> list[Position]:
        self.position_reads += 1
        found: list[Position] = await self.inner.search_positions(account_id)
        return found

    def subscribe(self, handler: EventHandler) -> Subscription:
        def forward(event: BrokerEvent) -> None:
            if not (self.drop_positions and isinstance(event, PositionEvent)):
                handler(event)

        return self.inner.subscribe(forward)


async def _resting_entry_fills(rig: Rig) -> list[float]:
    r = await rig.run(
        rig.manager.place_bracket_order(MNQ, BUY, 1, D("20999"), D("20990"), D("21010"))
    )
    rig.price("20998")  # the resting entry fills
    await rig.run(rig.manager.wait_for_protection(r.operation_id))
    saga = rig.manager.brackets._sagas[r.operation_id]
    return list(saga.meter.times_to_protection)


async def test_the_stop_follows_the_fill_in_one_round_trip_without_a_position_read() -> None:
    wrapped: list[Counting] = []

    def wrap(sim: SimBroker) -> Broker:
        wrapped.append(Counting(sim))
        return wrapped[0]  # type: ignore[return-value]

    rig = await make_rig(latency=LAT, wrap=wrap)
    reads_before = wrapped[0].position_reads
    times = await _resting_entry_fills(rig)
    assert times == [pytest.approx(2 * ONE_WAY)]  # the stop's own round trip, nothing before
    assert wrapped[0].position_reads == reads_before
    assert [s.size for s in rig.stops()] == [1]
    await rig.manager.cleanup()


async def test_without_the_position_event_the_stop_reads_the_position_and_is_placed() -> None:
    wrapped: list[Counting] = []

    def wrap(sim: SimBroker) -> Broker:
        wrapped.append(Counting(sim, drop_positions=True))
        return wrapped[0]  # type: ignore[return-value]

    rig = await make_rig(latency=LAT, wrap=wrap)
    reads_before = wrapped[0].position_reads
    times = await _resting_entry_fills(rig)
    grace = rig.manager.config.position_event_grace
    # The wait for the event, the position read, then the stop's own round trip.
    assert times == [pytest.approx(grace + 2 * (2 * ONE_WAY))]
    assert wrapped[0].position_reads > reads_before  # the truth was read instead
    assert rig.position() == 1 and [s.size for s in rig.stops()] == [1]
    await rig.manager.cleanup()
