"""One bracket order as a saga whose pivot is the entry fill (DESIGN §1.4-1.6).

A :class:`BracketSaga` owns one driver task. Events never run broker I/O: the engine's listener
folds them into the saga's in-memory state (which order ids are ours, when we heard of a fill),
re-measures exposure and wakes the driver. The driver rebuilds :class:`BracketFacts` from the
tracker (broker truth merged monotonically from events and REST), asks the pure
:func:`~orderguard.orders.bracket_plan.plan` what to do, and starts each action as its own task,
keyed by what it acts on (one leg, the entry, one order, the flatten): stop and target go out
together, a repeat of an action still in flight is skipped, and no slow request (a read queued
behind a full rate window) holds up the others or the flatten point. Then it waits for news, a
poll, a retry or the flatten point — never for a fill, and never forever: when no event arrives
it re-reads its orders over REST (events can be lost).

Every order intent is journaled with its deterministic tag before it is sent; a leg that
provably never left, or whose outcome is unknown and whose tag is absent at the broker, is sent
again with the *same* tag, so the broker itself refuses a duplicate.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import TYPE_CHECKING, Any

from orderguard.broker.base import Rejected, Unknown, UnknownOrigin
from orderguard.errors import (
    CircuitOpenError,
    ConnectionFailedError,
    ExposureRefusedError,
    OrderGuardError,
    OrderRejectedError,
    OutcomeUnknownError,
    RateLimitedError,
    ValidationError,
)
from orderguard.models import Order, OrderRequest, OrderSide, OrderStatus, OrderType
from orderguard.orders.bracket_plan import (
    Action,
    BracketFacts,
    CancelEntry,
    CancelLeg,
    CancelStray,
    EntryPhase,
    FindChildren,
    Finish,
    Flatten,
    GoFlat,
    LegFacts,
    LegKind,
    LegPhase,
    PlaceLeg,
    ResizeLeg,
    ResolveFlatten,
    RetryLeg,
    outcome_of,
    plan,
)
from orderguard.orders.bracket_state import (
    BracketRequest,
    EntryState,
    FlattenOrder,
    Slot,
    Wake,
    action_target,
)
from orderguard.orders.bracket_types import BracketOrderResponse, BracketOutcome, BracketSettings
from orderguard.orders.exposure import ExposureMeter
from orderguard.recovery.manager import OrderReference, RecoveryOperation, RefStatus
from orderguard.recovery.operations import OperationState
from orderguard.resilience import Priority

if TYPE_CHECKING:
    from orderguard.orders.bracket import BracketEngine
    from orderguard.orders.manager import OrderManager

log = logging.getLogger("orderguard.orders.bracket")


class BracketSaga:
    """See the module docstring."""

    def __init__(
        self,
        engine: BracketEngine,
        operation: RecoveryOperation,
        request: BracketRequest,
        settings: BracketSettings,
        *,
        native: bool,
    ) -> None:
        self.engine = engine
        self.m: OrderManager = engine.manager
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
        self.flattens: list[FlattenOrder] = []
        self.meter = ExposureMeter()
        self.going_flat: str | None = None
        self.final: Finish | None = None
        self.incidents: list[str] = []
        self.check_position = False
        self.refresh_due = False
        self.flatten_read_failures = 0
        self._refresh_failures = 0
        # The entry's fill volume and update time at our last look, and when that was.
        self._fill_seen: tuple[int, datetime | None, float] = (0, None, float("-inf"))
        self._refresh_at = 0.0  # a failed REST re-read is retried from then on
        self._wake = Wake()
        self._poll = settings.poll_interval
        self._errors = 0
        self._facts: BracketFacts | None = None
        self.task: asyncio.Task[None] | None = None
        self._inflight: dict[str, asyncio.Task[None]] = {}  # what an action acts on -> its task
        self._inflight_action: dict[str, Action] = {}
        self._fatal: BaseException | None = None
        self.primed = True
        """False for a saga restarted from the journal until its first REST read succeeded."""
        self._born = self._now()  # no fill of this saga's is measured from before it existed

    # -- identity ---------------------------------------------------------------------------
    @property
    def operation_id(self) -> str:
        return self.op.operation_id

    @property
    def exit_side(self) -> OrderSide:
        return self.req.side.opposite

    def _now(self) -> float:
        return self.m.clock.monotonic()

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
            for fl in self.flattens:
                if fl.order_id is None and tag == fl.ref.custom_tag:
                    fl.order_id, fl.pending = order.id, False
                    self.engine.route_order(self, order.id)
            if tag and order.id not in self.exit_ids and self._is_exit_tag(tag):
                # One of our exit intents that no slot holds (an earlier generation whose
                # outcome was in doubt at a restart): its fills count, and it is cancelled as
                # a stray if it works.
                self.exit_ids.append(order.id)
                self.engine.route_order(self, order.id)
        self.news()

    def _is_exit_tag(self, tag: str) -> bool:
        return any(
            ref.custom_tag == tag and leg.startswith((LegKind.STOP.value, LegKind.TARGET.value))
            for leg, ref in self.op.orders.items()
        )

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
            slot.phase = LegPhase.LIVE
        # Otherwise the slot already holds (or is placing) a client-side leg for this kind —
        # the child's events came late. Both would cover the same contracts: the child is a
        # stray and gets cancelled (facts().strays).

    def _adopt_leg(self, slot: Slot, order_id: int) -> None:
        slot.order_id = order_id
        slot.phase = LegPhase.LIVE
        if order_id not in self.exit_ids:
            self.exit_ids.append(order_id)
        self.engine.route_order(self, order_id)

    # -- facts --------------------------------------------------------------------------------
    def _filled(self, order_id: int | None) -> int:
        return 0 if order_id is None else self.m.tracker.filled_volume(order_id)

    def owned(self) -> int:
        """Entry-direction contracts this bracket owns (broker truth as merged by the tracker)."""
        sign = self.req.side.sign
        exit_sign = self.exit_side.sign
        total = sign * self._filled(self.entry.order_id)
        total += sum(exit_sign * self._filled(oid) for oid in self.exit_ids)
        total += sum(f.side.sign * self._filled(f.order_id) for f in self.flattens)
        # What position-close operations flattened on our behalf (or we found closed).
        total += self.op.closed_externally
        return sign * total

    def _leg_facts(self, slot: Slot, now: float) -> LegFacts:
        phase = slot.phase
        size = slot.size
        active = True
        if phase is LegPhase.LIVE and slot.order_id is not None:
            view = self.m.tracker.get(slot.order_id)
            if view is not None:
                if view.is_terminal:
                    phase = slot.phase = LegPhase.DONE
                    if view.status is not OrderStatus.FILLED and not slot.cancelling:
                        # Ended without our cancel: most likely its sibling filled (a native
                        # bracket's server-side OCO) and that fill's events are late or lost.
                        # Read before placing a replacement, or it closes the same contracts.
                        slot.retry_at = now + self.settings.retry_delay
                        self.refresh_due = True
                if slot.native:
                    # The server sizes native legs; a Suspended child protects nothing yet.
                    size = view.size
                    active = view.status is not OrderStatus.SUSPENDED
            elif slot.native:
                active = False
        return LegFacts(
            kind=slot.kind,
            phase=phase,
            order_id=slot.order_id,
            size=size,
            filled=self._filled(slot.order_id),
            native=slot.native,
            active=active,
            due=now >= slot.retry_at,
            attempts=slot.attempts,
            error=slot.error,
        )

    def _entry_phase(self) -> EntryPhase:
        e = self.entry
        if e.order_id is not None and e.phase is EntryPhase.WORKING:
            view = self.m.tracker.get(e.order_id)
            if view is not None and view.is_terminal:
                e.phase = EntryPhase.DONE
        return e.phase

    def facts(self) -> BracketFacts:
        now = self._now()
        entry = self._entry_phase()
        cancel_reason = self.entry.cancel_reason
        timeout = self.req.entry_timeout
        if (
            cancel_reason is None
            and timeout is not None
            and self.entry.acked_at is not None
            and now - self.entry.acked_at >= timeout
        ):
            cancel_reason = self.entry.cancel_reason = f"entry timeout ({timeout:g}s)"
        stop = self._leg_facts(self.slots[LegKind.STOP], now)
        target = self._leg_facts(self.slots[LegKind.TARGET], now)
        exits = sum(self._filled(oid) for oid in self.exit_ids)
        strays = self._strays()
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
            deadline_passed=self.meter.open_for(now) >= self.settings.flatten_after,
            going_flat=self.going_flat,
            flatten_pending=any(f.pending for f in self.flattens),
            # A flatten that took contracts was no failed attempt (a thin book fills a market
            # order in pieces; each rest is re-sent): only the ones that took nothing count.
            flatten_attempts=sum(f.attempts for f in self.flattens if not self._filled(f.order_id))
            + self.flatten_read_failures,
            closed_outside=self.op.closed_externally != 0,
            strays=strays,
            flatten_working=any(
                f.order_id is not None and self._working(f.order_id) for f in self.flattens
            ),
            strays_due=tuple(
                oid for oid in strays if now >= self._stray_retry.get(oid, (0, 0.0))[1]
            ),
            children_unknown=self._children_unknown(),
            children_search_failures=self.children_search_failures,
        )
        self._facts = facts
        return facts

    def _strays(self) -> tuple[int, ...]:
        """Working orders of ours that no slot holds (see ``BracketFacts.strays``)."""
        held = {slot.order_id for slot in self.slots.values()}
        out: list[int] = []
        now = self._now()
        flattens = [
            f.order_id
            for f in self.flattens
            if f.order_id is not None and now - f.placed_at >= self._flatten_grace
        ]
        for oid in [*self.exit_ids, *flattens]:
            if oid in held or oid in out:
                continue
            if self._working(oid):
                out.append(oid)
        return tuple(out)

    def _working(self, order_id: int) -> bool:
        view = self.m.tracker.get(order_id)
        return view is None or not view.is_terminal

    @property
    def _flatten_grace(self) -> float:
        """How long a flatten's unfilled rest may work before it is cancelled and sent again
        (each new market order takes what the book offers at once)."""
        return self.settings.retry_delay * 4

    def _children_unknown(self) -> bool:
        return (
            self.native
            and not self.children_searched
            and self.entry.order_id is not None
            and any(
                s.order_id is None and s.ref is None and s.phase is LegPhase.NONE
                for s in self.slots.values()
            )
        )

    def evaluate(self) -> BracketFacts:
        """Re-measure exposure from current knowledge (sync); wakes ``wait`` callers."""
        facts = self.facts()
        self._sync_refs()
        now = self._now()
        # An episode opened by an entry fill dates from that fill; an over-close (both exits
        # filled) from now.
        fill_time = self._fill_time(now)  # called on every look: it keeps its own bookkeeping
        started = fill_time if facts.owned > 0 else None
        end = self.meter.update(now, facts.owned, facts.stop.covering, started)
        if end is not None:
            self.engine.record_episode(end)
        changed, self._wake.changed = self._wake.changed, asyncio.Event()
        changed.set()
        return facts

    def _sync_refs(self) -> None:
        """Mirror fill volumes into the operation's legs in memory (journaled at the end), so
        ``net_filled`` is right for others reading it (the position watcher subtracts it)."""
        known: dict[int, int] = {}  # id(ref) -> order id, for refs whose resolution is pending
        if self.entry.ref is not None and self.entry.order_id is not None:
            known[id(self.entry.ref)] = self.entry.order_id
        for slot in self.slots.values():
            if slot.ref is not None and slot.order_id is not None:
                known[id(slot.ref)] = slot.order_id
        for fl in self.flattens:
            if fl.order_id is not None:
                known[id(fl.ref)] = fl.order_id
        for ref in self.op.orders.values():
            oid = ref.order_id if ref.order_id is not None else known.get(id(ref))
            if oid is not None:
                ref.filled_size = max(ref.filled_size, self._filled(oid))

    def _fill_time(self, now: float) -> float | None:
        """When an exposure that opens now began: the exchange time of an entry fill we had not
        seen at our last look (on our monotonic scale), else None (from now).

        A fill we saw before was covered until something else changed (a stop that ended): that
        exposure starts now, not at the fill. Called on every look (it keeps the bookkeeping).
        """
        if self.entry.order_id is None:
            return None
        view = self.m.tracker.get(self.entry.order_id)
        if view is None or view.update_timestamp is None:
            return None
        volume, stamp, last_look = self._fill_seen
        self._fill_seen = (view.fill_volume, view.update_timestamp, now)
        if view.fill_volume <= volume:
            return None
        lag = (self.m.clock.now() - view.update_timestamp).total_seconds()
        started = max(now - max(0.0, lag), self._born)
        # A trade folded in before its order update grows the volume under the old timestamp:
        # then the timestamp says nothing about this fill, which we had not seen at our last
        # look, so it happened after that look. (A new timestamp is the exchange's word.)
        if view.update_timestamp == stamp:
            started = max(started, last_look)
        return started

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
            for task in self._inflight.values():
                task.cancel()
            self.evaluate()
            self.engine.retire(self)

    async def _internal_error(self, exc: Exception) -> None:
        # A bug must not silently abandon a position: log, back off, try again; give up loudly.
        self._errors += 1
        log.exception("bracket %s: step failed (%d)", self.operation_id, self._errors)
        if self._errors > self.settings.max_attempts * 2:
            reason = f"internal error: {type(exc).__name__}: {exc}"
            outcome = BracketOutcome.NAKED if self.owned() else BracketOutcome.FLAT
            self.final = Finish(OperationState.FAILED, outcome, reason)
            try:
                await self.m.recovery.transition_operation(self.op, OperationState.FAILED, reason)
            except OrderGuardError:
                log.exception("bracket %s: could not record the failure", self.operation_id)
            return
        await self.m.clock.sleep(self.settings.retry_delay * self._errors)

    async def _idle(self, facts: BracketFacts) -> None:
        """Wait for news (events, or the engine's shared REST poll), or until the next retry,
        entry timeout, flatten point or look-up of an entry in doubt."""
        now = self._now()
        due = [self.settings.poll_max_interval * 4]
        if self.meter.open_since is not None and self.going_flat is None:
            due.append(self.meter.open_since + self.settings.flatten_after - now)
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
        for fl in self.flattens:
            if fl.order_id is not None and self._working(fl.order_id):
                due.append(fl.placed_at + self._flatten_grace - now)
        lookup = self.entry.phase is EntryPhase.UNKNOWN and self.entry.order_id is None
        if lookup:
            due.append(self._poll)
        # Only future instants: a past one was already acted on (or is waiting on a retry).
        wait = min(d for d in due if d > 1e-6)
        try:
            await self.m.clock.wait_for(self._wake.news.wait(), wait)
        except TimeoutError:
            if lookup and wait >= self._poll - 1e-9:
                self.refresh_due = True  # look the entry's tag up again, backing off
                self._poll = min(self._poll * 2, self.settings.poll_max_interval)

    async def _prime(self) -> None:
        """A restarted saga reads broker truth before its first plan (an empty tracker would
        read as "nothing owned" and cancel the protection of a filled position)."""
        if await self._read_orders():
            self._confirm_restored_legs()
            self.primed = True
            return
        await self.m.clock.sleep(max(self._refresh_at - self._now(), self.settings.retry_delay))

    def _confirm_restored_legs(self) -> None:
        """Take the working legs of a restarted saga as the broker has them.

        The journal's leg records say what was *placed*: a leg resized before the crash, or an
        intent adopted after one, records another size (a native child's once recorded 0), and
        ``native_legs`` may not have been saved. Taken from the journal, a working stop that
        covers the position read as missing cover: the saga "resized" it to the size it had and,
        if that modify was slow, went flat at the protection deadline under protection that was
        there all along — leaving the exits on a flat contract (I2). The orders just read are
        broker truth: each working leg covers what its order says, and an order the exchange
        made from our entry is a native child (the server sizes it)."""
        for slot in self.slots.values():
            if slot.phase is not LegPhase.LIVE or slot.order_id is None:
                continue
            view = self.m.tracker.get(slot.order_id)
            if view is None or view.is_terminal:
                continue
            slot.size = view.size
            if (
                self.native
                and view.parent_order_id is not None
                and view.parent_order_id == self.entry.order_id
            ):
                slot.native = True
        self.evaluate()

    def restore_flatten(self, ref: OrderReference) -> None:
        """Take a journaled flatten leg back (after a restart): its fills count in ``owned``,
        and one still in doubt is resolved by its tag before anything is flattened again."""
        sent = ref.order_id is not None
        doubt = not sent and ref.status in (RefStatus.UNKNOWN, RefStatus.INTENDED)
        fl = FlattenOrder(ref, OrderSide(ref.side), ref.size, ref.order_id, doubt, attempts=1)
        fl.placed_at = self._now()
        self.flattens.append(fl)
        self.engine.route_tag(self, ref.custom_tag)
        if ref.order_id is not None:
            self.engine.route_order(self, ref.order_id)

    def _sync(self) -> None:
        """Start the REST re-reads that are due (in the background, like actions)."""
        if self.refresh_due and self._now() >= self._refresh_at and "refresh" not in self._inflight:
            self.refresh_due = False
            self._launch("refresh", self._refresh())
        if self.check_position and "position" not in self._inflight:
            self.check_position = False
            self._launch("position", self._check_closed_outside())

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
            orders = await self.m.gateway.search_orders(
                acct, start=self.m._window_start(self.op.started_at)
            )
        except OrderGuardError as exc:
            self._refresh_failures += 1
            self._refresh_at = self._backoff(self._refresh_failures)
            log.warning("bracket %s: refresh failed: %s", self.operation_id, exc)
            return False
        self._refresh_failures = 0
        tags = {ref.custom_tag for ref in self.op.orders.values()}
        if self.entry.ref is not None:
            tags.add(self.entry.ref.custom_tag)
        for order in orders:
            mine = (
                order.id in self.exit_ids
                or order.id == self.entry.order_id
                or (order.custom_tag is not None and order.custom_tag in tags)
                or (
                    self.native
                    and order.parent_order_id is not None
                    and order.parent_order_id == self.entry.order_id
                )
                or any(f.order_id == order.id for f in self.flattens)
            )
            if mine:
                self.m._ingest_order(order)  # the tracker's monotonic merge: never backwards
                view = self.m.tracker.get(order.id)
                self.on_order(order if view is None else view)
        return True

    async def _journal_discoveries(self) -> None:
        """Journal what events revealed: a resolved entry, adopted legs, native children."""
        rec = self.m.recovery
        e = self.entry
        if not e.journaled and e.ref is not None and e.order_id is not None:
            e.journaled = True
            view = self.m.tracker.get(e.order_id)
            if view is not None:
                await rec.record_resolution(self.op, e.ref, view)
        for slot in self.slots.values():
            if slot.order_id is None:
                continue
            view = self.m.tracker.get(slot.order_id)
            if slot.ref is None and slot.native:
                # A server-created child: journal it as a leg of the operation so recovery and
                # cleanup know it (its tag is ours; the broker never saw it).
                slot.ref = await rec.add_order_to_operation(
                    self.op,
                    self.req.contract_id,
                    self.exit_side,
                    slot.size,
                    "stop" if slot.kind is LegKind.STOP else "limit",
                    self.req.stop_price if slot.kind is LegKind.STOP else self.req.target_price,
                    leg=f"{slot.kind.value}{slot.count}",
                    account_id=self.req.account_id,
                    request={"native_child_of": e.order_id},
                )
                slot.count += 1
                self.op.extra.setdefault("native_legs", []).append(slot.ref.leg)
                slot.ref.order_id = slot.order_id
                slot.ref.placed_successfully = True
                if view is not None:
                    await rec.record_order_state(self.op, slot.ref, view)
            elif slot.ref is not None and slot.ref.order_id is None and view is not None:
                await rec.record_resolution(self.op, slot.ref, view)

    async def _check_closed_outside(self) -> None:
        """The account went flat on our contract: if it still is, what we owned is gone."""
        if any(f.pending for f in self.flattens) or self.engine.closing(self.req):
            return  # our own flatten or a position-close operation is in flight: not outside
        owned = self.owned()
        if owned == 0:
            return
        try:
            await self._refresh()
            owned = self.owned()
            held = await self.m.owned_position(self.req.account_id, self.req.contract_id)
        except OrderGuardError as exc:
            log.warning("bracket %s: position check failed: %s", self.operation_id, exc)
            return
        if owned != 0 and held == 0:
            await self.m.recovery.record_external_close(self.op, -self.req.side.sign * owned)
            log.warning(
                "bracket %s: %d owned contracts were closed outside the bracket",
                self.operation_id,
                owned,
            )

    # -- actions ------------------------------------------------------------------------------
    async def _execute(self, actions: list[Action]) -> bool:
        """Start the actions not already in flight; True when the saga just went flat."""
        for action in actions:
            if isinstance(action, GoFlat):
                await self._go_flat(action.reason)
                return True
        # Independent actions (stop and target, entry cancel) go out together: time to
        # protection is one round trip, not two.
        for action in actions:
            key = action_target(action)
            running = self._inflight.get(key)
            if running is not None:
                if not (
                    isinstance(action, CancelLeg)
                    and isinstance(self._inflight_action.get(key), ResizeLeg)
                ):
                    continue
                # A resize (its lane waits when the rate window is full) must not hold up the
                # cancel of the same leg: it is moot now. Cancelled while queued it never left;
                # cancelled in flight its outcome is re-read like any other.
                running.cancel()
            self._launch(key, self._do(action), action)
        return False

    def _launch(
        self, key: str, work: Coroutine[Any, Any, None], action: Action | None = None
    ) -> None:
        task = self.m._spawn(self._guarded(key, work))
        # A task cancelled before it starts (a crash, cleanup) never runs ``work``: close it so
        # it is not reported as a coroutine never awaited. On a finished coroutine it is a no-op.
        task.add_done_callback(lambda _: work.close())
        self._inflight[key] = task
        if action is None:
            self._inflight_action.pop(key, None)
        else:
            self._inflight_action[key] = action

    async def _guarded(self, key: str, work: Coroutine[Any, Any, None]) -> None:
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
        finally:
            if self._inflight.get(key) is asyncio.current_task():
                del self._inflight[key]
                self._inflight_action.pop(key, None)
            self.news()  # the driver re-plans with what this action changed

    async def _do(self, action: Action) -> None:
        if isinstance(action, PlaceLeg):
            await self._place_leg(action.kind, action.size)
        elif isinstance(action, RetryLeg):
            await self._retry_leg(action.kind, resend=action.resend)
        elif isinstance(action, ResizeLeg):
            await self._resize_leg(action.kind, action.order_id, action.size)
        elif isinstance(action, CancelLeg):
            await self._cancel_leg(action.kind, action.order_id)
        elif isinstance(action, CancelStray):
            await self._cancel_stray(action.order_id)
        elif isinstance(action, FindChildren):
            await self._find_children()
        elif isinstance(action, CancelEntry):
            await self._cancel_entry(action.reason)
        elif isinstance(action, Flatten):
            await self._flatten(action.owned, incident=action.incident)
        elif isinstance(action, ResolveFlatten):
            await self._resolve_flatten()

    def _backoff(self, attempts: int) -> float:
        # Capped: cancels and resizes are never given up on (an exit left working after the
        # bracket ended would be unwatched), so the pause must stay bounded.
        pause = self.settings.retry_delay * float(2 ** min(max(0, attempts - 1), 16))
        return self._now() + min(pause, self.settings.poll_max_interval)

    async def _place_leg(self, kind: LegKind, size: int) -> None:
        slot = self.slots[kind]
        is_stop = kind is LegKind.STOP
        price = self.req.stop_price if is_stop else self.req.target_price
        ref = await self.m.recovery.add_order_to_operation(
            self.op,
            self.req.contract_id,
            self.exit_side,
            size,
            "stop" if is_stop else "limit",
            price,
            leg=f"{kind.value}{slot.count}",
            account_id=self.req.account_id,
        )
        slot.count += 1
        slot.renew(ref, size)
        self.engine.route_tag(self, ref.custom_tag)  # the shared poll finds it by tag
        await self.m.recovery.add_position_tracking(self.op, self.req.contract_id, ref)
        await self._send_leg(slot)

    async def _send_leg(self, slot: Slot) -> None:
        ref = slot.ref
        assert ref is not None
        is_stop = slot.kind is LegKind.STOP
        request = OrderRequest(
            account_id=self.req.account_id,
            contract_id=self.req.contract_id,
            type=OrderType.STOP if is_stop else OrderType.LIMIT,
            side=self.exit_side,
            size=slot.size,
            stop_price=self.req.stop_price if is_stop else None,
            limit_price=None if is_stop else self.req.target_price,
            custom_tag=ref.custom_tag,
        )
        slot.attempts += 1
        rec = self.m.recovery
        try:
            placed = await self.m.submit(request, respect_latch=False)
        except asyncio.CancelledError:
            slot.phase = LegPhase.UNKNOWN  # it may have left: found by its tag later
            raise
        except ValidationError as exc:
            # E.g. the market moved through the stop: this protection cannot be placed.
            slot.phase, slot.error = LegPhase.FAILED, str(exc)
            await rec.record_order_failure(self.op, ref, str(exc))
        except OrderRejectedError as exc:
            if slot.attempts > 1 and await self._found_by_tag(slot):
                return  # a re-send refused as a duplicate: the first send did arrive
            slot.phase, slot.error = LegPhase.FAILED, str(exc)
            await rec.record_order_failure(self.op, ref, Rejected(exc.code, str(exc), exc.order_id))
        except OutcomeUnknownError as exc:
            slot.phase, slot.retry_at = LegPhase.UNKNOWN, self._backoff(slot.attempts)
            await rec.record_order_failure(
                self.op, ref, Unknown(UnknownOrigin.TIMEOUT_AFTER_SEND, exc.origin)
            )
        except (ConnectionFailedError, CircuitOpenError) as exc:
            slot.phase, slot.error = LegPhase.RETRY, str(exc)
            slot.retry_at = self._backoff(slot.attempts)
        except RateLimitedError as exc:
            slot.phase = LegPhase.UNKNOWN if exc.sent else LegPhase.RETRY
            slot.retry_at = max(self._backoff(slot.attempts), self._now() + (exc.retry_after or 0))
        except OrderGuardError as exc:
            # Anything else may have left: resolve by tag before sending again.
            slot.phase, slot.error = LegPhase.UNKNOWN, str(exc)
            slot.retry_at = self._backoff(slot.attempts)
        else:
            slot.size = request.size
            self._adopt_leg(slot, placed.order_id)
            await rec.record_order_success(self.op, ref, placed)
        self.evaluate()

    async def _found_by_tag(self, slot: Slot) -> bool:
        assert slot.ref is not None
        try:
            found = await self.m.find_order_by_tag(self.req.account_id, slot.ref.custom_tag)
        except OrderGuardError:
            return False
        if found is None:
            return False
        self._adopt_leg(slot, found.id)
        await self.m.recovery.record_resolution(self.op, slot.ref, found)
        return True

    async def _retry_leg(self, kind: LegKind, *, resend: bool) -> None:
        slot = self.slots[kind]
        if slot.phase is LegPhase.UNKNOWN:
            if await self._found_by_tag(slot):
                return
            if not resend:
                slot.attempts += 1
                slot.retry_at = self._backoff(slot.attempts)
                return
        if resend and slot.ref is not None:
            await self._send_leg(slot)  # the SAME tag: a duplicate is refused by the broker

    async def _resize_leg(self, kind: LegKind, order_id: int, size: int) -> None:
        slot = self.slots[kind]
        try:
            result = await self.m.modify_order(
                order_id, size=size, account_id=self.req.account_id, priority=Priority.PROTECTIVE
            )
            ok = result.success
        except ExposureRefusedError as exc:
            # Growing an order is refused while the contract is latched (an unknown outcome),
            # but a bigger exit is no new exposure. Replace it instead: a new generation of the
            # leg for the whole owned quantity goes out now (exits pass the latch), and the old
            # order, no longer held by the slot, is cancelled as a stray.
            log.warning("bracket %s: %s; replacing the %s", self.operation_id, exc, kind)
            if slot.order_id == order_id:
                slot.renew(None, 0)
            self.evaluate()
            return
        except OrderGuardError as exc:
            log.warning("bracket %s: resize of %s failed: %s", self.operation_id, kind, exc)
            ok = False
        if ok and slot.order_id == order_id:
            slot.size = size
            slot.failures = 0
        else:
            slot.failures += 1
            slot.retry_at = self._backoff(slot.failures)
        self.evaluate()

    async def _cancel_leg(self, kind: LegKind, order_id: int) -> None:
        slot = self.slots[kind]
        if slot.order_id == order_id:
            slot.cancelling = True
        final = await self._cancel(order_id)
        if slot.order_id == order_id:
            if final:
                slot.phase = LegPhase.DONE
            else:
                slot.failures += 1
                slot.retry_at = self._backoff(slot.failures)
        self.evaluate()

    async def _cancel_stray(self, order_id: int) -> None:
        if await self._cancel(order_id):
            self._stray_retry.pop(order_id, None)
        else:
            failures = self._stray_retry.get(order_id, (0, 0.0))[0] + 1
            self._stray_retry[order_id] = (failures, self._backoff(failures))
        self.evaluate()

    async def _find_children(self) -> None:
        """Native mode: the children exist from the entry's acceptance on; find them over REST
        rather than place client-side legs that would cover the same contracts twice."""
        if self._now() < self._refresh_at:
            await self.m.clock.sleep(self._refresh_at - self._now())  # a read just failed
        if await self._read_orders():
            self.children_searched = True
        else:
            self.children_search_failures += 1
        self.evaluate()

    async def _cancel(self, order_id: int) -> bool:
        """Cancel and confirm; True when the order is final (cancelled, or filled first)."""
        try:
            # The protective lane: cancelling an exit or an entry rest only reduces exposure,
            # and a sibling left working while the window is full can over-close.
            # Not settled: an unknown outcome is read once and the cancel re-sent on the saga's
            # own backoff, not polled for seconds while the exit still works.
            result = await self.m.cancel_journaled(
                order_id, self.req.account_id, priority=Priority.PROTECTIVE, settle=False
            )
        except OrderGuardError as exc:
            log.warning("bracket %s: cancel of %s failed: %s", self.operation_id, order_id, exc)
            return False
        return result.status is not None and result.status.is_terminal

    async def _cancel_entry(self, reason: str) -> None:
        e = self.entry
        if e.order_id is None:
            return
        e.cancel_reason = e.cancel_reason or reason
        # cancel_order re-reads the order until final, so the fill is re-read after the cancel:
        # a cancel that lost to a fill moves the saga past its pivot instead.
        if await self._cancel(e.order_id):
            e.phase = EntryPhase.DONE
        else:
            e.cancel_attempts += 1
            e.cancel_retry_at = self._backoff(e.cancel_attempts)
        self.evaluate()

    async def _go_flat(self, reason: str) -> None:
        log.warning("bracket %s: going flat: %s", self.operation_id, reason)
        self.going_flat = reason
        self.op.last_error = reason
        await self.m.recovery.transition_operation(self.op, OperationState.ROLLING_BACK, reason)

    async def _flatten(self, owned: int, *, incident: bool) -> None:
        """Send a market order removing exactly ``owned`` — never more than the account holds."""
        sign = self.req.side.sign
        acct, contract = self.req.account_id, self.req.contract_id
        if incident:
            note = f"both exits filled: over-closed by {-owned}; flattening the excess"
            if note not in self.incidents:
                self.incidents.append(note)
                self.op.errors.append(note)
                self.engine.record_incident()
                log.error("bracket %s: %s", self.operation_id, note)
        remove = sign * owned  # signed account quantity to take away
        qty = abs(remove)
        if owned > 0:
            try:
                held = await self._held()
            except OrderGuardError as exc:
                # No evidence, no blind flatten: count the attempt, back off, plan again.
                log.warning("bracket %s: position read failed: %s", self.operation_id, exc)
                self.flatten_read_failures += 1
                await self.m.clock.sleep(self.settings.retry_delay * self.flatten_read_failures)
                return
            if held == 0 or (held > 0) != (remove > 0):
                # Already gone at the broker (closed by someone else): credit it, send nothing.
                await self.m.recovery.record_external_close(self.op, -remove)
                return
            qty = min(abs(remove), abs(held))
            if qty < abs(remove):
                await self.m.recovery.record_external_close(
                    self.op, -(abs(remove) - qty) * (1 if remove > 0 else -1)
                )
        # An over-close (owned < 0) is bought back without that check: the excess is made of
        # our own fills, and the account's net position on a contract shared with other
        # operations (possibly larger the other way) says nothing about it.
        side = OrderSide.SELL if remove > 0 else OrderSide.BUY
        ref = await self.m.recovery.add_order_to_operation(
            self.op,
            contract,
            side,
            qty,
            "market",
            leg=f"flatten{len(self.flattens)}",
            account_id=acct,
        )
        fl = FlattenOrder(ref, side, qty)
        self.flattens.append(fl)
        self.engine.route_tag(self, ref.custom_tag)
        await self._send_flatten(fl)

    async def _held(self) -> int:
        """The account's signed net position on our contract (broker truth), read in the
        flattening lane: it gates a flatten, so it must not wait behind ordinary reads."""
        positions = await self.m.gateway.search_positions(
            self.req.account_id, priority=Priority.FLATTEN
        )
        for position in positions:
            if position.contract_id == self.req.contract_id:
                return position.signed_size
        return 0

    async def _send_flatten(self, fl: FlattenOrder) -> None:
        fl.attempts += 1
        fl.pending = True
        rec = self.m.recovery
        request = OrderRequest(
            account_id=self.req.account_id,
            contract_id=self.req.contract_id,
            type=OrderType.MARKET,
            side=fl.side,
            size=fl.size,
            custom_tag=fl.ref.custom_tag,
        )
        try:
            # Not flatten_quantity: it also polls until the order is final, and those reads
            # queue behind every other read when the rate window is full. Fills arrive as
            # events (or by the shared poll); a rest that does not fill is cancelled (strays).
            placed = await self.m.submit(request, respect_latch=False, priority=Priority.FLATTEN)
        except OrderRejectedError as exc:
            found = await self._find_flatten(fl)
            if not found:
                fl.pending = False
                await rec.record_order_failure(self.op, fl.ref, Rejected(exc.code, str(exc)))
            return
        except OrderGuardError as exc:
            log.warning("bracket %s: flatten failed: %s", self.operation_id, exc)
            return  # stays pending: resolved by tag, then re-sent with the same tag
        fl.order_id, fl.pending, fl.placed_at = placed.order_id, False, self._now()
        self.engine.route_order(self, placed.order_id)
        await rec.record_order_success(self.op, fl.ref, placed)
        self.evaluate()

    async def _find_flatten(self, fl: FlattenOrder) -> bool:
        try:
            found = await self.m.find_order_by_tag(self.req.account_id, fl.ref.custom_tag)
        except OrderGuardError:
            return False
        if found is None:
            return False
        fl.order_id, fl.pending, fl.placed_at = found.id, False, self._now()
        self.engine.route_order(self, found.id)
        await self.m.recovery.record_resolution(self.op, fl.ref, found)
        return True

    async def _resolve_flatten(self) -> None:
        for fl in self.flattens:
            if not fl.pending:
                continue
            if await self._find_flatten(fl):
                continue
            if fl.attempts >= self.settings.max_attempts:
                fl.pending = False  # give up: the owned quantity stays visible as NAKED
                await self.m.recovery.record_order_failure(
                    self.op, fl.ref, "flatten not confirmed after retries"
                )
                continue
            await self._send_flatten(fl)  # absent at the broker: the same tag again

    # -- the end ------------------------------------------------------------------------------
    async def _finish(self, decision: Finish) -> None:
        rec = self.m.recovery
        for ref, oid in self._refs():
            view = self.m.tracker.get(oid)
            if view is not None:
                await rec.record_order_state(self.op, ref, view)
        self.op.extra["bracket_result"] = {
            "outcome": decision.outcome.value,
            "reason": decision.reason,
            "incidents": list(self.incidents),
            **self.meter.as_dict(self._now()),
        }
        await rec.transition_operation(self.op, decision.state, decision.reason)
        self.final = decision

    def _refs(self) -> list[tuple[OrderReference, int]]:
        refs: list[tuple[OrderReference, int]] = []
        for leg, ref in self.op.orders.items():
            if ref.order_id is not None:
                refs.append((ref, ref.order_id))
            elif leg == "entry" and self.entry.order_id is not None:
                refs.append((ref, self.entry.order_id))
        return refs

    # -- reporting ----------------------------------------------------------------------------
    def response(self, *, error: str | None = None) -> BracketOrderResponse:
        facts = self._facts or self.facts()
        entry_view = self.m.tracker.get(self.entry.order_id) if self.entry.order_id else None
        reason: str | None
        if self.final is not None:
            outcome, reason = self.final.outcome, self.final.reason
        else:
            outcome, reason = outcome_of(facts), self.going_flat
        owned = facts.owned
        success = self.entry.order_id is not None and outcome not in (
            BracketOutcome.NAKED,
            BracketOutcome.UNKNOWN,
        )
        if self.final is not None and self.final.state is OperationState.FAILED:
            success = False
        message = error
        if message is None and not success:
            message = reason or self.op.last_error
        return BracketOrderResponse(
            success=success,
            entry_order_id=self.entry.order_id,
            stop_order_id=self.slots[LegKind.STOP].order_id,
            target_order_id=self.slots[LegKind.TARGET].order_id,
            entry_price=self.req.entry_price,
            stop_loss_price=self.req.stop_price,
            take_profit_price=self.req.target_price,
            error_message=message,
            operation_id=self.operation_id,
            outcome=outcome,
            filled_size=facts.entry_filled,
            protected_size=min(max(owned, 0), facts.stop.covering),
            average_fill_price=None if entry_view is None else entry_view.filled_price,
            owned_size=owned,
            native=self.native,
            finished=self.final is not None,
            reason=reason,
        )


__all__ = ["BracketRequest", "BracketSaga"]
