"""FaultyBroker: a seeded fault-injecting wrapper around any Broker.

Each operation name has its own RNG (derived from the seed and the name), and so does the event
stream, so adding a query to a workload never shifts which placement is ambiguous or which event
is dropped. Every call consumes the same number of draws whatever is decided — even while the
broker is disabled — so the fate of "the 7th ``place_order``" depends only on the seed.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from orderguard.broker.base import (
    Broker,
    EventHandler,
    Outcome,
    Rejected,
    Subscription,
    Unknown,
    UnknownOrigin,
)
from orderguard.broker.faults.events import EventStreamFaults
from orderguard.broker.faults.plan import (
    DEFAULT_REJECT_CODES,
    EVENT_TARGET,
    MUTATION_KINDS,
    MUTATION_OPS,
    QUERY_KINDS,
    QUERY_OPS,
    FaultKind,
    FaultPlan,
    ScriptedFault,
    StormKind,
)
from orderguard.broker.middleware import BrokerCall, BrokerMiddleware
from orderguard.clock import Clock
from orderguard.errors import BrokerError, ConnectionFailedError, RateLimitedError

T = TypeVar("T")
logger = logging.getLogger("orderguard.broker.faults")

# Executed-but-unproven kinds and the Unknown origin the caller sees for each.
_EXECUTED_ORIGIN = {
    FaultKind.AMBIGUOUS: UnknownOrigin.TIMEOUT_AFTER_SEND,
    FaultKind.SERVER_ERROR: UnknownOrigin.SERVER_ERROR,
    FaultKind.PENDING: UnknownOrigin.PENDING,
    FaultKind.UNKNOWN_CODE: UnknownOrigin.UNKNOWN_CODE,
    FaultKind.RATE_LIMITED_AFTER_SEND: UnknownOrigin.RATE_LIMITED_AFTER_SEND,
}


@dataclass(frozen=True, slots=True)
class FaultRecord:
    """One injected fault. ``at`` is the clock's monotonic time; ``nth`` the 1-based position of
    the call among calls of ``target`` (an operation name or ``"event"``; 0 for a manual gap)."""

    at: float
    kind: FaultKind
    target: str
    nth: int
    detail: str


@dataclass(frozen=True, slots=True)
class Storm:
    """One fault storm: from ``start`` to ``end`` (monotonic seconds) every call fails."""

    kind: StormKind
    start: float
    end: float


# How long a call waits for the answer that never comes during a NO_ANSWER storm.
NO_ANSWER_WAIT = 5.0


@dataclass(frozen=True, slots=True)
class _Decision:
    kind: FaultKind | None = None  # an outcome fault, or None for a plain call
    before: float = 0.0  # seconds to wait before the inner call
    after: float = 0.0  # seconds to wait after it
    seconds: float = 0.0  # LATE / QUERY_TIMEOUT length
    script: ScriptedFault | None = None


def _uniform(bounds: tuple[float, float], u: float) -> float:
    return bounds[0] + (bounds[1] - bounds[0]) * u


class FaultyBroker(BrokerMiddleware):
    """A :class:`~orderguard.broker.base.Broker` that injects the plan's faults into ``inner``."""

    def __init__(self, inner: Broker, clock: Clock, plan: FaultPlan, seed: int) -> None:
        super().__init__(inner)
        self.plan = plan
        self.seed = seed
        self._clock = clock
        self._enabled = True
        # String seeds hash through SHA-512 in ``random``: stable across runs and processes.
        self._rngs = {
            op: random.Random(f"orderguard.faults:{seed}:{op}") for op in MUTATION_OPS + QUERY_OPS
        }
        self._calls = dict.fromkeys(MUTATION_OPS + QUERY_OPS, 0)
        self._runtime_script: list[ScriptedFault] = []
        self._late: set[asyncio.Task[Outcome]] = set()
        self._late_timers = 0
        self.fault_log: list[FaultRecord] = []
        self._counts: dict[FaultKind, int] = {}
        self._events = EventStreamFaults(
            clock,
            plan,
            rng=random.Random(f"orderguard.faults:{seed}:{EVENT_TARGET}"),
            record=self._record,
            enabled=lambda: self._enabled,
            on_empty=self._close_inner,
        )
        self._inner_sub: Subscription | None = None
        self.storms: list[Storm] = []
        """Every storm started, in order (see :meth:`storm`)."""

    # -- control ----------------------------------------------------------------------------
    @property
    def enabled(self) -> bool:
        """False passes everything through. Turning it off also ends an open gap now (with
        RECONNECTED for a disconnect) and releases held events, so the system can settle;
        already-delayed events and late executions still arrive when due."""
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self._enabled = value
        if not value:
            self._events.end_gap()
            self._events.release_held()

    def storm(self, kind: StormKind, seconds: float) -> Storm:
        """Fail every call from now for ``seconds`` (a gateway outage, a 429 or 5xx storm).

        Unlike the random faults a storm does not stop when ``enabled`` is turned off: it is an
        outage the system must ride out, and :attr:`pending_effects` counts it until it ends.
        Calls still consume their random draws, so a storm shifts no later decision.
        """
        if seconds <= 0:
            raise ValueError("a storm lasts a positive number of seconds")
        now = self._clock.monotonic()
        storm = Storm(kind, now, now + seconds)
        self.storms.append(storm)
        self._record(FaultKind.STORM, "storm", len(self.storms), f"{kind.value} for {seconds:.3f}s")
        return storm

    def storm_now(self) -> Storm | None:
        """The storm in force now, if any."""
        now = self._clock.monotonic()
        for storm in reversed(self.storms):
            if storm.start <= now < storm.end:
                return storm
        return None

    async def _storm_call(self, storm: Storm, op: str, n: int, mutation: bool) -> Outcome:
        """What a call gets during ``storm``: never an execution."""
        self._record(FaultKind.STORM, op, n, storm.kind.value)
        if storm.kind is StormKind.HTTP_429:
            raise RateLimitedError(f"injected storm: HTTP 429 on {op}", retry_after=1.0, sent=False)
        if storm.kind is StormKind.NO_ANSWER:
            await self._clock.sleep(NO_ANSWER_WAIT)
            if mutation:
                return Unknown(UnknownOrigin.CONNECTION_LOST, "injected storm: no answer")
            error = BrokerError(f"injected storm: {op} timed out")
        elif mutation:
            return Unknown(UnknownOrigin.SERVER_ERROR, "injected storm: HTTP 502")
        else:
            error = BrokerError(f"injected storm: HTTP 503 on {op}")
        error.retryable = True
        raise error

    @property
    def fault_counts(self) -> dict[FaultKind, int]:
        """Injected faults by kind (a copy)."""
        return dict(self._counts)

    @property
    def handler_errors(self) -> int:
        """Event handlers that raised (logged and swallowed)."""
        return self._events.handler_errors

    @property
    def pending_effects(self) -> int:
        """Faults still in flight: delayed or held events, an open gap, late executions.
        Zero (with ``enabled`` False) means the wrapper is quiet."""
        storming = 1 if self.storm_now() is not None else 0
        return self._events.pending + len(self._late) + self._late_timers + storming

    def fail_next(
        self,
        op: str,
        kind: FaultKind,
        *,
        repeat: int = 1,
        seconds: float | None = None,
        code: int | None = None,
        message: str | None = None,
    ) -> None:
        """Script a fault on the next call(s) of ``op`` from now (mutations and queries)."""
        if op not in self._calls:
            raise ValueError(f"fail_next takes an operation name, not {op!r}")
        self._runtime_script.append(
            ScriptedFault(
                op,
                self._calls[op] + 1,
                kind,
                repeat=repeat,
                seconds=seconds,
                code=code,
                message=message,
            )
        )

    def disconnect(self, seconds: float) -> None:
        """Disconnect the event stream now for ``seconds`` (DISCONNECTED ... RECONNECTED)."""
        self._events.start_gap(FaultKind.DISCONNECT, seconds)

    def go_silent(self, seconds: float) -> None:
        """Lose every event for ``seconds`` from now, without notice."""
        self._events.start_gap(FaultKind.GO_SILENT, seconds)

    # -- bookkeeping ------------------------------------------------------------------------
    def _record(self, kind: FaultKind, target: str, nth: int, detail: str) -> None:
        self.fault_log.append(FaultRecord(self._clock.monotonic(), kind, target, nth, detail))
        self._counts[kind] = self._counts.get(kind, 0) + 1
        logger.debug("fault %s on %s #%d: %s", kind.value, target, nth, detail)

    def _script_for(self, op: str, n: int) -> ScriptedFault | None:
        for s in (*self.plan.scripted, *self._runtime_script):
            if s.op == op and s.covers(n):
                return s
        return None

    def _decide(self, op: str, mutation: bool) -> tuple[int, _Decision]:
        self._calls[op] += 1
        n = self._calls[op]
        rng = self._rngs[op]
        # Fixed number of draws per call, used or not: decisions never shift one another.
        u_kind, u_delay, u_amount, u_where, u_param = (rng.random() for _ in range(5))
        if not self._enabled:
            return n, _Decision()
        if mutation:
            m = self.plan.for_mutation(op)
            kinds, rate, delay_p, delay_range = MUTATION_KINDS, m.rate, m.delay, m.delay_range
            param_range = m.late_range
        else:
            q = self.plan.query
            kinds, rate, delay_p, delay_range = QUERY_KINDS, q.rate, q.delay, q.delay_range
            param_range = (q.timeout_after, q.timeout_after)

        script = self._script_for(op, n)
        if script is not None:
            # A script is exact: it replaces the random decisions for this call entirely.
            if script.kind is FaultKind.DELAY:
                wait = _uniform(delay_range, u_amount) if script.seconds is None else script.seconds
                return n, _Decision(before=wait, script=script)
            seconds = _uniform(param_range, u_param) if script.seconds is None else script.seconds
            return n, _Decision(kind=script.kind, seconds=seconds, script=script)

        chosen: FaultKind | None = None
        acc = 0.0
        for kind in kinds:
            acc += rate(kind)
            if u_kind < acc:
                chosen = kind
                break
        before = after = 0.0
        if u_delay < delay_p:
            wait = _uniform(delay_range, u_amount)
            # Before: the request arrives late (the market moves first); after: the answer is
            # late (events may overtake it); both: split evenly.
            if u_where < 1 / 3:
                before = wait
            elif u_where < 2 / 3:
                after = wait
            else:
                before = after = wait / 2
        return n, _Decision(chosen, before, after, _uniform(param_range, u_param))

    # -- mutations --------------------------------------------------------------------------
    async def around_mutation(self, call: BrokerCall[Outcome]) -> Outcome:
        op, what = call.op, call.what
        n, d = self._decide(op, mutation=True)
        if (storm := self.storm_now()) is not None:
            return await self._storm_call(storm, op, n, mutation=True)
        if d.before or d.after:
            self._record(FaultKind.DELAY, op, n, f"{what}: +{d.before:.3f}s/+{d.after:.3f}s")
        if d.before:
            await self._clock.sleep(d.before)
        kind, script = d.kind, d.script
        faults = self.plan.for_mutation(op)
        result: Outcome
        if kind is None:
            result = await call.run()
        elif kind is FaultKind.REJECT:
            code = (script.code if script else None) or faults.reject_code
            code = DEFAULT_REJECT_CODES[op] if code is None else code
            message = (script.message if script else None) or faults.reject_message
            self._record(kind, op, n, f"{what}: code {code}")
            result = Rejected(code, message)
        elif kind is FaultKind.FAIL_BEFORE_SEND:
            self._record(kind, op, n, what)
            raise ConnectionFailedError(f"injected: connection refused on {op}")
        elif kind is FaultKind.RATE_LIMITED:
            retry_after = (script.retry_after if script else None) or faults.retry_after
            self._record(kind, op, n, what)
            raise RateLimitedError(
                f"injected: HTTP 429 on {op}", retry_after=retry_after, sent=False
            )
        elif kind is FaultKind.LOST:
            self._record(kind, op, n, f"{what}: never arrived")
            result = Unknown(UnknownOrigin.CONNECTION_LOST, "injected: connection lost")
        elif kind is FaultKind.LATE:
            self._record(kind, op, n, f"{what}: executes in {d.seconds:.3f}s")
            self._execute_later(op, n, call.run, d.seconds)
            result = Unknown(UnknownOrigin.TIMEOUT_AFTER_SEND, "injected: timed out, still queued")
        else:
            truth = await call.run()
            self._record(kind, op, n, f"{what}: executed -> {truth}")
            result = Unknown(_EXECUTED_ORIGIN[kind], f"injected: {kind.value}")
        if d.after:
            await self._clock.sleep(d.after)
        return result

    def _execute_later(
        self, op: str, n: int, call: Callable[[], Awaitable[Outcome]], seconds: float
    ) -> None:
        self._late_timers += 1

        async def run() -> Outcome:
            return await call()

        def done(task: asyncio.Task[Outcome]) -> None:
            self._late.discard(task)
            if task.cancelled():
                return
            if (exc := task.exception()) is not None:
                logger.warning("late execution of %s #%d raised: %r", op, n, exc)
            else:
                logger.debug("late execution of %s #%d -> %s", op, n, task.result())

        def start() -> None:
            self._late_timers -= 1
            task = asyncio.get_running_loop().create_task(run())
            self._late.add(task)  # keep a reference: the loop only holds weak ones
            task.add_done_callback(done)

        self._clock.call_later(seconds, start)

    # -- queries ----------------------------------------------------------------------------
    async def around_query(self, call: BrokerCall[T]) -> T:
        op = call.op
        n, d = self._decide(op, mutation=False)
        if (storm := self.storm_now()) is not None:
            await self._storm_call(storm, op, n, mutation=False)  # always raises for reads
        wait = d.before + d.after  # a slow read is just slow; where the time goes is moot
        if wait:
            self._record(FaultKind.DELAY, op, n, f"+{wait:.3f}s")
            await self._clock.sleep(wait)
        kind, script = d.kind, d.script
        if kind is None:
            return await call.run()
        self._record(kind, op, n, "")
        if kind is FaultKind.FAIL_BEFORE_SEND:
            raise ConnectionFailedError(f"injected: connection refused on {op}")
        if kind is FaultKind.RATE_LIMITED:
            retry_after = (script.retry_after if script else None) or self.plan.query.retry_after
            raise RateLimitedError(
                f"injected: HTTP 429 on {op}", retry_after=retry_after, sent=False
            )
        if kind is FaultKind.QUERY_TIMEOUT:
            await call.run()  # the broker answers; the answer never reaches us
            await self._clock.sleep(d.seconds)
            error = BrokerError(f"injected: {op} timed out after {d.seconds:.3f}s")
        else:
            error = BrokerError(f"injected: HTTP 503 on {op}")
        # A read is always safe to repeat; errors.py has no timeout/5xx subclass to say so.
        error.retryable = True
        raise error

    # -- events -----------------------------------------------------------------------------
    def subscribe(self, handler: EventHandler) -> Subscription:
        subscription = self._events.add(handler)
        if self._inner_sub is None:
            # One inner subscription feeds every handler: one "hub connection" to break.
            self._inner_sub = self.inner.subscribe(self._events.on_inner)
        return subscription

    def _close_inner(self) -> None:
        if self._inner_sub is not None:
            self._inner_sub.close()
            self._inner_sub = None


__all__ = ["NO_ANSWER_WAIT", "FaultRecord", "FaultyBroker", "Storm"]
