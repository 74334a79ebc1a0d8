"""PositionWatcher: exits follow their position; none outlives it, none over-covers it (I1, I2).

The exits it follows are in the :class:`ExitRegistry`: the *managed* ones (placed by
``add_stop_loss`` / ``add_take_profit`` or registered explicitly) and the *adopted* ones —
stops and limits orderguard placed on a position's reducing side without sizing them itself (a
``place_stop_order`` exit, the legs of an OCO exit pair). A bracket's legs belong to its saga and
are never touched; neither are orders orderguard did not place.

A reconcile reads broker truth — the position and the account's open orders, in the protective
lane (an open query breaker must not keep an exit from following its position) — adopts the new
exits it finds, asks the pure planner (:func:`plan_follow`) what to change, and does it: the exits
of one kind share the position (together never more than it), follow it up and down (adopted
ones only down), and are cancelled when it is flat or flipped. A managed or adopted stop that
left the broker cancelled without orderguard asking (the trading platform cancelled it) while its
position is still there is placed again: the registry says it protects that position.

Triggers: a position event on a followed contract, an order or trade event of a followed or
adoptable order, a reconnect or a silent stream, and a periodic REST re-check (events can be lost
and absence of an event is no evidence of anything). A reconcile that could not finish (a read
failed, a cancel or resize did not take) is retried after a short pause until it does: an exit
left over-covering waits for nothing else.

Concurrency: no locks. Reconciles of one contract never overlap — an event arriving during one
marks the contract dirty and it runs again — and every mutation is idempotent (cancel; modify to
an absolute size; a re-placement under a tag journaled first), so a repeated or racing round
converges instead of compounding.

Over 500 lines: the watcher's triggers, its reconcile and the actions it takes share the per-
contract schedule; the pure decision is position_rules.plan_follow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import timedelta
from typing import TypeVar

from orderguard.broker.base import (
    BrokerEvent,
    ConnectionEvent,
    ConnectionState,
    OrderEvent,
    PositionEvent,
    TradeEvent,
)
from orderguard.clock import Clock
from orderguard.errors import ExposureRefusedError, JournalError, OrderGuardError
from orderguard.journal.base import IntentKind
from orderguard.models import Order, OrderStatus, OrderType
from orderguard.orders.engine_context import EngineContext
from orderguard.orders.metrics import WatcherMetric
from orderguard.orders.positions.registry import ExitRegistry, ManagedExit
from orderguard.orders.positions.rules import (
    COVERED,
    Cancel,
    ExitKind,
    ExitView,
    Replace,
    Resize,
    kind_of_type,
    plan_follow,
    reducing_side,
)
from orderguard.orders.send.journaled_send import Mutation
from orderguard.recovery.manager import RecoveryOperation
from orderguard.recovery.operations import OperationType
from orderguard.resilience import Priority

log = logging.getLogger("orderguard.orders.positions")

Key = tuple[int, str]
OwnedElsewhere = Callable[[int, str], int]
Replacer = Callable[[ManagedExit, int, Order | None], Awaitable[ManagedExit | None]]
"""``(exit, size, its last order)``: place ``exit`` again for ``size``; the new registry entry."""

RETRY_DELAYS: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
"""Pauses before a reconcile that could not finish is tried again (the last one repeats).

Short at first (a lost cancel is sent again within a second), then slower: a broker that does
not answer for minutes (a storm) must not have the rate budget spent on asking it, or the
protective orders that follow wait for a window to free up."""

MAX_RETRIES = 200
"""Retries of one unfinished reconcile before it waits for the next event or re-check."""

_LANE = Priority.PROTECTIVE


T = TypeVar("T")


async def hedged(clock: Clock, read: Callable[[], Awaitable[T]], after: float) -> T:
    """``read()``, and if it has not answered within ``after`` seconds (``read_hedge_after``),
    a second ``read()`` in parallel: the first answer wins, the other is cancelled. (Order and
    position searches hedge in the gateway's coalescer already; this is for the other reads.)

    A read is safe to repeat. One slow answer (a delayed response, a request that hangs until
    its timeout) then costs ``after`` instead of its whole delay, which alone could outlast the
    bound a position may stay bare or over-covered. Raises only when both copies failed."""
    first = asyncio.ensure_future(read())
    try:
        return await clock.wait_for(asyncio.shield(first), after)
    except TimeoutError:
        pass
    except BaseException:
        first.cancel()
        raise
    second = asyncio.ensure_future(read())
    pending: set[asyncio.Future[T]] = {first, second}
    error: BaseException | None = None
    try:
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for future in done:
                if future.exception() is None:
                    return future.result()
                error = future.exception()
    finally:
        for future in pending:
            future.cancel()
    assert error is not None
    raise error


U = TypeVar("U")


async def both(first: Awaitable[T], second: Awaitable[U]) -> tuple[T, U]:
    """Both results, awaited together; the first failure cancels the other and is raised as is
    (a read that can no longer matter must not go on spending rate budget)."""
    a, b = asyncio.ensure_future(first), asyncio.ensure_future(second)
    try:
        await asyncio.wait({a, b}, return_when=asyncio.FIRST_EXCEPTION)
        for task in (a, b):
            error = task.exception() if task.done() else None
            if error is not None:
                raise error
        return a.result(), b.result()
    finally:
        for task in (a, b):
            task.cancel()


class PositionWatcher:
    """Keeps the exits on a position sized to it and cancels them when it goes flat."""

    def __init__(
        self,
        ctx: EngineContext,
        registry: ExitRegistry,
        *,
        enabled: bool = True,
        interval: float = 15.0,
        owned_elsewhere: OwnedElsewhere | None = None,
        retry_delays: Sequence[float] = RETRY_DELAYS,
    ) -> None:
        self._ctx = ctx
        self._registry = registry
        self.enabled = enabled
        self.interval = interval
        self.retry_delays = tuple(retry_delays) or (1.0,)
        self._owned_elsewhere = owned_elsewhere or self._bracket_owned
        self.replacer: Replacer | None = None
        """Places a stop again (set by PositionOrders, which owns the journaled placement)."""
        self.leaving: list[Callable[[int], bool]] = []
        """Whether a working exit is already on its way out, cancelled by the engine that owns
        it (an OCO leg whose sibling filled): it takes no share of the position, or the exits
        that stay would be shrunk for it and the position left bare once it is gone."""
        self._running: set[Key] = set()
        self._dirty: set[Key] = set()
        self._wake: dict[Key, asyncio.Event] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self.stats: Counter[WatcherMetric] = Counter()

    # -- triggers (sync: called from the event dispatch, so they only schedule) ---------------
    def on_event(self, event: BrokerEvent) -> None:
        if not self.enabled:
            return
        if isinstance(event, PositionEvent):
            p = event.position
            key = (p.account_id, p.contract_id)
            if self._follows(key) or self._adoption_pending(key, p.signed_size):
                self.schedule(key)
        elif isinstance(event, OrderEvent):
            order = event.order
            key = (order.account_id, order.contract_id)
            if self._follows(key) or self._is_managed(order) or self._adoptable_now(order):
                self.schedule(key)
        elif isinstance(event, TradeEvent):
            # A fill changes the position; its position event may be the one that was lost.
            traded = self._ctx.tracker.get(event.trade.order_id)
            if traded is not None and self._follows((traded.account_id, traded.contract_id)):
                self.schedule((traded.account_id, traded.contract_id))
        elif isinstance(event, ConnectionEvent) and event.state in (
            ConnectionState.RECONNECTED,
            ConnectionState.SILENT,
        ):
            # Events in the gap are lost: re-read every contract we follow.
            for key in sorted(self._followed()):
                self.schedule(key)

    def schedule(self, key: Key) -> None:
        """Reconcile ``key`` soon; if a reconcile of it is running, run once more after it."""
        if key in self._running:
            self._dirty.add(key)
            wake = self._wake.get(key)
            if wake is not None:
                wake.set()  # a retry waiting out its pause runs now: there is news
            return
        self._running.add(key)
        self._ctx.spawn(self._drain(key))

    def ensure_rechecks(self) -> None:
        """Start the periodic REST re-check if it is not running (it stops when nothing is left)."""
        if self.enabled and (self._loop_task is None or self._loop_task.done()):
            self._loop_task = self._ctx.spawn(self._recheck_loop())

    async def _drain(self, key: Key) -> None:
        attempt = 0
        try:
            while True:
                self._dirty.discard(key)
                try:
                    settled = await self.reconcile(*key)
                except OrderGuardError as exc:
                    # Broker trouble: tried again shortly (an over-covering exit must not wait
                    # for the next event or the periodic re-check).
                    self.stats[WatcherMetric.RECONCILE_ERRORS] += 1
                    log.warning("reconciling position orders on %s failed: %s", key, exc)
                    settled = False
                if key in self._dirty:
                    attempt = 0
                    continue
                if settled or attempt >= MAX_RETRIES:
                    return
                self.stats[WatcherMetric.RECONCILE_RETRIES] += 1
                wake = self._wake.setdefault(key, asyncio.Event())
                wake.clear()
                pause = self.retry_delays[min(attempt, len(self.retry_delays) - 1)]
                with contextlib.suppress(TimeoutError):
                    await self._ctx.clock.wait_for(wake.wait(), pause)
                attempt += 1
        finally:
            self._running.discard(key)
            self._wake.pop(key, None)

    async def _recheck_loop(self) -> None:
        while self.enabled:
            await self._ctx.clock.sleep(self.interval)
            keys = self._followed()
            if not keys:
                return
            for key in sorted(keys):
                self.schedule(key)

    async def recheck_all(self) -> None:
        """Reconcile every followed contract now and wait for it (for tests and the CLI)."""
        for key in sorted(self._followed()):
            await self.reconcile(*key)

    # -- the reconcile --------------------------------------------------------------------------
    async def reconcile(self, account_id: int, contract_id: str) -> bool:
        """Bring the exits on one contract in line with broker truth (see module doc).

        Returns True when nothing is left to do (or only what events will tell, like an exit
        whose placement is still unresolved); False when something failed and must be tried
        again."""
        if not self.enabled:
            return True
        ctx = self._ctx
        settled = True
        exits = self._registry.for_contract(account_id, contract_id)
        await self._resolve_tags(exits)
        clock = ctx.clock
        asked = clock.monotonic()
        signed, open_orders = await both(
            ctx.truth.owned_position(account_id, contract_id, priority=_LANE),
            hedged(
                clock,
                lambda: ctx.feed.working_orders(account_id, _LANE),
                ctx.config.read_hedge_after,
            ),
        )
        working = {o.id: o for o in open_orders if o.contract_id == contract_id}
        unowned = signed - self._owned_elsewhere(account_id, contract_id)
        for candidate in working.values():
            if self._adoptable(candidate, unowned):
                await self._adopt(candidate)
        exits = sorted(
            self._registry.for_contract(account_id, contract_id), key=lambda e: e.created_at
        )
        if not exits:
            return True
        self.stats[WatcherMetric.RECONCILES] += 1
        views: list[ExitView] = []
        finished: list[tuple[ManagedExit, Order | None]] = []
        last: dict[int, Order | None] = {}
        in_flight = ctx.clock.now() - timedelta(seconds=ctx.config.in_flight_grace)
        for pending, managed in enumerate(exits, 1):
            if managed.order_id is None:
                # Being placed (or unresolved; _resolve_tags keeps looking). A placement in
                # flight keeps its share: the others growing into it would over-cover the
                # position the moment it lands. One older than the in-flight grace holds
                # nothing (it most likely never arrived, and must not leave the position bare).
                if managed.size is not None and managed.created_at >= in_flight:
                    views.append(_pending_view(-pending, managed))
                continue
            order: Order | None = working.get(managed.order_id)
            if order is None:
                # Not among the open orders: it ended (a final state is final: the tracker's
                # is enough), or the list was read a moment before an event we have not seen.
                order = ctx.tracker.get(managed.order_id)
                if order is None or not order.is_terminal:
                    order = await ctx.feed.refresh(account_id, managed.order_id, _LANE)
            if order is None or not order.is_working:
                last[managed.order_id] = order
                if order is not None and self._replaceable(managed, order):
                    views.append(_view(managed, order, working=False, replace=True))
                else:
                    finished.append((managed, order))
                continue
            if any(leaving(order.id) for leaving in self.leaving):
                continue
            views.append(_view(managed, order, working=True))
        max_size = await ctx.reference.max_order_size(account_id)
        # The reads above may have taken seconds (delayed, hedged, retried): a position event
        # since then is newer than both answers, and the entry they saw filling has filled —
        # exits cut to the position they read were cut below the one there is now.
        newer = ctx.feed.newer_than(account_id, contract_id, asked)
        if newer is not None and newer != signed:
            signed = newer
            unowned = signed - self._owned_elsewhere(account_id, contract_id)
        incoming = self.incoming(working.values(), unowned)
        replaced: set[int] = set()
        for action in plan_follow(unowned, views, max_size=max_size, incoming=incoming):
            managed_exit = self._registry.by_order_id(action.order_id)
            if managed_exit is None:
                continue
            if isinstance(action, Replace):
                replaced.add(action.order_id)
                if not await self._replace(managed_exit, action.size, last.get(action.order_id)):
                    settled = False
                continue
            if isinstance(action, Resize):
                after = await self._resize(account_id, action)
                done = after is not None and after.remaining == action.remaining
            else:
                if action.reason == COVERED and managed_exit.kind is ExitKind.STOP:
                    # Covered by the others now; placed again should the position need it.
                    managed_exit.dormant = True
                    await self._write(self._registry.update, managed_exit)
                after = await self._cancel(account_id, action)
                done = after is not None and after.is_terminal
            if not done:
                settled = False
            if after is None:
                continue
            if after.is_terminal:
                reason = action.reason if isinstance(action, Cancel) else "ended while resized"
                if managed_exit.dormant and after.status is OrderStatus.CANCELLED:
                    await self._record(managed_exit, after, reason, cancelled_by_us=True)
                else:
                    await self.forget(managed_exit, after, reason, cancelled_by_us=True)
            else:
                await self._record(managed_exit, after)
        for view in views:
            if view.replace and view.order_id not in replaced:
                # Gone and not wanted now: forgotten, unless it is dormant on a position it
                # still protects (the others cover it for now; it waits to be needed again).
                managed_exit = self._registry.by_order_id(view.order_id)
                if managed_exit is None:
                    continue
                if managed_exit.dormant and reducing_side(unowned) is managed_exit.side:
                    continue
                finished.append((managed_exit, last.get(view.order_id)))
        for managed, final in finished:
            if managed in self._registry:
                await self.forget(managed, final, "found finished at the broker")
        return settled

    async def forget(
        self,
        managed: ManagedExit,
        order: Order | None,
        reason: str,
        *,
        cancelled_by_us: bool = False,
    ) -> None:
        """Stop following an exit that is no longer working; its final state goes on record."""
        if order is not None:
            await self._record(managed, order, reason, cancelled_by_us=cancelled_by_us)
        await self._write(self._registry.discard, managed)

    async def _write(
        self, write: Callable[[ManagedExit], Awaitable[None]], managed: ManagedExit
    ) -> None:
        """Change the registry; memory holds the change when the journal refuses it (the next
        successful write persists it). Following the position never waits for the journal: a
        full disk must not leave an exit over-covering (F15)."""
        try:
            await write(managed)
        except JournalError as exc:
            self.stats[WatcherMetric.REGISTRY_WRITE_FAILURES] += 1
            log.error("followed exits not persisted (%s); kept in memory", exc)

    def _replaceable(self, managed: ManagedExit, order: Order) -> bool:
        """A stop that ended cancelled while still protecting the position in the registry's
        eyes: cancelled by someone else (never by orderguard), or made dormant by the watcher
        itself. It is placed again while the position needs it."""
        return (
            managed.kind is ExitKind.STOP
            and order.status is OrderStatus.CANCELLED
            and (managed.dormant or not self._ctx.send.cancel_requested(order.id))
            and self.replacer is not None
        )

    async def _replace(self, managed: ManagedExit, size: int, order: Order | None) -> bool:
        assert self.replacer is not None
        # A placement adds an order: the position is read once more right before it (the
        # reconcile's read may be older than a close that raced the platform's cancel; a stop
        # placed on a flat contract then over-covers it until the next round).
        ctx = self._ctx
        key = (managed.account_id, managed.contract_id)
        signed = await ctx.truth.owned_position(*key, priority=_LANE)  # hedged by the gateway
        unowned = signed - self._owned_elsewhere(*key)
        if reducing_side(unowned) is not managed.side:
            await self.forget(managed, order, "position gone before it was placed again")
            return True
        size = min(size, abs(unowned))
        self.stats[WatcherMetric.REPLACEMENTS] += 1
        why = "the position needs it again" if managed.dormant else "cancelled outside orderguard"
        log.warning(
            "placing exit %s on %s again for %s (%s)", managed.order_id, managed.contract_id,
            size, why,
        )  # fmt: skip
        try:
            return await self.replacer(managed, size, order) is not None
        except OrderGuardError as exc:
            self.stats[WatcherMetric.REPLACE_ERRORS] += 1
            log.warning("placing exit %s again failed: %s", managed.order_id, exc)
            return False

    async def _resolve_tags(self, exits: list[ManagedExit]) -> None:
        """Find exits whose placement outcome was unknown; forget ones too old to be found."""
        ctx = self._ctx
        for managed in exits:
            if managed.order_id is not None or managed.custom_tag is None:
                continue
            order = ctx.tracker.by_tag(managed.account_id, managed.custom_tag)
            if order is None:
                try:
                    order = await self._find_by_tag(managed.account_id, managed.custom_tag)
                except OrderGuardError as exc:
                    # The placement's own re-check (and its order event) will tell us.
                    log.warning("looking up exit %s failed: %s", managed.custom_tag, exc)
                    continue
            if order is not None:
                managed.order_id = order.id
                await self._write(self._registry.update, managed)
                try:
                    await self._resolve_operation(managed, order)
                except JournalError as exc:
                    log.error("exit %s not recorded on its operation: %s", order.id, exc)
            elif managed.created_at < ctx.reference.window_start(ctx.clock.now()):
                # Beyond the search window a tag can no longer be found; stop asking.
                log.error("managed exit %s never appeared at the broker", managed.custom_tag)
                await self._write(self._registry.discard, managed)

    async def _find_by_tag(self, account_id: int, tag: str) -> Order | None:
        """The order carrying ``tag`` in any status (protective lane), merged into the tracker."""
        ctx = self._ctx
        start = ctx.reference.window_start(ctx.clock.now())
        for order in await ctx.gateway.search_orders(account_id, start=start, priority=_LANE):
            if order.custom_tag == tag:
                ctx.feed.ingest(order)
                return ctx.tracker.by_tag(account_id, tag)
        return None

    async def _resize(self, account_id: int, action: Resize) -> Order | None:
        ctx = self._ctx
        self.stats[WatcherMetric.RESIZES] += 1
        log.info("resizing managed exit %s to %s", action.order_id, action.size)
        try:
            result = await ctx.send.modify_order(
                action.order_id, size=action.size, account_id=account_id,
                priority=Priority.PROTECTIVE,
            )  # fmt: skip
            return result.order
        except ExposureRefusedError:
            # The ambiguity latch guards against new exposure; growing an exit removes exposure,
            # and a modify to an absolute size is idempotent, so it goes out anyway: journaled
            # as risk-reducing (sent even while the journal cannot record it).
            known = ctx.tracker.get(action.order_id)
            intent = await ctx.journaled.intent(
                Mutation(
                    IntentKind.MODIFY,
                    account_id=account_id,
                    contract_id=known.contract_id if known is not None else "",
                    custom_tag=ctx.tags.journal_key("m"),
                    request={"order_id": action.order_id, "changes": {"size": action.size}},
                    reduces_exposure=True,
                )
            )
            await ctx.journaled.modify(
                intent, account_id, action.order_id, size=action.size, priority=Priority.PROTECTIVE
            )
            return await ctx.feed.refresh(account_id, action.order_id, _LANE)
        except OrderGuardError as exc:
            self.stats[WatcherMetric.RESIZE_ERRORS] += 1
            log.warning("resizing exit %s failed: %s", action.order_id, exc)
            return None

    async def _cancel(self, account_id: int, action: Cancel) -> Order | None:
        ctx = self._ctx
        self.stats[WatcherMetric.CANCELS] += 1
        log.info("cancelling managed exit %s: %s", action.order_id, action.reason)
        try:
            # An exit without its position is risk: it goes in the protective lane. Not
            # settled by polling: a cancel whose answer was lost is sent again by the retry.
            await ctx.send.cancel_journaled(
                action.order_id, account_id, priority=Priority.PROTECTIVE, settle=False
            )
        except OrderGuardError as exc:
            self.stats[WatcherMetric.CANCEL_ERRORS] += 1
            log.warning("cancelling exit %s failed: %s", action.order_id, exc)
        return ctx.tracker.get(action.order_id)

    # -- adoption -------------------------------------------------------------------------------
    def _adoptable_now(self, order: Order) -> bool:
        """An order event of an exit the watcher should adopt (judged on the last position)."""
        position = self._ctx.feed.position(order.account_id, order.contract_id)
        if position is None:
            return False
        unowned = position - self._owned_elsewhere(order.account_id, order.contract_id)
        return self._adoptable(order, unowned)

    def _adoption_pending(self, key: Key, signed: int) -> bool:
        """A known working order becomes adoptable at this position (an exit placed while its
        entry was still filling was larger than the position until now)."""
        unowned = signed - self._owned_elsewhere(*key)
        if reducing_side(unowned) is None:
            return False
        return any(
            o.contract_id == key[1] and self._adoptable(o, unowned)
            for o in self._ctx.tracker.orders(key[0])
        )

    def _adoptable(self, order: Order, unowned: int) -> bool:
        """orderguard's working stop or limit on the reducing side of the position outside
        brackets, at most its size, not followed yet, and not another saga's leg."""
        if not order.is_working or order.parent_order_id is not None:
            return False
        if kind_of_type(order.type) is ExitKind.ENTRY or order.side is not reducing_side(unowned):
            return False
        if order.size - order.fill_volume > abs(unowned):
            return False  # it would flip the position: an order of its own, not an exit
        if self._is_managed(order):
            return False
        return self._unowned_tag(order.custom_tag)

    def incoming(self, orders: Iterable[Order], unowned: int) -> int:
        """What orderguard's stand-alone market orders still working on the position's side
        are about to add to it (see :meth:`_adding`)."""
        return sum(o.remaining for o in orders if self._adding(o, unowned))

    def _adding(self, order: Order, unowned: int) -> bool:
        """A stand-alone market order of orderguard's still filling on the position's side: its
        rest is the position a moment from now (with partial fills an entry of 3 fills one
        contract at a time, and the exits the caller placed for 3 were cut to 1, then short)."""
        return (
            order.type is OrderType.MARKET
            and order.is_working
            and unowned != 0
            and order.side.sign == (1 if unowned > 0 else -1)
            and order.parent_order_id is None
            and self._unowned_tag(order.custom_tag)
        )

    def _unowned_tag(self, tag: str | None) -> bool:
        """A stand-alone placement of orderguard's (``place_stop_order``, ``place_limit_order``,
        ``place_market_order``: ``<prefix>-<session>-<seq>``). Legs of operations are their
        saga's; an OCO exit pair is entered in the registry when it is placed, and a pair of
        resting entries around the market must not be taken for exits."""
        if not tag:
            return False
        return tag.startswith(f"{self._ctx.tags.prefix}-") and len(tag.split("-")) == 3

    async def _adopt(self, order: Order) -> None:
        managed = ManagedExit(
            account_id=order.account_id,
            contract_id=order.contract_id,
            kind=kind_of_type(order.type),
            side=order.side,
            created_at=self._ctx.clock.now(),
            custom_tag=order.custom_tag,
            order_id=order.id,
            cover=order.size - order.fill_volume,
            adopted=True,
            price=order.stop_price if order.stop_price is not None else order.limit_price,
        )
        self.stats[WatcherMetric.ADOPTED] += 1
        log.info("following exit %s (%s) on %s", order.id, order.custom_tag, order.contract_id)
        await self._write(self._registry.add, managed)
        self.ensure_rechecks()

    def _follows(self, key: Key) -> bool:
        return key in self._registry.contracts()

    def _followed(self) -> set[Key]:
        """Contracts with exits in the registry, and those with an exit to adopt (at the
        last position seen)."""
        keys = self._registry.contracts()
        feed = self._ctx.feed
        for order in self._ctx.tracker.orders():
            key = (order.account_id, order.contract_id)
            if key in keys or not order.is_working:
                continue
            position = feed.position(*key)
            if position is not None and self._adoptable(
                order, position - self._owned_elsewhere(*key)
            ):
                keys.add(key)
        return keys

    def candidates(self) -> set[Key]:
        """Contracts where orderguard has working stops or limits that no saga drives (after a
        restart, before any position is known: each is reconciled once to adopt them)."""
        keys: set[Key] = set()
        for order in self._ctx.tracker.orders():
            if (
                order.is_working
                and order.parent_order_id is None
                and kind_of_type(order.type) is not ExitKind.ENTRY
                and not self._is_managed(order)
                and self._unowned_tag(order.custom_tag)
            ):
                keys.add((order.account_id, order.contract_id))
        return keys

    # -- records --------------------------------------------------------------------------------
    async def _record(
        self,
        managed: ManagedExit,
        order: Order,
        reason: str | None = None,
        *,
        cancelled_by_us: bool = False,
    ) -> None:
        """Fold broker truth about the exit into its operation record (keeps it truthful)."""
        if managed.operation_id is None:
            return
        op = await self._operation(managed.operation_id)
        if op is None:
            return
        ref = op.orders.get(managed.kind.value)
        if ref is None or ref.order_id != order.id:
            return
        ref.size = order.size
        if cancelled_by_us:
            ref.cancel_attempted = True
            ref.cancel_successful = order.status in (OrderStatus.CANCELLED, OrderStatus.EXPIRED)
        if reason is not None:
            op.extra["ended"] = f"{order.status.name.lower()}: {reason}"
        try:
            await self._ctx.recovery.record_order_state(op, ref, order)
        except JournalError as exc:
            # The record catches up on the next write; the exit itself does not wait for it.
            log.error("exit %s not recorded on operation %s: %s", order.id, op.id, exc)

    async def _resolve_operation(self, managed: ManagedExit, order: Order) -> None:
        """The placement whose outcome was unknown exists after all: finish its operation."""
        if managed.operation_id is None:
            return
        op = await self._operation(managed.operation_id)
        if op is None or op.state.is_terminal:
            return
        ref = op.orders.get(managed.kind.value)
        recovery = self._ctx.recovery
        if ref is not None and not ref.placed_successfully:
            await recovery.record_resolution(op, ref, order)
        await recovery.complete_operation(op)

    async def _operation(self, operation_id: str) -> RecoveryOperation | None:
        recovery = self._ctx.recovery
        op = recovery.active_operations.get(operation_id)
        if op is None:
            op = next((o for o in recovery.operation_history if o.id == operation_id), None)
        if op is None:
            try:
                rec = await recovery.journal.get_operation(operation_id)
            except JournalError as exc:
                log.error("operation %s not readable: %s", operation_id, exc)
                return None
            op = None if rec is None else RecoveryOperation.from_record(rec)
        return op

    def _is_managed(self, order: Order) -> bool:
        if self._registry.by_order_id(order.id) is not None:
            return True
        return order.custom_tag is not None and self._registry.by_tag(order.custom_tag) is not None

    def _bracket_owned(self, account_id: int, contract_id: str) -> int:
        """Signed quantity bracket operations own on the contract (their legs protect it)."""
        recovery = self._ctx.recovery
        ops = [*recovery.active_operations.values(), *recovery.finished_holders()]
        seen: set[str] = set()
        total = 0
        for op in ops:
            if op.id in seen or op.operation_type is not OperationType.BRACKET_ORDER:
                continue
            seen.add(op.id)
            contract = op.contract_id or next((r.contract_id for r in op.orders.values()), None)
            account = (
                op.account_id
                if op.account_id is not None
                else next((r.account_id for r in op.orders.values()), None)
            )
            if contract == contract_id and account == account_id:
                total += op.net_filled
        return total


def _pending_view(placeholder: int, managed: ManagedExit) -> ExitView:
    """An exit whose placement is in flight: its requested size, never acted on (no order id)."""
    assert managed.size is not None
    return ExitView(
        placeholder, managed.side, managed.size, 0, True, kind=managed.kind, grows=False
    )


def _view(managed: ManagedExit, order: Order, *, working: bool, replace: bool = False) -> ExitView:
    return ExitView(
        order.id,
        order.side,
        order.size,
        order.fill_volume,
        working,
        managed.cover,
        managed.kind,
        grows=not managed.adopted,
        replace=replace,
    )


__all__ = ["RETRY_DELAYS", "PositionWatcher", "Replacer", "both", "hedged"]
