"""Recovery hooks: user code consulted at named points of an operation's life.

A hook is an async callable taking a frozen :class:`HookContext` and returning a
:class:`HookDecision`. The decisions form a closed set chosen so that no answer can leave
exposure unprotected:

* :class:`Proceed` — do what orderguard would have done;
* :class:`DelayFlatten` — postpone a forced flatten, but never past the protection deadline (the
  delay is clamped to ``HookContext.flatten_budget``); the saga keeps trying to protect meanwhile;
* :class:`TightenStop` — place the next stop at a price closer to the market than the planned one
  (a looser one is refused).

There is no decision that cancels protection or skips a flatten. Each point admits only the
decisions listed in :data:`ALLOWED`; anything else (another type, a decision of the wrong point, a
looser stop) is refused, recorded and read as :class:`Proceed`.

A hook that raises, or does not answer within ``timeout`` seconds *of the injected clock*, is
ignored (read as :class:`Proceed`) and recorded. The timeout stops *waiting* for the hook at once,
even one that swallows its cancellation; a hook that blocks the event loop synchronously cannot be
timed out by anyone, so hooks must be ``async`` and must not block.

Several hooks at one point all run, in registration order; the most protective answer wins: any
:class:`Proceed` beats a delay (the flatten goes at once), the tightest stop wins.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from orderguard.clock import Clock
from orderguard.errors import JournalError
from orderguard.journal.base import EventRecord, Journal

log = logging.getLogger("orderguard.ops.hooks")

DEFAULT_HOOK_TIMEOUT = 0.25
"""Seconds a hook may take: short, because a bracket may be unprotected while it runs."""


class HookPoint(StrEnum):
    """Where in an operation's life a hook is consulted."""

    BEFORE_ROLLBACK = "before_rollback"
    """An operation is about to be rolled back (forced by a caller, or a bracket going flat for
    any reason other than its protection deadline)."""
    PROTECTION_LATE = "protection_late"
    """A rollback obligation still holds exposure past the protection deadline."""
    BEFORE_FLATTEN = "before_flatten"
    """A bracket's protection was not confirmed in time: its position is about to be flattened."""
    AFTER_RECOVERY = "after_recovery"
    """Start-up recovery (or its re-run) has reconciled the journal with broker truth."""


@dataclass(frozen=True, slots=True)
class HookContext:
    """What a hook is told (plain values; the hook cannot reach the manager through it)."""

    point: HookPoint
    operation_id: str | None = None
    account_id: int | None = None
    contract_id: str | None = None
    reason: str = ""
    owned: int = 0
    """Signed quantity the operation owns (positive long)."""
    covered: int = 0
    """How much of it a working stop covers."""
    unprotected_seconds: float = 0.0
    flatten_budget: float = 0.0
    """The longest :class:`DelayFlatten` this point still allows (0: none)."""
    stop_price: Decimal | None = None
    """The stop price the next stop would use."""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Proceed:
    """Do what orderguard planned."""


@dataclass(frozen=True, slots=True)
class DelayFlatten:
    """Wait up to ``seconds`` more before flattening (clamped to the deadline's budget)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class TightenStop:
    """Try the stop once more at ``price`` (closer to the market than the planned stop), and
    flatten only if it is not confirmed within ``seconds`` (None: the whole budget)."""

    price: Decimal
    seconds: float | None = None


HookDecision = Proceed | DelayFlatten | TightenStop
Hook = Callable[[HookContext], Awaitable[HookDecision]]

ALLOWED: dict[HookPoint, tuple[type, ...]] = {
    HookPoint.BEFORE_ROLLBACK: (Proceed,),
    HookPoint.PROTECTION_LATE: (Proceed,),
    HookPoint.BEFORE_FLATTEN: (Proceed, DelayFlatten, TightenStop),
    HookPoint.AFTER_RECOVERY: (Proceed,),
}
"""The decisions each point admits (a rollback is never postponed; only a bracket's own
deadline flatten can wait, within the deadline)."""


class HookOutcome(StrEnum):
    DECIDED = "decided"
    RAISED = "raised"
    TIMED_OUT = "timed_out"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class HookRun:
    """The record of one hook call (kept in :attr:`RecoveryHooks.runs` and journaled)."""

    point: HookPoint
    hook: str
    operation_id: str | None
    outcome: HookOutcome
    decision: str
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "point": self.point.value,
            "hook": self.hook,
            "operation_id": self.operation_id,
            "outcome": self.outcome.value,
            "decision": self.decision,
            "detail": self.detail,
        }


def _name(hook: Hook) -> str:
    return getattr(hook, "__qualname__", None) or type(hook).__name__


def _describe(decision: object) -> str:
    if isinstance(decision, DelayFlatten):
        return f"delay_flatten({decision.seconds:g}s)"
    if isinstance(decision, TightenStop):
        return f"tighten_stop({decision.price}, {decision.seconds or 0:g}s)"
    if isinstance(decision, Proceed):
        return "proceed"
    return type(decision).__name__


def is_tighter(candidate: Decimal, planned: Decimal | None, owned: int) -> bool:
    """A stop protecting a long (a sell stop) is tighter when higher; a short's when lower."""
    if planned is None or owned == 0 or not candidate.is_finite() or candidate <= 0:
        return False
    return candidate > planned if owned > 0 else candidate < planned


class RecoveryHooks:
    """The registry and runner of recovery hooks of one OrderManager (``manager.hooks``)."""

    def __init__(
        self,
        clock: Clock,
        *,
        timeout: float = DEFAULT_HOOK_TIMEOUT,
        record: Callable[[HookRun], object] | None = None,
        max_runs: int = 500,
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"hook timeout must be positive, got {timeout!r}")
        self._clock = clock
        self.timeout = timeout
        self._hooks: dict[HookPoint, list[Hook]] = {p: [] for p in HookPoint}
        self._record = record
        self.runs: deque[HookRun] = deque(maxlen=max_runs)
        self.stats: Counter[str] = Counter()

    def register(self, point: HookPoint | str, hook: Hook) -> Hook:
        """Consult ``hook`` at ``point``; returns it (usable as a decorator via :meth:`on`)."""
        point = HookPoint(point)
        if not callable(hook):
            raise TypeError("a hook is an async callable taking a HookContext")
        self._hooks[point].append(hook)
        return hook

    def on(self, point: HookPoint | str) -> Callable[[Hook], Hook]:
        def decorate(hook: Hook) -> Hook:
            return self.register(point, hook)

        return decorate

    def unregister(self, point: HookPoint | str, hook: Hook) -> bool:
        hooks = self._hooks[HookPoint(point)]
        if hook in hooks:
            hooks.remove(hook)
            return True
        return False

    def registered(self, point: HookPoint | str) -> bool:
        return bool(self._hooks[HookPoint(point)])

    async def consult(self, ctx: HookContext) -> HookDecision:
        """Run every hook of ``ctx.point``; the combined, validated decision."""
        hooks = list(self._hooks[ctx.point])
        if not hooks:
            return Proceed()
        decisions = [await self._run_one(hook, ctx) for hook in hooks]
        return most_protective(decisions, ctx.owned)

    async def tell(self, ctx: HookContext) -> None:
        """Consult for a point whose only decision is :class:`Proceed` (runs are recorded)."""
        await self.consult(ctx)

    async def _run_one(self, hook: Hook, ctx: HookContext) -> HookDecision:
        name = _name(hook)
        self.stats["hook_calls"] += 1
        try:
            answer = await self._bounded(hook, ctx)
        except TimeoutError:
            return self._note(ctx, name, HookOutcome.TIMED_OUT, f"no answer in {self.timeout:g}s")
        except Exception as exc:
            log.warning("recovery hook %s at %s raised %s (ignored)", name, ctx.point, exc)
            return self._note(ctx, name, HookOutcome.RAISED, f"{type(exc).__name__}: {exc}")
        refusal = _refusal(ctx, answer)
        if refusal is not None:
            return self._note(ctx, name, HookOutcome.REFUSED, refusal, decision=answer)
        assert isinstance(answer, Proceed | DelayFlatten | TightenStop)
        if isinstance(answer, DelayFlatten):
            answer = DelayFlatten(_clamp(answer.seconds, ctx.flatten_budget))
        elif isinstance(answer, TightenStop):
            answer = TightenStop(answer.price, _clamp(answer.seconds, ctx.flatten_budget))
        self._note(ctx, name, HookOutcome.DECIDED, "", decision=answer)
        return answer

    async def _bounded(self, hook: Hook, ctx: HookContext) -> object:
        """Await the hook for at most ``timeout`` on the injected clock. The wait ends at the
        timeout even when the hook ignores its cancellation (it is left cancelled)."""
        task: asyncio.Task[object] = asyncio.ensure_future(_call(hook, ctx))
        expired: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def expire() -> None:
            if not expired.done():
                expired.set_result(None)

        timer = self._clock.call_later(self.timeout, expire)
        try:
            waiting: set[asyncio.Future[Any]] = {task, expired}
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
        if not task.done():
            task.cancel()
            task.add_done_callback(_consume)
            raise TimeoutError
        return task.result()

    def _note(
        self,
        ctx: HookContext,
        name: str,
        outcome: HookOutcome,
        detail: str,
        *,
        decision: object = None,
    ) -> HookDecision:
        described = "proceed" if outcome is not HookOutcome.DECIDED else _describe(decision)
        if outcome is HookOutcome.REFUSED:
            detail = f"{_describe(decision)} refused: {detail}"
        run = HookRun(ctx.point, name, ctx.operation_id, outcome, described, detail)
        self.runs.append(run)
        self.stats[f"hook_{outcome.value}"] += 1
        if self._record is not None:
            try:
                self._record(run)
            except Exception:
                log.exception("recording a hook run failed")
        if outcome is HookOutcome.DECIDED:
            assert isinstance(decision, Proceed | DelayFlatten | TightenStop)
            return decision
        return Proceed()


def journal_recorder(
    journal: Journal, clock: Clock, spawn: Callable[[Any], object]
) -> Callable[[HookRun], None]:
    """A recorder that journals each hook run as an event of kind ``hook`` (in the background:
    a run is recorded on the path of a rollback, which must not wait on the journal)."""
    counter = 0

    async def write(run: HookRun) -> None:
        at = clock.now()
        try:
            await journal.record_event(
                EventRecord(
                    operation_id=run.operation_id,
                    kind="hook",
                    key=f"hook:{run.point.value}:{run.operation_id}:{at.isoformat()}:{counter}",
                    payload=run.as_dict(),
                    at=at,
                )
            )
        except JournalError:
            log.warning("hook run of %s not journaled: the journal cannot be written", run.hook)

    def record(run: HookRun) -> None:
        nonlocal counter
        counter += 1
        spawn(write(run))

    return record


async def _call(hook: Hook, ctx: HookContext) -> object:
    return await hook(ctx)


def _consume(task: asyncio.Task[object]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: a hook that failed late is not an "unretrieved" warning


def _refusal(ctx: HookContext, answer: object) -> str | None:
    if not isinstance(answer, Proceed | DelayFlatten | TightenStop):
        return f"not a HookDecision ({type(answer).__name__})"
    if not isinstance(answer, ALLOWED[ctx.point]):
        return f"not allowed at {ctx.point.value}"
    seconds = answer.seconds if isinstance(answer, DelayFlatten | TightenStop) else 0.0
    if seconds is not None and not (isinstance(seconds, int | float) and seconds >= 0):
        return "a delay must be a number of seconds >= 0"
    if isinstance(answer, TightenStop) and not (
        isinstance(answer.price, Decimal) and is_tighter(answer.price, ctx.stop_price, ctx.owned)
    ):
        return f"{answer.price} is not tighter than the planned stop {ctx.stop_price}"
    return None


def _clamp(seconds: float | None, budget: float) -> float:
    wanted = budget if seconds is None else seconds
    return max(0.0, min(float(wanted), budget))


def most_protective(decisions: list[HookDecision], owned: int) -> HookDecision:
    """Any Proceed beats everything (the flatten goes at once); otherwise the shortest delay,
    with the tightest of the stops asked for (if any)."""
    if not decisions or any(isinstance(d, Proceed) for d in decisions):
        return Proceed()
    waits = [d.seconds or 0.0 for d in decisions if isinstance(d, DelayFlatten | TightenStop)]
    prices = [d.price for d in decisions if isinstance(d, TightenStop)]
    if not prices:
        return DelayFlatten(min(waits))
    price = max(prices) if owned > 0 else min(prices)
    return TightenStop(price, min(waits))


__all__ = [
    "ALLOWED",
    "DEFAULT_HOOK_TIMEOUT",
    "DelayFlatten",
    "Hook",
    "HookContext",
    "HookDecision",
    "HookOutcome",
    "HookPoint",
    "HookRun",
    "Proceed",
    "RecoveryHooks",
    "TightenStop",
    "is_tighter",
    "journal_recorder",
    "most_protective",
]
