"""Order state kept from events and queries: idempotent, order-independent, never backwards.

Events arrive duplicated, late and out of order (FAILURES F8), and REST snapshots interleave with
them. Rather than applying "the last message wins", the tracker keeps, per order, the best snapshot
under three total orders and composes its view from them:

* **fill** – highest ``fill_volume`` (ties: a known ``filled_price``, then the later stamp). A
  higher fill volume always wins, whatever the status says.
* **status** – every terminal status outranks every working one, so a final order never becomes
  working again. Among terminals ``Filled`` ranks highest: ``Cancelled → Filled`` is the one legal
  late transition (a fill that raced the cancel, F4). Working statuses follow their update stamp, so
  ``PendingCancellation → Open`` (a refused cancel) still moves forward in time.
* **latest** – the newest stamp, for the fields a modify changes (size, prices).

Each is a maximum over the set of snapshots seen, so the view is a function of that *set*: any
permutation or duplication of the same messages yields the same state (property-tested). The one
exception is two snapshots with the same stamp, status and fill volume but different prices or
size (possible only when the broker stamps a modify and the previous state at the same instant):
the later arrival wins, as no message can tell which came first.

Trades are kept by trade id. A trade that arrives before any order update for its order (the
incumbent lost fills here) still counts: the view's fill volume is the larger of the order's
``fill_volume`` and the sum of its non-voided trades, and an order whose fills cover its size
reads as ``Filled``.

Finished orders are kept for a bounded count (``max_finished``, oldest finished dropped first), so
a long-running manager does not grow without end. Two guards keep that safe:

* ``pinned()`` (given by the manager) names orders still in use – the legs of unfinished
  operations, whose views a saga reads however long ago they finished (a bracket owns its entry's
  fill volume while its exits work). They are never dropped.
* A dropped order leaves a tombstone (the last ``max(max_finished, 1024)`` are kept): a late
  *working* snapshot of it is ignored, so its state never goes backwards, and a late duplicate
  trade is not news. A late *terminal* snapshot (``Cancelled -> Filled``) is taken afresh.

The manager's readers treat a miss (``get`` returns None) as for any order the tracker never saw:
they ask the broker.

Pure: no I/O, no clock, no user callbacks (``pinned()`` only answers a question). The manager
feeds it and decides what to announce.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal

from orderguard.models import Order, OrderStatus, Trade

# Terminal ranks: Filled last, so Cancelled -> Filled (or Expired -> Filled) can happen, not back.
_TERMINAL_RANK = {
    OrderStatus.REJECTED: 1,
    OrderStatus.EXPIRED: 2,
    OrderStatus.CANCELLED: 3,
    OrderStatus.FILLED: 4,
}
# Working ranks only break ties between snapshots with the same stamp.
_WORKING_RANK = {
    OrderStatus.NONE: 0,
    OrderStatus.PENDING: 1,
    OrderStatus.SUSPENDED: 2,
    OrderStatus.OPEN: 3,
    OrderStatus.PENDING_CANCELLATION: 4,
}
_NO_PRICE = Decimal(-1)

StatusKey = tuple[int, float, int]

DEFAULT_MAX_FINISHED = 10_000
"""Finished orders kept in memory (about 1 KB each): the recent history that lookups and late
events are served from without a broker query."""
_MIN_TOMBSTONES = 1_024  # ids are cheap; even a tiny bound remembers this many dropped orders


def _stamp(order: Order) -> float:
    ts: datetime = order.update_timestamp or order.creation_timestamp
    return ts.timestamp()


def _status_key(order: Order) -> StatusKey:
    rank = _TERMINAL_RANK.get(order.status)
    if rank is not None:
        return (1, 0.0, rank)
    return (0, _stamp(order), _WORKING_RANK.get(order.status, 0))


def _latest_key(order: Order) -> tuple[float, StatusKey, int]:
    return (_stamp(order), _status_key(order), order.fill_volume)


def _fill_key(order: Order) -> tuple[int, int, float, Decimal]:
    price = order.filled_price
    return (
        order.fill_volume,
        0 if price is None else 1,
        _stamp(order),
        _NO_PRICE if price is None else price,
    )


@dataclass(slots=True)
class _Record:
    latest: Order | None = None
    best_status: Order | None = None
    best_fill: Order | None = None
    trades: dict[int, Trade] = field(default_factory=dict)
    view: Order | None = None


@dataclass(frozen=True, slots=True)
class OrderChange:
    """The tracker's view of an order moved from ``previous`` to ``current``."""

    previous: Order | None
    current: Order

    @property
    def newly_filled(self) -> int:
        """Contracts filled by this change."""
        before = self.previous.fill_volume if self.previous is not None else 0
        return max(0, self.current.fill_volume - before)

    @property
    def status_changed(self) -> bool:
        return self.previous is None or self.previous.status is not self.current.status


class OrderTracker:
    """Monotonic merge of order snapshots and trades, keyed by order id (see module docstring)."""

    __slots__ = ("_by_tag", "_finished", "_pinned", "_records", "_tombstones", "max_finished")

    def __init__(
        self,
        max_finished: int | None = DEFAULT_MAX_FINISHED,
        *,
        pinned: Callable[[], Collection[int]] | None = None,
    ) -> None:
        if max_finished is not None and max_finished < 0:
            raise ValueError(f"max_finished must be >= 0 or None, got {max_finished!r}")
        self.max_finished = max_finished
        """Finished orders kept (None: all). May be changed at any time; applies on the next
        order that finishes."""
        self._pinned = pinned
        self._records: dict[int, _Record] = {}
        self._by_tag: dict[tuple[int, str], int] = {}
        # Ids of orders whose view is terminal, oldest finished first (dicts keep insertion order).
        self._finished: dict[int, None] = {}
        self._tombstones: dict[int, None] = {}

    # -- feeding ------------------------------------------------------------------------------
    def apply_order(self, order: Order) -> OrderChange | None:
        """Merge one snapshot (event or query). Returns the change, or None if nothing moved."""
        rec = self._records.get(order.id)
        if rec is None:
            if order.id in self._tombstones:
                if not order.is_terminal:
                    return None  # a late snapshot of a dropped, finished order: not news
                del self._tombstones[order.id]
            rec = self._records[order.id] = _Record()
        elif order == rec.latest:
            return None  # the same snapshot again (a periodic re-read): merging it is a no-op
        # Ties (same stamp, status and fill: a modify and a read at one virtual instant) go to
        # the later arrival; that is the only case where delivery order can matter.
        if rec.latest is None or _latest_key(order) >= _latest_key(rec.latest):
            rec.latest = order
        if rec.best_status is None or _status_key(order) > _status_key(rec.best_status):
            rec.best_status = order
        if rec.best_fill is None or _fill_key(order) > _fill_key(rec.best_fill):
            rec.best_fill = order
        if order.custom_tag:
            self._by_tag[(order.account_id, order.custom_tag)] = order.id
        return self._recompute(rec)

    def apply_trade(self, trade: Trade) -> tuple[bool, OrderChange | None]:
        """Record one fill, deduplicated by trade id (a trade can become voided, never un-voided).

        Returns whether the trade was new (or newly voided) and the change of the order's view, if
        any; a trade for an order not yet seen is new but changes no view until the order arrives.
        """
        rec = self._records.get(trade.order_id)
        if rec is None:
            if trade.order_id in self._tombstones:
                return False, None  # a late duplicate: the dropped view already counted it
            rec = self._records[trade.order_id] = _Record()
        known = rec.trades.get(trade.id)
        if known is not None and (known.voided or not trade.voided):
            return False, None
        rec.trades[trade.id] = trade
        return True, self._recompute(rec)

    # -- reading ------------------------------------------------------------------------------
    def get(self, order_id: int) -> Order | None:
        """The merged view, or None if no snapshot of the order was seen (trades alone are not)."""
        rec = self._records.get(order_id)
        return rec.view if rec is not None else None

    def by_tag(self, account_id: int, custom_tag: str) -> Order | None:
        order_id = self._by_tag.get((account_id, custom_tag))
        return self.get(order_id) if order_id is not None else None

    def traded_volume(self, order_id: int) -> int:
        """Contracts filled according to trades alone (known even before any order update)."""
        rec = self._records.get(order_id)
        if rec is None:
            return 0
        return sum(t.size for t in rec.trades.values() if not t.voided)

    def filled_volume(self, order_id: int) -> int:
        """Best knowledge of the filled quantity, from order updates and trades together."""
        view = self.get(order_id)
        return view.fill_volume if view is not None else self.traded_volume(order_id)

    def trades(self, order_id: int) -> list[Trade]:
        rec = self._records.get(order_id)
        if rec is None:
            return []
        return sorted(rec.trades.values(), key=lambda t: t.id)

    def orders(self, account_id: int | None = None) -> list[Order]:
        views = (r.view for r in self._records.values() if r.view is not None)
        return [o for o in views if account_id is None or o.account_id == account_id]

    def __len__(self) -> int:
        return sum(1 for r in self._records.values() if r.view is not None)

    # -- composition --------------------------------------------------------------------------
    def _recompute(self, rec: _Record) -> OrderChange | None:
        previous = rec.view
        view = self._compose(rec)
        if view is None or view == previous:
            return None
        rec.view = view
        if view.is_terminal:
            self._finish(view.id)
        if (
            previous is not None
            and replace(previous, update_timestamp=view.update_timestamp) == view
        ):
            return None  # only the stamp moved: keep it, but there is nothing to announce
        return OrderChange(previous, view)

    # -- bounding -----------------------------------------------------------------------------
    def _finish(self, order_id: int) -> None:
        """Note that ``order_id`` finished (again: ``Cancelled -> Filled`` makes it recent)."""
        self._finished.pop(order_id, None)
        self._finished[order_id] = None
        bound = self.max_finished
        # Prune in batches (a tenth of the bound) so the pinned set is asked for rarely.
        if bound is not None and len(self._finished) > bound + max(1, bound // 10):
            self.prune()

    def prune(self) -> int:
        """Drop the oldest finished orders beyond ``max_finished`` (never pinned ones); returns
        how many were dropped."""
        bound = self.max_finished
        if bound is None or len(self._finished) <= bound:
            return 0
        pinned = self._pinned() if self._pinned is not None else ()
        excess = len(self._finished) - bound
        dropped = 0
        for order_id in list(self._finished):
            if dropped >= excess:
                break
            if order_id in pinned:
                continue
            del self._finished[order_id]
            self._drop(order_id)
            dropped += 1
        return dropped

    def _drop(self, order_id: int) -> None:
        rec = self._records.pop(order_id, None)
        view = rec.view if rec is not None else None
        if view is not None and view.custom_tag:
            key = (view.account_id, view.custom_tag)
            if self._by_tag.get(key) == order_id:
                del self._by_tag[key]
        self._tombstones[order_id] = None
        bound = max(self.max_finished or 0, _MIN_TOMBSTONES)
        while len(self._tombstones) > bound:
            del self._tombstones[next(iter(self._tombstones))]

    @property
    def finished_count(self) -> int:
        """Finished orders currently kept."""
        return len(self._finished)

    @staticmethod
    def _compose(rec: _Record) -> Order | None:
        if rec.latest is None or rec.best_status is None or rec.best_fill is None:
            return None
        live = [t for t in rec.trades.values() if not t.voided]
        traded = sum(t.size for t in live)
        fill_volume = rec.best_fill.fill_volume
        filled_price = rec.best_fill.filled_price
        if traded > fill_volume:
            # Trades know more than any order update seen so far: average price from the trades.
            fill_volume = traded
            filled_price = sum((t.price * t.size for t in live), Decimal(0)) / traded
        status = rec.best_status.status
        if rec.latest.size > 0 and fill_volume >= rec.latest.size:
            status = OrderStatus.FILLED
        stamps = [
            o.update_timestamp
            for o in (rec.latest, rec.best_status, rec.best_fill)
            if o.update_timestamp is not None
        ]
        return replace(
            rec.latest,
            status=status,
            fill_volume=fill_volume,
            filled_price=filled_price,
            update_timestamp=max(stamps) if stamps else None,
        )


__all__ = ["DEFAULT_MAX_FINISHED", "OrderChange", "OrderTracker"]
