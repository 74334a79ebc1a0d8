"""Core order management: placement, modification, cancellation and order state tracking."""

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
