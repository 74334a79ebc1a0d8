"""Reading a bracket saga's state against broker truth, for :class:`BracketFacts` (no I/O).

The saga's records (:mod:`~orderguard.orders.bracket.state`) say which orders are ours; the
tracker says what the broker did with them (merged monotonically from events and REST). These
functions combine the two, each from explicit inputs, so the saga's ``facts()`` is only their
assembly. A few fold what the tracker proved back into the records (a leg or an entry that the
tracker shows ended): they say so in their docstrings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from orderguard.clock import Clock
from orderguard.models import Order, OrderSide, OrderStatus
from orderguard.orders.bracket.plan import EntryPhase, LegFacts, LegKind, LegPhase
from orderguard.orders.bracket.state import EntryState, Slot
from orderguard.orders.feed.tracking import OrderTracker
from orderguard.recovery.legs import FLATTEN, has_role
from orderguard.recovery.manager import RecoveryOperation


def filled(tracker: OrderTracker, order_id: int | None) -> int:
    """Contracts filled on one order of ours (0 for an order not known yet)."""
    return 0 if order_id is None else tracker.filled_volume(order_id)


def working(tracker: OrderTracker, order_id: int) -> bool:
    """Not known to be final: an order never seen counts as working."""
    view = tracker.get(order_id)
    return view is None or not view.is_terminal


def owned_quantity(
    tracker: OrderTracker,
    side: OrderSide,
    entry_order_id: int | None,
    exit_ids: Iterable[int],
    flattened: int,
    closed_externally: int,
) -> int:
    """Entry-direction contracts a bracket owns (broker truth as merged by the tracker).

    ``flattened`` is the account-signed quantity its flatten orders (the protection
    executor's) filled, see :func:`flattened_quantity`."""
    sign = side.sign
    exit_sign = side.opposite.sign
    total = sign * filled(tracker, entry_order_id)
    total += sum(exit_sign * filled(tracker, oid) for oid in exit_ids)
    total += flattened
    # What position-close operations flattened on our behalf (or we found closed).
    total += closed_externally
    return sign * total


def flattened_quantity(op: RecoveryOperation, tracker: OrderTracker) -> int:
    """Account-signed quantity the operation's flatten legs filled (by id, else by tag)."""
    total = 0
    for ref in op.orders.values():
        if not has_role(ref.leg, FLATTEN):
            continue
        view = tracker.get(ref.order_id) if ref.order_id is not None else None
        if view is None:
            view = tracker.by_tag(ref.account_id, ref.custom_tag)
        qty = ref.filled_size if view is None else max(ref.filled_size, view.fill_volume)
        if view is not None:
            qty = max(qty, tracker.filled_volume(view.id))
        total += OrderSide(ref.side).sign * qty
    return total


def leg_facts(
    slot: Slot, tracker: OrderTracker, now: float, retry_delay: float
) -> tuple[LegFacts, bool]:
    """One exit leg's facts, and whether a REST re-read is due before acting on it.

    A live leg the tracker shows final is marked DONE in ``slot`` (and, when it ended without
    our cancel, given a retry delay)."""
    phase = slot.phase
    size = slot.size
    active = True
    refresh = False
    if phase is LegPhase.LIVE and slot.order_id is not None:
        view = tracker.get(slot.order_id)
        if view is not None:
            if view.is_terminal:
                slot.move(LegPhase.DONE)
                phase = slot.phase
                if view.status is not OrderStatus.FILLED and not slot.cancelling:
                    # Ended without our cancel: most likely its sibling filled (a native
                    # bracket's server-side OCO) and that fill's events are late or lost.
                    # Read before placing a replacement, or it closes the same contracts.
                    slot.retry_at = now + retry_delay
                    refresh = True
            if slot.native:
                # The server sizes native legs; a Suspended child protects nothing yet.
                size = view.size
                active = view.status is not OrderStatus.SUSPENDED
        elif slot.native:
            active = False
    facts = LegFacts(
        kind=slot.kind,
        phase=phase,
        order_id=slot.order_id,
        size=size,
        filled=filled(tracker, slot.order_id),
        native=slot.native,
        active=active,
        due=now >= slot.retry_at,
        attempts=slot.attempts,
        error=slot.error,
    )
    return facts, refresh


def entry_phase(entry: EntryState, tracker: OrderTracker) -> EntryPhase:
    """The entry's phase; a working entry the tracker shows final is marked DONE in ``entry``."""
    if entry.order_id is not None and entry.phase is EntryPhase.WORKING:
        view = tracker.get(entry.order_id)
        if view is not None and view.is_terminal:
            entry.phase = EntryPhase.DONE
    return entry.phase


def strays(
    tracker: OrderTracker, slots: Iterable[Slot], exit_ids: Iterable[int]
) -> tuple[int, ...]:
    """Working orders of ours that no slot holds (see ``BracketFacts.strays``)."""
    held = {slot.order_id for slot in slots}
    out: list[int] = []
    for oid in exit_ids:
        if oid in held or oid in out:
            continue
        if working(tracker, oid):
            out.append(oid)
    return tuple(out)


def children_unknown(
    *, native: bool, searched: bool, entry_order_id: int | None, slots: Iterable[Slot]
) -> bool:
    """Native mode: the entry exists, its children were not looked up, and no slot holds any."""
    return (
        native
        and not searched
        and entry_order_id is not None
        and any(s.order_id is None and s.ref is None and s.phase is LegPhase.NONE for s in slots)
    )


def mirror_fills(
    op: RecoveryOperation,
    tracker: OrderTracker,
    entry: EntryState,
    slots: Mapping[LegKind, Slot],
) -> None:
    """Mirror fill volumes into the operation's legs in memory (journaled at the end), so
    ``net_filled`` is right for others reading it (the position watcher subtracts it)."""
    known: dict[int, int] = {}  # id(ref) -> order id, for refs whose resolution is pending
    if entry.ref is not None and entry.order_id is not None:
        known[id(entry.ref)] = entry.order_id
    for slot in slots.values():
        if slot.ref is not None and slot.order_id is not None:
            known[id(slot.ref)] = slot.order_id
    for ref in op.orders.values():
        oid = ref.order_id if ref.order_id is not None else known.get(id(ref))
        if oid is not None:
            ref.filled_size = max(ref.filled_size, filled(tracker, oid))


class FillClock:
    """When an exposure opened by an entry fill began, on the saga's monotonic scale.

    Keeps what it saw of the entry at each look: the fill volume, the order's update time, and
    when that look was."""

    __slots__ = ("_born", "_seen")

    def __init__(self, born: float) -> None:
        self._born = born  # no fill of the saga's is measured from before it existed
        self._seen: tuple[int, datetime | None, float] = (0, None, float("-inf"))

    def started(self, entry: Order | None, now: float, clock: Clock) -> float | None:
        """The exchange time of an entry fill not seen at the last look, else None (from now).

        A fill we saw before was covered until something else changed (a stop that ended): that
        exposure starts now, not at the fill. Called on every look (it keeps the bookkeeping).
        """
        if entry is None or entry.update_timestamp is None:
            return None
        volume, stamp, last_look = self._seen
        self._seen = (entry.fill_volume, entry.update_timestamp, now)
        if entry.fill_volume <= volume:
            return None
        lag = (clock.now() - entry.update_timestamp).total_seconds()
        started = max(now - max(0.0, lag), self._born)
        # A trade folded in before its order update grows the volume under the old timestamp:
        # then the timestamp says nothing about this fill, which we had not seen at our last
        # look, so it happened after that look. (A new timestamp is the exchange's word.)
        if entry.update_timestamp == stamp:
            started = max(started, last_look)
        return started


__all__ = [
    "FillClock",
    "children_unknown",
    "entry_phase",
    "filled",
    "flattened_quantity",
    "leg_facts",
    "mirror_fills",
    "owned_quantity",
    "strays",
    "working",
]
