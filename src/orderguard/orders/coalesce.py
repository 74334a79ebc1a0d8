"""Concurrent reads of the same thing share one request.

The saga poll, the protection executor, the holdings follower, the reconciler and placements in
doubt all read an account's orders and positions, often at the same moment. Each read is a request
out of a budget of 200 a minute, so duplicates are not free: spent in a busy minute, the budget held
a stop back for twenty seconds (chaos seed 103). :class:`Coalescer` keeps at most one read per key
in flight. A caller that finds none in flight starts one; a caller that finds one in flight waits
for the *next* read, which starts when the current one ends and is shared by everyone who arrived in
the meantime — never the one already in flight, which may have been sent before the change the
caller wants to see. Each batch reads the union of what its callers want (``merge``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from orderguard.errors import ReadTimeoutError

K = TypeVar("K", bound=Hashable)
W = TypeVar("W")
T = TypeVar("T")


@dataclass(slots=True)
class _Batch(Generic[W, T]):
    want: W
    future: asyncio.Future[T] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


@dataclass(slots=True)
class _Slot(Generic[W, T]):
    running: bool = False
    pending: _Batch[W, T] | None = None


class Coalescer(Generic[K, W, T]):
    """Per key, one read in flight and one batch of waiters for the next (see module)."""

    def __init__(
        self,
        fetch: Callable[[K, W], Awaitable[T]],
        merge: Callable[[W, W], W],
    ) -> None:
        self._fetch = fetch
        self._merge = merge
        self._slots: dict[K, _Slot[W, T]] = {}
        self._runners: set[asyncio.Task[None]] = set()
        self.shared = 0
        """Reads a caller got from a batch somebody else had started (requests saved)."""

    async def read(self, key: K, want: W) -> T:
        slot = self._slots.setdefault(key, _Slot())
        batch = slot.pending
        if batch is None:
            batch = slot.pending = _Batch(want)
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

    async def _run(self, key: K, slot: _Slot[W, T]) -> None:
        try:
            while slot.pending is not None:
                batch, slot.pending = slot.pending, None
                try:
                    result = await self._fetch(key, batch.want)
                except asyncio.CancelledError:
                    # The read itself was cancelled (its task torn down), not the waiters: to
                    # them it is a read that gave no answer.
                    _fail(batch.future, ReadTimeoutError("the shared read was cancelled"))
                    raise
                except BaseException as exc:  # every waiter gets the read's own error
                    _fail(batch.future, exc)
                    if not isinstance(exc, Exception):
                        raise
                else:
                    if not batch.future.done():
                        batch.future.set_result(result)
        finally:
            slot.running = False
            pending, slot.pending = slot.pending, None
            if pending is not None:
                _fail(pending.future, ReadTimeoutError("the shared read was cancelled"))
            if self._slots.get(key) is slot:
                del self._slots[key]


def _fail(future: asyncio.Future[T], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
        future.exception()  # retrieved: no "never retrieved" warning without waiters


__all__ = ["Coalescer"]
