"""Deliberate bugs, switched on only inside a ``with`` block, to prove the chaos runner can fail.

A checker that never fails proves nothing. Each :class:`PlantedBug` re-creates a known failure of
the incumbent (FAILURES.md) by patching the order path (the OrderManager's placement pipeline)
for the duration of the block::

    with planted_bugs(PlantedBug.SKIP_TAG_RESOLUTION):
        report = run_chaos(range(5), ChaosConfig(faults="all"))
    assert any(v.invariant == "I3" for v in report.violations)

Test-only: nothing in orderguard reads these switches, and leaving the block restores the
original code even if the block raises.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Any

from orderguard.broker.base import Confirmed, Rejected
from orderguard.errors import OrderRejectedError
from orderguard.orders.placement import PlacementPipeline
from orderguard.orders.results import OrderPlaceResponse


class PlantedBug(StrEnum):
    SKIP_TAG_RESOLUTION = "skip_tag_resolution"
    """An Unknown placement is taken for a failure and re-sent under a new customTag, without
    looking the first tag up (project-x-py's duplicate-order bug)."""


async def _resend_with_new_tag(
    self: PlacementPipeline, request: Any, *args: Any, **kwargs: Any
) -> OrderPlaceResponse:
    # THE BUG: never ask the broker whether the first request executed.
    retry = dataclasses.replace(request, custom_tag=self._ctx.tags.next_tag())
    outcome = await self._ctx.gateway.inner.place_order(retry)  # the adapter itself, unguarded
    if isinstance(outcome, Confirmed) and outcome.order_id is not None:
        return OrderPlaceResponse(order_id=outcome.order_id, custom_tag=retry.custom_tag)
    if isinstance(outcome, Rejected):
        raise OrderRejectedError(outcome.message, code=outcome.code, order_id=outcome.order_id)
    return await _resend_with_new_tag(self, retry)


_PATCHES: dict[PlantedBug, tuple[str, Any]] = {
    PlantedBug.SKIP_TAG_RESOLUTION: ("_resolve_placement", _resend_with_new_tag),
}


@contextmanager
def planted_bugs(*bugs: PlantedBug) -> Iterator[None]:
    """Switch ``bugs`` on for the block (see the module docstring)."""
    saved: list[tuple[str, Any]] = []
    try:
        for bug in bugs:
            name, replacement = _PATCHES[bug]
            if not hasattr(PlacementPipeline, name):
                raise RuntimeError(f"cannot plant {bug.value}: PlacementPipeline.{name} is gone")
            saved.append((name, PlacementPipeline.__dict__[name]))
            setattr(PlacementPipeline, name, replacement)
        yield
    finally:
        for name, original in reversed(saved):
            setattr(PlacementPipeline, name, original)


__all__ = ["PlantedBug", "planted_bugs"]
