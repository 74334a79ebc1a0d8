"""Where the manager learns about orders: broker events and REST reads, into the tracker, then out.

Every order seen, whether pushed as an event or read back from the broker, goes through the
tracker's monotonic merge first (a late or replayed report never moves an order backwards), then
to the placement pipeline (an order carrying an unresolved tag resolves it and unlatches its
contract) and to the user callbacks for what changed. An event then also reaches the reconciler
(it watches for silence and gaps) and the internal listeners (brackets, OCO, position orders). A
failure while handling an event is counted and logged and never stops the event stream; each
internal listener is guarded on its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from orderguard.broker.base import (
    BrokerEvent,
    ConnectionEvent,
    ConnectionState,
    OrderEvent,
    PositionEvent,
    TradeEvent,
)
from orderguard.clock import Clock
from orderguard.errors import OrderGuardError
from orderguard.models import Order, Position, PositionType
from orderguard.orders.callbacks import TRADE_EXECUTED, CallbackRegistry, events_for
from orderguard.orders.feed.tracking import OrderChange, OrderTracker
from orderguard.orders.gateway import GuardedBroker
from orderguard.orders.metrics import Counters, Metric
from orderguard.resilience import Priority

log = logging.getLogger("orderguard.orders")


class EventWatcher(Protocol):
    """The continuous reconciler, as the feed sees it."""

    @property
    def running(self) -> bool: ...

    def on_event(self, event: BrokerEvent) -> None: ...


class OrderFeed:
    """Merges orders and trades into the tracker and tells everyone who must know (see the
    module docstring).

    ``on_order`` is the placement pipeline's hook; ``window_start`` gives the start of the order
    search window; ``default_account`` the manager's default account (None before ``start``);
    ``spawn`` runs a background task the manager owns and cancels.
    """

    def __init__(
        self,
        *,
        gateway: GuardedBroker,
        clock: Clock,
        stats: Counters,
        tracker: OrderTracker,
        callbacks: CallbackRegistry,
        on_order: Callable[[Order], None],
        watcher: EventWatcher,
        window_start: Callable[[datetime], datetime],
        default_account: Callable[[], int | None],
        spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]],
    ) -> None:
        self._gateway = gateway
        self._clock = clock
        self._stats = stats
        self._tracker = tracker
        self._callbacks = callbacks
        self._on_order = on_order
        self._watcher = watcher
        self._window_start = window_start
        self._default_account = default_account
        self._spawn = spawn
        self._listeners: list[Callable[[BrokerEvent], None]] = []
        self._positions: dict[tuple[int, str], int] = {}
        # Callers waiting for the book to move on a contract (see ``position_event``), and the
        # contracts where a fill was seen that no position event or read has followed yet.
        self._position_waiters: dict[tuple[int, str], list[asyncio.Future[None]]] = {}
        self._fill_ahead: set[tuple[int, str]] = set()
        # When the broker's own position event last arrived per contract (monotonic): a read
        # asked before it may answer after it, with the older position.
        self._event_at: dict[tuple[int, str], float] = {}

    # -- events --------------------------------------------------------------------------------
    def on_event(self, event: BrokerEvent) -> None:
        """The broker subscription's handler (events need no guarding)."""
        if isinstance(event, PositionEvent):
            p = event.position
            self._event_at[(p.account_id, p.contract_id)] = self._clock.monotonic()
        try:
            if isinstance(event, OrderEvent):
                self.ingest(event.order)
            elif isinstance(event, TradeEvent):
                is_new, change = self._tracker.apply_trade(event.trade)
                if change is not None:
                    self._announce(change)
                if is_new:
                    self._callbacks.dispatch(TRADE_EXECUTED, event.trade)
            elif (
                isinstance(event, ConnectionEvent)
                and event.state is ConnectionState.RECONNECTED
                and not self._watcher.running
            ):
                # Events in the gap are lost: the reconciler resyncs orders and positions (it
                # sees the event below); before it runs (mid-start), re-read the orders at least.
                self._spawn(self._reconcile_after_gap())
            self._watcher.on_event(event)
        except Exception:
            self._stats[Metric.EVENT_ERRORS] += 1
            log.exception("handling %s failed", type(event).__name__)
        self.notify_listeners(event)

    # -- positions -----------------------------------------------------------------------------
    def position(self, account_id: int, contract_id: str) -> int | None:
        """The last signed position seen on the contract (events and reads), or None if none
        was seen since the manager started."""
        return self._positions.get((account_id, contract_id))

    async def position_event(
        self, account_id: int, contract_id: str, shows: Callable[[int], bool], timeout: float
    ) -> int | None:
        """The position on the contract once the book ``shows`` what the caller expects,
        waiting for its events at most ``timeout`` seconds; None if it does not by then, or at
        once when no fill is ahead of the book there (no position event is due).

        A fill's order event and its position event arrive separately, in either order: a step
        reacting to the fill (the stop after an entry filled) may see the position of just
        before it. Its position event is usually a moment behind, far sooner than a read."""
        key = (account_id, contract_id)
        if key not in self._fill_ahead:
            signed = self._positions.get(key)
            return signed if signed is not None and shows(signed) else None
        deadline = self._clock.monotonic() + timeout
        while True:
            signed = self._positions.get(key)
            if signed is not None and shows(signed):
                return signed
            left = deadline - self._clock.monotonic()
            if left <= 0:
                return None
            moved: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._position_waiters.setdefault(key, []).append(moved)
            try:
                await self._clock.wait_for(moved, left)
            except TimeoutError:
                return None
            finally:
                waiters = self._position_waiters.get(key, [])
                if moved in waiters:
                    waiters.remove(moved)
                if not waiters:
                    self._position_waiters.pop(key, None)

    def _position_moved(self, key: tuple[int, str]) -> None:
        self._fill_ahead.discard(key)
        for moved in self._position_waiters.pop(key, []):
            if not moved.done():
                moved.set_result(None)

    def known_positions(self, account_id: int, as_of: datetime) -> list[Position]:
        """The account's open positions as last seen (events and reads), as position records
        stamped ``as_of`` (the book keeps net sizes only: no id nor average price)."""
        return [
            Position(
                id=0,
                account_id=account_id,
                contract_id=contract_id,
                creation_timestamp=as_of,
                type=PositionType.LONG if signed > 0 else PositionType.SHORT,
                size=abs(signed),
                average_price=Decimal(0),
            )
            for (acct, contract_id), signed in self._positions.items()
            if acct == account_id and signed != 0
        ]

    def note_positions(
        self, account_id: int, positions: Iterable[Position], asked_at: float | None = None
    ) -> None:
        """A complete read of the account's positions (a contract it leaves out is flat).

        A position the read shows changed since the last one seen is announced to the internal
        listeners as a position event, like the reconciler's periodic reads: its own event may
        be the one that was lost, and whoever read it (a close, a protective step) must not be
        the only one to know (an exit then over-covered the rest of a closed position until
        the next periodic re-check)."""
        listed = {p.contract_id: p for p in positions}
        changed: list[Position] = []
        for key in sorted(
            {k for k in self._positions if k[0] == account_id} | {(account_id, c) for c in listed}
        ):
            if asked_at is not None and self._event_at.get(key, float("-inf")) > asked_at:
                continue  # an event came after the question: the answer may be older than it
            position = listed.get(key[1])
            signed = 0 if position is None else position.signed_size
            before = self._positions.get(key)
            self._positions[key] = signed
            self._position_moved(key)
            if before is not None and before != signed:
                changed.append(position if position is not None else _flat(*key, self._clock))
        for position in changed:
            self.notify_listeners(PositionEvent(position))

    def newer_than(self, account_id: int, contract_id: str, asked_at: float) -> int | None:
        """The position its events showed after a read was asked at ``asked_at`` (the read's
        answer may be older than them: it was delayed, or served from before they happened);
        None when no position event came since."""
        key = (account_id, contract_id)
        if self._event_at.get(key, float("-inf")) > asked_at:
            return self._positions.get(key)
        return None

    def notify_listeners(self, event: BrokerEvent) -> None:
        """Internal listeners (brackets, OCO, position orders) see the event after the tracker;
        the reconciler also hands them what it found by REST."""
        if isinstance(event, PositionEvent):
            p = event.position
            self._positions[(p.account_id, p.contract_id)] = p.signed_size
            self._position_moved((p.account_id, p.contract_id))
        for listener in tuple(self._listeners):
            try:
                listener(event)
            except Exception:
                self._stats[Metric.EVENT_ERRORS] += 1
                log.exception("event listener failed on %s", type(event).__name__)

    def add_listener(self, fn: Callable[[BrokerEvent], None]) -> Callable[[], None]:
        """``fn(event)`` after the tracker applied it; returns the remover."""
        self._listeners.append(fn)

        def remove() -> None:
            if fn in self._listeners:
                self._listeners.remove(fn)

        return remove

    def ingest(self, order: Order) -> None:
        """Merge one order report (event or read) and announce what changed."""
        change = self._tracker.apply_order(order)
        self._on_order(order)
        if change is not None:
            self._announce(change)

    def _announce(self, change: OrderChange) -> None:
        if change.newly_filled:
            self._fill_ahead.add((change.current.account_id, change.current.contract_id))
        for name in events_for(change):
            self._callbacks.dispatch(name, change.current)

    async def _reconcile_after_gap(self) -> None:
        accounts = {o.account_id for o in self._tracker.orders()}
        default = self._default_account()
        if default is not None:
            accounts.add(default)
        start = self._window_start(self._clock.now())
        for account in sorted(accounts):
            try:
                orders = await self._gateway.search_orders(account, start=start)
            except OrderGuardError as exc:
                log.warning("reconciling orders of account %s failed: %s", account, exc)
                continue
            for order in orders:
                self.ingest(order)
        self._stats[Metric.RECONCILIATIONS] += 1

    # -- reads ---------------------------------------------------------------------------------
    async def refresh(
        self, account_id: int, order_id: int, priority: Priority = Priority.QUERY
    ) -> Order | None:
        """Read the order from the broker through the monotonic merge; the merged view wins.

        ``priority``: the lane of the step that needs the read (a protective step's read must
        not wait behind entries)."""
        order = await self._gateway.get_order(account_id, order_id, priority=priority)
        if order is None:
            # get_order may only see recent or open orders on some adapters: widen to a window.
            start = self._window_start(self._clock.now())
            found = await self._gateway.search_orders(account_id, start=start, priority=priority)
            for candidate in found:
                if candidate.id == order_id:
                    order = candidate
                    break
        if order is not None:
            self.ingest(order)
        return self._tracker.get(order_id)

    async def read_quietly(
        self, account_id: int, order_id: int, priority: Priority = Priority.QUERY
    ) -> Order | None:
        """:meth:`refresh`, or the tracker's view when the read fails (logged, not raised)."""
        try:
            return await self.refresh(account_id, order_id, priority)
        except OrderGuardError as exc:
            log.warning("re-reading order %s failed: %s", order_id, exc)
            return self._tracker.get(order_id)

    async def working_orders(
        self, account_id: int, priority: Priority = Priority.QUERY
    ) -> list[Order]:
        """The account's open orders from the broker, merged, as the tracker now sees them.

        ``priority``: the lane of the step that needs the read (see :meth:`refresh`)."""
        result: list[Order] = []
        for order in await self._gateway.search_open_orders(account_id, priority=priority):
            self.ingest(order)
            view = self._tracker.get(order.id)
            if view is None or not view.is_working:
                continue  # an event already told us it finished
            result.append(view)
        return result

    async def find_by_tag(self, account_id: int, custom_tag: str) -> Order | None:
        """The order carrying ``custom_tag`` in ANY status, or None if the broker has none."""
        known = self._tracker.by_tag(account_id, custom_tag)
        if known is not None and known.is_terminal:
            return known
        start = self._window_start(self._clock.now())
        orders = await self._gateway.search_orders(account_id, start=start)
        for order in orders:
            if order.custom_tag == custom_tag:
                self.ingest(order)
                return self._tracker.by_tag(account_id, custom_tag)
        return known


def _flat(account_id: int, contract_id: str, clock: Clock) -> Position:
    """A flat position (``size`` 0), which ``Position/search`` reports by leaving it out."""
    return Position(0, account_id, contract_id, clock.now(), PositionType.UNDEFINED, 0, Decimal(0))


__all__ = ["EventWatcher", "OrderFeed"]
