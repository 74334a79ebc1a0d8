"""Exits follow the account's actual position, whoever changed it (DESIGN §1.11, FAILURES F17).

The operations that own exposure on a contract (brackets, OCO pairs; finished ones whose exits
still protect what they own included) are its *holders*. What they own adds up to the account's
position unless someone else changed it: a close or a partial close from the trading platform, a
manual order, a whole-contract ``close_position``. Then exits sized to the old holdings would
over-cover the position, outlive it, or — once they fill — open a position the other way.

:class:`HoldingsFollower` keeps the holdings true. On every position event whose size disagrees
with what the holders own (and on the reconciler's periodic position reads, which arrive as
position events too), it reads the account consistently (orders, positions, orders again until no
fill fell between them), allocates the position among the holders with the pure
:func:`~orderguard.recovery.reconcile.allocate` (a decrease is taken from the newest holders
first; holdings on both sides net out), and credits every difference to its holder as closed
outside (``record_external_close``, journaled). Each holder's exits then follow:

* a running bracket saga is woken: it resizes its stop and target to what it now owns, cancels
  them (and its entry's rest) when that is nothing, and ends the bracket truthfully;
* a finished holder has no driver: its working exits are resized or cancelled here;
* a holder being rolled back is the protection executor's (it credits closes itself).

A finished operation that owns nothing any more but whose record still has an order acknowledged
and not known final is a holder too (of nothing): its exits are cancelled, and their final state
recorded, like any holder's whose share went to zero (a protective stop placed just after the
position it was for was credited away outlived it).

Nothing here flattens anything: a position smaller than the holdings is the account's truth, and
a larger one is exposure orderguard does not own.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any, Protocol

from orderguard.broker.base import BrokerEvent, OrderEvent, PositionEvent, TradeEvent
from orderguard.clock import Clock
from orderguard.errors import OrderGuardError
from orderguard.models import Order, OrderSide, OrderStatus
from orderguard.orders.metrics import HoldingsMetric
from orderguard.recovery.manager import (
    OperationRecoveryManager,
    OrderReference,
    RecoveryOperation,
    RefStatus,
)
from orderguard.recovery.protection import HOLDER_TYPES, closing
from orderguard.recovery.reconcile import AccountSnapshot, plan_recovery

log = logging.getLogger("orderguard.orders.holdings")

Key = tuple[int, str]


class FollowerHost(Protocol):
    """What the follower needs from the OrderManager."""

    @property
    def recovery(self) -> OperationRecoveryManager: ...

    @property
    def clock(self) -> Clock: ...

    async def read_truth(self, account_id: int, start: datetime) -> AccountSnapshot: ...

    async def cancel_exit(self, account_id: int, order_id: int) -> Order | None: ...

    async def resize_exit(self, account_id: int, order_id: int, size: int) -> Order | None: ...

    def cancel_requested(self, order_id: int) -> bool: ...

    def settle_leg(self, op: RecoveryOperation, ref: OrderReference) -> None: ...

    async def replace_stop(
        self, op: RecoveryOperation, gone: OrderReference, size: int
    ) -> None: ...


CHECK_SPACING = 1.0
"""Least seconds between the starts of two checks of one contract (half a recovery interval:
an outside change is still followed within one)."""


class HoldingsFollower:
    """Credits outside changes of a position to its holders (see the module docstring)."""

    def __init__(
        self,
        host: FollowerHost,
        *,
        spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]],
        wake_driver: Callable[[str], bool],
        driven_elsewhere: Callable[[str], bool],
        window_margin: timedelta = timedelta(minutes=5),
    ) -> None:
        self._host = host
        self._spawn = spawn
        self._wake_driver = wake_driver  # wake the saga driving an operation; False if none
        self._driven_elsewhere = driven_elsewhere  # the protection executor drives it
        self._margin = window_margin
        self._running: set[Key] = set()
        self._dirty: set[Key] = set()
        self.stats: Counter[HoldingsMetric] = Counter()

    # -- triggers (sync, from the event dispatch) ------------------------------------------
    def on_event(self, event: BrokerEvent) -> None:
        if isinstance(event, OrderEvent) and event.order.status is OrderStatus.CANCELLED:
            order = event.order
            key = (order.account_id, order.contract_id)
            if any(op.state.is_terminal and _is_leg(op, order.id) for op in self.holders(key)):
                self.schedule(key)  # a finished holder's exit cancelled: by the platform?
        if isinstance(event, PositionEvent):
            p = event.position
            key = (p.account_id, p.contract_id)
            holders = self.holders(key)
            if holders and sum(op.net_filled for op in holders) != p.signed_size:
                self.schedule(key)  # the holders do not own exactly the position
        elif isinstance(event, OrderEvent | TradeEvent):
            # A fill of an order no holder placed (a close from the platform, a manual order)
            # changed the position: checked even if the position's own event is lost.
            fill = event.order if isinstance(event, OrderEvent) else event.trade
            if isinstance(fill, Order) and fill.fill_volume == 0:
                return
            key = (fill.account_id, fill.contract_id)
            order_id = fill.id if isinstance(fill, Order) else fill.order_id
            holders = self.holders(key)
            if holders and not any(_is_leg(op, order_id) for op in holders):
                self.schedule(key)

    def schedule(self, key: Key) -> None:
        """Check ``key`` soon; if a check of it runs, once more after it."""
        if key in self._running:
            self._dirty.add(key)
            return
        self._running.add(key)
        self._spawn(self._drain(key))

    async def _drain(self, key: Key) -> None:
        clock = self._host.clock
        try:
            while True:
                self._dirty.discard(key)
                started = clock.monotonic()
                try:
                    await self.check(*key)
                except OrderGuardError as exc:
                    # Broker or journal trouble: the next position event or read tries again.
                    self.stats[HoldingsMetric.CHECK_ERRORS] += 1
                    log.warning("following the position on %s failed: %s", key, exc)
                if key not in self._dirty:
                    return
                if self._closing(key):
                    await clock.sleep(0.25)  # until the close has ended
                # One check per CHECK_SPACING at most: a burst of fills (an entry filling one
                # contract at a time, the platform's orders) asked for a check of three reads
                # each, and the rate budget they spent held protective reads back for 40 s.
                await clock.sleep(max(0.0, started + CHECK_SPACING - clock.monotonic()))
        finally:
            self._running.discard(key)

    # -- the check ---------------------------------------------------------------------------
    def holders(self, key: Key) -> list[RecoveryOperation]:
        """Operations that own exposure (or have exits working) on ``key``, oldest first."""
        recovery = self._host.recovery
        seen: dict[str, RecoveryOperation] = {}
        for op in [*recovery.active_operations.values(), *recovery.finished_holders()]:
            if op.operation_type not in HOLDER_TYPES or op.operation_id in seen:
                continue
            if _key_of(op) != key:
                continue
            # Finished ones come from ``finished_holders``: they own something or may still
            # have an exit working (a holder of nothing, whose exits go).
            if op.net_filled or op.orders:
                seen[op.operation_id] = op
        return sorted(seen.values(), key=lambda o: (o.started_at, o.operation_id))

    async def check(self, account_id: int, contract_id: str) -> int:
        """Credit what changed outside to the holders of one contract; returns how many were
        credited."""
        key = (account_id, contract_id)
        holders = self.holders(key)
        if not holders:
            return 0
        if self._closing(key):
            # A position close names whom it closes for (or closes the whole contract): it is
            # checked once that close has ended, so nothing is credited twice.
            self._dirty.add(key)
            return 0
        self.stats[HoldingsMetric.CHECKS] += 1
        start = min(op.started_at for op in holders) - self._margin
        truth = await self._host.read_truth(account_id, start)
        plans = plan_recovery(holders, {account_id: truth}, holders=holders)
        credited = 0
        for op, plan in zip(holders, plans, strict=True):
            if self._driven_elsewhere(op.operation_id):
                continue  # being rolled back: the protection executor credits on its own
            gone = plan.flattenable - plan.owned
            if gone == 0:
                if op.state.is_terminal and plan.owned == 0 and op.may_have_working_orders:
                    await self._follow_exits(op, 0, truth)  # a holder of nothing: its exits go
                elif op.state.is_terminal and plan.owned:
                    await self._replace_cancelled_stop(op, plan.owned, truth)
                continue
            credited += 1
            self.stats[HoldingsMetric.CREDITED] += 1
            log.info(
                "operation %s: %+d of its %+d closed outside (position %+d)",
                op.operation_id, gone, plan.owned, truth.net(contract_id),
            )  # fmt: skip
            note = f"{gone:+d} closed outside (the account's position changed)"
            op.errors.append(note)
            await self._host.recovery.record_external_close(op, gone)
            if not self._wake_driver(op.operation_id) and op.state.is_terminal:
                await self._follow_exits(op, plan.flattenable, truth)
                if plan.flattenable:
                    await self._replace_cancelled_stop(op, plan.flattenable, truth)
        return credited

    async def _replace_cancelled_stop(
        self, op: RecoveryOperation, share: int, truth: AccountSnapshot
    ) -> None:
        """A finished holder's stop that someone else cancelled (the trading platform) while
        the holder still owns ``share`` is placed again, at its price, for what it owns: a
        finished operation has no driver, and its position sat bare until the end (chaos seeds
        46, 209, 213). Not a stop orderguard cancelled, nor one the caller removed
        (``cancel_position_orders``), nor while another stop of it works or is in doubt."""
        by_id = {o.id: o for o in truth.orders}
        by_tag = {o.custom_tag: o for o in truth.orders if o.custom_tag}
        reducing = int(OrderSide.SELL if share > 0 else OrderSide.BUY)
        released = op.extra.get("released_legs", ())
        stops = [
            r for r in op.orders.values()
            if r.order_type == "stop" and r.side == reducing and "stop" not in released
        ]  # fmt: skip
        gone: OrderReference | None = None
        for ref in stops:
            order = (
                by_id.get(ref.order_id) if ref.order_id is not None else by_tag.get(ref.custom_tag)
            )
            if order is None:
                if ref.status in (RefStatus.INTENDED, RefStatus.UNKNOWN):
                    # In doubt (being placed, its outcome unknown, or sent by a process that
                    # died): never placed twice; its tag settles it (a finished record must
                    # not keep a leg in doubt, I5).
                    self._host.settle_leg(op, ref)
                    return
                continue
            if order.is_working:
                return
            if (
                order.status is OrderStatus.CANCELLED
                and not ref.cancel_attempted
                and not self._host.cancel_requested(order.id)
            ):
                gone = ref
        if gone is None or gone.price is None:
            return
        self.stats[HoldingsMetric.STOPS_REPLACED] += 1
        log.warning(
            "operation %s: its stop %s was cancelled outside orderguard; placing it again for %d",
            op.operation_id, gone.order_id, abs(share),
        )  # fmt: skip
        await self._host.replace_stop(op, gone, abs(share))

    def _closing(self, key: Key) -> bool:
        return closing(self._host.recovery, *key)

    async def _follow_exits(
        self, op: RecoveryOperation, share: int, truth: AccountSnapshot
    ) -> None:
        """A finished holder's working exits, resized to what it owns now (cancelled at 0)."""
        by_id = {o.id: o for o in truth.orders}
        reducing = OrderSide.SELL if share > 0 else OrderSide.BUY
        for ref in op.orders.values():
            order = by_id.get(ref.order_id) if ref.order_id is not None else None
            if order is not None and order.is_terminal and ref.status == RefStatus.CONFIRMED:
                # Its final state, recorded: the record tells the truth, and an operation with
                # nothing owned nor working is no holder any more.
                await self._host.recovery.record_order_state(op, ref, order)
                continue
            if order is None or not order.is_working or ref.status == RefStatus.REJECTED:
                continue
            if order.side is not reducing or share == 0:
                self.stats[HoldingsMetric.EXITS_CANCELLED] += 1
                log.info(
                    "operation %s owns %+d: cancelling its exit %s",
                    op.operation_id,
                    share,
                    order.id,
                )
                await self._host.cancel_exit(order.account_id, order.id)
            elif order.size - order.fill_volume > abs(share):
                self.stats[HoldingsMetric.EXITS_RESIZED] += 1
                log.info(
                    "operation %s owns %+d: resizing its exit %s", op.operation_id, share, order.id
                )
                await self._host.resize_exit(
                    order.account_id, order.id, order.fill_volume + abs(share)
                )


def _is_leg(op: RecoveryOperation, order_id: int) -> bool:
    return any(ref.order_id == order_id for ref in op.orders.values())


def _key_of(op: RecoveryOperation) -> Key:
    first = next(iter(op.orders.values()), None)
    account = op.account_id if op.account_id is not None else (first.account_id if first else 0)
    contract = op.contract_id or (first.contract_id if first else "")
    return account, contract


__all__ = ["HoldingsFollower"]
