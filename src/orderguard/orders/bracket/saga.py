"""One bracket order as a saga whose pivot is the entry fill (DESIGN §1.4-1.6).

A :class:`BracketSaga` owns one driver task. Events never run broker I/O: the engine's listener
folds them into the saga's in-memory state (which order ids are ours, when we heard of a fill),
re-measures exposure and wakes the driver. The driver rebuilds :class:`BracketFacts` from the
tracker (broker truth merged monotonically from events and REST), asks the pure
:func:`~orderguard.orders.bracket.plan.plan` what to do, and starts each action as its own task,
keyed by what it acts on (one leg, the entry, one order): stop and target go out
together, a repeat of an action still in flight is skipped, and no slow request (a read queued
behind a full rate window) holds up the others or the flatten point. Then it waits for news, a
poll, a retry or the flatten point — never for a fill, and never forever: when no event arrives
it re-reads its orders over REST (events can be lost).

Every order intent is journaled with its deterministic tag before it is sent; a leg that
provably never left, or whose outcome is unknown and whose tag is absent at the broker, is sent
again with the *same* tag, so the broker itself refuses a duplicate.

This module is the saga's driver and state. Its collaborators each take explicit inputs and never
import it: :mod:`~orderguard.orders.bracket.facts` reads the state against the tracker for the
facts, :mod:`~orderguard.orders.bracket.legs` places, resizes and cancels the exit legs,
:mod:`~orderguard.orders.bracket.discovery` takes what broker reads reveal into the records and
the journal, :mod:`~orderguard.orders.bracket.tasks` keeps the tasks in flight and
:mod:`~orderguard.orders.bracket.report` builds the response and the journaled result.

Over 500 lines: one saga's driver loop and the state it owns (entry, slots, strays, exposure); its
decisions are the pure plan.py and its leg I/O is legs.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any, Protocol

from orderguard.errors import OrderGuardError
from orderguard.models import Order, OrderStatus, OrderType
from orderguard.ops.hooks import HookPoint
from orderguard.orders.bracket.discovery import (
    confirm_restored_legs,
    is_ours,
    journal_discoveries,
)
from orderguard.orders.bracket.facts import (
    FillClock,
    children_unknown,
    entry_phase,
    filled,
    flattened_quantity,
    leg_facts,
    mirror_fills,
    owned_quantity,
    strays,
)
from orderguard.orders.bracket.hooks import FlattenHold, before_rollback, flatten_postponed
from orderguard.orders.bracket.legs import ExitLegs, cancel_confirmed
from orderguard.orders.bracket.plan import (
    Action,
    BracketFacts,
    CancelEntry,
    CancelLeg,
    CancelStray,
    EntryPhase,
    FindChildren,
    Finish,
    GoFlat,
    LegFacts,
    LegKind,
    LegPhase,
    PlaceLeg,
    ResizeLeg,
    RetryLeg,
    plan,
)
from orderguard.orders.bracket.report import bracket_response, bracket_result, placed_refs
from orderguard.orders.bracket.state import (
    BracketRequest,
    EntryState,
    Slot,
    Wake,
    action_target,
)
from orderguard.orders.bracket.tasks import ActionTasks
from orderguard.orders.bracket.values import BracketOrderResponse, BracketOutcome, BracketSettings
from orderguard.orders.engine_context import EngineContext
from orderguard.orders.exposure import EpisodeEnd, ExposureMeter
from orderguard.recovery.legs import STOP, TARGET, has_role
from orderguard.recovery.manager import RecoveryOperation, RefStatus
from orderguard.recovery.operations import OperationState
from orderguard.resilience import Priority

log = logging.getLogger("orderguard.orders.bracket")


class SagaEngine(Protocol):
    """What a saga asks of the engine that runs it (orders/bracket/engine.py): the routing of events
    to it, its retirement and statistics, and the REST re-read shared by every saga."""

    @property
    def ctx(self) -> EngineContext: ...

    def route_order(self, saga: BracketSaga, order_id: int) -> None: ...

    def route_tag(self, saga: BracketSaga, custom_tag: str) -> None: ...

    def route_parent(self, saga: BracketSaga, order_id: int) -> None: ...

    def retire(self, saga: BracketSaga) -> None: ...

    def record_episode(self, end: EpisodeEnd, operation_id: str | None = None) -> None: ...

    def record_incident(self) -> None: ...

    async def shared_read(self) -> bool: ...


class BracketSaga:
    """See the module docstring."""

    def __init__(
        self,
        engine: SagaEngine,
        operation: RecoveryOperation,
        request: BracketRequest,
        settings: BracketSettings,
        *,
        native: bool,
    ) -> None:
        self.engine = engine
        self.ctx: EngineContext = engine.ctx
        self.op = operation
        self.req = request
        self.settings = settings
        self.native = native
        self.entry = EntryState()
        self.slots = {kind: Slot(kind) for kind in LegKind}
        self.exit_ids: list[int] = []
        # Exit orders of ours no slot holds, being cancelled: order id -> (failures, retry at).
        self._stray_retry: dict[int, tuple[int, float]] = {}
        self.children_searched = False  # native: the entry's children were looked up over REST
        self.children_search_failures = 0  # native: look-ups for them that failed
        # The collaborator that does the broker I/O of leg actions on this state.
        self.legs = ExitLegs(
            self.ctx,
            operation,
            request,
            self.slots,
            adopt=self._adopt_leg,
            route_tag=self._route_tag,
            backoff=self._backoff,
            changed=self.evaluate,
        )
        self.meter = ExposureMeter()
        self.flatten_hold = FlattenHold()
        """A flatten the ``before_flatten`` recovery hooks postponed (orders/bracket_hooks.py)."""
        self.going_flat: str | None = None
        self.handed_over = False
        self.released: str | None = None  # the caller removed the stop (see ``release``)
        self.released_legs: set[LegKind] = set()  # exits the caller removed
        """The protection executor drives the bracket (``going_flat`` says why)."""
        self.final: Finish | None = None
        self.incidents: list[str] = []
        self.refresh_due = False
        self._refresh_failures = 0
        self._refresh_at = 0.0  # a failed REST re-read is retried from then on
        self._wake = Wake()
        self._poll = settings.poll_interval
        self._errors = 0
        self._facts: BracketFacts | None = None
        self.task: asyncio.Task[None] | None = None
        self._inflight = ActionTasks(self.ctx.spawn, guard=self._guarded, ended=self.news)
        self._fatal: BaseException | None = None
        self.primed = True
        """False for a saga restarted from the journal until its first REST read succeeded."""
        self.prime_orders: Sequence[Order] | None = None
        """Orders recovery read for the restart (see ``_prime``)."""
        # When an exposure opened by an entry fill began; no fill of this saga's is measured
        # from before it existed.
        self._fill_clock = FillClock(self._now())

    # -- identity ---------------------------------------------------------------------------
    @property
    def operation_id(self) -> str:
        return self.op.operation_id

    def _now(self) -> float:
        return self.ctx.clock.monotonic()

    def _route_order(self, order_id: int) -> None:
        self.engine.route_order(self, order_id)

    def _route_tag(self, custom_tag: str) -> None:
        self.engine.route_tag(self, custom_tag)

    # -- events (sync: no I/O) ----------------------------------------------------------------
    def on_order(self, order: Order) -> None:
        """An order event routed to this saga: adopt ids it reveals, re-measure, wake."""
        tag = order.custom_tag
        if (
            self.entry.order_id is None
            and tag
            and self.entry.ref
            and tag == self.entry.ref.custom_tag
        ):
            self._adopt_entry(order)
        elif (
            self.native
            and order.parent_order_id is not None
            and order.parent_order_id == self.entry.order_id
            and order.id not in self.exit_ids
        ):
            self._adopt_child(order)
        else:
            for slot in self.slots.values():
                if slot.order_id is None and slot.ref is not None and tag == slot.ref.custom_tag:
                    self._adopt_leg(slot, order.id)
            if tag and order.id not in self.exit_ids and self._is_exit_tag(tag):
                # One of our exit intents that no slot holds (an earlier generation whose
                # outcome was in doubt at a restart): its fills count, and it is cancelled as
                # a stray if it works.
                self.exit_ids.append(order.id)
                self.engine.route_order(self, order.id)
        self.news()

    def _is_exit_tag(self, tag: str) -> bool:
        if any(ref.custom_tag == tag and _is_exit_leg(leg) for leg, ref in self.op.orders.items()):
            return True
        # A leg whose intent the journal could not record before a crash: its tag names us.
        leg = self.ctx.tags.leg_of(tag)
        return leg is not None and leg[0] == self.op.operation_id and _is_exit_leg(leg[1])

    def news(self, *, refresh: bool = False) -> None:
        if refresh:
            self.refresh_due = True
        self.evaluate()
        self._wake.news.set()

    def _adopt_entry(self, order: Order) -> None:
        self.entry.order_id = order.id
        self.entry.phase = EntryPhase.DONE if order.is_terminal else EntryPhase.WORKING
        if order.status is OrderStatus.REJECTED:
            self.entry.phase = EntryPhase.REJECTED
        self.entry.journaled = False
        if self.entry.acked_at is None:
            self.entry.acked_at = self._now()
        self.engine.route_order(self, order.id)
        self.engine.route_parent(self, order.id)

    def _adopt_child(self, order: Order) -> None:
        kind = LegKind.TARGET if order.type is OrderType.LIMIT else LegKind.STOP
        slot = self.slots[kind]
        if order.id in self.exit_ids:
            return
        # Its fills close what we own whichever way it is handled: always count it.
        self.exit_ids.append(order.id)
        self.engine.route_order(self, order.id)
        if slot.order_id is None and slot.ref is None and slot.phase is LegPhase.NONE:
            slot.renew(None, order.size, native=True)
            slot.order_id = order.id
            slot.move(LegPhase.LIVE)
        # Otherwise the slot already holds (or is placing) a client-side leg for this kind —
        # the child's events came late. Both would cover the same contracts: the child is a
        # stray and gets cancelled (facts().strays).

    def _adopt_leg(self, slot: Slot, order_id: int) -> None:
        slot.order_id = order_id
        slot.move(LegPhase.LIVE)
        if order_id not in self.exit_ids:
            self.exit_ids.append(order_id)
        self.engine.route_order(self, order_id)

    # -- facts --------------------------------------------------------------------------------
    def _filled(self, order_id: int | None) -> int:
        return filled(self.ctx.tracker, order_id)

    def owned(self) -> int:
        """Entry-direction contracts this bracket owns (broker truth as merged by the tracker)."""
        return owned_quantity(
            self.ctx.tracker,
            self.req.side,
            self.entry.order_id,
            self.exit_ids,
            flattened_quantity(self.op, self.ctx.tracker),
            self.op.closed_externally,
        )

    def facts(self) -> BracketFacts:
        """This saga's records read against broker truth (the tracker), for the pure planner."""
        tracker = self.ctx.tracker
        now = self._now()
        entry = entry_phase(self.entry, tracker)
        cancel_reason = self.entry.cancel_reason
        timeout = self.req.entry_timeout
        if (
            cancel_reason is None
            and timeout is not None
            and self.entry.acked_at is not None
            and now - self.entry.acked_at >= timeout
        ):
            cancel_reason = self.entry.cancel_reason = f"entry timeout ({timeout:g}s)"
        stop = self._leg_facts(LegKind.STOP, now)
        target = self._leg_facts(LegKind.TARGET, now)
        exits = sum(self._filled(oid) for oid in self.exit_ids)
        stray_ids = strays(tracker, self.slots.values(), self.exit_ids)
        facts = BracketFacts(
            entry=entry,
            entry_filled=self._filled(self.entry.order_id),
            owned=self.owned(),
            exits_filled=exits,
            stop=stop,
            target=target,
            max_attempts=self.settings.max_attempts,
            entry_cancel_reason=cancel_reason,
            entry_cancel_due=now >= self.entry.cancel_retry_at,
            deadline_passed=self.meter.open_for(now) >= self._flatten_after(),
            going_flat=self.going_flat,
            released=self.released,
            released_legs=frozenset(self.released_legs),
            closed_outside=self.op.closed_externally != 0,
            strays=stray_ids,
            strays_due=tuple(
                oid for oid in stray_ids if now >= self._stray_retry.get(oid, (0, 0.0))[1]
            ),
            children_unknown=children_unknown(
                native=self.native,
                searched=self.children_searched,
                entry_order_id=self.entry.order_id,
                slots=self.slots.values(),
            ),
            children_search_failures=self.children_search_failures,
        )
        self._facts = facts
        return facts

    def _leg_facts(self, kind: LegKind, now: float) -> LegFacts:
        facts, refresh = leg_facts(
            self.slots[kind], self.ctx.tracker, now, self.settings.retry_delay
        )
        if refresh:
            self.refresh_due = True
        return facts

    def evaluate(self) -> BracketFacts:
        """Re-measure exposure from current knowledge (sync); wakes ``wait`` callers."""
        facts = self.facts()
        mirror_fills(self.op, self.ctx.tracker, self.entry, self.slots)
        now = self._now()
        # An episode opened by an entry fill dates from that fill; an over-close (both exits
        # filled) from now. The fill clock is asked on every look: it keeps its own bookkeeping.
        entry = None if self.entry.order_id is None else self.ctx.tracker.get(self.entry.order_id)
        fill_time = self._fill_clock.started(entry, now, self.ctx.clock)
        started = fill_time if facts.owned > 0 else None
        end = self.meter.update(now, facts.owned, facts.stop.covering, started)
        if end is not None:
            self.engine.record_episode(end, self.operation_id)
        changed, self._wake.changed = self._wake.changed, asyncio.Event()
        changed.set()
        return facts

    # -- waiting ------------------------------------------------------------------------------
    async def wait(self, predicate: Callable[[BracketSaga], bool]) -> None:
        while not predicate(self):
            await self._wake.changed.wait()

    @property
    def protected(self) -> bool:
        return self._facts is not None and self._facts.protected

    # -- the driver ---------------------------------------------------------------------------
    async def run(self) -> None:
        """The driver: re-plan from facts on every piece of news; never blocked by broker I/O.

        Each action runs as its own task, keyed by what it acts on (a leg, the entry, one
        order, the flatten): while one is in flight, the planner's repeat of it is skipped, but
        everything else goes ahead. So a cancel whose confirmation waits behind a full rate
        window never holds up the flatten beside it, and the flatten point is noticed on time.
        """
        try:
            if self.going_flat is not None and not self.handed_over:
                await self.hand_over(self.going_flat)  # restored mid-rollback: the executor's
            while self.final is None:
                self._wake.news.clear()
                if self._fatal is not None:
                    log.error("bracket %s: stopped: %r", self.operation_id, self._fatal)
                    return
                try:
                    if not self.primed:
                        await self._prime()
                        continue
                    self._sync()
                    await self._journal_discoveries()
                    facts = self.evaluate()
                    decision = plan(facts)
                    if isinstance(decision, Finish):
                        if not self._inflight:
                            await self._finish(decision)
                            break
                    elif decision and await self._execute(decision):
                        continue  # went flat: plan again at once
                    await self._idle(facts)
                except (asyncio.CancelledError, KeyboardInterrupt):
                    raise
                except Exception as exc:
                    await self._internal_error(exc)
        finally:
            self._inflight.cancel_all()
            self.evaluate()
            self.engine.retire(self)

    async def _internal_error(self, exc: Exception) -> None:
        # A bug must not silently abandon a position: log, back off, try again; past the
        # budget, hand the bracket to the protection executor (it never gives up: I7).
        self._errors += 1
        log.exception("bracket %s: step failed (%d)", self.operation_id, self._errors)
        if self._errors > self.settings.max_attempts * 2 and self.going_flat is None:
            await self.hand_over(f"internal error: {type(exc).__name__}: {exc}")
            return
        await self.ctx.clock.sleep(self.settings.retry_delay * self._errors)

    async def _idle(self, facts: BracketFacts) -> None:
        """Wait for news (events, or the engine's shared REST poll), or until the next retry,
        entry timeout, flatten point or look-up of an entry in doubt."""
        now = self._now()
        due = [self.settings.poll_max_interval * 4]
        if self.meter.open_since is not None and self.going_flat is None:
            due.append(self.meter.open_since + self._flatten_after() - now)
        for slot in self.slots.values():
            if slot.retry_at > now:
                due.append(slot.retry_at - now)
        if self.entry.cancel_retry_at > now:
            due.append(self.entry.cancel_retry_at - now)
        timeout = self.req.entry_timeout
        if (
            timeout is not None
            and self.entry.acked_at is not None
            and facts.entry_cancel_reason is None
        ):
            due.append(self.entry.acked_at + timeout - now)
        if self.refresh_due and self._refresh_at > now:
            due.append(self._refresh_at - now)
        lookup = self.entry.phase is EntryPhase.UNKNOWN and self.entry.order_id is None
        if lookup:
            due.append(self._poll)
        # Only future instants: a past one was already acted on (or is waiting on a retry).
        wait = min(d for d in due if d > 1e-6)
        try:
            await self.ctx.clock.wait_for(self._wake.news.wait(), wait)
        except TimeoutError:
            if lookup and wait >= self._poll - 1e-9:
                self.refresh_due = True  # look the entry's tag up again, backing off
                self._poll = min(self._poll * 2, self.settings.poll_max_interval)

    async def _prime(self) -> None:
        """A restarted saga reads broker truth before its first plan (an empty tracker would
        read as "nothing owned" and cancel the protection of a filled position). Restarted by
        recovery, it starts from the orders recovery has just read (``prime_orders``): one
        read less between a restart and the stop."""
        if self.prime_orders is not None:
            self._fold(self.prime_orders)
            self.prime_orders = None
            read = True
        else:
            read = await self._read_orders()
        if read:
            confirm_restored_legs(
                self.slots.values(),
                self.ctx.tracker,
                native=self.native,
                entry_order_id=self.entry.order_id,
            )
            self.evaluate()
            self.primed = True
            return
        await self.ctx.clock.sleep(max(self._refresh_at - self._now(), self.settings.retry_delay))

    def _sync(self) -> None:
        """Start the REST re-reads that are due (in the background, like actions)."""
        if self.refresh_due and self._now() >= self._refresh_at and "refresh" not in self._inflight:
            self.refresh_due = False
            self._inflight.launch("refresh", self._refresh())

    async def _refresh(self) -> None:
        """Re-read our orders over REST (events may have been lost); absence proves nothing.

        The engine's shared poll answers everything at once — the entry's or a leg's tag in
        doubt, fill volumes, native children — for every saga asking meanwhile: under a full
        rate-limit window, reads per order, then per saga, starved the protective work."""
        e = self.entry
        if not await self.engine.shared_read():
            self._refresh_failures += 1
            self._refresh_at = self._backoff(self._refresh_failures)
            self.refresh_due = True  # retried when the backoff is over (see _sync)
            return
        self._refresh_failures = 0
        if e.order_id is None and e.ref is not None and e.phase is EntryPhase.UNKNOWN:
            e.lookups += 1
            if e.lookups >= self.settings.entry_lookups:
                e.phase = EntryPhase.REJECTED
                self.going_flat = self.going_flat or "the entry's outcome was never resolved"

    async def _read_orders(self) -> bool:
        """Fold every order of ours in the operation's window into the tracker and the saga
        (adopting what tags and parent ids reveal). False when the read failed."""
        acct = self.req.account_id
        try:
            # A restarted saga may own a bare position: its read is protection work (the
            # flattening lane: a short timeout, past an open breaker). In the ordinary lane a
            # hanging read kept it from placing its stop until the deadline (chaos seed 51).
            orders = await self.ctx.gateway.search_orders(
                acct,
                start=self.ctx.reference.window_start(self.op.started_at),
                priority=Priority.FLATTEN,
            )
        except OrderGuardError as exc:
            self._refresh_failures += 1
            self._refresh_at = self._backoff(self._refresh_failures)
            log.warning("bracket %s: refresh failed: %s", self.operation_id, exc)
            return False
        self._refresh_failures = 0
        self._fold(orders)
        return True

    def _fold(self, orders: Iterable[Order]) -> None:
        """Fold a read of the account's orders into the tracker and the saga."""
        tags = {ref.custom_tag for ref in self.op.orders.values()}
        if self.entry.ref is not None:
            tags.add(self.entry.ref.custom_tag)
        for order in orders:
            # Asked order by order: adopting one (the entry, say) reveals the next (its children).
            if is_ours(
                order,
                entry_order_id=self.entry.order_id,
                exit_ids=self.exit_ids,
                tags=tags,
                native=self.native,
            ):
                self.ctx.feed.ingest(order)  # the tracker's monotonic merge: never backwards
                view = self.ctx.tracker.get(order.id)
                self.on_order(order if view is None else view)

    async def _journal_discoveries(self) -> None:
        """Journal what events revealed: a resolved entry, adopted legs, native children."""
        await journal_discoveries(
            self.ctx.recovery, self.op, self.req, self.ctx.tracker, self.entry, self.slots
        )

    # -- actions ------------------------------------------------------------------------------
    async def _execute(self, actions: list[Action]) -> bool:
        """Start the actions not already in flight; True when the saga just went flat."""
        for action in actions:
            if isinstance(action, GoFlat):
                if self._facts is not None and await flatten_postponed(
                    self, self._facts, action.reason
                ):
                    return False  # a recovery hook postponed it, within the deadline
                await self.hand_over(action.reason)
                return True
        # Independent actions (stop and target, entry cancel) go out together: time to
        # protection is one round trip, not two.
        for action in actions:
            key = action_target(action)
            running = self._inflight.get(key)
            if running is not None:
                if not (
                    isinstance(action, CancelLeg)
                    and isinstance(self._inflight.action(key), ResizeLeg)
                ):
                    continue
                # A resize (its lane waits when the rate window is full) must not hold up the
                # cancel of the same leg: it is moot now. Cancelled while queued it never left;
                # cancelled in flight its outcome is re-read like any other.
                running.cancel()
            self._inflight.launch(key, self._do(action), action)
        return False

    async def _guarded(self, work: Coroutine[Any, Any, None]) -> None:
        """Run one action or re-read (in its own task); a failure is the saga's to handle."""
        try:
            await work
            self._errors = 0
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._internal_error(exc)
        except BaseException as exc:
            # Not an error to retry (the process is going down): the driver ends with it
            # instead of launching the next action into the same wall.
            self._fatal = exc

    async def _do(self, action: Action) -> None:
        if isinstance(action, PlaceLeg):
            await self.legs.place(action.kind, action.size)
        elif isinstance(action, RetryLeg):
            await self.legs.retry(action.kind, resend=action.resend)
        elif isinstance(action, ResizeLeg):
            await self.legs.resize(action.kind, action.order_id, action.size)
        elif isinstance(action, CancelLeg):
            await self.legs.cancel(action.kind, action.order_id)
        elif isinstance(action, CancelStray):
            await self._cancel_stray(action.order_id)
        elif isinstance(action, FindChildren):
            await self._find_children()
        elif isinstance(action, CancelEntry):
            await self._cancel_entry(action.reason)

    def _backoff(self, attempts: int) -> float:
        # Capped: cancels and resizes are never given up on (an exit left working after the
        # bracket ended would be unwatched), so the pause must stay bounded.
        pause = self.settings.retry_delay * float(2 ** min(max(0, attempts - 1), 16))
        return self._now() + min(pause, self.settings.poll_max_interval)

    async def _cancel_stray(self, order_id: int) -> None:
        if await self._cancel_order(order_id):
            self._stray_retry.pop(order_id, None)
        else:
            failures = self._stray_retry.get(order_id, (0, 0.0))[0] + 1
            self._stray_retry[order_id] = (failures, self._backoff(failures))
        self.evaluate()

    async def _find_children(self) -> None:
        """Native mode: the children exist from the entry's acceptance on; find them over REST
        rather than place client-side legs that would cover the same contracts twice."""
        if self._now() < self._refresh_at:
            await self.ctx.clock.sleep(self._refresh_at - self._now())  # a read just failed
        if await self._read_orders():
            self.children_searched = True
        else:
            self.children_search_failures += 1
        self.evaluate()

    async def _cancel_entry(self, reason: str) -> None:
        e = self.entry
        if e.order_id is None:
            return
        e.cancel_reason = e.cancel_reason or reason
        # cancel_order re-reads the order until final, so the fill is re-read after the cancel:
        # a cancel that lost to a fill moves the saga past its pivot instead.
        if await self._cancel_order(e.order_id):
            e.phase = EntryPhase.DONE
        else:
            e.cancel_attempts += 1
            e.cancel_retry_at = self._backoff(e.cancel_attempts)
        self.evaluate()

    async def _cancel_order(self, order_id: int) -> bool:
        return await cancel_confirmed(
            self.ctx.send, self.req.account_id, order_id, self.operation_id
        )

    def _flatten_after(self) -> float:
        return self.settings.flatten_after + self.flatten_hold.for_episode(self.meter.open_since)

    @property
    def last_facts(self) -> BracketFacts | None:
        return self._facts

    def tighten_stop(self, price: Decimal) -> None:
        """The stop's next attempt goes at ``price`` (a recovery hook checked it is tighter)."""
        log.info("bracket %s: next stop at %s (recovery hook)", self.operation_id, price)
        self.req = self.legs.req = replace(self.req, stop_price=price)

    async def hand_over(self, reason: str) -> None:
        """Hand the bracket to the protection executor, the one actor of every rollback: the
        saga's own actions stop (one actor per operation); it keeps measuring exposure and
        answering for the bracket until the executor ends the operation."""
        log.warning("bracket %s: going flat: %s", self.operation_id, reason)
        self.going_flat = reason
        self.handed_over = True
        if (not self._facts or not self._facts.deadline_passed) and self.ctx.hooks.registered(
            HookPoint.BEFORE_ROLLBACK
        ):
            # Recovery hooks are told, beside the rollback: they cannot change it, so it never
            # waits for them (orders/bracket_hooks.py). No task without hooks: a seeded run
            # schedules exactly as before.
            self.ctx.spawn(before_rollback(self, reason))
        self.op.last_error = reason
        facts = self._facts
        if facts is not None and facts.owned < 0:
            self._note_over_close(facts.owned)
        self._inflight.cancel_all()
        await self.ctx.protection.roll_back(self.op, reason, on_done=self._rolled_back)

    def release(self, why: str, legs: Iterable[LegKind]) -> bool:
        """The caller removes these exits (``cancel_position_orders``): they are not placed
        again. Without its stop the bracket protects no more: it cancels its working entry and
        ends saying so. False if it is past that (finished, or handed to the protection
        executor, which owns it now)."""
        if self.final is not None or self.going_flat is not None:
            return False
        kinds = set(legs) - self.released_legs
        if kinds:
            names = "/".join(sorted(k.value for k in kinds))
            log.info("bracket %s: %s removed on request (%s)", self.operation_id, names, why)
            self.op.errors.append(f"{names} removed on request ({why})")
            self.released_legs |= kinds
            # On record: the holdings follower never places a removed stop again.
            self.op.extra["released_legs"] = sorted(k.value for k in self.released_legs)
        if LegKind.STOP in self.released_legs and self.released is None:
            self.released = why
        self.news()
        return True

    def _rolled_back(self, op: RecoveryOperation) -> None:
        """The executor ended the operation (flat, nothing working): so does the saga."""
        reason = self.going_flat or "rolled back"
        self.final = Finish(op.state, BracketOutcome.FLAT, reason)
        self.op.extra["bracket_result"] = bracket_result(
            self.final, self.incidents, self.meter, self._now()
        )
        self.ctx.spawn(self.ctx.recovery.save_quietly(self.op))
        self.ctx.spawn(
            self.ctx.recovery.note_recovery(
                "bracket_flatten", op.state is OperationState.ROLLED_BACK
            )
        )
        self.news()

    def _note_over_close(self, owned: int) -> None:
        """Both exits filled: the excess bought back is an incident (recorded once)."""
        note = f"both exits filled: over-closed by {-owned}; the excess is bought back"
        if note not in self.incidents:
            self.incidents.append(note)
            self.op.errors.append(note)
            self.op.extra.setdefault("incidents", []).append(note)
            self.engine.record_incident()
            log.error("bracket %s: %s", self.operation_id, note)

    # -- the end ------------------------------------------------------------------------------
    async def _finish(self, decision: Finish) -> None:
        rec = self.ctx.recovery
        for ref, oid in placed_refs(self.op, self.entry.order_id):
            view = self.ctx.tracker.get(oid)
            if view is not None:
                await rec.record_order_state(self.op, ref, view)
        await self._settle_unsent_legs()
        self.op.extra["bracket_result"] = bracket_result(
            decision, self.incidents, self.meter, self._now()
        )
        await rec.transition_operation(self.op, decision.state, decision.reason)
        self.final = decision

    async def _settle_unsent_legs(self) -> None:
        """Exits the saga ended without (nothing left to protect, after a restart say) must
        not stay "intended" in a finished record: each is looked up by its tag and recorded as
        found, or as never placed."""
        rec = self.ctx.recovery
        for ref in list(self.op.orders.values()):
            if ref.leg == "entry" or ref.status not in (RefStatus.INTENDED, RefStatus.UNKNOWN):
                continue
            try:
                found = await self.ctx.truth.find_order_by_tag(ref.account_id, ref.custom_tag)
            except OrderGuardError:
                continue  # unreadable: it stays in doubt (and says so)
            if found is not None:
                await rec.record_order_state(self.op, ref, found)
            else:
                await rec.record_order_failure(
                    self.op, ref, "never placed: the operation ended with nothing to protect"
                )

    # -- reporting ----------------------------------------------------------------------------
    def response(self, *, error: str | None = None) -> BracketOrderResponse:
        facts = self._facts or self.facts()
        entry_view = self.ctx.tracker.get(self.entry.order_id) if self.entry.order_id else None
        return bracket_response(
            op=self.op,
            req=self.req,
            facts=facts,
            final=self.final,
            going_flat=self.going_flat,
            entry_order_id=self.entry.order_id,
            entry_view=entry_view,
            slots=self.slots,
            native=self.native,
            error=error,
            exit_views={
                kind: self.ctx.tracker.get(slot.order_id) if slot.order_id is not None else None
                for kind, slot in self.slots.items()
            },
        )


def _is_exit_leg(name: str) -> bool:
    """A generation of the bracket's stop or target (typed leg ids, recovery/legs.py)."""
    return has_role(name, STOP) or has_role(name, TARGET)


__all__ = ["BracketRequest", "BracketSaga"]
