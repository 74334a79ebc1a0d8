"""The journal of a chaos world: memory or SQLite, with injected write failures, replayable.

:class:`ChaosJournal` sits between the simulated processes (their
:class:`~orderguard.chaos.process.ScopedJournal`) and the real backend, which outlives every
process like a disk does. It adds three things:

* **Injected failures.** A durable write fails with a retryable
  :class:`~orderguard.errors.JournalError` with probability ``write_failure`` (a locked or busy
  file), and every write fails during a *disk-full period* (:meth:`disk_full`). A deferred write
  (``durable=False``) that falls in a disk-full period is lost, as a real backend loses it (it
  logs and counts the failure; nobody awaits it). Nothing is injected while ``enabled`` is off
  (a quiet point) except a disk-full period already running.
* **Replayable SQLite.** The SQLite journal writes on its own thread; when that thread answers is
  real time, not virtual time. Each call here therefore runs alone (a FIFO lock, so the file's
  state when a call starts is fixed by the order of calls), is followed by a flush (so nothing
  is still being committed behind the next call), runs inside ``clock.io()`` (virtual time does
  not move while the thread works) and hands its result back only at a virtual instant fixed
  *before* the I/O started. So the moment a caller resumes never depends on how fast the disk
  was, and a seed replays byte for byte.
* **An observation hook.** ``on_terminal`` is called right after an operation is first written
  in a terminal state (the I7 check looks at broker truth at that instant).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

from orderguard.clock import Clock
from orderguard.errors import JournalError
from orderguard.journal.base import WRITES, Journal
from orderguard.journal.memory import MemoryJournal
from orderguard.journal.sqlite import SqliteJournal

# A result reaches the caller this long after its call began (virtual seconds). An odd value, so
# no other timer of the world lands on exactly the same instant.
_HAND_BACK = 0.000_137


class ChaosJournal:
    """A :class:`~orderguard.journal.base.Journal` over ``inner`` (see the module docstring)."""

    def __init__(
        self,
        inner: Journal,
        clock: Clock,
        *,
        rng: random.Random | None = None,
        write_failure: float = 0.0,
        serialize: bool = False,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.inner = inner
        self.terminal_states = inner.terminal_states
        self._clock = clock
        self._rng = rng or random.Random(0)
        self.write_failure = write_failure
        self.enabled = True
        self._serialize = serialize
        self._lock = asyncio.Lock()
        self._log = log
        self._full_until = -1.0
        self.injected = 0
        self.lost_deferred = 0
        self.on_terminal: Callable[[str], Awaitable[None]] | None = None
        self._ended: set[str] = set()

    # -- faults -----------------------------------------------------------------------------
    def disk_full(self, seconds: float) -> None:
        """Every write fails for ``seconds`` from now (retryable, like SQLITE_FULL)."""
        self._full_until = self._clock.monotonic() + seconds
        self._note(f"journal disk full for {seconds:.3f}s")

    @property
    def full(self) -> bool:
        return self._clock.monotonic() < self._full_until

    def _note(self, text: str) -> None:
        if self._log is not None:
            self._log(text)

    def _inject(self, name: str, durable: bool) -> str | None:
        """Why this write fails (None: it goes through). One draw per write, used or not."""
        draw = self._rng.random()
        if self.full:
            return "disk full"
        if durable and self.enabled and draw < self.write_failure:
            return "database is locked"
        return None

    # -- the Journal contract ---------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if not callable(target):
            return target

        async def call(*args: Any, **kwargs: Any) -> Any:
            if name in WRITES:
                return await self._write(name, target, args, kwargs)
            return await self._run(lambda: target(*args, **kwargs))

        return call

    async def _write(
        self, name: str, target: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kw: Any
    ) -> Any:
        durable = bool(kw.get("durable", True))
        why = self._inject(name, durable)
        if why is not None:
            self.injected += 1
            if not durable:
                self.lost_deferred += 1
                self._note(f"journal lost deferred {name}: {why}")
                return None
            self._note(f"journal refused {name}: {why}")
            err = JournalError(f"injected: {why}")
            err.retryable = True
            raise err
        result = await self._run(lambda: target(*args, **kw))
        if name == "update_operation" and self.on_terminal is not None:
            state = args[1] if len(args) > 1 else kw.get("state")
            operation_id = str(args[0] if args else kw.get("operation_id"))
            # The write that ends it, not a later one of its finished record (its exits' final
            # states, a stop placed again): bare exposure after its end is I6's to bound.
            ends = str(getattr(state, "value", state)) in self.terminal_states
            if ends and operation_id not in self._ended:
                self._ended.add(operation_id)
                await self.on_terminal(operation_id)
        return result

    async def _run(self, call: Callable[[], Awaitable[Any]]) -> Any:
        if not self._serialize:
            return await call()
        async with self._lock:
            loop = asyncio.get_running_loop()
            ready: asyncio.Future[None] = loop.create_future()

            def hand_back() -> None:
                if not ready.done():
                    ready.set_result(None)

            timer = self._clock.call_later(_HAND_BACK, hand_back)
            try:
                async with self._clock.io():
                    # Shielded: a caller cancelled mid-write (its process died) must not leave
                    # the thread writing while the next call starts.
                    work = asyncio.ensure_future(self._settled(call))
                    try:
                        result = await asyncio.shield(work)
                    except asyncio.CancelledError:
                        with contextlib.suppress(BaseException):
                            await work
                        raise
                await ready
            finally:
                timer.cancel()
            return result

    async def _settled(self, call: Callable[[], Awaitable[Any]]) -> Any:
        result = await call()
        await self.inner.flush()
        return result

    async def open(self) -> None:
        await self._run(self.inner.open)

    async def close(self) -> None:
        await self._run(self.inner.close)


def as_journal(journal: ChaosJournal) -> Journal:
    # ChaosJournal forwards every Journal method by name; mypy cannot see that structurally.
    return cast(Journal, journal)


class JournalHome:
    """Where a seed's journal lives: memory, or a SQLite file in a temporary directory."""

    def __init__(self, kind: str, clock: Clock) -> None:
        self.kind = kind
        self._dir: Path | None = None
        self.backend: Journal
        if kind == "sqlite":
            # tmpfs when there is one: fsyncs stay real calls but cost no disk time.
            base = "/dev/shm" if Path("/dev/shm").is_dir() else None
            self._dir = Path(tempfile.mkdtemp(prefix="orderguard-chaos-", dir=base))
            self.backend = cast(Journal, SqliteJournal(self._dir / "journal.db", clock))
        else:
            self.backend = MemoryJournal(clock)

    @property
    def serialize(self) -> bool:
        return self.kind == "sqlite"

    async def open(self) -> None:
        await self.backend.open()

    async def close(self) -> None:
        try:
            if self.kind == "sqlite":
                await self.backend.close()
        finally:
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)


__all__ = ["ChaosJournal", "JournalHome", "as_journal"]
