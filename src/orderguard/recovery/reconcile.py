"""Start-up reconciliation planning: pure functions from journal + broker truth to a plan.

No I/O here. :mod:`orderguard.recovery.startup` reads the broker once per account (all orders in
a window covering the oldest unfinished operation, and the positions), hands the answers to
:func:`plan_recovery`, then applies the plan and runs the resumers.

What the plan says per operation:

* for every leg, the broker's order for it (found by customTag, the idempotency key, else by the
  order id already recorded) or ``None`` — and because the search covered every status over the
  whole window *and succeeded*, ``None`` is evidence: the request never executed;
* what the operation owns afterwards (signed, from the broker's fill volumes);
* which legs are still working, and whether the pivot (an entry fill) has passed;
* how much of its ownership may be flattened: the account's actual net position is allocated to
  the operations oldest first, so recovery never flattens more than the account holds or on the
  wrong side (someone may have closed the position by hand while we were down).

Over 500 lines: the pure planners of start-up recovery (plan_recovery) and of the reconciler's
passes (plan_pass) read the same facts - legs found by tag, ownership from fill volumes, the holders
sharing a position - and are kept beside them; no I/O anywhere.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from orderguard.models import STOP_TYPES, Order, OrderType, Position
from orderguard.recovery.legs import leg_tag
from orderguard.recovery.manager import OrderReference, RecoveryOperation, RefStatus
from orderguard.recovery.operations import OperationState, OperationType

_UNSETTLED = frozenset({RefStatus.UNKNOWN, RefStatus.INTENDED})
_ENTRY_EXCLUDED_PREFIXES = ("stop", "target", "sl", "tp", "take", "exit", "protect", "flatten")


HOLDER_TYPES = frozenset({OperationType.BRACKET_ORDER, OperationType.OCO_PAIR})
"""Operations whose legs' fills are exposure they own (the others place or remove orders on
exposure that is not theirs: a stop added to a position, a close, a cancel, a modification)."""


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """One account's broker truth, read once: all orders in the window and the positions."""

    account_id: int
    orders: tuple[Order, ...]
    positions: tuple[Position, ...]
    since: datetime | None = None
    """Start of the order search's window, when known: an operation started after it has all
    its orders in ``orders`` (as of the read), so one missing there had not executed yet."""

    def net(self, contract_id: str) -> int:
        for position in self.positions:
            if position.contract_id == contract_id:
                return position.signed_size
        return 0


class LegAction(StrEnum):
    RESOLVE = "resolve"  # an unknown or intended leg: record what the broker says (or absence)
    REFRESH = "refresh"  # a known leg: fold the broker's newer state in
    KEEP = "keep"  # nothing at the broker to learn from
    REBIND = "rebind"  # the recorded order id is another intent's order: the tag decides


@dataclass(frozen=True, slots=True)
class LegFinding:
    leg: str
    action: LegAction
    order: Order | None

    @property
    def working(self) -> bool:
        return self.order is not None and self.order.is_working


@dataclass(frozen=True, slots=True)
class OperationPlan:
    operation_id: str
    findings: tuple[LegFinding, ...]
    owned: int
    """Signed quantity the operation's fills added to the account (after folding)."""
    flattenable: int
    """Signed quantity recovery may flatten: ``owned`` clamped by the account's position."""
    pivot_passed: bool
    """An entry leg has filled: roll forward (protect) rather than back, where a resumer can."""
    contract_id: str | None
    account_id: int | None
    children: tuple[Order, ...] = ()
    """Working native bracket children of the operation's orders. They carry no tag and may be
    missing from the journal (a crash before they were recorded), yet they are its exits; the
    fills of those that are not legs count in ``owned``. Also the working orders whose tag
    names the operation though no leg records it (sent while the journal was down)."""
    adoptable: tuple[Order, ...] = ()
    """Native children that are not legs and are working or have filled: recovery journals
    them as legs of the operation (see ``startup._adopt_children``)."""

    @property
    def live_legs(self) -> tuple[str, ...]:
        return tuple(f.leg for f in self.findings if f.working)

    def finding(self, leg: str) -> LegFinding | None:
        return next((f for f in self.findings if f.leg == leg), None)


def fills_of(orders: Iterable[Order]) -> dict[int, int]:
    """Order id -> fill volume of every order that has filled (the part of an order search a
    position depends on)."""
    return {o.id: o.fill_volume for o in orders if o.fill_volume}


def consistent(before: Iterable[Order], after: Iterable[Order]) -> bool:
    """Whether no fill happened between two order searches of one account.

    Orders and positions come from two queries, and a fill landing between them makes the pair
    disagree: ownership counted from the orders no longer adds up to the position, so the
    allocation hands the wrong operation the shortfall (a stop that filled in the gap still
    "owns" its bracket's quantity, and a later operation is told the account holds nothing of
    its own). Reading the orders on both sides of the position read and comparing the fills
    proves the position read saw exactly the fills the orders show.
    """
    return fills_of(before) == fills_of(after)


def accounts_of(ops: Iterable[RecoveryOperation]) -> list[int]:
    """Every account an operation or one of its legs names, sorted."""
    found: set[int] = set()
    for op in ops:
        if op.account_id is not None:
            found.add(op.account_id)
        found.update(ref.account_id for ref in op.orders.values())
    return sorted(found)


def search_windows(
    ops: Iterable[RecoveryOperation], margin: timedelta = timedelta(minutes=5)
) -> dict[int, datetime]:
    """Per account, the start of one ``Order/search`` window covering its oldest operation.

    The margin absorbs clock skew between us and the gateway (orders are stamped by the broker).
    """
    starts: dict[int, datetime] = {}
    for op in ops:
        accounts = {ref.account_id for ref in op.orders.values()}
        if op.account_id is not None:
            accounts.add(op.account_id)
        for account in accounts:
            start = op.started_at - margin
            if account not in starts or start < starts[account]:
                starts[account] = start
    return starts


def _locate(
    ref: OrderReference, by_tag: Mapping[tuple[int, str], Order], by_id: Mapping[int, Order]
) -> Order | None:
    found: Order | None = by_tag.get((ref.account_id, ref.lookup_tag))
    if found is None and ref.order_id is not None:
        found = by_id.get(ref.order_id)
        if found is not None and found.custom_tag not in (None, ref.custom_tag, ref.order_tag):
            return None  # that id carries another intent's tag: it is not this leg's order
    return found


def _misrecorded(ref: OrderReference, by_id: Mapping[int, Order]) -> bool:
    """The leg's recorded order id is an order carrying another intent's tag."""
    if ref.order_id is None:
        return False
    recorded = by_id.get(ref.order_id)
    return recorded is not None and recorded.custom_tag not in (
        None,
        ref.custom_tag,
        ref.order_tag,
    )


def is_entry_leg(ref: OrderReference) -> bool:
    """Legs that open exposure (the pivot is their fill); exits and flattens are not."""
    return not ref.leg.lower().startswith(_ENTRY_EXCLUDED_PREFIXES)


def _finding(ref: OrderReference, order: Order | None, misrecorded: bool = False) -> LegFinding:
    if misrecorded:
        return LegFinding(ref.leg, LegAction.REBIND, order)
    if ref.status in _UNSETTLED:
        return LegFinding(ref.leg, LegAction.RESOLVE, order)
    if order is None:
        return LegFinding(ref.leg, LegAction.KEEP, None)
    return LegFinding(ref.leg, LegAction.REFRESH, order)


def plan_recovery(
    ops: Sequence[RecoveryOperation],
    snapshots: Mapping[int, AccountSnapshot],
    *,
    holders: Sequence[RecoveryOperation] = (),
) -> list[OperationPlan]:
    """One plan per operation, in the order given (callers pass oldest first).

    ``holders`` are further operations that may own part of the same positions (finished
    ones whose exits still protect what they own): the account's position is allocated among
    all of them (:func:`allocate`), so a plan never counts another operation's share as its
    own."""
    by_tag: dict[tuple[int, str], Order] = {}
    by_id: dict[int, Order] = {}
    for snap in snapshots.values():
        for known in snap.orders:
            by_id[known.id] = known
            if known.custom_tag:
                by_tag[(known.account_id, known.custom_tag)] = known
    positions: dict[tuple[int, str], int] = defaultdict(int)
    for snap in snapshots.values():
        for position in snap.positions:
            positions[(snap.account_id, position.contract_id)] = position.signed_size
    children_of: dict[int, list[Order]] = defaultdict(list)
    tagged_for: dict[str, list[Order]] = defaultdict(list)
    for known in by_id.values():
        if known.parent_order_id is not None:
            children_of[known.parent_order_id].append(known)
        named = None if known.custom_tag is None else leg_tag(known.custom_tag)
        if named is not None:
            tagged_for[named[1]].append(known)
    planned = list(ops)
    ids = {op.operation_id for op in planned}
    everyone = sorted(
        [*planned, *(h for h in holders if h.operation_id not in ids)],
        key=lambda o: (o.started_at, o.operation_id),
    )
    drafts: dict[str, tuple[list[LegFinding], list[Order], dict[tuple[int, str], int], bool,
                            list[Order]]] = {}  # fmt: skip
    for op in everyone:
        findings: list[LegFinding] = []
        children: list[Order] = []
        owned: dict[tuple[int, str], int] = defaultdict(int)
        pivot = False
        found = {leg: _locate(ref, by_tag, by_id) for leg, ref in op.orders.items()}
        legs = {o.id for o in found.values() if o is not None}
        spare = [
            child
            for parent in sorted(legs)
            for child in children_of.get(parent, ())
            if child.id not in legs
        ]
        for leg, ref in op.orders.items():
            order = found[leg]
            if order is None:
                # A native bracket exit carries no tag: a crash before its id was recorded
                # leaves the leg unfound by tag, yet the exchange made it from our entry.
                order = _claim_child(ref, spare)
            misrecorded = _misrecorded(ref, by_id)
            findings.append(_finding(ref, order, misrecorded))
            # The snapshot's fill when it has the order: it is consistent with the positions
            # read beside it, while the record may already hold fills that came in later (a
            # live process mirrors events into it) and would not add up with that position.
            filled = ref.filled_size if order is None else order.fill_volume
            if order is None and _in_window(op, snapshots, ref.account_id):
                filled = 0  # not executed as of the read (its fill, if any, came later)
            if misrecorded:
                filled = order.fill_volume if order is not None else 0  # the record's is not ours
            elif order is None and ref.status in _UNSETTLED:
                filled = 0  # never executed: any fill the journal guessed is not real
            owned[(ref.account_id, ref.contract_id)] += filled if ref.side == 0 else -filled
            pivot = pivot or (filled > 0 and is_entry_leg(ref))
        # Legs whose tag names the operation though no record holds it: sent while the
        # journal could not record the intent (protective and flattening sends still go out),
        # and the process died. Their fills closed part of what it owns; a working one is an
        # exit of its like a native child (kept while it protects, cancelled after).
        recorded = {ref.custom_tag for ref in op.orders.values()}
        for stray in tagged_for.get(op.operation_id, ()):
            if stray.custom_tag in recorded or stray.id in legs:
                continue
            if stray.is_working:
                children.append(stray)
            key = (stray.account_id, stray.contract_id)
            owned[key] += stray.fill_volume if stray.side == 0 else -stray.fill_volume
        adoptable: list[Order] = []
        for child in spare:
            if child.is_working:
                children.append(child)
            if child.is_working or child.fill_volume:
                adoptable.append(child)
            # A native exit no leg accounts for that filled (perhaps while we were down)
            # closed part of what the operation owned.
            key = (child.account_id, child.contract_id)
            signed = child.fill_volume if child.side == 0 else -child.fill_volume
            owned[key] += signed
        if op.closed_externally:
            # What position-close operations (or the protection executor) found closed on the
            # operation's behalf: no longer its own, so never flattened again.
            first_ref = next(iter(op.orders.values()), None)
            account = (
                op.account_id
                if op.account_id is not None
                else (first_ref.account_id if first_ref is not None else 0)
            )
            contract = op.contract_id or (first_ref.contract_id if first_ref is not None else "")
            owned[(account, contract)] += op.closed_externally
        drafts[op.operation_id] = (findings, children, owned, pivot, adoptable)
    # The account's net position allocated among everyone who owns part of it, per contract.
    shares: dict[str, int] = defaultdict(int)
    keys = {key for d in drafts.values() for key in d[2]}
    for key in sorted(keys):
        # Only holders share a position: a close's own fill is not exposure it owns (what it
        # closed is credited to the operation it closed for, or found short later).
        sharing = [
            op.operation_id
            for op in everyone
            if key in drafts[op.operation_id][2] and op.operation_type in HOLDER_TYPES
        ]
        owned_here = [drafts[op_id][2][key] for op_id in sharing]
        for op_id, share in zip(sharing, allocate(owned_here, positions.get(key, 0)), strict=True):
            shares[op_id] += share
    plans: list[OperationPlan] = []
    for op in planned:
        findings, children, owned, pivot, adoptable = drafts[op.operation_id]
        first = next(iter(op.orders.values()), None)
        plans.append(
            OperationPlan(
                operation_id=op.operation_id,
                findings=tuple(findings),
                owned=sum(owned.values()),
                flattenable=shares[op.operation_id],
                pivot_passed=pivot,
                contract_id=op.contract_id or (first.contract_id if first else None),
                account_id=op.account_id
                if op.account_id is not None
                else (first.account_id if first else None),
                children=tuple(sorted(children, key=lambda o: o.id)),
                adoptable=tuple(sorted(adoptable, key=lambda o: o.id)),
            )
        )
    return plans


def _in_window(
    op: RecoveryOperation, snapshots: Mapping[int, AccountSnapshot], account_id: int
) -> bool:
    snap = snapshots.get(account_id)
    return snap is not None and snap.since is not None and op.started_at >= snap.since


def _claim_child(ref: OrderReference, spare: list[Order]) -> Order | None:
    """Take from ``spare`` the native child that is this exit leg (same side and kind)."""
    name = ref.leg.lower()
    if name.startswith(("stop", "sl")):
        wanted = STOP_TYPES
    elif name.startswith(("target", "tp", "take")):
        wanted = frozenset({OrderType.LIMIT})
    else:
        return None
    for child in spare:
        if int(child.side) == ref.side and child.type in wanted:
            spare.remove(child)
            return child
    return None


def allocate(owned: Sequence[int], position: int) -> list[int]:
    """What each holder (oldest first) still owns of the account's ``position`` on a contract.

    The holders' signed quantities should add up to the position; what they claim beyond it
    (``sum(owned) - position``) was changed from outside — a close from the trading platform,
    say — and is taken from the newest holders first, in the direction it points. Holdings on
    both sides net out (one operation's over-close offsets another's long), so an exact total
    changes nothing. A position larger than the holdings (manual exposure) is nobody's."""
    shares = list(owned)
    excess = sum(owned) - position
    for i in reversed(range(len(shares))):
        if excess == 0:
            break
        held = shares[i]
        if held == 0 or (held > 0) != (excess > 0):
            continue
        take = min(abs(held), abs(excess)) * (1 if excess > 0 else -1)
        shares[i] -= take
        excess -= take
    return shares


# ------------------------------------------------------------------------------------------------
# continuous reconciliation (orders/feed/reconciler.py does the I/O)
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PassPlan:
    """What one pass of the continuous reconciler reads and does.

    ``accounts`` empty: read nothing. Otherwise one ``Order/search`` per account from
    ``window_start`` (and one ``Position/search`` per account when ``read_positions``), whatever
    the number of suspects: queries stay constant as operations grow.
    """

    accounts: tuple[int, ...] = ()
    window_start: datetime | None = None
    read_positions: bool = False
    retry_rollback: tuple[str, ...] = ()
    """Operations left ``rolling_back`` (a rollback could not confirm a safe state): roll back
    again."""
    resume: tuple[str, ...] = ()
    """Orphaned operations nobody drives (left unfinished by start-up recovery, or left
    ``partially_completed`` with an unknown leg): resume them like start-up recovery does."""
    unguarded: tuple[str, ...] = ()
    """Brackets the caller drives through the seed's calls, not updated for longer than the
    protection deadline: if broker truth shows them owning exposure their stops do not cover,
    they are rolled back (no filled position is left without protection)."""
    reasons: tuple[str, ...] = ()


def plan_pass(
    *,
    now: datetime,
    threshold: timedelta,
    last_read: datetime | None,
    operations: Iterable[RecoveryOperation],
    driven: frozenset[str],
    leftover: frozenset[str],
    unresolved: Iterable[tuple[int, datetime]],
    working: Iterable[Order],
    default_account: int | None,
    full_resync: bool,
    positions_due: bool,
    margin: timedelta = timedelta(minutes=5),
    grace: timedelta = timedelta(seconds=10),
    protection_deadline: timedelta | None = None,
) -> PassPlan:
    """Decide one pass (pure: see :class:`PassPlan`).

    A suspect is anything whose truth we may have missed, older than ``threshold``: an unknown
    placement outcome (``unresolved``: account and send time) or an unfinished operation not
    updated since (its legs' fill events may be lost; an operation started with its own
    ``retry_delay`` is due on its own schedule instead, ``RecoveryOperation.rerun_spacing``).
    Suspects are re-read at most once per ``threshold`` (``last_read``), so a resting bracket
    entry costs one query per threshold, not one per pass. ``driven`` operations belong to a
    running saga or rollback and are only re-read, never acted on. An operation with a leg
    still unknown or intended is acted on only after ``grace`` too (a request may still execute
    that long after it was sent; before, its absence from the broker is no evidence). A plain
    working order is no suspect of its own (that would spend the rate budget on every resting
    order); a full resync (``full_resync``: after a reconnect or a silence) re-reads it, and
    the periodic position check catches what its fill changed. A bracket nobody drives (the
    caller's, through the seed's calls) not updated for ``protection_deadline`` is checked
    for unprotected exposure (``unguarded``).
    """

    def stale(at: datetime) -> bool:
        return now - at >= threshold

    read_due = full_resync or last_read is None or stale(last_read)
    accounts: set[int] = set()
    starts: list[datetime] = []
    reasons: list[str] = []
    rollback: list[str] = []
    resume: list[str] = []
    unguarded: list[str] = []
    for account, sent_at in unresolved:
        if stale(sent_at):
            accounts.add(account)
            starts.append(sent_at)
            reasons.append("unknown outcome")
    if full_resync:
        for order in working:
            accounts.add(order.account_id)
            starts.append(order.creation_timestamp)
    needs_positions = False
    for op in operations:
        if op.state.is_terminal:
            continue
        touched = op.updated_at or op.started_at
        op_accounts = set(accounts_of((op,)))
        # An operation started with its own retry_delay is re-run on its own schedule (see
        # RecoveryOperation.rerun_spacing); the others once per threshold, as always.
        spacing = timedelta(seconds=op.rerun_spacing(threshold.total_seconds()))
        due = now - touched >= spacing
        if not due and not full_resync:
            continue
        accounts.update(op_accounts)
        starts.append(op.started_at)
        reasons.append(f"operation {op.state.value}")
        if op.operation_id in driven or not due:
            continue
        if any(r.status in _UNSETTLED for r in op.orders.values()) and now - touched < grace:
            continue
        if op.state is OperationState.ROLLING_BACK:
            rollback.append(op.operation_id)
            needs_positions = True
        elif op.operation_id in leftover or (
            op.state is OperationState.PARTIALLY_COMPLETED
            and any(r.status in _UNSETTLED for r in op.orders.values())
        ):
            resume.append(op.operation_id)
            needs_positions = True
        elif (
            protection_deadline is not None
            and op.operation_type is OperationType.BRACKET_ORDER
            and now - touched >= protection_deadline
            and any(r.placed_successfully and is_entry_leg(r) for r in op.orders.values())
        ):
            unguarded.append(op.operation_id)
            needs_positions = True
    if full_resync or positions_due:
        if default_account is not None:
            accounts.add(default_account)
        reasons.append("full resync" if full_resync else "position check")
    if not accounts or not (read_due or positions_due or rollback or resume or unguarded):
        return PassPlan()
    window = min(starts, default=now) - margin
    return PassPlan(
        accounts=tuple(sorted(accounts)),
        window_start=window,
        read_positions=full_resync or positions_due or needs_positions,
        retry_rollback=tuple(rollback),
        resume=tuple(resume),
        unguarded=tuple(unguarded),
        reasons=tuple(dict.fromkeys(reasons)),
    )


__all__ = [
    "HOLDER_TYPES",
    "AccountSnapshot",
    "LegAction",
    "LegFinding",
    "OperationPlan",
    "PassPlan",
    "accounts_of",
    "allocate",
    "consistent",
    "fills_of",
    "is_entry_leg",
    "plan_pass",
    "plan_recovery",
    "search_windows",
]
