"""Time bounds judged continuously from broker truth: I6 (unprotected), over-coverage, I7.

The quiet-point checks of I1–I5 look at the world when it has settled; they cannot see how long
a position sat unprotected in between, nor anything that happened while a process was dead.
:class:`BoundChecker` is fed every change of the exchange (the runner's exchange listener, so
downtime is included) and judges each *episode* when it ends, or when the seed ends with it
still open:

* **I6 — unprotected.** A non-flat position covered by fewer working reduce-side stop contracts
  than its size must be covered (or flat) within ``protection_deadline + recovery_interval``.
* **I1 — over-coverage.** Working reduce-side stops for more than the position (any stop on a
  flat contract counts) must end within one ``recovery_interval``; when the over-coverage began
  with a change of the position (a fill, a close), within ``protection_deadline +
  recovery_interval``, the bounded window right after a fill.
* **Storms.** While a fault storm refuses or leaves unanswered every request (the runner
  schedules them; nothing executes during one), nothing can be protected or flattened: an
  episode overlapping a storm may last until ``storm end + deadline + interval``, and the
  violation or the pass records the storm as the cause.

:func:`check_i7` is the observable part of I7: when an operation is written in a terminal state,
the exposure it owns (from broker fills of its tags) must be protected, or some other unfinished
operation on the same contract must still be there to take it over.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from orderguard.broker.faults import Storm
from orderguard.chaos.invariants import (
    LIVE_STATUSES,
    STOP_TYPES,
    BrokerTruth,
    Key,
    Violation,
    coverage,
    owned_positions,
)
from orderguard.models import Order, Position
from orderguard.recovery.manager import RecoveryOperation


@dataclass(frozen=True, slots=True)
class Bounds:
    """The manager's promised times (defaults: the bracket deadline and the reconcile interval)."""

    protection_deadline: float = 5.0
    recovery_interval: float = 2.0

    @property
    def protection(self) -> float:
        """How long an unprotected episode may last."""
        return self.protection_deadline + self.recovery_interval


@dataclass(frozen=True, slots=True)
class StopCount:
    net: int
    reduce_stops: int  # working stop contracts on the reducing side
    any_stops: int  # working stop contracts on either side

    @property
    def under(self) -> bool:
        return self.net != 0 and self.reduce_stops < abs(self.net)

    @property
    def over(self) -> bool:
        if self.net == 0:
            return self.any_stops > 0
        return self.reduce_stops > abs(self.net)


def stop_counts(positions: Iterable[Position], orders: Iterable[Order]) -> dict[Key, StopCount]:
    """Per (account, contract) with a position or a working stop: the stop coverage."""
    net = {(p.account_id, p.contract_id): p.signed_size for p in positions if p.size}
    reduce: dict[Key, int] = defaultdict(int)
    anyside: dict[Key, int] = defaultdict(int)
    for order in orders:
        if order.status not in LIVE_STATUSES or order.type not in STOP_TYPES:
            continue
        key = (order.account_id, order.contract_id)
        anyside[key] += order.remaining
        size = net.get(key, 0)
        if size and order.side.sign != (1 if size > 0 else -1):
            reduce[key] += order.remaining
    keys = set(net) | set(anyside)
    return {k: StopCount(net.get(k, 0), reduce[k], anyside[k]) for k in keys}


@dataclass(slots=True)
class _Open:
    start: float
    base: float  # seconds allowed without a storm


@dataclass(frozen=True, slots=True)
class EpisodeVerdict:
    kind: str  # "unprotected" | "over-covered"
    key: Key
    start: float
    end: float
    allowed_end: float
    storms: tuple[Storm, ...]

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def ok(self) -> bool:
        return self.end <= self.allowed_end + 1e-9


@dataclass(slots=True)
class BoundChecker:
    """Folds exchange snapshots into episodes and judges each against its bound."""

    bounds: Bounds = field(default_factory=Bounds)
    storms: Sequence[Storm] = ()
    under: dict[Key, _Open] = field(default_factory=dict)
    over: dict[Key, _Open] = field(default_factory=dict)
    verdicts: list[EpisodeVerdict] = field(default_factory=list)
    _net: dict[Key, int] = field(default_factory=dict)
    _changed: dict[Key, float] = field(default_factory=dict)

    def observe(self, at: float, positions: Iterable[Position], orders: Iterable[Order]) -> None:
        counts = stop_counts(positions, orders)
        for key in set(self._net) | set(counts):
            net = counts[key].net if key in counts else 0
            if self._net.get(key, 0) != net:
                self._changed[key] = at
            self._net[key] = net
        for key, c in counts.items():
            if c.under and key not in self.under:
                self.under[key] = _Open(at, self.bounds.protection)
            if c.over and key not in self.over:
                after_fill = self._changed.get(key, -1.0) >= at
                base = self.bounds.protection if after_fill else self.bounds.recovery_interval
                self.over[key] = _Open(at, base)
        for key in [k for k in self.under if k not in counts or not counts[k].under]:
            self._close("unprotected", key, self.under.pop(key), at)
        for key in [k for k in self.over if k not in counts or not counts[k].over]:
            self._close("over-covered", key, self.over.pop(key), at)

    def allowed_end(self, start: float, base: float) -> tuple[float, tuple[Storm, ...]]:
        """``start + base``, stretched past every storm that overlaps the episode."""
        end = start + base
        used: list[Storm] = []
        for storm in sorted(self.storms, key=lambda s: s.start):
            if storm.start <= end and storm.end > start:
                end = max(end, storm.end + self.bounds.protection)
                used.append(storm)
        return end, tuple(used)

    def _close(self, kind: str, key: Key, episode: _Open, at: float) -> None:
        allowed, storms = self.allowed_end(episode.start, episode.base)
        self.verdicts.append(EpisodeVerdict(kind, key, episode.start, at, allowed, storms))

    def finish(self, now: float) -> None:
        """Judge the episodes still open at the end of the seed (cut at ``now``)."""
        for kind, table in (("unprotected", self.under), ("over-covered", self.over)):
            for key in sorted(table):
                self._close(kind, key, table.pop(key), now)

    def changed_at(self, key: Key) -> float:
        """When the position on ``key`` last changed (-inf if never seen)."""
        return self._changed.get(key, float("-inf"))

    def deadline(self, key: Key) -> float | None:
        """When the open episode of ``key`` (if any) runs out of time."""
        ends = [
            self.allowed_end(e.start, e.base)[0]
            for t in (self.under, self.over)
            for k, e in t.items()
            if k == key
        ]
        return max(ends) if ends else None

    def violations(self) -> list[Violation]:
        out: list[Violation] = []
        for v in self.verdicts:
            if v.ok:
                continue
            account, contract = v.key
            cause = (
                ""
                if not v.storms
                else "; storm "
                + ", ".join(f"{s.kind.value} {s.start:.3f}-{s.end:.3f}" for s in v.storms)
            )
            invariant = "I6" if v.kind == "unprotected" else "I1"
            out.append(
                Violation(
                    invariant,
                    f"{v.kind} {v.start:.3f}-{v.end:.3f}s: {v.seconds:.3f}s, allowed "
                    f"{v.allowed_end - v.start:.3f}s{cause}",
                    account,
                    contract,
                )
            )
        return out

    def storm_causes(self) -> list[str]:
        """Episodes that outlasted the normal bound only because of a storm (recorded causes)."""
        return [
            f"{v.kind} {v.key[1]} {v.start:.3f}-{v.end:.3f}s ({v.seconds:.3f}s) during storm "
            + ", ".join(f"{s.kind.value} {s.start:.3f}-{s.end:.3f}" for s in v.storms)
            for v in self.verdicts
            if v.ok and v.storms and v.seconds > self.bounds.protection
        ]


def check_i7(
    operation_id: str, ops: Sequence[RecoveryOperation], truth: BrokerTruth
) -> list[Violation]:
    """An operation just written terminal: what it owns is protected, or someone took it over.

    Owned exposure comes from broker fills of the operation's tags; it counts as unprotected when
    the contract's net position is covered by fewer working reduce-side stops than its size.
    Taken over means another operation on the same account and contract is still unfinished.
    """
    op = next((o for o in ops if o.operation_id == operation_id), None)
    if op is None or not op.state.is_terminal:
        return []
    cover = coverage(truth.positions, truth.orders)
    out: list[Violation] = []
    for key, owned in sorted(owned_positions([op], truth).items()):
        c = cover.get(key)
        if c is None or not c.unprotected:
            continue
        heirs = [
            o.operation_id
            for o in ops
            if o.operation_id != operation_id
            and not o.state.is_terminal
            and (
                (o.account_id, o.contract_id) == key
                or any((r.account_id, r.contract_id) == key for r in o.orders.values())
            )
        ]
        if heirs:
            continue
        out.append(
            Violation(
                "I7",
                f"operation {operation_id} ended {op.state.value} owning {owned:+d} while the "
                f"position {c.net:+d} is covered by {c.stops} in stops and no unfinished "
                "operation holds the contract",
                key[0],
                key[1],
                operation_id,
            )
        )
    return out


__all__ = ["BoundChecker", "Bounds", "EpisodeVerdict", "StopCount", "check_i7", "stop_counts"]
