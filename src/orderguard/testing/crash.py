"""``kill(manager)``: end an OrderManager the way ``kill -9`` ends its process, for crash tests.

What dies with a process is its threads of control and its connections: the manager's background
tasks (sagas, re-checks, the reconciler, callbacks) are cancelled and its event subscription is
closed. Nothing is flushed and nothing is awaited: the journal and the broker stay exactly as the
crash left them, and a new :class:`~orderguard.OrderManager` started on the same journal and
broker shows what recovery makes of it::

    kill(first)
    second = OrderManager(broker, clock=clock, journal=journal)
    await second.start()          # start-up recovery runs here

Tasks are cancelled in the order they were created, so a seeded run replays exactly (a set of
tasks iterates by address).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orderguard.orders.manager import OrderManager


def _creation_order(task: asyncio.Task[object]) -> tuple[str, int]:
    """asyncio names tasks ``Task-<n>`` from a process-wide counter: n is creation order."""
    name = task.get_name()
    head, _, tail = name.rpartition("-")
    return (head, int(tail)) if tail.isdigit() else (name, 0)


def kill(manager: OrderManager) -> None:
    """Kill ``manager``'s simulated process now (see the module docstring). Idempotent."""
    # The one place outside the manager that touches its task set: a crash is not an API the
    # manager offers (cleanup() is the clean way out), so the test helper reaches in, and a
    # rename must fail here rather than kill nothing.
    for task in sorted(manager._tasks, key=_creation_order):
        task.cancel()
    manager._close_subscription()


__all__ = ["kill"]
