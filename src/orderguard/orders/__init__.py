"""Core order management: the :class:`OrderManager` facade and what it is built from.

Here: the manager (``manager``), the context its engines are built on (``engine_context``), the
guarded gateway to the broker (``gateway``, ``coalesce``), reference data (``contracts``,
``reference_data``), operations (``operations``: bulk cancel, modify, close), start-up recovery
(``startup_recovery``), exposure timing (``exposure``), the manager's counters (``metrics``), user
callbacks (``callbacks``), results (``results``) and tags (``tags``). The subpackages:

* :mod:`~orderguard.orders.send`: the path of one mutation (checks, journal, send, outcome);
* :mod:`~orderguard.orders.feed`: where the manager learns about orders (events, reads, tracker,
  the continuous reconciler);
* :mod:`~orderguard.orders.bracket`, :mod:`~orderguard.orders.oco`,
  :mod:`~orderguard.orders.positions`: the engines, each on one engine context.

Every module under ``orderguard.orders`` is internal: callers import the public names from
``orderguard`` (pinned by ``tests/test_public_api.py``); the few re-exported below are kept for
code that imports them from here.
"""

from orderguard.orders.callbacks import EVENT_NAMES
from orderguard.orders.feed.tracking import OrderChange, OrderTracker
from orderguard.orders.manager import OrderManager
from orderguard.orders.results import (
    CancelAllResult,
    CancelResult,
    ModifyResult,
    OrderPlaceResponse,
    Resolution,
)
from orderguard.orders.send.latch import AmbiguityLatch, LatchEntry
from orderguard.orders.tags import TagFactory

__all__ = [
    "EVENT_NAMES",
    "AmbiguityLatch",
    "CancelAllResult",
    "CancelResult",
    "LatchEntry",
    "ModifyResult",
    "OrderChange",
    "OrderManager",
    "OrderPlaceResponse",
    "OrderTracker",
    "Resolution",
    "TagFactory",
]
