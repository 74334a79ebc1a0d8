"""Concurrent reads of the same thing share one request.

The saga poll, the protection executor, the holdings follower, the reconciler and placements in
doubt all read an account's orders and positions, often at the same moment. Each read is a request
out of a budget of 200 a minute, so duplicates are not free: spent in a busy minute, the budget held
a stop back for twenty seconds (chaos seed 103). :class:`Coalescer` keeps one read per key in
flight. A caller that finds none in flight starts one; a caller that finds one in flight waits
for the *next* read, which starts when the current one ends and is shared by everyone who arrived in
the meantime — never the one already in flight, which may have been sent before the change the
caller wants to see. Each batch reads the union of what its callers want (``merge``).

A read in flight for longer than ``hedge_after`` seconds is suspect (a delayed answer, a request
hanging until its timeout), for the keys ``hedged`` says (the gateway: the lanes protection waits
in). A second read then starts at once beside it — the batch of callers waiting for the next read,
or else the same read asked again — at most two in flight per key; whichever answers first serves
the callers of both when it covers what they want (it started after they asked), and the other is
cancelled. Waiting out one slow read, which alone could outlast the bound a position may stay bare,
costs ``hedge_after`` instead; a read fails only when every copy of it failed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from orderguard.clock import Clock
from orderguard.errors import ReadTimeoutError

K = TypeVar("K", bound=Hashable)
W = TypeVar("W")
T = TypeVar("T")


@dataclass(slots=True)
class _Batch(Generic[W, T]):
    want: W
    copies: int = 0  # reads started for it (a slow one is asked again once, never more)
    future: asyncio.Future[T] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


@dataclass(slots=True)
class _Slot(Generic[W, T]):
    running: bool = False
    pending: _Batch[W, T] | None = None
    # Reads in flight, oldest first: the batch each serves and when it started.
    inflight: dict[asyncio.Task[None], tuple[_Batch[W, T], float]] = field(default_factory=dict)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)  # a new batch is waiting


class Coalescer(Generic[K, W, T]):
    """Per key, one read in flight (two past ``hedge_after``) and one batch of waiters for the
    next (see module)."""

    def __init__(
        self,
        fetch: Callable[[K, W], Awaitable[T]],
        merge: Callable[[W, W], W],
        *,
        clock: Clock | None = None,
        hedge_after: float | None = None,
        hedged: Callable[[K], bool] = lambda key: True,
    ) -> None:
        if (clock is None) != (hedge_after is None):
            raise ValueError("a hedge needs both a clock and hedge_after")
        self._fetch = fetch
        self._merge = merge
        self._clock = clock
        self._hedge_after = hedge_after
        self._hedged = hedged
        self._slots: dict[K, _Slot[W, T]] = {}
        self._runners: set[asyncio.Task[None]] = set()
        self.shared = 0
        """Reads a caller got from a batch somebody else had started (requests saved)."""
        self.hedged = 0
        """Reads started beside a slow one still in flight."""

    async def read(self, key: K, want: W) -> T:
        slot = self._slots.setdefault(key, _Slot())
        batch = slot.pending
        if batch is None:
            batch = slot.pending = _Batch(want)
            slot.arrived.set()
        else:
            batch.want = self._merge(batch.want, want)
            self.shared += 1
        if not slot.running:
            slot.running = True
            task = asyncio.ensure_future(self._run(key, slot))
            self._runners.add(task)
            task.add_done_callback(self._runners.discard)
        # Shielded: one caller giving up must not cancel the read the others wait for.
        return await asyncio.shield(batch.future)

    def _now(self) -> float:
        return self._clock.monotonic() if self._clock is not None else 0.0

    def _hedge_wait(self, key: K, slot: _Slot[W, T]) -> float | None:
        """Seconds until a second read may start beside the one in flight (None: only once
        a read ends)."""
        if self._hedge_after is None or len(slot.inflight) != 1 or not self._hedged(key):
            return None
        ((batch, started),) = slot.inflight.values()
        if slot.pending is None and batch.copies > 1:
            return None  # asked twice already: its answer, or its failure, is waited for
        return max(0.0, started + self._hedge_after - self._now())

    def _launch(self, key: K, slot: _Slot[W, T], batch: _Batch[W, T]) -> None:
        batch.copies += 1
        task = asyncio.ensure_future(self._one(key, slot, batch))
        slot.inflight[task] = (batch, self._now())

    async def _run(self, key: K, slot: _Slot[W, T]) -> None:
        try:
            while slot.pending is not None or slot.inflight:
                if not slot.inflight:
                    assert slot.pending is not None
                    batch, slot.pending = slot.pending, None
                    self._launch(key, slot, batch)
                    continue
                wait = self._hedge_wait(key, slot)
                if wait == 0.0:
                    self.hedged += 1
                    if slot.pending is not None:
                        batch, slot.pending = slot.pending, None
                    else:
                        ((batch, _),) = slot.inflight.values()  # the same read, asked again
                    self._launch(key, slot, batch)
                    continue
                slot.arrived.clear()
                waits: set[asyncio.Future[Any]] = set(slot.inflight)
                if slot.pending is None:
                    waits.add(asyncio.ensure_future(slot.arrived.wait()))
                done = asyncio.ensure_future(
                    asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                )
                try:
                    if wait is None or self._clock is None:
                        await done
                    else:
                        with contextlib.suppress(TimeoutError):
                            await self._clock.wait_for(done, wait)
                finally:
                    for w in waits - set(slot.inflight):
                        w.cancel()
        finally:
            slot.running = False
            for task, (batch, _) in slot.inflight.items():
                task.cancel()
                _fail(batch.future, ReadTimeoutError("the shared read was cancelled"))
            pending, slot.pending = slot.pending, None
            if pending is not None:
                _fail(pending.future, ReadTimeoutError("the shared read was cancelled"))
            if self._slots.get(key) is slot:
                del self._slots[key]

    async def _one(self, key: K, slot: _Slot[W, T], batch: _Batch[W, T]) -> None:
        me = asyncio.current_task()
        try:
            result = await self._fetch(key, batch.want)
        except asyncio.CancelledError:
            # The read itself was cancelled (its task torn down, or another read answered
            # for it), not the waiters: to them it is a read that gave no answer.
            if not self._other_copy(slot, batch, me):
                _fail(batch.future, ReadTimeoutError("the shared read was cancelled"))
            raise
        except BaseException as exc:  # every waiter gets the read's own error ...
            if not isinstance(exc, Exception) or not self._other_copy(slot, batch, me):
                _fail(batch.future, exc)  # ... once no copy of it may answer
            if not isinstance(exc, Exception):
                raise
        else:
            if not batch.future.done():
                batch.future.set_result(result)
            # The other read in flight, if it started before this one: this answer started
            # after its callers asked, so it serves them too when it covers what they want.
            # A copy of this same read is no longer needed either way.
            before_me = True
            for task, (other, _) in list(slot.inflight.items()):
                if task is me:
                    before_me = False  # the reads after this one were asked for after it
                elif other is batch:
                    task.cancel()
                elif before_me and self._merge(batch.want, other.want) == batch.want:
                    if not other.future.done():
                        other.future.set_result(result)
                    task.cancel()
        finally:
            slot.inflight.pop(me, None)  # type: ignore[arg-type]

    @staticmethod
    def _other_copy(slot: _Slot[W, T], batch: _Batch[W, T], me: object) -> bool:
        return any(
            b is batch and t is not me and not t.done() for t, (b, _) in slot.inflight.items()
        )


def _fail(future: asyncio.Future[T], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
        future.exception()  # retrieved: no "never retrieved" warning without waiters


__all__ = ["Coalescer"]
