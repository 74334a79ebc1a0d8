"""One engine per OrderManager, created on first use and gone with the manager.

The bracket, OCO and position-order engines attach to a manager lazily (a manager that never
places a bracket never builds the bracket engine) and must not keep a dropped manager alive:
hence a weak mapping, here once for all of them.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from orderguard.orders.manager import OrderManager

_T = TypeVar("_T")


class PerManager(Generic[_T]):
    """``get`` builds the manager's instance on first use; ``peek`` never builds one."""

    def __init__(self, make: Callable[[OrderManager], _T]) -> None:
        self._make = make
        self._instances: weakref.WeakKeyDictionary[OrderManager, _T] = weakref.WeakKeyDictionary()

    def get(self, manager: OrderManager) -> _T:
        found = self._instances.get(manager)
        if found is None:
            found = self._instances[manager] = self._make(manager)
        return found

    def peek(self, manager: OrderManager) -> _T | None:
        return self._instances.get(manager)


__all__ = ["PerManager"]
