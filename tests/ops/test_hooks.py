"""Recovery hooks: the closed decision set, the virtual-clock timeout, and the bracket points."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from orderguard.broker.base import Outcome
from orderguard.broker.sim import SimBroker
from orderguard.clock import VirtualClock
from orderguard.errors import ConnectionFailedError
from orderguard.journal.memory import MemoryJournal
from orderguard.models import OrderRequest, OrderType
from orderguard.ops.alerts import Alert, AlertKind
from orderguard.ops.hooks import (
    DelayFlatten,
    HookContext,
    HookOutcome,
    HookPoint,
    Proceed,
    RecoveryHooks,
    TightenStop,
    journal_recorder,
)
from orderguard.orders import OrderManager
from orderguard.orders.bracket.values import BracketOutcome, BracketSettings

from .rig import Rig, make_rig, market_bracket

FLATTEN_CTX = HookContext(
    point=HookPoint.BEFORE_FLATTEN,
    operation_id="op1",
    owned=2,
    flatten_budget=1.5,
    stop_price=Decimal("20990"),
)


async def test_a_hook_that_raises_is_ignored_and_recorded() -> None:
    """A raising hook reads as Proceed; its run says it raised, with the error."""
    clock = VirtualClock()
    hooks = RecoveryHooks(clock)

    async def broken(ctx: HookContext) -> Proceed:
        raise RuntimeError("strategy bug")

    hooks.register(HookPoint.BEFORE_FLATTEN, broken)
    decision = await clock.run(hooks.consult(FLATTEN_CTX))
    assert decision == Proceed()
    [run] = hooks.runs
    assert run.outcome is HookOutcome.RAISED and "strategy bug" in run.detail
    assert hooks.stats["hook_raised"] == 1


async def test_a_hook_that_hangs_is_timed_out_on_the_virtual_clock() -> None:
    """A hook that never answers is abandoned after ``timeout`` virtual seconds: Proceed."""
    clock = VirtualClock()
    hooks = RecoveryHooks(clock, timeout=0.5)

    async def hangs(ctx: HookContext) -> DelayFlatten:
        await asyncio.Event().wait()
        return DelayFlatten(1.0)

    hooks.register(HookPoint.BEFORE_FLATTEN, hangs)
    start = clock.monotonic()
    decision = await clock.run(hooks.consult(FLATTEN_CTX))
    assert decision == Proceed()
    assert clock.monotonic() - start == 0.5
    assert [r.outcome for r in hooks.runs] == [HookOutcome.TIMED_OUT]


async def test_a_hook_that_swallows_its_cancellation_still_times_out() -> None:
    """The wait ends at the timeout even if the hook refuses to be cancelled."""
    clock = VirtualClock()
    hooks = RecoveryHooks(clock, timeout=0.25)
    release = asyncio.Event()

    async def stubborn(ctx: HookContext) -> Proceed:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue
        return Proceed()

    hooks.register(HookPoint.BEFORE_ROLLBACK, stubborn)
    ctx = HookContext(point=HookPoint.BEFORE_ROLLBACK, operation_id="op1")
    assert await clock.run(hooks.consult(ctx)) == Proceed()
    assert hooks.runs[-1].outcome is HookOutcome.TIMED_OUT
    release.set()
    await asyncio.sleep(0)


async def test_decisions_outside_the_closed_set_are_refused() -> None:
    """A delay at before_rollback, a looser stop, or a non-decision: refused, read as Proceed."""
    clock = VirtualClock()
    hooks = RecoveryHooks(clock)

    async def delays(ctx: HookContext) -> DelayFlatten:
        return DelayFlatten(5.0)

    async def looser(ctx: HookContext) -> TightenStop:
        return TightenStop(Decimal("20980"))  # a long's stop lower: looser

    async def nonsense(ctx: HookContext) -> str:
        return "cancel the stop"

    hooks.register(HookPoint.BEFORE_ROLLBACK, delays)
    rollback = HookContext(point=HookPoint.BEFORE_ROLLBACK, operation_id="op1", owned=1)
    assert await clock.run(hooks.consult(rollback)) == Proceed()
    hooks.register(HookPoint.BEFORE_FLATTEN, looser)
    hooks.register(HookPoint.BEFORE_FLATTEN, nonsense)  # type: ignore[arg-type]
    assert await clock.run(hooks.consult(FLATTEN_CTX)) == Proceed()
    assert [r.outcome for r in hooks.runs] == [HookOutcome.REFUSED] * 3
    assert "not allowed at before_rollback" in hooks.runs[0].detail
    assert "not tighter" in hooks.runs[1].detail


async def test_a_delay_is_clamped_to_the_deadline_budget() -> None:
    """DelayFlatten(60) where only 1.5 s remain before the deadline: 1.5 s."""
    clock = VirtualClock()
    hooks = RecoveryHooks(clock)

    async def long_delay(ctx: HookContext) -> DelayFlatten:
        return DelayFlatten(60.0)

    hooks.register(HookPoint.BEFORE_FLATTEN, long_delay)
    assert await clock.run(hooks.consult(FLATTEN_CTX)) == DelayFlatten(1.5)


async def test_the_most_protective_answer_wins() -> None:
    """Proceed from one hook beats another hook's delay."""
    clock = VirtualClock()
    hooks = RecoveryHooks(clock)

    async def delay(ctx: HookContext) -> DelayFlatten:
        return DelayFlatten(1.0)

    async def proceed(ctx: HookContext) -> Proceed:
        return Proceed()

    hooks.register(HookPoint.BEFORE_FLATTEN, delay)
    hooks.register(HookPoint.BEFORE_FLATTEN, proceed)
    assert await clock.run(hooks.consult(FLATTEN_CTX)) == Proceed()


async def test_hook_runs_are_journaled() -> None:
    """Each run becomes a journal event of kind 'hook'."""
    clock = VirtualClock()
    journal = MemoryJournal(clock)
    await journal.open()
    tasks: list[asyncio.Task[None]] = []
    hooks = RecoveryHooks(
        clock,
        record=journal_recorder(journal, clock, lambda c: tasks.append(asyncio.ensure_future(c))),
    )

    async def broken(ctx: HookContext) -> Proceed:
        raise ValueError("nope")

    hooks.register(HookPoint.BEFORE_FLATTEN, broken)
    await clock.run(hooks.consult(FLATTEN_CTX))
    await asyncio.gather(*tasks)
    [event] = await journal.events_for("op1")
    assert event.kind == "hook" and event.payload["outcome"] == "raised"


class _StopsRefusedUntil:
    """Wraps a SimBroker: stop placements are refused before they leave until ``until``."""

    def __init__(self, inner: SimBroker, clock: VirtualClock, until: float) -> None:
        self._inner = inner
        self._clock = clock
        self._until = clock.monotonic() + until

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    async def place_order(self, request: OrderRequest) -> Outcome:
        if request.type is OrderType.STOP and self._clock.monotonic() < self._until:
            raise ConnectionFailedError("injected: connection refused")
        return await self._inner.place_order(request)


async def _late_stop_rig(until: float) -> Rig:
    return await make_rig(
        wrap=lambda sim, clock: _StopsRefusedUntil(sim, clock, until),  # type: ignore[return-value]
        settings=BracketSettings(protection_deadline=4.0, max_attempts=50),
    )


async def test_without_hooks_a_late_stop_means_a_flatten() -> None:
    """Baseline: the stop can leave only after 3 s; the flatten point (2 s) comes first."""
    rig = await _late_stop_rig(3.0)
    r = await market_bracket(rig)
    done = await rig.run(rig.manager.wait_for_completion(r.operation_id))
    assert done.outcome is BracketOutcome.FLAT and rig.position() == 0
    await rig.manager.cleanup()


async def test_before_flatten_hook_delays_within_the_deadline_and_the_stop_lands() -> None:
    """The hook postpones the flatten (within the 4 s deadline); the stop placed at 3 s
    protects the position, at the tighter price the hook chose; nothing was flattened."""
    rig = await _late_stop_rig(3.0)
    m = rig.manager
    seen: list[HookContext] = []

    @m.hooks.on(HookPoint.BEFORE_FLATTEN)
    async def give_it_time(ctx: HookContext) -> TightenStop:
        seen.append(ctx)
        return TightenStop(Decimal("20995"))

    r = await market_bracket(rig)
    await rig.run(rig.clock.sleep(3.5))
    status = m.get_bracket_status(r.operation_id)
    assert status is not None and status.outcome is BracketOutcome.PROTECTED
    [ctx] = seen
    assert ctx.owned == 1 and 0 < ctx.flatten_budget <= 2.0
    [stop] = rig.stops()
    assert stop.stop_price == Decimal("20995")
    assert rig.position() == 1
    assert m.telemetry.unprotected.samples == 1
    assert m.telemetry.unprotected.total < 4.0  # inside the deadline
    await m.cleanup()


async def test_a_hanging_before_flatten_hook_does_not_stop_the_flatten() -> None:
    """A hook that hangs at before_flatten is timed out; the bracket is still flattened."""
    rig = await _late_stop_rig(30.0)
    m = rig.manager

    @m.hooks.on(HookPoint.BEFORE_FLATTEN)
    async def hangs(ctx: HookContext) -> DelayFlatten:
        await asyncio.Event().wait()
        return DelayFlatten(10.0)

    r = await market_bracket(rig)
    done = await rig.run(m.wait_for_completion(r.operation_id))
    assert done.outcome is BracketOutcome.FLAT and rig.position() == 0
    assert [run.outcome for run in m.hooks.runs] == [HookOutcome.TIMED_OUT]
    await m.cleanup()


async def test_after_recovery_hooks_are_told_at_start() -> None:
    """A hook registered before start hears the start-up recovery's summary."""
    clock = VirtualClock()
    sim = SimBroker.create(clock, prices={"CON.F.US.MNQ.Z26": Decimal("21000")})
    m = OrderManager(sim, clock=clock)
    heard: list[HookContext] = []

    @m.hooks.on(HookPoint.AFTER_RECOVERY)
    async def note(ctx: HookContext) -> Proceed:
        heard.append(ctx)
        return Proceed()

    await clock.run(m.start())
    assert [c.point for c in heard] == [HookPoint.AFTER_RECOVERY]
    assert heard[0].details["unfinished"] == 0
    await m.cleanup()


async def test_before_rollback_hooks_are_told_of_a_forced_rollback() -> None:
    """force_rollback_operation on a protected bracket: the hook hears it, owning 1; the
    rollback goes on whatever it answers."""
    rig = await make_rig()
    m = rig.manager
    heard: list[HookContext] = []

    @m.hooks.on(HookPoint.BEFORE_ROLLBACK)
    async def note(ctx: HookContext) -> DelayFlatten:
        heard.append(ctx)
        return DelayFlatten(5.0)  # not allowed here: refused, the rollback proceeds

    r = await market_bracket(rig)
    assert await rig.run(m.force_rollback_operation(r.operation_id))
    assert rig.position() == 0
    [ctx] = heard
    assert ctx.operation_id == r.operation_id and ctx.owned == 1
    assert [run.outcome for run in m.hooks.runs] == [HookOutcome.REFUSED]
    await m.cleanup()


class _Switchable:
    """Wraps a SimBroker: while ``refuse_markets``, market orders are refused before leaving."""

    def __init__(self, inner: SimBroker) -> None:
        self._inner = inner
        self.refuse_markets = False

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    async def place_order(self, request: OrderRequest) -> Outcome:
        if self.refuse_markets and request.type is OrderType.MARKET:
            raise ConnectionFailedError("injected: connection refused")
        return await self._inner.place_order(request)


async def test_protection_late_hooks_and_the_alert_when_a_rollback_cannot_flatten() -> None:
    """A forced rollback whose flatten never leaves outlives the deadline: protection_late hooks
    are told and the alert monitor raises rollback_unconfirmed; the executor keeps the stop."""
    wrapper: list[_Switchable] = []

    def wrap(sim: SimBroker, clock: VirtualClock) -> _Switchable:
        wrapper.append(_Switchable(sim))
        return wrapper[0]

    rig = await make_rig(wrap=wrap)  # type: ignore[arg-type]
    m = rig.manager
    heard: list[HookContext] = []
    alerts: list[Alert] = []
    m.enable_alerts(callback=alerts.append)

    @m.hooks.on(HookPoint.PROTECTION_LATE)
    async def note(ctx: HookContext) -> Proceed:
        heard.append(ctx)
        return Proceed()

    r = await market_bracket(rig)
    wrapper[0].refuse_markets = True
    assert not await rig.run(m.force_rollback_operation(r.operation_id))
    await rig.run(rig.clock.sleep(m.config.protection_deadline))
    assert m.alerts is not None
    await m.alerts.alerter.drain()
    [ctx] = heard
    assert ctx.operation_id == r.operation_id and ctx.owned == 1
    assert AlertKind.ROLLBACK_UNCONFIRMED in {a.kind for a in alerts}
    assert rig.position() == 1 and len(rig.stops()) == 1  # never left unprotected meanwhile
    wrapper[0].refuse_markets = False
    # The refused re-sends filled the local rate-limit window: the flatten waits for it.
    await rig.run(rig.clock.sleep(m.config.rate_limit_window))
    assert rig.position() == 0 and rig.stops() == []
    await m.cleanup()
