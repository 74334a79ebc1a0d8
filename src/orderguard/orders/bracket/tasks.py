"""A bracket saga's work in flight: one background task per target.

The saga's driver starts each action (and each REST re-read) as its own background task, keyed
by what it acts on (:func:`~orderguard.orders.bracket.state.action_target`: a
leg, the entry, one order, the flatten). While one is in flight the planner's repeat of it is
skipped, but everything else goes ahead. :class:`ActionTasks` keeps those tasks; what a task's
failure means (retry, give up, stop) is the saga's, given as ``guard``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from orderguard.orders.bracket.plan import Action

Work = Coroutine[Any, Any, None]


class ActionTasks:
    """The tasks in flight, by target (see the module docstring)."""

    def __init__(
        self,
        spawn: Callable[[Work], asyncio.Task[None]],
        *,
        guard: Callable[[Work], Work],
        ended: Callable[[], object],
    ) -> None:
        self._spawn = spawn  # starts a background task the manager keeps and reports
        self._guard = guard  # runs the work, handling its failure
        self._ended = ended  # a task ended: the driver re-plans with what it changed
        self._tasks: dict[str, asyncio.Task[None]] = {}  # what an action acts on -> its task
        self._actions: dict[str, Action] = {}

    def __contains__(self, key: str) -> bool:
        return key in self._tasks

    def __bool__(self) -> bool:
        return bool(self._tasks)

    def get(self, key: str) -> asyncio.Task[None] | None:
        return self._tasks.get(key)

    def action(self, key: str) -> Action | None:
        """The action the task for ``key`` runs (None for a re-read)."""
        return self._actions.get(key)

    def launch(self, key: str, work: Work, action: Action | None = None) -> None:
        task = self._spawn(self._run(key, work))
        # A task cancelled before it starts (a crash, cleanup) never runs ``work``: close it so
        # it is not reported as a coroutine never awaited. On a finished coroutine it is a no-op.
        task.add_done_callback(lambda _: work.close())
        self._tasks[key] = task
        if action is None:
            self._actions.pop(key, None)
        else:
            self._actions[key] = action

    def cancel_all(self) -> None:
        for task in self._tasks.values():
            task.cancel()

    async def _run(self, key: str, work: Work) -> None:
        try:
            await self._guard(work)
        finally:
            if self._tasks.get(key) is asyncio.current_task():
                del self._tasks[key]
                self._actions.pop(key, None)
            self._ended()


__all__ = ["ActionTasks"]
