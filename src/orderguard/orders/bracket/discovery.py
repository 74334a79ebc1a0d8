"""What broker truth reveals to a bracket saga, taken into its records and its journal.

A saga learns of its orders from events and REST reads (the tracker): an entry found by its tag,
legs adopted after an unknown outcome, a native bracket's server-side children. These functions
take that knowledge into the saga's records — after a restart, the working legs' sizes as the
broker has them — and journal what was discovered, from explicit inputs (the saga's records,
the tracker, the recovery manager).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from decimal import Decimal

from orderguard.models import Order
from orderguard.orders.bracket.plan import LegKind, LegPhase
from orderguard.orders.bracket.state import BracketRequest, EntryState, Slot
from orderguard.orders.feed.tracking import OrderTracker
from orderguard.recovery.legs import numbered
from orderguard.recovery.manager import OperationRecoveryManager, RecoveryOperation


def is_ours(
    order: Order,
    *,
    entry_order_id: int | None,
    exit_ids: Collection[int],
    tags: Collection[str],
    native: bool,
) -> bool:
    """An order a REST read returned belongs to this bracket (by id, tag or native parent)."""
    return (
        order.id in exit_ids
        or order.id == entry_order_id
        or (order.custom_tag is not None and order.custom_tag in tags)
        or (
            native and order.parent_order_id is not None and order.parent_order_id == entry_order_id
        )
    )


def confirm_restored_legs(
    slots: Iterable[Slot], tracker: OrderTracker, *, native: bool, entry_order_id: int | None
) -> None:
    """Take the working legs of a restarted saga as the broker has them.

    The journal's leg records say what was *placed*: a leg resized before the crash, or an
    intent adopted after one, records another size (a native child's once recorded 0), and
    ``native_legs`` may not have been saved. Taken from the journal, a working stop that
    covers the position read as missing cover: the saga "resized" it to the size it had and,
    if that modify was slow, went flat at the protection deadline under protection that was
    there all along — leaving the exits on a flat contract (I2). The orders just read are
    broker truth: each working leg covers what its order says, and an order the exchange
    made from our entry is a native child (the server sizes it)."""
    for slot in slots:
        if slot.phase is not LegPhase.LIVE or slot.order_id is None:
            continue
        view = tracker.get(slot.order_id)
        if view is None or view.is_terminal:
            continue
        slot.size = view.size
        if native and view.parent_order_id is not None and view.parent_order_id == entry_order_id:
            slot.native = True


async def journal_discoveries(
    rec: OperationRecoveryManager,
    op: RecoveryOperation,
    req: BracketRequest,
    tracker: OrderTracker,
    entry: EntryState,
    slots: Mapping[LegKind, Slot],
) -> None:
    """Journal what events revealed: a resolved entry, adopted legs, native children."""
    if not entry.journaled and entry.ref is not None and entry.order_id is not None:
        entry.journaled = True
        view = tracker.get(entry.order_id)
        if view is not None:
            await rec.record_resolution(op, entry.ref, view)
    for slot in slots.values():
        if slot.order_id is None:
            continue
        view = tracker.get(slot.order_id)
        if slot.ref is None and slot.native:
            # A server-created child: journal it as a leg of the operation so recovery and
            # cleanup know it (its tag is ours; the broker never saw it).
            slot.ref = await rec.add_order_to_operation(
                op,
                req.contract_id,
                req.side.opposite,
                slot.size,
                "stop" if slot.kind is LegKind.STOP else "limit",
                _working_price(view, slot.kind, req),
                leg=numbered(slot.kind.value, slot.count),
                account_id=req.account_id,
                request={"native_child_of": entry.order_id},
            )
            slot.count += 1
            op.extra.setdefault("native_legs", []).append(slot.ref.leg)
            slot.ref.order_id = slot.order_id
            slot.ref.placed_successfully = True
            if view is not None:
                await rec.record_order_state(op, slot.ref, view)
        elif slot.ref is not None and slot.ref.order_id is None and view is not None:
            await rec.record_resolution(op, slot.ref, view)


def _working_price(view: Order | None, kind: LegKind, req: BracketRequest) -> Decimal:
    """A native child's own price (the exchange sets it from the fill), else the requested."""
    is_stop = kind is LegKind.STOP
    price = None if view is None else (view.stop_price if is_stop else view.limit_price)
    if price is not None:
        return price
    return req.stop_price if is_stop else req.target_price


__all__ = ["confirm_restored_legs", "is_ours", "journal_discoveries"]
