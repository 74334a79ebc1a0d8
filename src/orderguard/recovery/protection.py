"""The protection executor: exposure orderguard holds is never abandoned (DESIGN §1.11, I7).

An operation that owns exposure it can no longer carry forward — a bracket whose protection could
not be confirmed, a rollback forced by the caller, a leg definitively refused, an unfilled entry
found at start-up, a double fill of an OCO pair — is *rolled back*, and every rollback runs here,
in one executor with one retry policy. The operation stays ``rolling_back`` in the journal while
it does: that state is the standing obligation. It survives restarts (start-up recovery hands a
``rolling_back`` operation straight back to the executor of the new process), it is never given
up while the position is open, and an alert fires once when it outlives the protection deadline.

Each pass reads broker truth once per account (orders, positions, orders again until no fill fell
between the reads), plans every obligation of the account with the pure :func:`plan_rollback`,
and acts:

1. working entries are cancelled first; **exits stay until the entries are final** (an entry
   whose cancel loses to a fill must find its stop still there);
2. exposure first: what the operation owns, clamped by the account's position (allocated oldest
   operation first, so a rollback never flattens another operation's share), is flattened by a
   tagged market order; its stop keeps working until the flatten has filled;
3. a flatten in doubt is looked up by its tag and re-sent with the *same* tag if absent (the
   broker refuses a duplicate tag, so nothing is ever flattened twice); a working flatten's rest
   is cancelled once it is overdue (a thin book) and the remainder flattened anew;
4. what the operation owns beyond the account's position was closed outside: credited, not
   flattened (that would open a position the other way);
5. once nothing is owned the exits are cancelled (none outlives its position, I2), and the
   operation ends ``rolled_back`` when nothing of it works or is in doubt.

A step that fails is retried on the next pass; passes back off exponentially, capped at
``ProtectionPolicy.max_delay`` — never slower than that while exposure is held, whatever the
broker does (F19). Flattening and the reads it depends on take the flattening lane of the rate
limiter; cancels of exits the protective one.

Over 500 lines: the rollback's pure planner (facts to actions) and the one executor that runs it and
keeps the standing obligations are read side by side here; splitting them is part of issue 11's
later work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from orderguard.broker.base import Confirmed, Outcome, Rejected
from orderguard.clock import Clock
from orderguard.errors import JournalError, OrderGuardError
from orderguard.models import STOP_TYPES, Order, OrderRequest, OrderSide, OrderType
from orderguard.recovery.legs import FLATTEN, count_numbered, has_role, numbered
from orderguard.recovery.manager import (
    OperationRecoveryManager,
    OrderReference,
    RecoveryOperation,
    RefStatus,
)
from orderguard.recovery.operations import OperationState, OperationType
from orderguard.recovery.reconcile import (
    HOLDER_TYPES,
    AccountSnapshot,
    OperationPlan,
    is_entry_leg,
    plan_recovery,
)

log = logging.getLogger("orderguard.recovery.protection")


_UNSETTLED = frozenset({RefStatus.UNKNOWN, RefStatus.INTENDED})


@dataclass(frozen=True, slots=True)
class ProtectionPolicy:
    """The one retry policy of protective and flattening work: capped exponential backoff.

    ``max_delay`` bounds the pause between two attempts however long the broker refuses, so an
    obligation ends within ``max_delay`` (plus one round trip) of the broker answering again.
    ``deadline`` is when an open obligation raises its alert; ``flatten_grace`` how long a
    flatten's unfilled rest may work before it is cancelled and sent again.
    """

    initial_delay: float = 0.25
    factor: float = 2.0
    max_delay: float = 2.0
    deadline: float = 5.0
    flatten_grace: float = 1.0

    def __post_init__(self) -> None:
        for name in ("initial_delay", "max_delay", "deadline", "flatten_grace"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if not math.isfinite(self.factor) or self.factor < 1:
            raise ValueError(f"factor must be >= 1, got {self.factor!r}")

    def delay(self, failures: int) -> float:
        """Pause after ``failures`` attempts in a row that changed nothing (0: none)."""
        if failures <= 0:
            return 0.0
        return min(self.max_delay, self.initial_delay * self.factor ** min(failures - 1, 32))


# ------------------------------------------------------------------------------------------------
# the pure planner
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LiveOrder:
    """A working order of the operation being rolled back (a leg, or a native child)."""

    order_id: int
    leg: str
    entry: bool
    """Opens exposure (an entry, an OCO leg): cancelled first."""
    flatten: bool = False
    stop: bool = True
    """A stop (or trailing stop): the protection kept until nothing is owned. A target (a
    limit exit) protects nothing and is cancelled at once, like an entry."""
    protective: bool = True
    """An exit on the side that reduces what the operation owns (kept until it owns nothing);
    an exit on the other side would add to the position and is cancelled at once (I2)."""
    overdue: bool = False
    """A flatten whose rest has worked longer than the grace (a thin book)."""


@dataclass(frozen=True, slots=True)
class RollbackFacts:
    """One operation under rollback, read against a consistent snapshot of its account."""

    owned: int
    """Account-signed quantity the operation's fills added (closes credited to it included)."""
    flattenable: int
    """``owned`` clamped by the account's position, allocated oldest operation first."""
    live: tuple[LiveOrder, ...] = ()
    in_doubt: tuple[str, ...] = ()
    """Legs whose placement outcome is unknown and whose tag the snapshot did not find."""
    flatten_in_doubt: bool = False
    """One of ``in_doubt`` is a flatten: nothing new is flattened until it is resolved."""


@dataclass(frozen=True, slots=True)
class CancelOrders:
    order_ids: tuple[int, ...]
    why: str


@dataclass(frozen=True, slots=True)
class ResolveLegs:
    legs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FlattenOwned:
    quantity: int
    """Account-signed quantity to remove (a SELL of it when positive)."""


@dataclass(frozen=True, slots=True)
class CreditClosedOutside:
    quantity: int
    """Account-signed quantity the operation owned that the account no longer holds."""


@dataclass(frozen=True, slots=True)
class RolledBack:
    reason: str


RollbackStep = CancelOrders | ResolveLegs | FlattenOwned | CreditClosedOutside


def plan_rollback(f: RollbackFacts) -> list[RollbackStep] | RolledBack:
    """What one rollback does next (an empty list: wait). See the module docstring."""
    steps: list[RollbackStep] = []
    entries = tuple(o.order_id for o in f.live if o.entry)
    flattens = [o for o in f.live if o.flatten]
    exits = tuple(o.order_id for o in f.live if not o.entry and not o.flatten)
    wrong_side = tuple(
        o.order_id for o in f.live if not o.entry and not o.flatten and not o.protective
    )
    targets = tuple(
        o.order_id
        for o in f.live
        if not o.entry and not o.flatten and not o.stop and o.order_id not in wrong_side
    )
    if entries:
        steps.append(CancelOrders(entries, "entries first: exits stay until they are final"))
    if targets:
        steps.append(CancelOrders(targets, "a target protects nothing"))
    if wrong_side:
        steps.append(CancelOrders(wrong_side, "an exit that would add to the position"))
    if f.in_doubt:
        steps.append(ResolveLegs(f.in_doubt))
    overdue = tuple(o.order_id for o in flattens if o.overdue)
    if overdue:
        steps.append(CancelOrders(overdue, "flatten rest overdue"))
    if f.flattenable != 0 and not flattens and not f.flatten_in_doubt:
        steps.append(FlattenOwned(f.flattenable))
    settled = not entries and not f.in_doubt and not flattens
    if settled and f.owned != f.flattenable:
        steps.append(CreditClosedOutside(f.owned - f.flattenable))
    rest = tuple(o for o in exits if o not in wrong_side and o not in targets)
    if settled and f.flattenable == 0 and rest:
        steps.append(CancelOrders(rest, "nothing left to protect"))
    if not steps and not f.live and not f.in_doubt and f.owned == 0:
        return RolledBack("flat; nothing of the operation works")
    return steps


def rollback_facts(
    op: RecoveryOperation,
    plan: OperationPlan,
    *,
    now: float,
    flatten_grace: float,
    flatten_sent: dict[int, float],
) -> RollbackFacts:
    """Read one operation's plan (from :func:`~orderguard.recovery.reconcile.plan_recovery`)
    into the facts :func:`plan_rollback` decides on. ``flatten_sent`` says when this process
    saw each flatten order working first (its rest is overdue after ``flatten_grace``)."""
    live: list[LiveOrder] = []
    in_doubt: list[str] = []
    reducing = 0 if plan.owned == 0 else (1 if plan.owned < 0 else -1)  # side sign of an exit
    flatten_in_doubt = False
    for finding in plan.findings:
        ref = op.orders.get(finding.leg)
        if ref is None:
            continue
        is_flatten = has_role(ref.leg, FLATTEN)
        order = finding.order
        if order is None:
            if ref.status in _UNSETTLED:
                in_doubt.append(ref.leg)
                flatten_in_doubt = flatten_in_doubt or is_flatten
            continue
        if not order.is_working:
            continue
        first_seen = flatten_sent.setdefault(order.id, now) if is_flatten else now
        live.append(
            LiveOrder(
                order.id,
                ref.leg,
                entry=is_entry_leg(ref) and not is_flatten,
                flatten=is_flatten,
                stop=order.type in STOP_TYPES,
                protective=reducing in (0, order.side.sign),
                overdue=is_flatten and now - first_seen >= flatten_grace,
            )
        )
    for child in plan.children:
        live.append(
            LiveOrder(
                child.id,
                f"child{child.id}",
                entry=False,
                stop=child.type in STOP_TYPES,
                protective=reducing in (0, child.side.sign),
            )
        )
    return RollbackFacts(
        owned=plan.owned,
        flattenable=plan.flattenable,
        live=tuple(live),
        in_doubt=tuple(in_doubt),
        flatten_in_doubt=flatten_in_doubt,
    )


# ------------------------------------------------------------------------------------------------
# the executor
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ProtectionAlert:
    """An obligation has held exposure past the protection deadline (it goes on trying)."""

    operation_id: str
    account_id: int
    contract_id: str
    exposure: int
    seconds: float
    reason: str


class ProtectionHost(Protocol):
    """What the executor needs from the OrderManager (kept small: recovery never imports it)."""

    @property
    def recovery(self) -> OperationRecoveryManager: ...

    @property
    def clock(self) -> Clock: ...

    async def read_truth(self, account_id: int, start: datetime) -> AccountSnapshot:
        """Orders since ``start`` and positions, read consistently, in the flattening lane."""
        ...

    def known(self, account_id: int) -> AccountSnapshot:
        """Every order of the account this process knows (events and reads merged) and the
        positions it last saw; a contract it never saw reads as flat."""
        ...

    async def cancel_exit(self, account_id: int, order_id: int) -> Order | None:
        """Cancel (journaled, protective lane); the order's latest known state."""
        ...

    async def send_flatten(self, request: OrderRequest) -> Outcome:
        """Send once (journaled, flattening lane); raises when it provably never left."""
        ...

    async def find_order_by_tag(self, account_id: int, custom_tag: str) -> Order | None: ...

    def protection_alert(self, alert: ProtectionAlert) -> None: ...


@dataclass(slots=True)
class _Obligation:
    op: RecoveryOperation
    reason: str
    since: float
    done: asyncio.Event = field(default_factory=asyncio.Event)
    alerted: bool = False
    sent_at: dict[str, float] = field(default_factory=dict)
    """When each flatten leg was last sent by this process."""
    doubt_since: dict[str, float] = field(default_factory=dict)
    on_done: list[Callable[[RecoveryOperation], object]] = field(default_factory=list)


class ProtectionExecutor:
    """Drives every rollback of one OrderManager (see the module docstring)."""

    def __init__(
        self,
        host: ProtectionHost,
        policy: ProtectionPolicy | None = None,
        *,
        in_flight_grace: float = 10.0,
        window_margin: timedelta = timedelta(minutes=5),
        spawn: Callable[..., asyncio.Task[None]] | None = None,
    ) -> None:
        self._host = host
        self.policy = policy or ProtectionPolicy()
        self.in_flight_grace = in_flight_grace
        self._margin = window_margin
        self._spawn = spawn
        self._obligations: dict[str, _Obligation] = {}
        self._loops: dict[int, asyncio.Task[None]] = {}
        self._wake: dict[int, asyncio.Event] = {}
        self._flatten_seen: dict[int, float] = {}
        self._truth_at: dict[int, float] = {}
        self._fresh: dict[int, tuple[AccountSnapshot, float]] = {}
        self._inflight: dict[tuple[str, str], asyncio.Task[None]] = {}
        # Per step target: failures in a row, and when it may be tried again (capped backoff).
        self._failures: dict[tuple[str, str], int] = {}
        self._retry_at: dict[tuple[str, str], float] = {}
        self.truth_interval = self.policy.max_delay * 2
        """Longest a plan rests on this process's own knowledge before the broker is read."""
        self.stats: dict[str, int] = {
            "obligations": 0,
            "obligations_met": 0,
            "obligations_overdue": 0,
            "protective_flattens": 0,
            "rollback_passes": 0,
            "rollback_pass_failures": 0,
        }

    # -- queries ----------------------------------------------------------------------------
    def driving(self, operation_id: str) -> bool:
        return operation_id in self._obligations

    def obligations(self) -> list[str]:
        return list(self._obligations)

    def open_obligations(self) -> list[tuple[str, float]]:
        """(operation id, seconds open) of every obligation, oldest first."""
        now = self._host.clock.monotonic()
        return sorted(
            ((i, now - o.since) for i, o in self._obligations.items()), key=lambda x: -x[1]
        )

    # -- taking work --------------------------------------------------------------------------
    async def roll_back(
        self,
        op: RecoveryOperation,
        reason: str,
        *,
        wait: float | None = None,
        on_done: Callable[[RecoveryOperation], object] | None = None,
        truth: AccountSnapshot | None = None,
    ) -> bool:
        """Make ``op``'s rollback a standing obligation of this executor.

        The operation moves to ``rolling_back`` (journaled with ``reason``) unless it is there
        already. With ``wait``, waits that long for it to end; True when it ended rolled back.
        """
        recovery = self._host.recovery
        ob = self._obligations.get(op.operation_id)
        if ob is None:
            if op.state is OperationState.PENDING and not op.orders:
                await recovery.transition_operation(op, OperationState.ROLLED_BACK, reason)
                return True
            if op.state is not OperationState.ROLLING_BACK:
                if op.state.is_terminal and op.state is not OperationState.COMPLETED:
                    return op.state is OperationState.ROLLED_BACK
                op.last_error = reason
                with contextlib.suppress(JournalError):
                    # A journal that cannot be written must not stop the rollback: the state
                    # is journaled with the next write that succeeds.
                    await recovery.transition_operation(op, OperationState.ROLLING_BACK, reason)
            ob = _Obligation(op, reason, self._host.clock.monotonic())
            self._obligations[op.operation_id] = ob
            self.stats["obligations"] += 1
            log.info("operation %s handed to the protection executor: %s", op.id, reason)
        if on_done is not None:
            ob.on_done.append(on_done)
        if truth is not None and truth.positions is not None and truth.since is not None:
            # Just read (start-up recovery, the reconciler): the first pass plans from it
            # instead of reading the same truth again.
            self._fresh[truth.account_id] = (truth, self._host.clock.monotonic())
        self._ensure_loop(_account_of(op))
        if wait is None:
            return False
        with contextlib.suppress(TimeoutError):
            await self._host.clock.wait_for(ob.done.wait(), wait)
        return op.state is OperationState.ROLLED_BACK

    async def settle(self, operation_ids: Iterable[str], timeout: float) -> None:
        """Wait (at most ``timeout``) until the obligations of ``operation_ids`` are met."""
        events = [o.done for i in operation_ids if (o := self._obligations.get(i)) is not None]
        if not events:
            return
        with contextlib.suppress(TimeoutError):
            await self._host.clock.wait_for(asyncio.gather(*(e.wait() for e in events)), timeout)

    def wake(self, account_id: int | None = None) -> None:
        """Something changed at the broker (an event): run the account's pass now."""
        for acct, event in self._wake.items():
            if account_id is None or acct == account_id:
                event.set()

    async def shutdown(self) -> None:
        """Stop the passes (obligations stay ``rolling_back`` in the journal for the next
        process)."""
        loops = [*self._loops.values(), *self._inflight.values()]
        for task in loops:
            task.cancel()
        if loops:
            await asyncio.gather(*loops, return_exceptions=True)
        self._loops.clear()
        self._inflight.clear()
        self._obligations.clear()

    # -- the passes -----------------------------------------------------------------------------
    def _ensure_loop(self, account_id: int) -> None:
        task = self._loops.get(account_id)
        if task is not None and not task.done():
            self._wake.setdefault(account_id, asyncio.Event()).set()
            return
        self._wake[account_id] = asyncio.Event()
        coro = self._run(account_id)
        task = self._spawn(coro) if self._spawn is not None else asyncio.ensure_future(coro)
        self._loops[account_id] = task

    def _mine(self, account_id: int) -> list[_Obligation]:
        return [o for o in self._obligations.values() if _account_of(o.op) == account_id]

    async def _run(self, account_id: int) -> None:
        clock = self._host.clock
        idle = 0
        wake = self._wake[account_id]
        try:
            while self._mine(account_id):
                wake.clear()
                try:
                    acted = await self._pass(account_id)
                except asyncio.CancelledError:
                    raise
                except OrderGuardError as exc:
                    self.stats["rollback_pass_failures"] += 1
                    log.warning("rollback pass on account %s failed: %s", account_id, exc)
                    acted = False
                except Exception:
                    # A bug must not silently end the obligations: log, back off, go on.
                    self.stats["rollback_pass_failures"] += 1
                    log.exception("rollback pass on account %s raised", account_id)
                    acted = False
                if not self._mine(account_id):
                    break
                idle = 0 if acted else idle + 1
                pause = self.policy.initial_delay if acted else self.policy.delay(idle)
                now = clock.monotonic()
                due = [t - now for t in self._retry_at.values() if t > now]
                if due:
                    pause = min(pause, *due)
                with contextlib.suppress(TimeoutError):
                    await clock.wait_for(wake.wait(), pause)
        finally:
            if self._loops.get(account_id) is asyncio.current_task():
                del self._loops[account_id]

    async def _pass(self, account_id: int) -> bool:
        """One plan per obligation of the account, then their steps. True if it acted.

        Plans are first made from what this process already knows (the order tracker: events
        and earlier reads, merged monotonically). Cancelling an entry or the rest of a flatten,
        and cancelling exits once every entry and flatten of the operation is final and nothing
        is owned, are safe on that knowledge alone (a final order's fill volume is final). Any
        decision that depends on the account's position — flattening, crediting a close from
        outside, declaring the operation rolled back — is made again from a consistent read of
        the broker first (orders, positions, orders), and so is every plan at least once per
        ``truth_interval`` (events can be lost)."""
        host, recovery = self._host, self._host.recovery
        mine = self._mine(account_id)
        contracts = {_contract_of(o.op) for o in mine}
        holders = _holders(recovery, account_id, contracts, [o.op for o in mine])
        now = host.clock.monotonic()
        known = host.known(account_id)
        decisions = self._decide(mine, holders, known, now, truth=False)
        age = now - self._truth_at.get(account_id, float("-inf"))
        # A position that disagrees with what an operation owns (an outside close, or one this
        # process never saw) decides whether to flatten: it is read within the retry cap.
        unsure = age >= self.policy.max_delay and any(d[2] for d in decisions)
        # Knowledge with a hole (a leg whose order this process has not seen, after a
        # restart say) decides nothing: "not seen" would read as "not working".
        holes = any(_unseen_legs(ob.op, known) for ob in mine)
        if (
            age >= self.truth_interval
            or holes
            or unsure
            or any(_needs_truth(d[1]) for d in decisions)
        ):
            start = min(op.started_at for op in holders) - self._margin
            self.stats["rollback_passes"] += 1
            fresh = self._fresh.pop(account_id, None)
            if (
                fresh is not None
                and now - fresh[1] <= self.policy.initial_delay
                and fresh[0].since is not None
                and fresh[0].since <= start
            ):
                truth = fresh[0]
            else:
                truth = await host.read_truth(account_id, start)
            self._truth_at[account_id] = host.clock.monotonic()
            for ob in mine:
                plan = _plan_of(ob.op, holders, truth)
                if plan is not None:
                    await self._fold(ob.op, plan)
            decisions = self._decide(mine, holders, truth, host.clock.monotonic(), truth=True)
        acted = False
        for ob, decision, _ in decisions:
            acted = await self._act(ob, decision, account_id) or acted
        return acted

    def _decide(
        self,
        mine: list[_Obligation],
        holders: list[RecoveryOperation],
        snapshot: AccountSnapshot,
        now: float,
        *,
        truth: bool,
    ) -> list[tuple[_Obligation, list[RollbackStep] | RolledBack, bool]]:
        """Each obligation's decision, and whether it rests on the account's position
        disagreeing with what the operation owns (a position this process may not know)."""
        ops = [ob.op for ob in mine]
        plans = {
            p.operation_id: p
            for p in plan_recovery(ops, {snapshot.account_id: snapshot}, holders=holders)
        }
        out: list[tuple[_Obligation, list[RollbackStep] | RolledBack, bool]] = []
        for ob in mine:
            plan = plans.get(ob.op.operation_id)
            if plan is None:
                continue
            facts = rollback_facts(
                ob.op,
                plan,
                now=now,
                flatten_grace=self.policy.flatten_grace,
                flatten_sent=self._flatten_seen,
            )
            decision = plan_rollback(facts)
            if not isinstance(decision, RolledBack) and closing(
                self._host.recovery, _account_of(ob.op), _contract_of(ob.op)
            ):
                # A position close names whom it closes for (or closes the whole contract):
                # what it closed is credited once it has ended, never guessed before.
                decision = [s for s in decision if not isinstance(s, CreditClosedOutside)]
            log.debug("%.3f rollback %s: %s -> %s", now, ob.op.operation_id, facts, decision)
            if truth or not _needs_truth(decision):
                self._alert_if_overdue(ob, facts, now)
            out.append((ob, decision, facts.owned != facts.flattenable))
        return out

    async def _act(
        self, ob: _Obligation, decision: list[RollbackStep] | RolledBack, account_id: int
    ) -> bool:
        """Start each step in its own task, unless one on the same target is still running:
        one slow request (a cancel whose answer is late) never holds up the others, nor the
        next plan. True if anything new was started (or the operation finished)."""
        if isinstance(decision, RolledBack):
            if any(key[0] == ob.op.operation_id for key in self._inflight):
                return False  # a step still running may change the truth it was decided on
            await self._finish(ob, decision.reason)
            return True
        started = False
        now = self._host.clock.monotonic()
        for step in decision:
            key = (ob.op.operation_id, _target(step))
            running = self._inflight.get(key)
            if running is not None and not running.done():
                continue
            if self._retry_at.get(key, 0.0) > now:
                continue  # it failed lately: the capped backoff decides when it goes again
            self._inflight[key] = self._launch(self._step(ob, step, key, account_id))
            started = True
        return started

    def _launch(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        return self._spawn(coro) if self._spawn is not None else asyncio.ensure_future(coro)

    async def _step(
        self, ob: _Obligation, step: RollbackStep, key: tuple[str, str], account_id: int
    ) -> None:
        done = False
        try:
            done = await self._do(ob, step, self._host.clock.monotonic())
        except asyncio.CancelledError:
            raise
        except OrderGuardError as exc:
            log.warning("rollback %s: %s failed: %s", ob.op.operation_id, key[1], exc)
        except Exception:
            log.exception("rollback %s: %s raised", ob.op.operation_id, key[1])
        finally:
            if done:
                self._failures.pop(key, None)
                self._retry_at.pop(key, None)
            else:
                failures = self._failures[key] = self._failures.get(key, 0) + 1
                delay = self._delay(ob.op, failures)
                self._retry_at[key] = self._host.clock.monotonic() + delay
                if failures == ob.op.max_retries:
                    note = f"{key[1]}: retry budget of {failures} spent; still trying (I7)"
                    ob.op.errors.append(note)
                    log.warning("rollback %s: %s", ob.op.operation_id, note)
            if self._inflight.get(key) is asyncio.current_task():
                del self._inflight[key]
            self.wake(account_id)  # plan again with what the step changed

    async def _fold(self, op: RecoveryOperation, plan: OperationPlan) -> None:
        """Write what the snapshot says about each leg into the operation's record, so that it
        tells the truth when the rollback ends (a leg found by its tag is no longer unknown)."""
        recovery = self._host.recovery
        for finding in plan.findings:
            ref = op.orders.get(finding.leg)
            order = finding.order
            if ref is None or order is None:
                continue
            if ref.status in _UNSETTLED:
                await _quietly(recovery.record_resolution(op, ref, order))
            elif ref.order_id in (None, order.id) and (
                order.fill_volume != ref.filled_size or order.is_terminal
            ):
                await _quietly(recovery.record_order_state(op, ref, order))

    async def _do(self, ob: _Obligation, step: RollbackStep, now: float) -> bool:
        host, recovery, op = self._host, self._host.recovery, ob.op
        account = _account_of(op)
        if isinstance(step, CancelOrders):

            async def cancel(order_id: int) -> bool:
                try:
                    final = await host.cancel_exit(account, order_id)
                except OrderGuardError as exc:
                    log.warning("rollback %s: cancel of %s failed: %s", op.id, order_id, exc)
                    return False
                ref = _leg_of(op, order_id)
                if final is not None and ref is not None:
                    await _quietly(recovery.record_order_state(op, ref, final))
                return final is not None and final.is_terminal

            return all(await asyncio.gather(*(cancel(i) for i in step.order_ids)))
        if isinstance(step, ResolveLegs):
            return await self._resolve(ob, step.legs, now)
        if isinstance(step, FlattenOwned):
            return await self._flatten(ob, step.quantity)
        op.closed_externally -= step.quantity
        op.errors.append(f"{step.quantity:+d} was already closed at the broker; not flattened")
        await _quietly(recovery.save_operation(op))
        return True

    async def _resolve(self, ob: _Obligation, legs: Iterable[str], now: float) -> bool:
        """Legs in doubt that the pass's snapshot (every order of the window, any status) does
        not hold. A flatten is sent again under its own tag at once (the broker refuses a
        duplicate tag, so it cannot execute twice); any other leg is taken as never executed
        once the in-flight grace has passed since this executor first missed it."""
        recovery, op = self._host.recovery, ob.op
        acted = False
        for leg in legs:
            ref = op.orders.get(leg)
            if ref is None:
                continue
            if has_role(ref.leg, FLATTEN):
                # Re-sent (same tag) only once a read of the broker made after the last send
                # lacks it: a request still on its way is not raced by its own copy.
                truth_at = self._truth_at.get(_account_of(op), float("-inf"))
                if truth_at > ob.sent_at.get(leg, float("-inf")):
                    acted = await self._send(ob, ref) or acted
                continue
            # Absent from a read of the broker made after the grace (had that read found it,
            # the leg would be resolved already): it never executed.
            first = ob.doubt_since.setdefault(leg, now)
            if self._truth_at.get(_account_of(op), float("-inf")) >= first + self.in_flight_grace:
                await _quietly(recovery.record_resolution(op, ref, None))
                acted = True
        return acted

    async def _flatten(self, ob: _Obligation, quantity: int) -> bool:
        op, recovery = ob.op, self._host.recovery
        side = OrderSide.SELL if quantity > 0 else OrderSide.BUY
        n = count_numbered(op.orders, FLATTEN)
        try:
            ref = await recovery.add_order_to_operation(
                op, _contract_of(op), side, abs(quantity), "market",
                leg=numbered(FLATTEN, n), account_id=_account_of(op),
            )  # fmt: skip
        except JournalError as exc:
            # F20: flattening goes out even when its intent cannot be written; the leg is
            # kept in memory (same deterministic tag) and journaled when the journal is back.
            ref = recovery.remember_unjournaled(
                op, _contract_of(op), side, abs(quantity), "market",
                leg=numbered(FLATTEN, n), account_id=_account_of(op), error=exc,
            )  # fmt: skip
        self.stats["protective_flattens"] += 1
        return await self._send(ob, ref)

    async def _send(self, ob: _Obligation, ref: OrderReference) -> bool:
        op, recovery = ob.op, self._host.recovery
        request = OrderRequest(
            account_id=ref.account_id,
            contract_id=ref.contract_id,
            type=OrderType.MARKET,
            side=OrderSide(ref.side),
            size=ref.size,
            custom_tag=ref.custom_tag,
        )
        resend = ref.leg in ob.sent_at
        ob.sent_at[ref.leg] = self._host.clock.monotonic()
        try:
            outcome = await self._host.send_flatten(request)
        except OrderGuardError as exc:
            # Provably never left (a 429 before sending, a refused connection): try again on
            # the next pass, same tag.
            log.warning("rollback %s: flatten not sent: %s", op.id, exc)
            ref.status = RefStatus.INTENDED
            return False
        if isinstance(outcome, Confirmed):
            await _quietly(recovery.record_order_success(op, ref, outcome))
            return True
        if isinstance(outcome, Rejected):
            if resend:
                # A copy refused: most likely as a duplicate of the first send, which then
                # did arrive. The leg stays in doubt; the next read of the broker decides.
                log.warning("rollback %s: re-sent %s refused: %s", op.id, ref.leg, outcome)
                return False
            await _quietly(recovery.record_order_failure(op, ref, outcome))
            return False
        await _quietly(recovery.record_order_failure(op, ref, outcome))
        return True  # in doubt: resolved by its tag on the next pass

    def _delay(self, op: RecoveryOperation, failures: int) -> float:
        """The pause before a failed step goes again: the policy's capped backoff, or the
        operation's own schedule (the seed's per-operation ``retry_delay``, doubling) capped
        at the larger of the two caps: a retry budget never stops a rollback (I7)."""
        if op.retry_delay is None:
            return self.policy.delay(failures)
        cap = max(self.policy.max_delay, op.retry_delay)
        return min(cap, op.retry_delay * 2.0 ** min(failures - 1, 32))

    def _alert_if_overdue(self, ob: _Obligation, facts: RollbackFacts, now: float) -> None:
        if ob.alerted or facts.owned == 0:
            return
        seconds = now - ob.since
        if seconds < self.policy.deadline:
            return
        ob.alerted = True
        self.stats["obligations_overdue"] += 1
        alert = ProtectionAlert(
            ob.op.operation_id, _account_of(ob.op), _contract_of(ob.op), facts.owned,
            seconds, ob.reason,
        )  # fmt: skip
        log.error(
            "operation %s still holds %+d on %s after %.1fs of rollback (%s); still trying",
            alert.operation_id, alert.exposure, alert.contract_id, seconds, ob.reason,
        )  # fmt: skip
        try:
            self._host.protection_alert(alert)
        except Exception:
            log.exception("protection alert handler raised")

    async def _finish(self, ob: _Obligation, reason: str) -> None:
        op = ob.op
        try:
            await self._host.recovery.transition_operation(
                op, OperationState.ROLLED_BACK, f"{ob.reason}: {reason}"
            )
        except JournalError as exc:
            log.warning("rollback %s done but not journaled yet: %s", op.id, exc)
            return  # the next pass tries again
        self._obligations.pop(op.operation_id, None)
        self.stats["obligations_met"] += 1
        ob.done.set()
        for callback in ob.on_done:
            try:
                callback(op)
            except Exception:
                log.exception("rollback completion callback raised")


def _target(step: RollbackStep) -> str:
    """What a step acts on: two steps on one target never run at the same time."""
    if isinstance(step, CancelOrders):
        return "cancel:" + ",".join(str(i) for i in step.order_ids)
    if isinstance(step, FlattenOwned):
        return "flatten"
    if isinstance(step, ResolveLegs):
        # Never planned beside a new flatten while a flatten is in doubt (plan_rollback).
        return "resolve"
    return "credit"


def _unseen_legs(op: RecoveryOperation, known: AccountSnapshot) -> bool:
    """A leg of ``op`` known to have reached the broker whose order ``known`` lacks."""
    ids = {o.id for o in known.orders}
    tags = {o.custom_tag for o in known.orders if o.custom_tag}
    return any(
        ref.order_id is not None and ref.order_id not in ids and ref.custom_tag not in tags
        for ref in op.orders.values()
    )


def _needs_truth(decision: list[RollbackStep] | RolledBack) -> bool:
    """Decisions that depend on the account's position are made from a consistent read."""
    if isinstance(decision, RolledBack):
        return True
    return any(
        isinstance(s, FlattenOwned | CreditClosedOutside)
        or (isinstance(s, ResolveLegs) and any(has_role(leg, FLATTEN) for leg in s.legs))
        for s in decision
    )


def _plan_of(
    op: RecoveryOperation, holders: list[RecoveryOperation], snapshot: AccountSnapshot
) -> OperationPlan | None:
    plans = plan_recovery([op], {snapshot.account_id: snapshot}, holders=holders)
    return plans[0] if plans else None


def closing(recovery: OperationRecoveryManager, account_id: int, contract_id: str) -> bool:
    """A position close on the contract has not ended: a shortfall of the position may be its
    doing, and it credits the operation it closed for itself."""
    return any(
        op.operation_type is OperationType.POSITION_CLOSE
        and _account_of(op) == account_id
        and _contract_of(op) == contract_id
        for op in recovery.active_operations.values()
    )


def _holders(
    recovery: OperationRecoveryManager,
    account_id: int,
    contracts: set[str],
    driven: list[RecoveryOperation],
) -> list[RecoveryOperation]:
    """Every operation that may own exposure on the contracts, oldest first: the account's
    position is allocated among them in that order (see ``plan_recovery``)."""
    seen: dict[str, RecoveryOperation] = {op.operation_id: op for op in driven}
    for op in [*recovery.active_operations.values(), *recovery.finished_holders()]:
        if op.operation_id in seen or op.operation_type not in HOLDER_TYPES:
            continue
        if _account_of(op) == account_id and _contract_of(op) in contracts and op.net_filled:
            seen[op.operation_id] = op
    return sorted(seen.values(), key=lambda o: (o.started_at, o.operation_id))


def _account_of(op: RecoveryOperation) -> int:
    if op.account_id is not None:
        return op.account_id
    return next((r.account_id for r in op.orders.values()), 0)


def _contract_of(op: RecoveryOperation) -> str:
    if op.contract_id is not None:
        return op.contract_id
    return next((r.contract_id for r in op.orders.values()), "")


def _leg_of(op: RecoveryOperation, order_id: int) -> OrderReference | None:
    return next((r for r in op.orders.values() if r.order_id == order_id), None)


async def _quietly(write: object) -> None:
    """A record of something that already happened: a journal failure is logged, not raised
    (the broker's truth is read again on the next pass)."""
    try:
        await write  # type: ignore[misc]
    except JournalError as exc:
        log.warning("rollback record not journaled: %s", exc)


__all__ = [
    "HOLDER_TYPES",
    "CancelOrders",
    "CreditClosedOutside",
    "FlattenOwned",
    "LiveOrder",
    "ProtectionAlert",
    "ProtectionExecutor",
    "ProtectionHost",
    "ProtectionPolicy",
    "ResolveLegs",
    "RollbackFacts",
    "RolledBack",
    "closing",
    "plan_rollback",
    "rollback_facts",
]
