"""Position orders: ``add_stop_loss``, ``add_take_profit``, ``cancel_position_orders``.

What the incumbent gets wrong and this does instead (FAILURES, "known failures"):

* ``cancel_position_orders`` *really* cancels: it reads the contract's working orders from the
  broker (open ones and Suspended bracket children), cancels the requested kinds, re-reads each
  order's final state and reports it — an order that filled before its cancel is reported filled
  (F11), and one still working afterwards is counted in ``failed`` with the reason.
* protective orders never outlive their position: every stop or target placed here is *managed*
  — the :class:`~orderguard.orders.positions.watch.PositionWatcher` resizes it when the position
  changes outside a bracket and cancels it when the position goes flat or flips (I2), including
  after ``Position/closeContract``, which leaves exit orders behind at the broker.

A protective order is placed as a journaled operation (type ``protective_order``): the intent and
its deterministic customTag are recorded, and the exit is entered in the durable registry, *before*
the order is sent — so after a crash the next process finds it by tag and keeps managing it
(:meth:`PositionOrders.resume`). Every check is made before anything is written or sent; bad input
raises a typed :class:`~orderguard.errors.ValidationError` (:class:`NoPositionError` when there is
no position to protect).

No locks anywhere: a callback may call back into any of these methods (F12).

Over 500 lines: the three seed calls and the adoption and replacement of exits share the exit
registry and the journaled placement of one exit; following positions is positions/watch.py, the
rules positions/rules.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from decimal import Decimal

from orderguard.broker.base import Rejected, Unknown, UnknownOrigin
from orderguard.errors import (
    AlreadyProtectedError,
    InvalidPriceError,
    InvalidSizeError,
    JournalError,
    NoPositionError,
    OrderGuardError,
    OrderNotFoundError,
    OrderRejectedError,
    OutcomeUnknownError,
    ValidationError,
)
from orderguard.models import Order, OrderRequest, OrderSide, OrderType
from orderguard.orders.contracts import ContractResolver
from orderguard.orders.engine_context import EngineContext
from orderguard.orders.metrics import PositionOrderMetric
from orderguard.orders.positions.registry import ExitRegistry, ManagedExit
from orderguard.orders.positions.results import (
    CancelPositionOrdersResult,
    PositionOrderOutcome,
    ProtectiveOrderResponse,
)
from orderguard.orders.positions.rules import (
    ORDER_KINDS,
    ExitKind,
    check_protective_stop,
    check_protective_target,
    classify_order,
    kind_of_type,
    reducing_side,
)
from orderguard.orders.positions.watch import PositionWatcher, both, hedged
from orderguard.orders.send.validation import check_size, check_tick, coerce_price
from orderguard.recovery.manager import OrderReference, RecoveryOperation
from orderguard.recovery.operations import OperationType
from orderguard.resilience import Priority

log = logging.getLogger("orderguard.orders.positions")

OrderKinds = Iterable[str]
"""Which kinds ``cancel_position_orders`` cancels: any of "entry", "stop", "target"."""
DEFAULT_ORDER_TYPES: tuple[str, ...] = ORDER_KINDS
CANCEL_ATTEMPTS = 3
"""Cancels per order in ``cancel_position_orders`` while it is still read back as working.

Re-sending a cancel is safe (cancelling a finished order changes nothing), unlike a placement."""

_LANE = Priority.PROTECTIVE
_LINKED_OPERATIONS = frozenset({OperationType.BRACKET_ORDER, OperationType.OCO_PAIR})


class PositionOrders:
    """Position-order management for one manager (it builds one and hands it its context).

    ``release_exits`` tells the bracket engine that orders are being removed by the caller
    (``BracketEngine.release_exits``): a live bracket must not place them again."""

    def __init__(
        self, ctx: EngineContext, *, release_exits: Callable[[Iterable[int], str], object]
    ) -> None:
        self._ctx = ctx
        self._release_exits = release_exits
        # The manager's resolver: its cache is shared with placement, so a contract an entry
        # resolved is not read again (in the query lane) when protecting the position.
        self._contracts: ContractResolver = ctx.contracts
        self.registry = ExitRegistry(ctx.journal)
        self.watcher = PositionWatcher(
            ctx,
            self.registry,
            enabled=ctx.config.follow_position_orders,
            interval=ctx.config.position_recheck_interval,
        )
        self.watcher.replacer = self._replace_exit
        self._remove_listener = ctx.listen(self.watcher.on_event)
        self._loaded = False
        self.stats: Counter[PositionOrderMetric] = Counter()

    # -- lifecycle --------------------------------------------------------------------------------
    async def resume(self) -> int:
        """Reload the exits from the journal and start re-checking them; returns how many.

        ``OrderManager.start`` calls it, so exits journaled by an earlier process are followed
        again. The re-checks run in the background: ``start`` (and the caller's own protection
        after it) must not wait on their reads. Exits this process has not seen placed (an OCO
        exit pair or a plain stop placed just before a crash, on a position start-up recovery
        read) are adopted the same way, or a close before their first event would leave them
        working on a flat contract.
        """
        await self._ensure_loaded()
        feed = self._ctx.feed
        keys = self.registry.contracts() | {
            key for key in self.watcher.candidates() if feed.position(*key)
        }
        for key in sorted(keys):
            self.watcher.schedule(key)
        if keys:
            self.watcher.ensure_rechecks()
        return len(self.registry)

    async def _ensure_loaded(self) -> None:
        if not self._loaded:
            await self.registry.load()
            self._loaded = True

    def managed_exits(self, contract_id: str | None = None) -> list[ManagedExit]:
        """The exits whose size follows their position (optionally on one contract)."""
        return [e for e in self.registry if contract_id is None or e.contract_id == contract_id]

    # -- protective orders ------------------------------------------------------------------------
    async def add_stop_loss(
        self,
        contract_id: str,
        stop_price: Decimal | float | int | str,
        size: int | None = None,
        account_id: int | None = None,
    ) -> ProtectiveOrderResponse:
        """A stop on the reducing side of the current position, sized to it unless ``size``."""
        return await self._add(ExitKind.STOP, contract_id, stop_price, size, account_id)

    async def add_take_profit(
        self,
        contract_id: str,
        limit_price: Decimal | float | int | str,
        size: int | None = None,
        account_id: int | None = None,
    ) -> ProtectiveOrderResponse:
        """A limit on the reducing side of the current position, sized to it unless ``size``."""
        return await self._add(ExitKind.TARGET, contract_id, limit_price, size, account_id)

    async def _add(
        self,
        kind: ExitKind,
        contract_key: str,
        price_in: object,
        size_in: int | None,
        account_in: int | None,
    ) -> ProtectiveOrderResponse:
        ctx = self._ctx
        name = "stop_price" if kind is ExitKind.STOP else "limit_price"
        # 1. Checks without I/O, then against reference data and broker truth: nothing is
        #    journaled or sent until all of them pass.
        price = coerce_price(price_in, name)
        wanted = None if size_in is None else check_size(size_in, ctx.config.max_order_size)
        account = await ctx.reference.trading_account(account_in)
        contract = await self._contracts.resolve(contract_key)
        check_tick(contract, price, name)
        # Protection waits on these reads: they go together (not one after the other), in the
        # protective lane, which an open query breaker does not hold back (a breaker left open
        # by a fault storm refused add_stop_loss for minutes while the position was bare), and
        # hedged (a slow answer is asked again rather than waited out).
        clock = ctx.clock
        after = ctx.config.read_hedge_after
        signed = await ctx.truth.owned_position(account, contract.id, priority=_LANE)  # hedged
        side = reducing_side(signed)
        if side is None:
            raise NoPositionError(f"no open position on {contract.id} to protect")
        # The position decides whether there is anything to do (a read, not three, when there
        # is not, or when the broker does not answer); the other two go together. Each read
        # spends rate budget, and protective reads may spend all of it.
        open_orders, last = await both(
            hedged(clock, lambda: ctx.feed.working_orders(account, _LANE), after),
            hedged(clock, lambda: ctx.gateway.get_last_price(contract.id, priority=_LANE), after),
        )
        here = [o for o in open_orders if o.contract_id == contract.id]
        # An entry still filling (one contract at a time) is the position a moment from now:
        # a stop for the whole entry, asked for as soon as it was placed, is not refused.
        size = abs(signed) + self.watcher.incoming(here, signed)
        if wanted is not None and wanted > size:
            raise InvalidSizeError(
                f"size {wanted} is larger than the position ({abs(signed)}) on {contract.id}"
            )
        # Exits of this kind already working (brackets', earlier ones', anyone's) cover part of
        # the position: only the rest may be covered, or the exits over-cover it (I1).
        covered = sum(
            o.size - o.fill_volume for o in here if o.side is side and kind_of_type(o.type) is kind
        )
        uncovered = size - covered
        if uncovered <= 0:
            raise AlreadyProtectedError(
                f"the position {signed:+d} on {contract.id} is already covered by {covered} in "
                f"working {kind.value} orders"
            )
        if wanted is not None and wanted > uncovered:
            raise InvalidSizeError(
                f"size {wanted}: only {uncovered} of the position {signed:+d} on {contract.id} "
                f"is not covered by working {kind.value} orders"
            )
        quantity = wanted if wanted is not None else uncovered
        check_size(quantity, await ctx.reference.max_order_size(account))
        self._check_market(kind, side, price, contract.id, last)
        await self._ensure_loaded()
        managed = ManagedExit(
            account_id=account,
            contract_id=contract.id,
            kind=kind,
            side=side,
            created_at=ctx.clock.now(),
            cover=None if wanted is None and quantity == size else quantity,
            price=price,
        )
        return await self._place_exit(managed, quantity, signed, {"position": signed})

    async def _place_exit(
        self, managed: ManagedExit, quantity: int, position: int, extra: dict[str, object]
    ) -> ProtectiveOrderResponse:
        """Journal, register and send one exit (``managed`` without tag or order id yet)."""
        ctx = self._ctx
        kind, account, contract_id = managed.kind, managed.account_id, managed.contract_id
        price = managed.price
        assert price is not None
        # 2. Journal first: the operation, the intent with its tag, the registry entry.
        recovery = ctx.recovery
        op: RecoveryOperation | None = None
        ref: OrderReference | None = None
        try:
            op = await recovery.start_operation(
                OperationType.PROTECTIVE_ORDER,
                account_id=account,
                contract_id=contract_id,
                extra={"kind": kind.value, "price": str(price), **extra},
            )
            ref = await recovery.add_order_to_operation(
                op, contract_id, managed.side, quantity, kind.value, price, leg=kind.value,
                account_id=account,
            )  # fmt: skip
            await recovery.add_position_tracking(op, contract_id, ref, "protective")
            tag = ref.custom_tag
        except JournalError as exc:
            # F15: protection still goes out when the journal cannot be written (it removes
            # risk). It is managed in memory and sent under a plain tag, like any unjournaled
            # risk-reducing send; an entry would have been refused instead.
            log.error("journal unavailable (%s): placing the %s unjournaled", exc, kind.value)
            self.stats[PositionOrderMetric.UNJOURNALED_PROTECTION] += 1
            tag = ctx.tags.next_tag()
        managed.custom_tag = tag
        managed.order_id = None
        managed.size = quantity
        managed.operation_id = op.id if op is not None and ref is not None else None
        await self._registry_write(self.registry.add, managed)
        request = OrderRequest(
            account_id=account,
            contract_id=contract_id,
            type=OrderType.STOP if kind is ExitKind.STOP else OrderType.LIMIT,
            side=managed.side,
            size=quantity,
            stop_price=price if kind is ExitKind.STOP else None,
            limit_price=price if kind is ExitKind.TARGET else None,
            custom_tag=tag,
        )
        leg = (op, ref) if op is not None and ref is not None else None

        # 3. Send. Protection goes out even while the contract is latched (it removes risk).
        try:
            placed = await ctx.send.submit(request, respect_latch=False)
        except OutcomeUnknownError as exc:
            # Not a failure: the registry keeps the tag and the watcher resolves it later.
            if leg is not None:
                await _quietly(
                    recovery.record_order_failure(
                        *leg, Unknown(UnknownOrigin.TIMEOUT_AFTER_SEND, str(exc))
                    )
                )
            self.watcher.ensure_rechecks()
            raise
        except (OrderRejectedError, ValidationError) as exc:
            if leg is not None:
                why = (
                    Rejected(exc.code, str(exc), exc.order_id)
                    if isinstance(exc, OrderRejectedError)
                    else str(exc)
                )
                await _quietly(recovery.record_order_failure(*leg, why))
                await _quietly(recovery.complete_operation(leg[0]))
            await self._registry_write(self.registry.discard, managed)
            raise
        if leg is not None:
            # The order exists: a lost record of it must not hide it from the caller (the
            # intent is durable, so recovery can resolve it by its tag).
            await _quietly(recovery.record_order_success(*leg, placed))
            await _quietly(recovery.complete_operation(leg[0]))
        managed.order_id = placed.order_id
        await self._registry_write(self.registry.update, managed)
        # The position may have moved while the order was in flight: check it once now.
        self.watcher.schedule((account, contract_id))
        self.watcher.ensure_rechecks()
        return ProtectiveOrderResponse(
            order_id=placed.order_id,
            custom_tag=placed.custom_tag,
            status=placed.status,
            resolution=placed.resolution,
            # "" when the journal could not record an operation (F15): there is none to name.
            operation_id=op.id if leg is not None and op is not None else "",
            kind=kind.value,
            size=quantity,
            position_size=position,
        )

    async def _replace_exit(
        self, gone: ManagedExit, size: int, order: Order | None
    ) -> ManagedExit | None:
        """The watcher's re-placement of a stop the platform cancelled: a new journaled
        protective order at the same price for ``size``, following the position like the one
        it replaces (same cover); None when it could not be placed."""
        price = gone.price
        if price is None and order is not None:
            price = order.stop_price if order.stop_price is not None else order.limit_price
        if price is None:
            log.error("exit %s cannot be placed again: its price is unknown", gone.order_id)
            await self._registry_write(self.registry.discard, gone)
            return None
        await self._registry_write(self.registry.discard, gone)
        managed = ManagedExit(
            account_id=gone.account_id,
            contract_id=gone.contract_id,
            kind=gone.kind,
            side=gone.side,
            created_at=self._ctx.clock.now(),
            cover=gone.cover,
            adopted=gone.adopted,
            price=price,
            generation=gone.generation + 1,
        )
        extra: dict[str, object] = {"replaces": gone.order_id, "generation": managed.generation}
        try:
            await self._place_exit(managed, size, 0, extra)
        except (OutcomeUnknownError, OrderRejectedError, ValidationError) as exc:
            # Unknown: the registry holds the tag and resolves it; refused: tried again by the
            # watcher's next round only if the entry is back, so it is kept on record here.
            log.warning("re-placing exit %s: %s", gone.order_id, exc)
            if isinstance(exc, OutcomeUnknownError):
                return managed
            await self._registry_write(self.registry.add, gone)
            return None
        return managed

    async def _registry_write(
        self, write: Callable[[ManagedExit], Awaitable[None]], managed: ManagedExit
    ) -> None:
        """Change the registry; when the journal refuses, memory still holds the change (the
        watcher keeps managing the exit), and the next successful write persists it."""
        try:
            await write(managed)
        except JournalError as exc:
            self.stats[PositionOrderMetric.REGISTRY_WRITE_FAILURES] += 1
            log.error("managed exits not persisted (%s); kept in memory", exc)

    def _check_market(
        self,
        kind: ExitKind,
        side: OrderSide,
        price: Decimal,
        contract_id: str,
        last: Decimal | None,
    ) -> None:
        """A protective order on the wrong side of the market would execute at once."""
        if last is None:
            if self._ctx.config.allow_stop_without_last_price:
                return
            raise InvalidPriceError(
                f"the last price of {contract_id} is unknown, so the {kind.value} side cannot be "
                "checked (set allow_stop_without_last_price to place it anyway)"
            )
        if kind is ExitKind.STOP:
            check_protective_stop(side, price, last)
        else:
            check_protective_target(side, price, last)

    async def follow_new_exit(
        self,
        account_id: int,
        contract_id: str,
        side: OrderSide,
        order_type: OrderType,
        price: Decimal,
        size: int,
        custom_tag: str,
    ) -> ManagedExit:
        """Follow an exit another engine is about to place (an OCO exit pair's leg): entered
        before it is sent, under its tag, as an adopted exit (shrunk and cancelled with the
        position, never grown); :meth:`placed` gives it its order id."""
        await self._ensure_loaded()
        managed = ManagedExit(
            account_id=account_id,
            contract_id=contract_id,
            kind=kind_of_type(order_type),
            side=side,
            created_at=self._ctx.clock.now(),
            custom_tag=custom_tag,
            adopted=True,
            price=price,
            size=size,
        )
        await self._registry_write(self.registry.add, managed)
        self.watcher.ensure_rechecks()
        return managed

    async def placed(self, custom_tag: str, order_id: int) -> None:
        """The order of a followed exit placed under ``custom_tag`` is ``order_id``."""
        managed = self.registry.by_tag(custom_tag)
        if managed is not None and managed.order_id is None:
            managed.order_id = order_id
            await self._registry_write(self.registry.update, managed)
            self.watcher.schedule((managed.account_id, managed.contract_id))

    async def not_placed(self, custom_tag: str) -> None:
        """A followed exit's placement was refused: there is nothing to follow."""
        managed = self.registry.by_tag(custom_tag)
        if managed is not None:
            await self._registry_write(self.registry.discard, managed)

    async def register_exit(self, order_id: int, account_id: int | None = None) -> ManagedExit:
        """Manage an existing working stop or limit: its size will follow the position.

        Refused for orders that belong to a bracket or OCO pair (their saga manages them), for
        orders not on the position's reducing side, and for anything but stops and limits.
        """
        ctx = self._ctx
        await self._ensure_loaded()
        order = await ctx.truth.get_order_by_id(order_id, account_id, refresh=True)
        if order is None:
            raise OrderNotFoundError(f"order {order_id} not found in any status")
        if not order.is_working:
            raise ValidationError(f"order {order_id} is {order.status.name.lower()}")
        if order.parent_order_id is not None or self._linked(order):
            raise ValidationError(f"order {order_id} is a bracket or OCO leg; its saga manages it")
        kind = kind_of_type(order.type)
        if kind is ExitKind.ENTRY:
            raise ValidationError(f"only stops and limits can be managed exits, not {order.type!r}")
        signed = await ctx.truth.owned_position(order.account_id, order.contract_id)
        if order.side is not reducing_side(signed):
            raise ValidationError(f"order {order_id} does not reduce the position ({signed})")
        known = self.registry.by_order_id(order.id)
        if known is not None:
            return known
        managed = ManagedExit(
            account_id=order.account_id,
            contract_id=order.contract_id,
            kind=kind,
            side=order.side,
            created_at=ctx.clock.now(),
            custom_tag=order.custom_tag,
            order_id=order.id,
        )
        await self.registry.add(managed)
        self.watcher.schedule((order.account_id, order.contract_id))
        self.watcher.ensure_rechecks()
        return managed

    def _linked(self, order: Order) -> bool:
        recovery = self._ctx.recovery
        for op in (*recovery.active_operations.values(), *recovery.operation_history):
            if op.operation_type in _LINKED_OPERATIONS and any(
                r.order_id == order.id for r in op.orders.values()
            ):
                return True
        return False

    # -- cancelling -------------------------------------------------------------------------------
    async def cancel_position_orders(
        self,
        contract_id: str,
        order_types: OrderKinds = DEFAULT_ORDER_TYPES,
        account_id: int | None = None,
    ) -> CancelPositionOrdersResult:
        """Cancel the contract's working orders of the given kinds; report each final state.

        Kinds follow :func:`~orderguard.orders.positions.rules.classify_order`: "stop" and
        "target" are exits on the position's reducing side (or known exits and native bracket
        legs), everything else is an "entry".
        """
        ctx = self._ctx
        kinds = _check_kinds(order_types)
        account = await ctx.reference.any_account(account_id, None)
        contract = await self._contracts.resolve(contract_id)
        await self._ensure_loaded()
        signed = await ctx.truth.owned_position(account, contract.id)
        chosen: list[tuple[Order, ExitKind]] = []
        for order in await self._working_orders(account, contract.id):
            managed = self.registry.by_order_id(order.id)
            kind = classify_order(order, signed, managed.kind if managed is not None else None)
            if kind.value in kinds:
                chosen.append((order, kind))
        # A live bracket whose exit this removes must not place it again (nor, its stop gone,
        # go on protecting): it is told first, and its record says so.
        self._release_exits(
            (order.id for order, kind in chosen if kind is not ExitKind.ENTRY),
            "cancel_position_orders",
        )
        outcomes = await asyncio.gather(*(self._cancel_one(order, kind) for order, kind in chosen))
        working_ids = {order.id for order, _ in chosen}
        for dormant in self.registry.for_contract(account, contract.id):
            # A stop the watcher would place again when the position needs it: the caller
            # asked for no exits of its kind, so it is forgotten with them.
            if (
                dormant.dormant
                and dormant.kind.value in kinds
                and dormant.order_id not in working_ids
            ):
                await self._registry_write(self.registry.discard, dormant)
        for outcome in outcomes:
            managed = self.registry.by_order_id(outcome.order_id)
            if managed is not None and outcome.done:
                await self.watcher.forget(
                    managed,
                    ctx.tracker.get(outcome.order_id),
                    "cancel_position_orders",
                    cancelled_by_us=True,
                )
        result = CancelPositionOrdersResult(contract.id, tuple(outcomes))
        log.info("cancel_position_orders %s: %s", contract.id, result.as_dict())
        return result

    async def _working_orders(self, account: int, contract_id: str) -> list[Order]:
        """Open orders plus working orders of the search window (Suspended bracket children
        are not in ``searchOpen``, and a cancel must not miss them)."""
        ctx = self._ctx
        found: dict[int, Order] = {}
        for order in await ctx.truth.search_open_orders(contract_id, account_id=account):
            found[order.id] = order
        start = ctx.reference.window_start(ctx.clock.now())
        for order in await ctx.gateway.search_orders(account, start=start):
            if order.contract_id == contract_id and order.is_working:
                found.setdefault(order.id, order)
        return [found[k] for k in sorted(found)]

    async def _cancel_one(self, order: Order, kind: ExitKind) -> PositionOrderOutcome:
        ctx = self._ctx
        error: str | None = None
        state: Order | None = order
        for _ in range(CANCEL_ATTEMPTS):
            try:
                result = await ctx.send.cancel_order(order.id, order.account_id)
                error = result.detail or None
            except OrderGuardError as exc:
                error = str(exc)
            # Re-read after the cancel: the order may have filled first, or be gone.
            try:
                state = await ctx.truth.get_order_by_id(order.id, order.account_id, refresh=True)
            except OrderGuardError as exc:
                error = f"state not readable: {exc}"
                state = None
            if state is not None and state.is_terminal:
                break
        if state is not None and state.is_terminal:
            error = None
        return PositionOrderOutcome(
            order_id=order.id,
            kind=kind.value,
            status=None if state is None else state.status,
            fill_volume=0 if state is None else state.fill_volume,
            error=error,
        )


def _check_kinds(order_types: Iterable[str]) -> frozenset[str]:
    if isinstance(order_types, str):
        order_types = (order_types,)
    kinds = frozenset(str(t).lower() for t in order_types)
    unknown = kinds - set(ORDER_KINDS)
    if unknown:
        raise ValidationError(
            f"order_types must be among {ORDER_KINDS}, got unknown {sorted(unknown)}"
        )
    return kinds


async def _quietly(step: Awaitable[None] | Awaitable[bool]) -> None:
    """A bookkeeping step after the order was sent; a journal failure is logged, not raised."""
    try:
        await step
    except JournalError as exc:
        log.error("position order record not journaled: %s", exc)


__all__ = [
    "CANCEL_ATTEMPTS",
    "DEFAULT_ORDER_TYPES",
    "CancelPositionOrdersResult",
    "OrderKinds",
    "PositionOrders",
    "ProtectiveOrderResponse",
]
