"""The safety invariants I1–I5 checked from broker truth, and the I6 exposure measurement.

Everything here is pure: the inputs are the broker's orders and positions (what the exchange says,
never what our bookkeeping believes) and the journal's operations, which say only *who owns which
order* (by customTag). Quantities always come from the broker: an operation owns
``side * fill_volume`` of each order carrying one of its tags.

The checks (FAILURES.md):

* **I1** every non-zero net position is covered by working reduce-side stop orders of exactly its
  size, except while a coverage mismatch is younger than the protection window. With
  ``strict_ownership`` (one trader owns the whole account, as in a chaos run) the net position must
  also equal what the operations own.
* **I2** no working exit order (a protective leg, or a native bracket child) on a flat contract or
  on the side that would increase the position, and reduce-side targets never exceed the position.
* **I3** no two orders carry the same customTag; no intent was placed twice (a leg's order id
  points at an order with another tag, or one placement call put several tags on the wire).
* **I4** once an OCO leg filled its sibling is not working; both filled only with the excess
  flattened or an incident recorded.
* **I5** every order of every finished operation has a known state that the broker does not
  contradict (stale-but-true records, e.g. a completed bracket whose stop filled later, are fine).
* **I6** :class:`ExposureTracker` measures unprotected episodes (seconds per episode, total, max).

Used by the chaos runner at quiet points and by tests (``check_all``).

Over 500 lines: the invariant checks and the exposure tracker read the same index of broker truth
(_Index, Coverage); each check is a small pure function.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from orderguard.models import STOP_TYPES, Order, OrderStatus, OrderType, Position
from orderguard.recovery.manager import OrderReference, RecoveryOperation, RefStatus

Key = tuple[int, str]
"""(account id, contract id)."""

# Orders that protect now. Suspended bracket children do not: they wait for their entry's fill.
_LIVE = frozenset({OrderStatus.OPEN, OrderStatus.PENDING, OrderStatus.PENDING_CANCELLATION})
LIVE_STATUSES = _LIVE
_EXIT_LEG_PREFIXES = ("stop", "target", "sl", "tp", "take", "exit", "protect")
_FLATTEN_LEG_PREFIXES = ("flatten", "close", "overfill")


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken invariant: its id (``"I1"`` … ``"I5"``) and what exactly is wrong."""

    invariant: str
    detail: str
    account_id: int | None = None
    contract_id: str | None = None
    operation_id: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "invariant": self.invariant,
            "detail": self.detail,
            "account_id": self.account_id,
            "contract_id": self.contract_id,
            "operation_id": self.operation_id,
        }


@dataclass(frozen=True, slots=True)
class BrokerTruth:
    """What the broker says: every order (any status) and the open positions."""

    orders: tuple[Order, ...]
    positions: tuple[Position, ...]

    def net(self) -> dict[Key, int]:
        return {(p.account_id, p.contract_id): p.signed_size for p in self.positions if p.size}

    def by_tag(self) -> dict[tuple[int, str], Order]:
        return {(o.account_id, o.custom_tag): o for o in self.orders if o.custom_tag}

    def by_id(self) -> dict[int, Order]:
        return {o.id: o for o in self.orders}


class LegRole(StrEnum):
    ENTRY = "entry"
    EXIT = "exit"  # a stop or target protecting a position
    FLATTEN = "flatten"  # a closing order sent to remove exposure


def leg_role(op: RecoveryOperation, ref: OrderReference) -> LegRole:
    """What a leg is for: the journal's position tracking first, the leg's name as a fallback."""
    tracked = op.position_tracking.get(ref.contract_id, ())
    if f"protective:{ref.leg}" in tracked:
        return LegRole.EXIT
    name = ref.leg.lower()
    if name.startswith(_FLATTEN_LEG_PREFIXES):
        return LegRole.FLATTEN
    if name.startswith(_EXIT_LEG_PREFIXES):
        return LegRole.EXIT
    return LegRole.ENTRY


@dataclass(slots=True)
class _Index:
    """Broker truth indexed for the checks, and which order each journal leg points at."""

    truth: BrokerTruth
    by_tag: dict[tuple[int, str], Order] = field(init=False)
    by_id: dict[int, Order] = field(init=False)

    def __post_init__(self) -> None:
        self.by_tag = self.truth.by_tag()
        self.by_id = self.truth.by_id()

    def locate(self, ref: OrderReference) -> Order | None:
        """The broker's order for a leg: by its tag (the idempotency key), else by its id."""
        found = self.by_tag.get((ref.account_id, ref.custom_tag))
        if found is None and ref.order_id is not None:
            found = self.by_id.get(ref.order_id)
        return found


def _legs(ops: Iterable[RecoveryOperation]) -> Iterable[tuple[RecoveryOperation, OrderReference]]:
    for op in ops:
        for ref in op.orders.values():
            yield op, ref


def owned_positions(ops: Sequence[RecoveryOperation], truth: BrokerTruth) -> dict[Key, int]:
    """Signed quantity each (account, contract) owes to operations, from the broker's fills."""
    index = _Index(truth)
    owned: dict[Key, int] = defaultdict(int)
    seen: set[int] = set()
    for _, ref in _legs(ops):
        order = index.locate(ref)
        if order is None or order.id in seen:
            continue  # one broker order counts once, even if two legs point at it (an I3 matter)
        seen.add(order.id)
        owned[(order.account_id, order.contract_id)] += order.side.sign * order.fill_volume
    return {k: v for k, v in owned.items() if v}


def outside_positions(
    ops: Sequence[RecoveryOperation], truth: BrokerTruth, outside_orders: Iterable[int]
) -> dict[Key, int]:
    """What fills outside every operation added to each position: the outside actor's orders
    (``outside_orders``, by id), and orderguard's stand-alone placements (``place_market_order``:
    an intent, no operation), recognised by a customTag that no operation's leg carries."""
    owned_tags = {(ref.account_id, ref.custom_tag) for op in ops for ref in op.orders.values()}
    owned_ids = {ref.order_id for op in ops for ref in op.orders.values()}
    outside = set(outside_orders)
    out: dict[Key, int] = {}
    for order in truth.orders:
        if not order.fill_volume or order.id in owned_ids:
            continue
        mine = (
            order.custom_tag is not None and (order.account_id, order.custom_tag) not in owned_tags
        )
        if order.id in outside or mine:
            key = (order.account_id, order.contract_id)
            out[key] = out.get(key, 0) + order.side.sign * order.fill_volume
    return out


@dataclass(frozen=True, slots=True)
class Coverage:
    """How one net position is covered by working orders on its reducing side."""

    net: int
    stops: int  # remaining size of working reduce-side stop orders
    targets: int  # remaining size of working reduce-side limit orders

    @property
    def exact(self) -> bool:
        return self.net == 0 or self.stops == abs(self.net)

    @property
    def unprotected(self) -> bool:
        return self.net != 0 and self.stops < abs(self.net)


def coverage(positions: Iterable[Position], working: Iterable[Order]) -> dict[Key, Coverage]:
    """Coverage of every non-flat position (pure; ``working`` may hold any orders)."""
    net = {(p.account_id, p.contract_id): p.signed_size for p in positions if p.size}
    stops: dict[Key, int] = defaultdict(int)
    targets: dict[Key, int] = defaultdict(int)
    for order in working:
        key = (order.account_id, order.contract_id)
        size = net.get(key, 0)
        if size == 0 or order.status not in _LIVE or order.side.sign == (1 if size > 0 else -1):
            continue
        if order.type in STOP_TYPES:
            stops[key] += order.remaining
        elif order.type is OrderType.LIMIT:
            targets[key] += order.remaining
    return {k: Coverage(n, stops[k], targets[k]) for k, n in net.items()}


# ------------------------------------------------------------------------------------------------
# I1 - I5
# ------------------------------------------------------------------------------------------------
def check_i1(
    truth: BrokerTruth,
    ops: Sequence[RecoveryOperation],
    *,
    now: float,
    window: float,
    mismatch_since: Mapping[Key, float] | None = None,
    strict_ownership: bool = False,
    outside: Mapping[Key, int] | None = None,
) -> list[Violation]:
    """Positions covered by reduce-side stops of exactly their size (outside the window).

    ``outside`` is the signed quantity that actors other than orderguard (the trading platform
    closing or partially closing a position) added to each key: with ``strict_ownership`` the
    net position must equal what operations own plus that.

    ``mismatch_since`` says since when each coverage mismatch has lasted (see
    :class:`ExposureTracker`); a key missing from it counts as older than the window. Without
    ``strict_ownership`` only positions that operations own are checked.
    """
    since = mismatch_since or {}
    owned = owned_positions(ops, truth)
    cover = coverage(truth.positions, truth.orders)
    out: list[Violation] = []
    others = {k: v for k, v in (outside or {}).items() if v}
    for key in sorted(set(cover) | set(owned) | set(others)):
        account, contract = key
        net = cover[key].net if key in cover else 0
        mine = owned.get(key, 0)
        theirs = others.get(key, 0)
        if strict_ownership and net != mine + theirs:
            out.append(
                Violation(
                    "I1",
                    f"net position {net:+d} but operations own {mine:+d}"
                    + (f" and stand-alone orders / outside actors {theirs:+d}" if theirs else ""),
                    account,
                    contract,
                )
            )
        if net == 0 or (not strict_ownership and mine == 0):
            continue
        c = cover[key]
        if c.exact:
            continue
        started = since.get(key)
        if started is not None and now - started < window:
            continue  # inside the protection window after a fill
        out.append(
            Violation(
                "I1",
                f"position {net:+d} covered by {c.stops} in working reduce-side stops"
                + ("" if started is None else f" for {now - started:.3f}s (window {window}s)"),
                account,
                contract,
            )
        )
    return out


def check_i2(truth: BrokerTruth, ops: Sequence[RecoveryOperation]) -> list[Violation]:
    """No working exit order on a flat contract or on the increasing side; targets ≤ position."""
    index = _Index(truth)
    net = truth.net()
    exits: dict[int, Order] = {}
    for op, ref in _legs(ops):
        order = index.locate(ref)
        if order is not None and order.status in _LIVE and leg_role(op, ref) is LegRole.EXIT:
            exits[order.id] = order
    for order in truth.orders:
        if order.parent_order_id is not None and order.status in _LIVE:
            exits[order.id] = order  # an activated native bracket child
    out: list[Violation] = []
    for order in sorted(exits.values(), key=lambda o: o.id):
        size = net.get((order.account_id, order.contract_id), 0)
        if size == 0:
            detail = f"exit order {order.id} ({order.custom_tag}) working on a flat contract"
        elif order.side.sign == (1 if size > 0 else -1):
            detail = f"exit order {order.id} ({order.custom_tag}) would increase {size:+d}"
        else:
            continue
        out.append(Violation("I2", detail, order.account_id, order.contract_id))
    for key, c in sorted(coverage(truth.positions, exits.values()).items()):
        if c.targets > abs(c.net):
            out.append(
                Violation("I2", f"targets of {c.targets} exceed the position {c.net:+d}", *key)
            )
    return out


@dataclass(frozen=True, slots=True)
class WireRecord:
    """One placement as it left the process: the caller's intent key (if any) and its tag."""

    intent: str | None
    custom_tag: str | None
    account_id: int = 0


def check_i3(
    truth: BrokerTruth, ops: Sequence[RecoveryOperation], wire: Sequence[WireRecord] = ()
) -> list[Violation]:
    """Unique tags at the broker; every intent placed at most once."""
    out: list[Violation] = []
    tags: dict[tuple[int, str], list[int]] = defaultdict(list)
    for order in truth.orders:
        if order.custom_tag:
            tags[(order.account_id, order.custom_tag)].append(order.id)
    for (account, tag), ids in sorted(tags.items()):
        if len(ids) > 1:
            out.append(Violation("I3", f"tag {tag} carried by orders {ids}", account))
    index = _Index(truth)
    for op, ref in _legs(ops):
        by_tag = index.by_tag.get((ref.account_id, ref.custom_tag))
        by_id = index.by_id.get(ref.order_id) if ref.order_id is not None else None
        if (
            by_id is not None
            and by_id.custom_tag
            and by_id.custom_tag != ref.custom_tag
            and not _same_leg(by_id.custom_tag, ref.custom_tag)
        ):
            # A re-send under a new tag: the journal names an order that is not its intent's.
            # (Another generation of the same leg is a re-placement, not a duplicate; whether
            # the record kept up with it is I5's business.)
            where = f"order {by_tag.id} carries it" if by_tag is not None else "no order carries it"
            out.append(
                Violation(
                    "I3",
                    f"leg {ref.leg} (tag {ref.custom_tag}) recorded as order {by_id.id} "
                    f"tagged {by_id.custom_tag}; {where}",
                    ref.account_id,
                    ref.contract_id,
                    op.operation_id,
                )
            )
    sent: dict[str, set[str]] = defaultdict(set)
    for record in wire:
        if record.intent is not None and record.custom_tag:
            sent[record.intent].add(record.custom_tag)
    for intent, placed in sorted(sent.items()):
        if len(placed) > 1:
            out.append(
                Violation("I3", f"intent {intent} placed under {len(placed)} tags {sorted(placed)}")
            )
    return out


def _same_leg(a: str, b: str) -> bool:
    """Tags ``<prefix>-<operation>-<leg>-<generation>`` of one leg, generations aside."""
    return a.rsplit("-", 1)[0] == b.rsplit("-", 1)[0]


def check_i4(truth: BrokerTruth, ops: Sequence[RecoveryOperation]) -> list[Violation]:
    """OCO: a filled leg's sibling is not working; a double fill is flattened or recorded."""
    index = _Index(truth)
    out: list[Violation] = []
    for op in ops:
        for a_leg, b_leg in op.oco_pairs:
            a_ref, b_ref = op.orders.get(a_leg), op.orders.get(b_leg)
            if a_ref is None or b_ref is None:
                continue
            a, b = index.locate(a_ref), index.locate(b_ref)
            if a is None or b is None:
                continue
            out.extend(_oco_pair(op, (a_leg, a), (b_leg, b), index))
    children: dict[int, list[Order]] = defaultdict(list)
    for order in truth.orders:
        if order.parent_order_id is not None:
            children[order.parent_order_id].append(order)
    for parent, legs in sorted(children.items()):
        filled = [o for o in legs if o.status is OrderStatus.FILLED]
        working = [o for o in legs if o.status in _LIVE]
        if filled and working:
            out.append(
                Violation(
                    "I4",
                    f"native bracket of order {parent}: leg {filled[0].id} filled, "
                    f"sibling {working[0].id} still working",
                    working[0].account_id,
                    working[0].contract_id,
                )
            )
    return out


def _oco_pair(
    op: RecoveryOperation, a: tuple[str, Order], b: tuple[str, Order], index: _Index
) -> list[Violation]:
    (a_leg, a_order), (b_leg, b_order) = a, b
    out: list[Violation] = []
    for (leg, order), (other_leg, other) in (((a_leg, a_order), b), ((b_leg, b_order), a)):
        if order.status is OrderStatus.FILLED and other.status in _LIVE:
            out.append(
                Violation(
                    "I4",
                    f"OCO leg {leg} filled but sibling {other_leg} (order {other.id}) is working",
                    order.account_id,
                    order.contract_id,
                    op.operation_id,
                )
            )
    if a_order.fill_volume and b_order.fill_volume:
        flattened = any(
            leg_role(op, ref) is LegRole.FLATTEN
            and (o := index.locate(ref)) is not None
            and o.fill_volume > 0
            for ref in op.orders.values()
        )
        if not flattened and not op.extra.get("incidents"):
            out.append(
                Violation(
                    "I4",
                    f"both OCO legs {a_leg} and {b_leg} filled; excess neither flattened nor "
                    "recorded",
                    a_order.account_id,
                    a_order.contract_id,
                    op.operation_id,
                )
            )
    return out


_BROKER_STATUS_FOR_REF = {
    RefStatus.FILLED: frozenset({OrderStatus.FILLED}),
    RefStatus.CANCELLED: frozenset({OrderStatus.CANCELLED, OrderStatus.EXPIRED}),
}


def check_i5(truth: BrokerTruth, ops: Sequence[RecoveryOperation]) -> list[Violation]:
    """Every leg of every finished operation has a known state the broker does not contradict."""
    index = _Index(truth)
    out: list[Violation] = []
    for op in ops:
        if not op.state.is_terminal:
            continue
        for ref in op.orders.values():
            problem = _leg_problem(op, ref, index.locate(ref))
            if problem is not None:
                out.append(
                    Violation(
                        "I5",
                        f"{op.state.value} operation, leg {ref.leg} ({ref.custom_tag}): {problem}",
                        ref.account_id,
                        ref.contract_id,
                        op.operation_id,
                    )
                )
    return out


def _leg_problem(op: RecoveryOperation, ref: OrderReference, order: Order | None) -> str | None:
    status = ref.status
    if status in (RefStatus.UNKNOWN, RefStatus.INTENDED):
        return f"still {status}"
    if order is not None and order.custom_tag and order.custom_tag != ref.custom_tag:
        return f"recorded with tag {ref.custom_tag} but its order {order.id} is {order.custom_tag}"
    if order is None:
        if status in (RefStatus.FILLED, RefStatus.CONFIRMED) or ref.filled_size:
            return f"journal says {status} (filled {ref.filled_size}) but the broker has no order"
        return None
    if ref.filled_size > order.fill_volume:
        return f"journal claims {ref.filled_size} filled, the broker {order.fill_volume}"
    if status == RefStatus.REJECTED:
        if order.status is not OrderStatus.REJECTED and (order.fill_volume or order.is_working):
            return f"journal says rejected, the broker has order {order.id} {order.status.name}"
        return None
    expected = _BROKER_STATUS_FOR_REF.get(status)
    if expected is not None and order.status not in expected:
        return f"journal says {status}, the broker says {order.status.name}"
    if expected is not None and ref.filled_size != order.fill_volume:
        return f"final with {ref.filled_size} filled, the broker says {order.fill_volume}"
    if status == RefStatus.CONFIRMED and op.state.value == "rolled_back" and order.is_working:
        return f"rolled back, but order {order.id} is still working"
    return None


def check_all(
    truth: BrokerTruth,
    ops: Sequence[RecoveryOperation],
    *,
    now: float = 0.0,
    window: float = 0.0,
    mismatch_since: Mapping[Key, float] | None = None,
    strict_ownership: bool = False,
    wire: Sequence[WireRecord] = (),
    outside: Mapping[Key, int] | None = None,
) -> list[Violation]:
    """I1 to I5, in that order."""
    return [
        *check_i1(
            truth,
            ops,
            now=now,
            window=window,
            mismatch_since=mismatch_since,
            strict_ownership=strict_ownership,
            outside=outside,
        ),
        *check_i2(truth, ops),
        *check_i3(truth, ops, wire),
        *check_i4(truth, ops),
        *check_i5(truth, ops),
    ]


# ------------------------------------------------------------------------------------------------
# I6: measuring unprotected exposure
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Episode:
    """One stretch of time a position was not fully covered by stops."""

    account_id: int
    contract_id: str
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


class ExposureTracker:
    """Folds coverage snapshots, in time order, into unprotected episodes and mismatch ages.

    ``observe(at, cover)`` is called after every change of broker truth (the chaos runner calls
    it from an exchange listener). An episode runs while a position has fewer stop contracts
    working than its size; a *mismatch* (any coverage other than exact, over-coverage included)
    is what I1's protection window is measured against.
    """

    def __init__(self) -> None:
        self.episodes: list[Episode] = []
        self._open: dict[Key, float] = {}
        self._mismatch: dict[Key, float] = {}

    def observe(self, at: float, cover: Mapping[Key, Coverage]) -> None:
        for key, c in cover.items():
            if c.unprotected:
                self._open.setdefault(key, at)
            if not c.exact:
                self._mismatch.setdefault(key, at)
        for key in [k for k in self._open if k not in cover or not cover[k].unprotected]:
            self.episodes.append(Episode(*key, self._open.pop(key), at))
        for key in [k for k in self._mismatch if k not in cover or cover[k].exact]:
            del self._mismatch[key]

    def mismatch_since(self) -> dict[Key, float]:
        return dict(self._mismatch)

    def unprotected_since(self) -> dict[Key, float]:
        return dict(self._open)

    def all_episodes(self, now: float) -> list[Episode]:
        """Closed episodes plus the open ones cut at ``now``."""
        ongoing = [Episode(*k, start, now) for k, start in sorted(self._open.items())]
        return [*self.episodes, *ongoing]

    def total_seconds(self, now: float) -> float:
        return sum(e.seconds for e in self.all_episodes(now))

    def max_seconds(self, now: float) -> float:
        return max((e.seconds for e in self.all_episodes(now)), default=0.0)


__all__ = [
    "LIVE_STATUSES",
    "STOP_TYPES",
    "BrokerTruth",
    "Coverage",
    "Episode",
    "ExposureTracker",
    "Key",
    "LegRole",
    "Violation",
    "WireRecord",
    "check_all",
    "check_i1",
    "check_i2",
    "check_i3",
    "check_i4",
    "check_i5",
    "coverage",
    "leg_role",
    "outside_positions",
    "owned_positions",
]
