"""Faults on the realtime event stream: drop, duplicate, delay, reorder, disconnect, go silent.

One inner subscription feeds every outer handler, so a fault hits all handlers alike — like one
hub connection shared by the whole process. Each inner event consumes exactly two draws from the
stream's own RNG whatever happens to it, so a fault decision depends only on the seed and the
event's position in the stream.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

from orderguard.broker.base import (
    AccountEvent,
    BrokerEvent,
    ConnectionEvent,
    ConnectionState,
    EventHandler,
    OrderEvent,
    PositionEvent,
    QuoteEvent,
    TradeEvent,
)
from orderguard.broker.faults.plan import EVENT_KINDS, EVENT_TARGET, FaultKind, FaultPlan
from orderguard.clock import Clock, TimerHandle

logger = logging.getLogger("orderguard.broker.faults")

Recorder = Callable[[FaultKind, str, int, str], None]


def describe_event(event: BrokerEvent) -> str:
    """A short, deterministic description for the fault log."""
    match event:
        case OrderEvent(order=o):
            return f"order {o.id} {o.status.name} fill={o.fill_volume}/{o.size}"
        case PositionEvent(position=p):
            return f"position {p.contract_id} {p.type.name} {p.size}"
        case TradeEvent(trade=t):
            return f"trade {t.id} order={t.order_id} {t.size}@{t.price}"
        case AccountEvent(account=a):
            return f"account {a.id} balance={a.balance}"
        case QuoteEvent():
            return f"quote {event.contract_id} {event.last_price}"
        case ConnectionEvent():
            return f"connection {event.state.value}"
    return type(event).__name__  # pragma: no cover - BrokerEvent is closed


def _uniform(bounds: tuple[float, float], u: float) -> float:
    lo, hi = bounds
    return lo + (hi - lo) * u


@dataclass(slots=True)
class _Gap:
    kind: FaultKind  # DISCONNECT or GO_SILENT
    timer: TimerHandle


class _Subscription:
    def __init__(self, stream: EventStreamFaults, key: int) -> None:
        self._stream = stream
        self._key = key

    def close(self) -> None:
        self._stream.remove(self._key)


class EventStreamFaults:
    """Sits between the inner broker's stream and the outer handlers."""

    def __init__(
        self,
        clock: Clock,
        plan: FaultPlan,
        *,
        rng: random.Random,
        record: Recorder,
        enabled: Callable[[], bool],
        on_empty: Callable[[], None],
    ) -> None:
        self._clock = clock
        self._faults = plan.events
        self._scripted = tuple(s for s in plan.scripted if s.op == EVENT_TARGET)
        self._rng = rng
        self._record = record
        self._enabled = enabled
        self._on_empty = on_empty
        self._handlers: dict[int, EventHandler] = {}
        self._next_key = 0
        self._seen = 0  # inner non-connection events, 1-based position for scripts
        self._gap: _Gap | None = None
        self._held: list[tuple[BrokerEvent, int]] = []
        self._hold_timer: TimerHandle | None = None
        self._delayed: dict[int, TimerHandle] = {}
        self._next_delay_key = 0
        self.handler_errors = 0

    # -- handlers ---------------------------------------------------------------------------
    @property
    def handler_count(self) -> int:
        return len(self._handlers)

    def add(self, handler: EventHandler) -> _Subscription:
        key = self._next_key
        self._next_key += 1
        self._handlers[key] = handler
        return _Subscription(self, key)

    def remove(self, key: int) -> None:
        if self._handlers.pop(key, None) is not None and not self._handlers:
            self._on_empty()

    def _deliver(self, event: BrokerEvent) -> None:
        # Copy: a handler may subscribe or close while we iterate.
        for handler in list(self._handlers.values()):
            try:
                handler(event)
            except Exception:
                # The port's contract: a raising handler is logged and counted, never propagated.
                self.handler_errors += 1
                logger.exception("event handler raised on %s", describe_event(event))

    def _deliver_then_release(self, event: BrokerEvent) -> None:
        self._deliver(event)
        self.release_held()

    # -- state ------------------------------------------------------------------------------
    @property
    def in_gap(self) -> FaultKind | None:
        return None if self._gap is None else self._gap.kind

    @property
    def pending(self) -> int:
        """Events still to arrive or be lost (held, delayed) plus an open gap."""
        return len(self._held) + len(self._delayed) + (self._gap is not None)

    # -- the inner stream -------------------------------------------------------------------
    def on_inner(self, event: BrokerEvent) -> None:
        if isinstance(event, ConnectionEvent):
            # The inner adapter's own connection news is never faulted: it is the truth.
            self._deliver(event)
            return
        self._seen += 1
        n = self._seen
        u_kind, u_param = self._rng.random(), self._rng.random()
        if self._gap is not None:
            self._lose(event, n)
            return
        if not self._enabled():
            self._deliver_then_release(event)
            return
        kind, seconds = self._choose(n, u_kind, u_param)
        what = describe_event(event)
        if kind is None:
            self._deliver_then_release(event)
        elif kind is FaultKind.DROP:
            self._record(kind, EVENT_TARGET, n, what)
        elif kind is FaultKind.DUPLICATE:
            self._record(kind, EVENT_TARGET, n, what)
            self._deliver(event)
            self._deliver_then_release(event)
        elif kind is FaultKind.EVENT_DELAY:
            self._record(kind, EVENT_TARGET, n, f"{what} by {seconds:.3f}s")
            self._schedule_delayed(event, n, seconds)
        elif kind is FaultKind.REORDER:
            self._record(kind, EVENT_TARGET, n, what)
            self._hold(event, n)
        else:  # DISCONNECT / GO_SILENT: the triggering event is the gap's first casualty
            self.start_gap(kind, seconds, trigger=n)
            self._lose(event, n)

    def _choose(self, n: int, u_kind: float, u_param: float) -> tuple[FaultKind | None, float]:
        f = self._faults
        for s in self._scripted:
            if s.covers(n):
                bounds = f.gap_range if s.kind in _GAP_KINDS else f.delay_range
                return s.kind, s.seconds if s.seconds is not None else _uniform(bounds, u_param)
        acc = 0.0
        for kind in EVENT_KINDS:
            acc += f.rate(kind)
            if u_kind < acc:
                bounds = f.gap_range if kind in _GAP_KINDS else f.delay_range
                return kind, _uniform(bounds, u_param)
        return None, 0.0

    # -- delay ------------------------------------------------------------------------------
    def _schedule_delayed(self, event: BrokerEvent, n: int, seconds: float) -> None:
        key = self._next_delay_key
        self._next_delay_key += 1

        def fire() -> None:
            self._delayed.pop(key, None)
            if self._gap is not None:
                self._lose(event, n)  # it would have arrived inside the gap
            else:
                self._deliver_then_release(event)

        self._delayed[key] = self._clock.call_later(seconds, fire)

    # -- reorder ----------------------------------------------------------------------------
    def _hold(self, event: BrokerEvent, n: int) -> None:
        self._held.append((event, n))
        if self._hold_timer is None:
            # Reorder is not loss: if nothing follows, the held event still arrives.
            self._hold_timer = self._clock.call_later(
                self._faults.reorder_max_hold, self._hold_expired
            )

    def _hold_expired(self) -> None:
        self._hold_timer = None
        self.release_held()

    def release_held(self) -> None:
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None
        held, self._held = self._held, []
        for event, _ in held:
            self._deliver(event)

    # -- gaps -------------------------------------------------------------------------------
    def start_gap(self, kind: FaultKind, seconds: float, *, trigger: int = 0) -> None:
        """Open a DISCONNECT or GO_SILENT gap now (no-op if one is open)."""
        if kind not in _GAP_KINDS:
            raise ValueError(f"{kind.value!r} is not a gap")
        if self._gap is not None:
            return
        self._record(kind, EVENT_TARGET, trigger, f"gap {seconds:.3f}s")
        # Held events were still in our hands when the line went down: lost with the gap.
        held, self._held = self._held, []
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None
        self._gap = _Gap(kind, self._clock.call_later(seconds, self.end_gap))
        for event, n in held:
            self._lose(event, n)
        if kind is FaultKind.DISCONNECT:
            self._deliver(ConnectionEvent(ConnectionState.DISCONNECTED, "injected disconnect"))

    def end_gap(self) -> None:
        """Close the open gap now (a disconnect announces RECONNECTED); no-op without one."""
        gap, self._gap = self._gap, None
        if gap is None:
            return
        gap.timer.cancel()
        if gap.kind is FaultKind.DISCONNECT:
            self._deliver(ConnectionEvent(ConnectionState.RECONNECTED, "injected reconnect"))

    def _lose(self, event: BrokerEvent, n: int) -> None:
        self._record(FaultKind.LOST_IN_GAP, EVENT_TARGET, n, describe_event(event))


_GAP_KINDS = frozenset({FaultKind.DISCONNECT, FaultKind.GO_SILENT})

__all__ = ["EventStreamFaults", "describe_event"]
