"""A cancel as one journaled mutation, confirmed by reading the order's final state.

A cancel's answer is not the order's fate: an accepted cancel can lose the race to a fill, and a
lost answer says nothing. So every cancel ends with the order's state read back from the broker,
and "not found" and "already filled" are states, returned, not raised (FAILURES F11). A cancel
reduces risk, so it goes out even when the journal cannot be written (F15).

:class:`Canceller` is owned by the :class:`~orderguard.orders.manager.OrderManager`, which checks
the order id and gives it its collaborators explicitly.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from orderguard.broker.base import Confirmed, Rejected, Unknown
from orderguard.errors import OrderGuardError
from orderguard.journal.base import IntentKind
from orderguard.models import Order
from orderguard.orders.metrics import Metric
from orderguard.orders.results import CancelResult, Resolution
from orderguard.orders.send.backoff import status_check_delays
from orderguard.orders.send.journaled_send import Mutation, SendContext
from orderguard.recovery.manager import RecoveryOperation
from orderguard.resilience import PRIORITY_LANE, Priority

log = logging.getLogger("orderguard.orders")

REMEMBERED_CANCELS = 10_000
"""Order ids :meth:`Canceller.requested` remembers (oldest forgotten first)."""

RefreshOrder = Callable[[int, int, Priority], Awaitable[Order | None]]
"""``(account_id, order_id, priority)``: read the order from the broker, merge it into the
tracker, return the merged view (None when the broker has no such order)."""


class Canceller:
    """Sends journaled cancels and confirms each order's final state (see module docstring)."""

    def __init__(
        self,
        ctx: SendContext,
        *,
        refresh: RefreshOrder,
    ) -> None:
        self._ctx = ctx
        self._refresh = refresh
        self._requested: OrderedDict[int, None] = OrderedDict()

    def requested(self, order_id: int) -> bool:
        """Whether this process asked the broker to cancel ``order_id`` (any caller, any
        outcome): an order found cancelled that orderguard never asked to cancel was cancelled
        by someone else (the trading platform)."""
        return order_id in self._requested

    async def cancel(
        self,
        order_id: int,
        account_id: int | None,
        *,
        operation: RecoveryOperation | None,
        priority: Priority,
        settle: bool,
    ) -> CancelResult:
        """Cancel ``order_id`` (already checked) and report its final state (see
        :meth:`OrderManager.cancel_journaled
        <orderguard.orders.manager.OrderManager.cancel_journaled>`)."""
        known = self._ctx.tracker.get(order_id)
        account = await self._ctx.reference.any_account(account_id, known)
        if known is not None and known.is_terminal:
            return _cancel_result(
                order_id, known, accepted=False, resolution=Resolution.ALREADY_FINAL
            )
        self._requested[order_id] = None
        self._requested.move_to_end(order_id)
        while len(self._requested) > REMEMBERED_CANCELS:
            self._requested.popitem(last=False)
        cancel = Mutation(
            IntentKind.CANCEL,
            account_id=account,
            contract_id=known.contract_id if known is not None else "",
            custom_tag=self._ctx.tags.journal_key("c"),
            request={"order_id": order_id},
            reduces_exposure=True,
            operation=operation,
            leg=f"cancel{order_id}",
        )
        intent = await self._ctx.send.intent(cancel)
        outcome = await self._ctx.send.cancel(intent, account, order_id, priority)
        self._ctx.stats[Metric.CANCELS_SENT] += 1
        lane = priority if priority in PRIORITY_LANE else Priority.QUERY
        if isinstance(outcome, Confirmed):
            view = self._ctx.tracker.get(order_id)
            if view is None or not view.is_terminal:
                # Accepted; confirm the final state (a cancel can lose the race to a fill).
                view = await self.await_final(account, order_id, poll=True, priority=lane)
            return _cancel_result(order_id, view, accepted=True, resolution=Resolution.CONFIRMED)
        code = outcome.code if isinstance(outcome, Rejected) else 0
        detail = outcome.message if isinstance(outcome, Rejected) else outcome.detail
        view = await self.await_final(
            account, order_id, poll=settle and isinstance(outcome, Unknown), priority=lane
        )
        if isinstance(outcome, Unknown) and (view is None or view.is_terminal):
            await self._ctx.send.resolved(
                intent,
                view,
                "absent" if view is None else f"order status={view.status.name}",
            )
        return _cancel_result(
            order_id,
            view,
            accepted=False,
            resolution=Resolution.STATE_READ,
            error_code=code,
            detail=detail,
        )

    async def await_final(
        self, account_id: int, order_id: int, *, poll: bool, priority: Priority = Priority.QUERY
    ) -> Order | None:
        """Re-read the order; with ``poll``, keep reading (status-check schedule) until final."""
        view = self._ctx.tracker.get(order_id)
        delays = status_check_delays(self._ctx.config, self._ctx.jitter) if poll else iter((0.0,))
        for delay in delays:
            if delay:
                await self._ctx.clock.sleep(delay)
            try:
                view = await self._refresh(account_id, order_id, priority)
            except OrderGuardError as exc:
                log.warning("re-reading order %s failed: %s", order_id, exc)
                continue
            if view is None or view.is_terminal:
                return view
        return view


def _cancel_result(
    order_id: int,
    order: Order | None,
    *,
    accepted: bool,
    resolution: Resolution,
    error_code: int = 0,
    detail: str = "",
) -> CancelResult:
    return CancelResult(
        order_id=order_id,
        status=order.status if order is not None else None,
        found=order is not None,
        fill_volume=order.fill_volume if order is not None else 0,
        accepted=accepted,
        resolution=resolution,
        error_code=error_code,
        detail=detail or ("" if order is not None else "no order with this id in any status"),
    )


__all__ = ["REMEMBERED_CANCELS", "Canceller", "RefreshOrder"]
