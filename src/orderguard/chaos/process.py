"""A simulated process boundary, so the chaos runner can kill a manager the way ``kill -9`` does.

Everything one "process" touches outside its memory goes through a :class:`ProcessScope`: the
broker (:class:`ScopedBroker`) and the journal (:class:`ScopedJournal`). Each broker mutation and
each journal write is a *step*; a scope can be told to die at step ``n``, either before the step
takes effect (the request never left / the write never reached the disk) or just after (the
exchange executed it / the write is durable, but the process never learned so).

After death every call through the scope raises :class:`ProcessKilled` (a ``BaseException``, so
no ``except Exception`` in the dead process can swallow it and carry on), its event subscriptions
are closed, and no further effect can reach the exchange or the journal. Requests already in the
network (the fault injector's late executions) still land: that is what a real crash leaves.

The scope also keeps the *wire log*: every placement that left, with the caller's intent key
(:func:`intent_scope`), which the I3 check uses to prove that no intent was placed twice.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar, cast

from orderguard.broker.base import (
    Broker,
    BrokerEvent,
    EventHandler,
    Subscription,
    TradeEvent,
)
from orderguard.broker.middleware import MUTATIONS, BrokerCall, BrokerMiddleware
from orderguard.chaos.invariants import WireRecord
from orderguard.journal.base import WRITES, Journal

T = TypeVar("T")

_INTENT: ContextVar[str | None] = ContextVar("orderguard_chaos_intent", default=None)


@contextlib.contextmanager
def intent_scope(key: str) -> Iterator[None]:
    """Attribute every placement made inside (this task and tasks it spawns) to intent ``key``."""
    token = _INTENT.set(key)
    try:
        yield
    finally:
        _INTENT.reset(token)


class ProcessKilled(BaseException):
    """The simulated process died; nothing after this point of it may have effects."""


class ProcessScope:
    """Life and death of one simulated process (see the module docstring)."""

    def __init__(
        self,
        name: str,
        *,
        crash_at: int | None = None,
        crash_after: bool = False,
        crash_on: str | None = None,
        crash_on_fill: int | None = None,
        on_death: Callable[[str], None] | None = None,
        wire: list[WireRecord] | None = None,
    ) -> None:
        self.name = name
        self.crash_at = crash_at
        self.crash_after = crash_after
        self.crash_on = crash_on  # count only steps of this kind ("place_order", "journal.x")
        self.crash_on_fill = crash_on_fill  # die as the n-th fill event reaches the process
        self.fills = 0
        self.alive = True
        self.steps = 0
        self.death: str | None = None
        self.calls: Counter[str] = Counter()
        self.wire: list[WireRecord] = wire if wire is not None else []
        self._on_death = on_death
        self._subscriptions: list[Subscription] = []

    def guard(self) -> None:
        if not self.alive:
            raise ProcessKilled(self.name)

    def kill(self, where: str) -> None:
        """Die now: close subscriptions, refuse everything from here on."""
        if not self.alive:
            return
        self.alive = False
        self.death = where
        for subscription in self._subscriptions:
            subscription.close()
        self._subscriptions.clear()
        if self._on_death is not None:
            self._on_death(where)

    def at_fill(self, event: TradeEvent) -> bool:
        """Count a fill event reaching the process; True when the process dies of it."""
        if not self.alive:
            return True
        self.fills += 1
        if self.crash_on_fill is not None and self.fills == self.crash_on_fill:
            t = event.trade
            self.kill(f"fill {self.fills} (trade {t.id} of order {t.order_id})")
            return True
        return False

    def before_step(self, what: str) -> None:
        self.guard()
        if self.crash_on is not None and what != self.crash_on:
            return
        self.steps += 1
        if self.steps == self.crash_at and not self.crash_after:
            self.kill(f"step {self.steps} before {what}")
            raise ProcessKilled(self.name)

    def after_step(self, what: str) -> None:
        counted = self.crash_on is None or what == self.crash_on
        if counted and self.steps == self.crash_at and self.crash_after:
            self.kill(f"step {self.steps} after {what}")
            raise ProcessKilled(self.name)
        self.guard()

    async def effect(self, what: str, call: Callable[[], Any]) -> Any:
        self.before_step(what)
        result = await call()
        self.after_step(what)
        return result

    def track(self, subscription: Subscription) -> Subscription:
        self._subscriptions.append(subscription)
        return subscription


class ScopedBroker(BrokerMiddleware):
    """The Broker port as seen from inside one process (see :class:`ProcessScope`).

    A query is refused by a dead process, and its answer is not read by one that died while it
    was out; a mutation is a step of the scope. A placement that leaves is logged on the wire."""

    def __init__(self, inner: Broker, scope: ProcessScope) -> None:
        super().__init__(inner)
        self.scope = scope

    def before(self, call: BrokerCall[Any]) -> None:
        if call.op in MUTATIONS:
            self.scope.calls[call.op] += 1
            self.scope.before_step(call.op)
            if call.request is not None:
                request = call.request
                self.scope.wire.append(
                    WireRecord(_INTENT.get(), request.custom_tag, request.account_id)
                )
        else:
            self.scope.guard()
            self.scope.calls[call.op] += 1

    def after(self, call: BrokerCall[Any], result: object) -> None:
        if call.op in MUTATIONS:
            self.scope.after_step(call.op)
        else:
            self.scope.guard()  # the answer reaches a dead process: nobody reads it

    def subscribe(self, handler: EventHandler) -> Subscription:
        self.scope.guard()
        scope = self.scope

        def deliver(event: BrokerEvent) -> Any:
            # A crash point at a fill: the process dies as the fill reaches it, before any
            # handler of it has seen the fill (a kill cannot raise into the event source).
            if isinstance(event, TradeEvent) and scope.at_fill(event):
                return None
            return handler(event)

        return self.scope.track(self.inner.subscribe(deliver))


class ScopedJournal:
    """The journal as seen from inside one process: writes are steps, everything is guarded.

    It forwards by name (the journal's API is still growing); :func:`scoped_journal` gives it the
    :class:`~orderguard.journal.base.Journal` type.
    """

    def __init__(self, inner: Journal, scope: ProcessScope) -> None:
        self._inner = inner
        self._scope = scope
        self.terminal_states = inner.terminal_states

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)
        if not callable(target):
            return target
        scope = self._scope

        async def call(*args: Any, **kwargs: Any) -> Any:
            if name in WRITES:
                return await scope.effect(f"journal.{name}", lambda: target(*args, **kwargs))
            scope.guard()
            return await target(*args, **kwargs)

        return call

    async def open(self) -> None:
        self._scope.guard()
        await self._inner.open()

    async def close(self) -> None:
        # A dead process closes nothing; a live one shuts down cleanly.
        if self._scope.alive:
            await self._inner.close()


def scoped_journal(inner: Journal, scope: ProcessScope) -> Journal:
    # ScopedJournal forwards every Journal method by name; mypy cannot see that structurally.
    return cast(Journal, ScopedJournal(inner, scope))


__all__ = [
    "ProcessKilled",
    "ProcessScope",
    "ScopedBroker",
    "ScopedJournal",
    "intent_scope",
    "scoped_journal",
]
