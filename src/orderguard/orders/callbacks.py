"""User callbacks, run after state is updated and outside any lock (FAILURES F12).

A callback may be a plain function or a coroutine function. Plain ones run inline, right after the
tracker has applied the event; coroutines run as tasks the manager tracks (and cancels on cleanup),
so a callback that awaits the manager (``await manager.cancel_order(...)`` inside
``order_filled``) cannot deadlock it. An exception in a callback is logged and counted, never
propagated into the broker's event dispatch.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from orderguard.errors import ValidationError
from orderguard.models import Order
from orderguard.orders.feed.tracking import OrderChange

log = logging.getLogger("orderguard.orders.callbacks")

Callback = Callable[[Any], object]
Spawn = Callable[[Coroutine[Any, Any, None]], object]

ORDER_UPDATE = "order_update"
ORDER_PLACED = "order_placed"
ORDER_MODIFIED = "order_modified"
ORDER_PARTIAL_FILL = "order_partial_fill"
ORDER_FILLED = "order_filled"
ORDER_CANCELLED = "order_cancelled"
ORDER_EXPIRED = "order_expired"
ORDER_REJECTED = "order_rejected"
TRADE_EXECUTED = "trade_executed"
PROTECTION_OVERDUE = "protection_overdue"
"""Payload: :class:`~orderguard.recovery.protection.ProtectionAlert` (exposure the protection
executor has held past the deadline; it goes on trying)."""

EVENT_NAMES = frozenset(
    {
        ORDER_UPDATE,
        ORDER_PLACED,
        ORDER_MODIFIED,
        ORDER_PARTIAL_FILL,
        ORDER_FILLED,
        ORDER_CANCELLED,
        ORDER_EXPIRED,
        ORDER_REJECTED,
        TRADE_EXECUTED,
        PROTECTION_OVERDUE,
    }
)

_STATUS_EVENTS = {
    "FILLED": ORDER_FILLED,
    "CANCELLED": ORDER_CANCELLED,
    "EXPIRED": ORDER_EXPIRED,
    "REJECTED": ORDER_REJECTED,
}


def events_for(change: OrderChange) -> list[str]:
    """The callback events one tracker change announces, most specific last."""
    prev, cur = change.previous, change.current
    names = [ORDER_UPDATE]
    if prev is None:
        names.append(ORDER_PLACED)
    elif _modified(prev, cur):
        names.append(ORDER_MODIFIED)
    if change.newly_filled and cur.fill_volume < cur.size:
        names.append(ORDER_PARTIAL_FILL)
    if change.status_changed:
        specific = _STATUS_EVENTS.get(cur.status.name)
        if specific is not None:
            names.append(specific)
    return names


def _modified(prev: Order, cur: Order) -> bool:
    return (prev.size, prev.limit_price, prev.stop_price, prev.trail_price) != (
        cur.size,
        cur.limit_price,
        cur.stop_price,
        cur.trail_price,
    )


class CallbackRegistry:
    """Named lists of callbacks; dispatch never raises."""

    __slots__ = ("_callbacks", "_spawn", "errors")

    def __init__(self, spawn: Spawn) -> None:
        self._callbacks: dict[str, list[Callback]] = {}
        self._spawn = spawn
        self.errors = 0

    def add(self, event_name: str, fn: Callback) -> None:
        if event_name not in EVENT_NAMES:
            raise ValidationError(
                f"unknown event {event_name!r}; expected one of {sorted(EVENT_NAMES)}"
            )
        if not callable(fn):
            raise ValidationError(f"callback for {event_name!r} is not callable")
        self._callbacks.setdefault(event_name, []).append(fn)

    def remove(self, event_name: str, fn: Callback) -> bool:
        fns = self._callbacks.get(event_name, [])
        if fn in fns:
            fns.remove(fn)
            return True
        return False

    def has(self, event_name: str) -> bool:
        return bool(self._callbacks.get(event_name))

    def clear(self) -> None:
        self._callbacks.clear()

    def dispatch(self, event_name: str, payload: object) -> None:
        # Iterate a copy: a callback may add or remove callbacks.
        for fn in tuple(self._callbacks.get(event_name, ())):
            try:
                result = fn(payload)
            except Exception:
                self._failed(event_name, fn)
                continue
            if inspect.isawaitable(result):
                self._spawn(self._guard(event_name, fn, result))

    async def _guard(self, event_name: str, fn: Callback, aw: Awaitable[object]) -> None:
        try:
            await aw
        except Exception:
            self._failed(event_name, fn)

    def _failed(self, event_name: str, fn: Callback) -> None:
        self.errors += 1
        log.exception("callback %s for %s raised", getattr(fn, "__qualname__", fn), event_name)


__all__ = ["EVENT_NAMES", "Callback", "CallbackRegistry", "events_for"]
