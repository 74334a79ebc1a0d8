"""Bulk cancel, order modification and position close as journaled operations.

Each call is one :class:`~orderguard.recovery.operations.OperationType` operation in the journal,
so a crash mid-way leaves a record that says what was intended and what is known:

* ``BULK_CANCEL`` reports every order's final state (cancelled, filled first, unknown), and its
  operation ends ``completed`` only when every order ended cancelled;
* ``ORDER_MODIFICATION`` keeps the order's previous working state in the record; a rejected
  modification leaves it live unchanged, and an unknown one is answered from a re-read of the
  order, so the result always says exactly what is live;
* ``POSITION_CLOSE`` flattens only what the caller owns (FAILURES F13): an operation's net filled
  quantity, or an explicit size, never more than the account's position, and the whole contract
  only when asked. It sends a *tagged* market order rather than ``Position/closeContract`` or
  ``partialCloseContract``: those carry no customTag, so a lost answer could not be resolved and
  a re-send could close twice.

Risk-reducing work goes on when the journal cannot be written (F15): the operation is then not
recorded (``operation_id`` None) and the statistics count it. The manager builds
:class:`OrderOperations` with its :class:`~orderguard.orders.engine_context.EngineContext`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any

from orderguard.broker.base import Confirmed, Rejected
from orderguard.errors import (
    ExitNotReducingError,
    ExposureRefusedError,
    InvalidPriceError,
    InvalidSizeError,
    JournalError,
    OrderGuardError,
    OrderNotFoundError,
    OrderRejectedError,
    OutcomeUnknownError,
    ValidationError,
)
from orderguard.journal.base import IntentKind
from orderguard.models import Order, OrderSide, OrderStatus, OrderType
from orderguard.orders.engine_context import EngineContext
from orderguard.orders.metrics import Metric
from orderguard.orders.results import (
    CancelAllResult,
    CancelResult,
    CloseOutcome,
    ClosePositionResult,
    ModifyResult,
    Resolution,
)
from orderguard.orders.send.journaled_send import Mutation
from orderguard.orders.send.latch import AmbiguityLatch
from orderguard.orders.send.validation import (
    LIMIT_PRICED,
    STOP_PRICED,
    check_size,
    check_tick,
    coerce_price,
)
from orderguard.recovery.manager import RecoveryOperation
from orderguard.recovery.operations import OperationState, OperationType
from orderguard.resilience import Priority

log = logging.getLogger("orderguard.orders")

_S = OperationState


class OrderOperations:
    """The three journaled operations, run on behalf of one manager.

    ``latch`` refuses a modification that adds exposure on a contract in doubt;
    ``wake_driver`` wakes the engine driving an operation a close was made for."""

    def __init__(
        self, ctx: EngineContext, *, latch: AmbiguityLatch, wake_driver: Callable[[str], bool]
    ) -> None:
        self._ctx = ctx
        self._latch = latch
        self._wake_driver = wake_driver

    # -- journal helpers -------------------------------------------------------------------------
    async def _start(
        self,
        op_type: OperationType,
        account_id: int,
        contract_id: str | None,
        extra: Mapping[str, Any],
        *,
        reduces_exposure: bool,
    ) -> RecoveryOperation | None:
        """Start the operation; without a journal, go on unrecorded only if it reduces risk."""
        try:
            return await self._ctx.recovery.start_operation(
                op_type, account_id=account_id, contract_id=contract_id, extra=extra
            )
        except JournalError as exc:
            self._ctx.stats[Metric.JOURNAL_FAILURES] += 1
            if not reduces_exposure:
                self._ctx.stats[Metric.EXPOSURE_REFUSED_JOURNAL] += 1
                raise ExposureRefusedError(
                    f"{op_type.value} refused: the journal cannot be written ({exc})"
                ) from exc
            self._ctx.stats[Metric.UNJOURNALED_OPERATIONS] += 1
            log.error("journal unavailable; running %s unrecorded: %s", op_type.value, exc)
            return None

    async def _record(self, write: Awaitable[None]) -> None:
        """Run one operation-record write; a journal failure is counted, never hides a result."""
        try:
            await write
        except JournalError as exc:
            self._ctx.stats[Metric.JOURNAL_FAILURES] += 1
            log.error("operation record not journaled: %s", exc)

    async def _state(self, op: RecoveryOperation | None, target: OperationState, why: str) -> None:
        if op is not None:
            await self._record(self._ctx.recovery.transition_operation(op, target, why))

    # -- bulk cancel -----------------------------------------------------------------------------
    async def cancel_all(self, contract_id: str | None, account_id: int | None) -> CancelAllResult:
        ctx = self._ctx
        orders = await ctx.truth.search_open_orders(contract_id, account_id=account_id)
        account = await ctx.reference.any_account(account_id, orders[0] if orders else None)
        contract = orders[0].contract_id if contract_id is not None and orders else None
        op = await self._start(
            OperationType.BULK_CANCEL,
            account,
            contract,
            {"order_ids": [o.id for o in orders], "contract_filter": contract_id},
            reduces_exposure=True,
        )
        if not orders:
            await self._state(op, _S.COMPLETED, "no working orders")
            return CancelAllResult((), None if op is None else op.operation_id)
        await self._state(op, _S.IN_PROGRESS, f"cancelling {len(orders)} orders")

        async def one(order: Order) -> CancelResult:
            try:
                return await ctx.send.cancel_journaled(order.id, order.account_id, operation=op)
            except OrderGuardError as exc:
                # Not even sent (breaker open, connection refused): the order is as it was.
                return CancelResult(
                    order.id,
                    order.status,
                    found=True,
                    fill_volume=order.fill_volume,
                    resolution=Resolution.STATE_READ,
                    detail=str(exc),
                )

        results = tuple(await asyncio.gather(*(one(o) for o in orders)))
        if op is not None:
            op.extra["final_states"] = {
                str(r.order_id): None if r.status is None else r.status.name.lower()
                for r in results
            }
            if all(r.cancelled for r in results):
                await self._state(op, _S.COMPLETED, "every order cancelled")
            else:
                others = {k: v for k, v in op.extra["final_states"].items() if v != "cancelled"}
                await self._state(op, _S.PARTIALLY_COMPLETED, "some orders not cancelled")
                await self._state(op, _S.FAILED, f"not cancelled: {others}")
        return CancelAllResult(results, None if op is None else op.operation_id)

    # -- modify ----------------------------------------------------------------------------------
    async def modify(
        self,
        order_id: int,
        *,
        limit_price: Decimal | float | int | str | None,
        stop_price: Decimal | float | int | str | None,
        size: int | None,
        trail_price: Decimal | float | int | str | None,
        account_id: int | None,
        priority: Priority = Priority.NORMAL,
    ) -> ModifyResult:
        ctx = self._ctx
        if not isinstance(order_id, int) or isinstance(order_id, bool) or order_id <= 0:
            raise ValidationError(f"order id must be a positive int, got {order_id!r}")
        if limit_price is None and stop_price is None and size is None and trail_price is None:
            raise ValidationError("modify_order needs at least one of limit/stop/trail price, size")
        limit = None if limit_price is None else coerce_price(limit_price, "limit_price")
        stop = None if stop_price is None else coerce_price(stop_price, "stop_price")
        trail = None if trail_price is None else coerce_price(trail_price, "trail_price")
        new_size = None if size is None else check_size(size, ctx.config.max_order_size)
        order = await ctx.truth.get_order_by_id(order_id, account_id)
        if order is None:
            raise OrderNotFoundError(f"order {order_id} not found in any status")
        if order.is_terminal:
            return ModifyResult(
                order_id,
                success=False,
                order=order,
                resolution=Resolution.ALREADY_FINAL,
                error_message=f"order is {order.status.name.lower()}",
                previous=order,
            )
        contract = await ctx.contracts.resolve(order.contract_id)
        _check_applicable(order.type, limit=limit, stop=stop, trail=trail)
        for name, price in (("limit_price", limit), ("stop_price", stop), ("trail_price", trail)):
            if price is not None:
                check_tick(contract, price, name)
        if stop is not None:
            await ctx.reference.check_stop(contract, order.side, stop)
        grows = False
        if new_size is not None:
            check_size(new_size, await ctx.reference.max_order_size(order.account_id))
            if new_size <= order.fill_volume:
                raise InvalidSizeError(
                    f"size {new_size} must exceed the filled volume {order.fill_volume}"
                )
            # Growing an exit that, filled alone, would still only shrink the position (a
            # bracket's target resized to a grown position) adds no exposure: the latch, the
            # start-up hold and a refusing journal let it through, like a protective order.
            # Refused while the hold lasted, it was replaced by a second order instead, and
            # both together over-covered the position.
            position = ctx.feed.position(order.account_id, order.contract_id)
            grows = new_size > order.size and not (
                position is not None
                and position * order.side.sign < 0
                and new_size - order.fill_volume <= abs(position)
            )
            if grows:
                self._latch.check(order.account_id, order.contract_id)
                await ctx.risk.check_growth(order, new_size - order.size, contract)
        wanted = {"size": new_size, "limit_price": limit, "stop_price": stop, "trail_price": trail}
        acct = order.account_id
        previous = _snapshot(order)
        op = await self._start(
            OperationType.ORDER_MODIFICATION,
            acct,
            order.contract_id,
            {"order_id": order_id, "previous": previous, "requested": wanted},
            reduces_exposure=not grows,
        )
        intent = await ctx.journaled.intent(
            Mutation(
                IntentKind.MODIFY,
                account_id=acct,
                contract_id=order.contract_id,
                custom_tag=ctx.tags.journal_key("m"),
                request={"order_id": order_id, "changes": wanted, "previous": previous},
                reduces_exposure=not grows,
                operation=op,
                leg="modify",
            )
        )
        await self._state(op, _S.IN_PROGRESS, "modification sent")
        try:
            outcome = await ctx.journaled.modify(
                intent,
                acct,
                order_id,
                size=new_size,
                limit_price=limit,
                stop_price=stop,
                trail_price=trail,
                priority=priority,
            )
        except OrderGuardError as exc:
            await self._state(op, _S.FAILED, f"never sent: {exc}")
            raise
        ctx.stats[Metric.MODIFIES_SENT] += 1
        op_id = None if op is None else op.operation_id

        def result(live: Order | None, success: bool, **kw: Any) -> ModifyResult:
            return ModifyResult(
                order_id, success=success, order=live, operation_id=op_id, previous=order, **kw
            )

        if isinstance(outcome, Confirmed):
            live = ctx.tracker.get(order_id)
            if live is None or not _reflects(live, wanted):
                live = await ctx.feed.read_quietly(acct, order_id, priority) or live
            await self._state(op, _S.COMPLETED, "modification confirmed")
            return result(live, True)
        live = await ctx.feed.read_quietly(acct, order_id, priority)
        if isinstance(outcome, Rejected):
            # A rejected modification changed nothing: the previous working state is live.
            await self._state(
                op, _S.FAILED, f"rejected (code {outcome.code}); live: {_describe(live)}"
            )
            if live is not None and live.is_terminal:
                return result(
                    live,
                    False,
                    resolution=Resolution.STATE_READ,
                    error_code=outcome.code,
                    error_message=outcome.message,
                )
            raise OrderRejectedError(
                f"modify of order {order_id} rejected (code {outcome.code}): {outcome.message}; "
                f"the order is unchanged: {_describe(live)}",
                code=outcome.code,
                order_id=order_id,
            )
        if live is None:
            await self._state(op, _S.PARTIALLY_COMPLETED, "outcome unknown; order unreadable")
            raise OutcomeUnknownError(
                f"modify of order {order_id}: outcome unknown and the order could not be re-read",
                origin=outcome.origin.value,
            )
        applied = _reflects(live, wanted)
        await ctx.journaled.resolved(intent, live, f"live: {_describe(live)}")
        if applied:
            await self._state(op, _S.COMPLETED, "unknown outcome; change visible on the order")
        else:
            await self._state(
                op, _S.FAILED, f"unknown outcome; change not visible, live: {_describe(live)}"
            )
        return result(
            live,
            applied,
            resolution=Resolution.STATE_READ,
            error_message=None if applied else f"change not visible; live: {_describe(live)}",
        )

    # -- close -----------------------------------------------------------------------------------
    async def close_position(
        self,
        contract_key: str,
        *,
        size: int | None,
        operation_id: str | None,
        whole_contract: bool,
        account_id: int | None,
    ) -> ClosePositionResult:
        ctx = self._ctx
        if sum((size is not None, operation_id is not None, whole_contract)) != 1:
            raise ValidationError(
                "close_position needs exactly one of operation_id, size or whole_contract=True "
                "(the whole contract is closed only when asked: other operations may own part)"
            )
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size <= 0):
            raise InvalidSizeError(f"size must be a positive int, got {size!r}")
        contract = await ctx.contracts.resolve(contract_key)
        source: RecoveryOperation | None = None
        if operation_id is not None:
            source = await ctx.recovery.find_operation(operation_id)
            if account_id is None and source.account_id is not None:
                account_id = source.account_id
        account = await ctx.reference.any_account(account_id, None)
        # Broker truth; a failed read raises: absence of evidence never reads as "flat".
        position = await ctx.truth.owned_position(account, contract.id)
        if source is not None:
            owned = source.net_filled
        elif size is not None:
            owned = size if position >= 0 else -size
        else:
            owned = position
        qty = min(abs(owned), abs(position)) if owned * position > 0 else 0
        op = await self._start(
            OperationType.POSITION_CLOSE,
            account,
            contract.id,
            {
                "for_operation": operation_id,
                "size": size,
                "whole_contract": whole_contract,
                "owned": owned,
                "position_before": position,
            },
            reduces_exposure=True,
        )
        op_id = None if op is None else op.operation_id

        def result(
            closed: int, final: int | None, outcome: CloseOutcome, **kw: Any
        ) -> ClosePositionResult:
            return ClosePositionResult(
                op_id, contract.id, qty, closed, position, final, outcome, **kw
            )

        if qty == 0:
            await self._state(
                op, _S.COMPLETED, f"nothing to close (owned {owned}, held {position})"
            )
            return result(0, position, CloseOutcome.NOTHING_TO_CLOSE)
        signed = -qty if position > 0 else qty  # the flattening order's signed size
        side = OrderSide.BUY if signed > 0 else OrderSide.SELL
        tag: str | None = None
        if op is not None:
            try:
                ref = await ctx.recovery.add_order_to_operation(
                    op, contract.id, side, qty, "market", leg="close", account_id=account
                )
                tag = ref.custom_tag
            except JournalError as exc:
                ctx.stats[Metric.JOURNAL_FAILURES] += 1
                log.error("close intent not journaled (%s); flattening anyway", exc)
                op = None  # the record stays pending; cleanup closes it out (no legs)
        tag = tag or ctx.tags.next_tag()
        ctx.stats[Metric.POSITION_CLOSES] += 1
        order: Order | None
        try:
            order = await ctx.send.flatten_quantity(
                account, contract.id, signed, tag, exit_only=True
            )
        except ExitNotReducingError as exc:
            # Flattened by someone else since the position was read (the protection executor,
            # a stop, the platform): sent anyway, the close would open a position the other way.
            await self._state(op, _S.COMPLETED, f"nothing left to close: {exc}")
            return result(0, exc.position, CloseOutcome.NOTHING_TO_CLOSE, detail=str(exc))
        except OrderRejectedError as exc:
            await self._state(op, _S.FAILED, f"close order rejected: {exc}")
            final = await self._position_quietly(account, contract.id)
            return result(0, final, CloseOutcome.REJECTED, detail=str(exc))
        closed = 0 if order is None else order.fill_volume
        if source is not None and closed:
            direction = 1 if signed > 0 else -1
            await self._record(
                ctx.recovery.record_external_close(source, direction * closed, by=op_id)
            )
            await self._exits_follow(source)
        # A close for no one operation (a size, the whole contract) is an outside change to the
        # operations that hold the contract: the holdings follower credits it to them (newest
        # first) once this close has ended, and their exits follow.
        ctx.holdings.schedule((account, contract.id))
        final = await self._position_quietly(account, contract.id)
        order_id = None if order is None else order.id
        if op is not None and order is not None:
            leg = op.orders.get("close")
            if leg is not None:
                await self._record(ctx.recovery.record_order_state(op, leg, order))
        if order is None or not order.is_terminal:
            await self._state(op, _S.PARTIALLY_COMPLETED, "close order outcome unknown")
            return result(
                closed, final, CloseOutcome.UNKNOWN, order_id=order_id, detail="reconcile by tag"
            )
        if closed >= qty:
            await self._state(op, _S.COMPLETED, f"flattened {closed}")
            return result(closed, final, CloseOutcome.CLOSED, order_id=order_id)
        await self._state(op, _S.PARTIALLY_COMPLETED, f"flattened {closed} of {qty}")
        await self._state(op, _S.FAILED, f"flattened {closed} of {qty}; {qty - closed} held")
        return result(closed, final, CloseOutcome.PARTIAL, order_id=order_id)

    async def _exits_follow(self, source: RecoveryOperation) -> None:
        """The operation closed for learns it at once, and the call returns once its driver
        has ended it (its exits cancelled or resized), within the protection deadline: "closed"
        must not come back while the closed operation's exits still work on a flat account."""
        ctx = self._ctx
        if not self._wake_driver(source.operation_id) or source.net_filled != 0:
            return
        deadline = ctx.clock.monotonic() + ctx.config.protection_deadline
        while not source.state.is_terminal and ctx.clock.monotonic() < deadline:
            await ctx.clock.sleep(0.05)

    async def _position_quietly(self, account: int, contract_id: str) -> int | None:
        try:
            return await self._ctx.truth.owned_position(account, contract_id)
        except OrderGuardError as exc:
            log.warning("re-reading the position on %s failed: %s", contract_id, exc)
            return None


def _check_applicable(
    order_type: OrderType, *, limit: Decimal | None, stop: Decimal | None, trail: Decimal | None
) -> None:
    if limit is not None and order_type not in LIMIT_PRICED:
        raise InvalidPriceError(f"a {order_type.name} order has no limit price")
    if stop is not None and order_type not in STOP_PRICED:
        raise InvalidPriceError(f"a {order_type.name} order has no stop price")
    if trail is not None and order_type is not OrderType.TRAILING_STOP:
        raise InvalidPriceError(f"a {order_type.name} order has no trail price")


def _reflects(order: Order, wanted: Mapping[str, Any]) -> bool:
    return all(v is None or getattr(order, k) == v for k, v in wanted.items())


def _snapshot(order: Order) -> dict[str, Any]:
    return {
        "status": OrderStatus(order.status).name.lower(),
        "size": order.size,
        "fill_volume": order.fill_volume,
        "limit_price": order.limit_price,
        "stop_price": order.stop_price,
        "trail_price": order.trail_price,
    }


def _describe(order: Order | None) -> str:
    if order is None:
        return "unreadable"
    parts = [f"{order.status.name.lower()} size={order.size} filled={order.fill_volume}"]
    for name in ("limit_price", "stop_price", "trail_price"):
        value = getattr(order, name)
        if value is not None:
            parts.append(f"{name}={value}")
    return " ".join(parts)


__all__ = ["OrderOperations"]
