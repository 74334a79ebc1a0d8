"""Bracket orders: placement, protection, exits, validation and modes (exchange truth)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from orderguard.errors import InvalidPriceError, InvalidSizeError, ValidationError
from orderguard.models import OrderSide, OrderStatus, OrderType
from orderguard.orders.bracket.values import BracketOutcome

from .bracket_helpers import BUY, MNQ, SELL, D, Rig, make_rig


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    r = await make_rig()
    yield r
    await r.manager.cleanup()


async def market_bracket(rig: Rig, size: int = 2, side: OrderSide = BUY) -> object:
    stop, target = ("20990", "21010") if side is BUY else ("21010", "20990")
    return await rig.run(
        rig.manager.place_bracket_order(
            MNQ, side, size, None, D(stop), D(target), entry_type="market"
        )
    )


async def test_market_bracket_returns_protected() -> None:
    """A market bracket returns once its stop covers the whole fill."""
    rig = await make_rig()
    r = await market_bracket(rig)
    assert r.outcome is BracketOutcome.PROTECTED and r.success
    assert (r.filled_size, r.protected_size, r.average_fill_price) == (2, 2, D("21000.25"))
    await rig.manager.cleanup()


async def test_market_bracket_exits_cover_exactly_the_position(rig: Rig) -> None:
    """At the exchange: a reduce-side stop and target, each sized to the position."""
    await market_bracket(rig, 3)
    assert rig.position() == 3
    (stop,) = rig.stops()
    (target,) = rig.working(OrderType.LIMIT)
    assert (stop.side, stop.size, stop.stop_price) == (SELL, 3, D("20990"))
    assert (target.side, target.size, target.limit_price) == (SELL, 3, D("21010"))


async def test_short_market_bracket_mirrors(rig: Rig) -> None:
    """A short bracket's stop is a buy above and its target a buy below."""
    await market_bracket(rig, 1, SELL)
    assert rig.position() == -1
    (stop,) = rig.stops()
    assert (stop.side, stop.stop_price) == (BUY, D("21010"))


async def test_limit_bracket_returns_pending_without_blocking(rig: Rig) -> None:
    """A resting limit bracket returns at once with PENDING_ENTRY and no exits yet."""
    r = await rig.manager.place_bracket_order(MNQ, BUY, 1, D("20995"), D("20985"), D("21005"))
    assert r.outcome is BracketOutcome.PENDING_ENTRY and r.entry_order_id is not None
    assert [o.type for o in rig.working()] == [OrderType.LIMIT]
    assert rig.clock.monotonic() == 0.0


async def test_limit_fill_is_protected_by_event(rig: Rig) -> None:
    """When the resting entry fills, stop and target go out; wait_for_protection reports it."""
    r = await rig.manager.place_bracket_order(MNQ, BUY, 2, D("20995"), D("20985"), D("21005"))
    rig.price("20994")  # ask 20994.25 reaches the limit
    done = await rig.run(rig.manager.wait_for_protection(r.operation_id))
    assert done.outcome is BracketOutcome.PROTECTED
    assert rig.position() == 2 and [s.size for s in rig.stops()] == [2]


async def test_target_fill_cancels_stop_and_completes(rig: Rig) -> None:
    """Target fills: the stop is cancelled at the exchange and the operation completes."""
    r = await market_bracket(rig)
    rig.price("21010")
    done = await rig.run(rig.manager.wait_for_completion(r.operation_id))
    assert (done.outcome, done.reason) == (BracketOutcome.FLAT, "closed by the target")
    assert rig.position() == 0 and rig.working() == []
    assert rig.manager.recovery.get_operation_status(r.operation_id)["state"] == "completed"


async def test_stop_fill_cancels_target(rig: Rig) -> None:
    """Stop fills: the target is cancelled; nothing is left working on a flat contract."""
    r = await market_bracket(rig)
    rig.price("20990")
    done = await rig.run(rig.manager.wait_for_completion(r.operation_id))
    assert done.reason == "closed by the stop"
    assert rig.position() == 0 and rig.working() == []


async def test_entry_timeout_cancels_unfilled_entry(rig: Rig) -> None:
    """An unfilled entry is cancelled at its timeout; the operation is rolled back."""
    r = await rig.manager.place_bracket_order(
        MNQ, BUY, 1, D("20990"), D("20980"), D("21000.25"), entry_timeout=5.0
    )
    done = await rig.run(rig.manager.wait_for_completion(r.operation_id))
    assert done.outcome is BracketOutcome.FLAT and "timeout" in (done.reason or "")
    assert rig.working() == [] and rig.clock.monotonic() == pytest.approx(5.0)
    assert rig.manager.recovery.get_operation_status(r.operation_id)["state"] == "rolled_back"


@pytest.mark.parametrize(
    ("side", "entry", "stop", "target"),
    [
        (BUY, "21000", "21005", "21010"),  # long stop above entry
        (BUY, "21000", "20990", "20995"),  # long target below entry
        (SELL, "21000", "20990", "20980"),  # short stop below entry
        (SELL, "21000", "21010", "21005"),  # short target above entry
    ],
)
async def test_wrong_side_prices_refused_before_sending(
    rig: Rig, side: OrderSide, entry: str, stop: str, target: str
) -> None:
    """Stop and target on the wrong side of the entry: InvalidPriceError, nothing sent."""
    with pytest.raises(InvalidPriceError):
        await rig.manager.place_bracket_order(MNQ, side, 1, D(entry), D(stop), D(target))
    assert rig.ex.orders(1) == []


async def test_market_bracket_checks_against_the_market(rig: Rig) -> None:
    """For a market entry the stop must be below the last price for a long."""
    with pytest.raises(InvalidPriceError):
        await rig.manager.place_bracket_order(
            MNQ, BUY, 1, None, D("21001"), D("21010"), entry_type="market"
        )
    assert rig.ex.orders(1) == []


async def test_off_tick_and_size_refused(rig: Rig) -> None:
    """Off-tick prices and sizes beyond the account limit are refused before sending."""
    with pytest.raises(InvalidPriceError):
        await rig.manager.place_bracket_order(MNQ, BUY, 1, D("20995"), D("20985.1"), D("21005"))
    with pytest.raises(InvalidSizeError):
        await rig.manager.place_bracket_order(MNQ, BUY, 51, D("20995"), D("20985"), D("21005"))
    with pytest.raises(ValidationError):
        await rig.manager.place_bracket_order(
            MNQ, BUY, 1, D("20995"), D("20985"), D("21005"), entry_type="stop"
        )
    assert rig.ex.orders(1) == []


async def test_native_bracket_uses_server_children() -> None:
    """Native mode: exits are server-side children of the entry, protected at the fill."""
    rig = await make_rig(native=True)
    r = await market_bracket(rig)
    assert r.native and r.outcome is BracketOutcome.PROTECTED
    children = [o for o in rig.working() if o.parent_order_id == r.entry_order_id]
    assert sorted(o.type for o in children) == [OrderType.LIMIT, OrderType.STOP]
    assert all(o.status is OrderStatus.OPEN and o.size == 2 for o in children)
    assert len(rig.ex.orders(1)) == 3  # entry + two children: nothing placed client-side
    assert rig.manager.get_recovery_statistics()["max_unprotected_seconds"] == 0.0
    await rig.manager.cleanup()


async def test_native_target_fill_completes() -> None:
    """Native: the server's OCO cancels the stop; the saga completes with nothing left."""
    rig = await make_rig(native=True)
    r = await market_bracket(rig)
    rig.price("21011")
    done = await rig.run(rig.manager.wait_for_completion(r.operation_id))
    assert done.reason == "closed by the target"
    assert rig.position() == 0 and rig.working() == []
    await rig.manager.cleanup()


async def test_native_exits_cancelled_after_market_close() -> None:
    """A market close does not cancel native legs: the saga cancels them (I2)."""
    rig = await make_rig(native=True)
    r = await market_bracket(rig)
    await rig.sim.close_position(1, MNQ)
    done = await rig.run(rig.manager.wait_for_completion(r.operation_id))
    assert done.outcome is BracketOutcome.FLAT
    assert rig.position() == 0 and rig.working() == []
    await rig.manager.cleanup()


async def test_position_brackets_rejection_switches_to_client_side() -> None:
    """'Position Brackets' refuses native legs: the account goes client-side, still protected."""
    rig = await make_rig(native=False)
    r = await rig.run(
        rig.manager.place_bracket_order(
            MNQ, BUY, 1, None, D("20990"), D("21010"), entry_type="market", native=True
        )
    )
    assert not r.native and r.outcome is BracketOutcome.PROTECTED
    assert rig.position() == 1 and len(rig.stops()) == 1
    tags = [o.custom_tag for o in rig.ex.orders(1)]
    assert any(t and t.endswith("-entry-1") for t in tags)  # a new generation of the entry tag
    again = await rig.run(
        rig.manager.place_bracket_order(
            MNQ, BUY, 1, None, D("20990"), D("21010"), entry_type="market"
        )
    )
    assert not again.native  # the switch sticks for the account
    await rig.manager.cleanup()


async def test_statistics_report_time_to_protection(rig: Rig) -> None:
    """Recovery statistics carry time to protection and unprotected exposure keys."""
    await market_bracket(rig)
    stats = rig.manager.get_recovery_statistics()
    for key in (
        "time_to_protection_p50",
        "time_to_protection_p99",
        "unprotected_seconds_total",
        "unprotected_episodes",
        "max_unprotected_seconds",
    ):
        assert key in stats
    assert stats["unprotected_episodes"] == 1 and stats["time_to_protection_samples"] == 1


async def test_per_operation_exposure_recorded(rig: Rig) -> None:
    """The finished operation's record holds its episodes and time to protection."""
    r = await market_bracket(rig)
    rig.price("21010")
    await rig.run(rig.manager.wait_for_completion(r.operation_id))
    extra = rig.manager.recovery.get_operation_status(r.operation_id)["extra"]["bracket_result"]
    assert len(extra["unprotected_episodes"]) == 1 and len(extra["time_to_protection"]) == 1
