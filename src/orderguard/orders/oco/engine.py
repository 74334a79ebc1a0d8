"""OCO pairs as a public, journaled operation (OCO_PAIR).

``place_oco_order`` journals both intents *and the link* before either order is sent (the
incumbent linked only after both acknowledgements, so a fast fill of the first leg left the second
unlinked). ``link_oco_orders`` links two existing working orders. Either way the pair lives in a
journaled operation, so ``resume`` (on start) finds every unfinished pair again.

Links are symmetric and one per order: linking an order that is already linked first breaks its
old link cleanly (that operation completes as "relinked"), so no orphaned or circular link can
exist. A pair ends when one leg filled and the other is confirmed final (with any excess of a
double fill flattened and recorded), when both legs ended, or on ``unlink``.

Each pair has one driver task; the engine's single listener (present only while pairs exist)
wakes it. The decision is the pure :func:`~orderguard.orders.oco.rules.oco_reaction`.

Over 500 lines: placing, linking, adopting and driving a pair share the pair table and its routing;
the OCO rule itself is oco/rules.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from orderguard.broker.base import (
    BrokerEvent,
    ConnectionEvent,
    OrderEvent,
    Rejected,
    TradeEvent,
    Unknown,
    UnknownOrigin,
)
from orderguard.errors import (
    OrderGuardError,
    OrderRejectedError,
    OutcomeUnknownError,
    ValidationError,
)
from orderguard.models import Order, OrderRequest, OrderSide, OrderType
from orderguard.orders.engine_context import EngineContext
from orderguard.orders.oco.rules import OcoDecision, OcoLegState, oco_reaction
from orderguard.orders.positions.engine import PositionOrders
from orderguard.orders.positions.rules import ExitKind, reducing_side
from orderguard.orders.send.validation import check_size, check_tick, coerce_price, coerce_side
from orderguard.recovery.legs import FLATTEN, numbered
from orderguard.recovery.manager import OrderReference, RecoveryOperation
from orderguard.recovery.operations import OperationState, OperationType
from orderguard.resilience import Priority

log = logging.getLogger("orderguard.orders.oco")

_LEG_TYPES = {"limit": OrderType.LIMIT, "stop": OrderType.STOP}


@dataclass(frozen=True, slots=True)
class OcoLeg:
    """One leg of :meth:`OrderManager.place_oco_order`: a limit or stop order."""

    side: int
    size: int
    price: Decimal | float | int | str
    order_type: str = "limit"


@dataclass(frozen=True, slots=True)
class OcoOrderResponse:
    success: bool
    operation_id: str
    order1_id: int | None
    order2_id: int | None
    error_message: str | None = None

    def __bool__(self) -> bool:
        return self.success


@dataclass(frozen=True, slots=True)
class OcoLinkResult:
    success: bool
    operation_id: str
    order1_id: int
    order2_id: int
    replaced: tuple[int, ...] = ()
    """Orders whose previous link was broken to make this one."""

    def __bool__(self) -> bool:
        return self.success


@dataclass(slots=True)
class _Pair:
    op: RecoveryOperation
    account_id: int
    contract_id: str
    ids: list[int | None]
    tags: list[str | None]
    refs: list[OrderReference | None]
    winner: int | None = None
    flattened: int = 0
    flatten_attempts: int = 0
    cancel_failures: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    done: bool = False
    refresh: bool = True
    quiet_polls: int = 0  # REST re-reads in a row that found nothing new (they back off)
    idle_since: float = float("-inf")  # when the pair last started waiting for news


@dataclass(frozen=True, slots=True)
class OcoSettings:
    """How an OCO pair's driver re-reads and retries (seconds, attempts)."""

    poll_interval: float = 2.0
    """REST re-read of a pair waiting for news, doubled per quiet read up to the maximum."""
    poll_max_interval: float = 16.0
    max_attempts: int = 4
    """Cancels of a leg whose sibling filled before the pair counts an incident."""


class OcoEngine:
    """OCO pairs of one manager (see the module docstring).

    ``positions`` is the manager's position-order engine (an OCO exit pair is followed by its
    watcher); ``linked_exit`` gives the OCO sibling of a bracket exit
    (``BracketEngine.linked_exit``)."""

    def __init__(
        self,
        ctx: EngineContext,
        *,
        positions: PositionOrders,
        linked_exit: Callable[[int], int | None],
        settings: OcoSettings | None = None,
    ) -> None:
        self.ctx = ctx
        settings = settings or OcoSettings()
        self.poll_interval = settings.poll_interval
        self.poll_max_interval = settings.poll_max_interval
        self._reading: asyncio.Task[None] | None = None
        self._last_read = float("-inf")
        self.max_attempts = settings.max_attempts
        self._positions = positions
        self._linked_exit = linked_exit
        self.incidents = 0
        self._pairs: dict[str, _Pair] = {}
        self._by_order: dict[int, _Pair] = {}
        self._by_tag: dict[str, _Pair] = {}
        self._remove_listener: Callable[[], None] | None = None
        self._resumed = False
        ctx.recovery.register_statistics(self._statistics)
        positions.watcher.leaving.append(self._sibling_filled)

    def _sibling_filled(self, order_id: int) -> bool:
        """The order's OCO sibling has fills: the pair's driver is cancelling the order."""
        pair = self._by_order.get(order_id)
        if pair is None or pair.done:
            return False
        sibling = _other(pair, order_id)
        return sibling is not None and self.ctx.tracker.filled_volume(sibling) > 0

    def _statistics(self) -> dict[str, int]:
        return {"oco_pairs_active": len(self._pairs), "oco_pair_incidents": self.incidents}

    def active(self) -> list[str]:
        """Operation ids of the pairs this engine drives."""
        return list(self._pairs)

    def wake(self, operation_id: str) -> bool:
        """Wake the pair of ``operation_id`` to re-read and decide; False if none is driven."""
        pair = self._pairs.get(operation_id)
        if pair is None:
            return False
        pair.refresh = True
        pair.wake.set()
        return True

    # -- public ---------------------------------------------------------------------------------
    async def place(
        self, contract_key: str, first: OcoLeg, second: OcoLeg, account_id: int | None = None
    ) -> OcoOrderResponse:
        await self.resume()
        ctx = self.ctx
        account = await ctx.reference.trading_account(account_id)
        contract = await ctx.contracts.resolve(contract_key)
        requests: list[tuple[OrderSide, int, OrderType, Decimal]] = []
        for leg in (first, second):
            kind = _LEG_TYPES.get(str(leg.order_type).lower())
            if kind is None:
                raise ValidationError(f"an OCO leg is 'limit' or 'stop', got {leg.order_type!r}")
            side = coerce_side(leg.side)
            size = check_size(leg.size, ctx.config.max_order_size)
            check_size(size, await ctx.reference.max_order_size(account))
            price = check_tick(contract, coerce_price(leg.price, "price"), "price")
            requests.append((side, size, kind, price))
        op = await ctx.recovery.start_operation(
            OperationType.OCO_PAIR, account_id=account, contract_id=contract.id
        )
        refs: list[OrderReference] = []
        for name, (side, size, kind, price) in zip(("a", "b"), requests, strict=True):
            refs.append(
                await ctx.recovery.add_order_to_operation(
                    op,
                    contract.id,
                    side,
                    size,
                    kind.name.lower(),
                    price,
                    leg=name,
                    account_id=account,
                )
            )
        await ctx.recovery.add_oco_pair(op, refs[0], refs[1])  # linked before anything is sent
        exits = await self._follow_if_exits(account, contract.id, requests, refs)
        pair = _Pair(
            op, account, contract.id, [None, None], [r.custom_tag for r in refs], list(refs)
        )
        self._adopt(pair)
        for tag in pair.tags:
            if tag is not None:
                self._by_tag[tag] = pair

        async def send(i: int) -> str | None:
            side, size, kind, price = requests[i]
            ref = refs[i]
            request = OrderRequest(
                account_id=account,
                contract_id=contract.id,
                type=kind,
                side=side,
                size=size,
                limit_price=price if kind is OrderType.LIMIT else None,
                stop_price=price if kind is OrderType.STOP else None,
                custom_tag=ref.custom_tag,
            )
            try:
                # An exit pair protects a position: its legs go in the protective lane (queued
                # behind ordinary requests in a spent rate window, a position sat bare 27 s).
                placed = await ctx.send.submit(
                    request, priority=Priority.PROTECTIVE if exits is not None else None
                )
            except OrderRejectedError as exc:
                if exits is not None:
                    await exits.not_placed(ref.custom_tag)
                await ctx.recovery.record_order_failure(op, ref, Rejected(exc.code, str(exc)))
                return str(exc)
            except OutcomeUnknownError as exc:
                await ctx.recovery.record_order_failure(
                    op, ref, Unknown(UnknownOrigin.TIMEOUT_AFTER_SEND, exc.origin)
                )
                return None  # the driver keeps looking for the tag
            except OrderGuardError as exc:
                if exits is not None:
                    await exits.not_placed(ref.custom_tag)
                await ctx.recovery.record_order_failure(op, ref, exc)
                return str(exc)
            self._route(pair, i, placed.order_id)
            if exits is not None:
                await exits.placed(ref.custom_tag, placed.order_id)
            await ctx.recovery.record_order_success(op, ref, placed)
            return None

        errors = [e for e in await asyncio.gather(send(0), send(1)) if e is not None]
        self._start(pair)
        pair.wake.set()
        # A leg that failed is "ended without a fill": the driver cancels the other (OCO).
        return OcoOrderResponse(
            success=not errors,
            operation_id=op.operation_id,
            order1_id=pair.ids[0],
            order2_id=pair.ids[1],
            error_message="; ".join(errors) or None,
        )

    async def _follow_if_exits(
        self,
        account: int,
        contract_id: str,
        requests: list[tuple[OrderSide, int, OrderType, Decimal]],
        refs: list[OrderReference],
    ) -> PositionOrders | None:
        """An OCO *exit* pair (both legs on the reducing side of the position, neither larger
        than it) is entered in the position watcher's registry before it is sent, like a
        managed exit: a close of the position must cancel its legs (I2) and a decrease shrink
        them (I1) even if this process dies before it sees them placed. Returns the position
        orders when it did, None for any other pair (resting entries)."""
        ctx = self.ctx

        def fits(signed: int) -> bool:
            side = reducing_side(signed)
            return side is not None and all(
                s is side and n <= abs(signed) for s, n, _, _ in requests
            )

        # An entry's fill seen ahead of its position event: the book is a moment behind.
        position = await ctx.feed.position_event(
            account, contract_id, fits, ctx.config.position_event_grace
        )
        if position is None:
            position = ctx.feed.position(account, contract_id)
        if position is None:
            position = await ctx.truth.owned_position(
                account, contract_id, priority=Priority.PROTECTIVE
            )
        side = reducing_side(position)
        if side is None:
            return None
        orders = self._positions
        # An entry of orderguard's still filling (one contract at a time) is the position a
        # moment from now: exits sized for the whole entry, asked for as soon as it was placed,
        # are exits — left unfollowed they would outlive a close of it (I2) and over-cover it
        # when it shrinks (I1).
        here = [o for o in ctx.tracker.orders(account) if o.contract_id == contract_id]
        size = abs(position) + orders.watcher.incoming(here, position)
        if any(s is not side or n > size for s, n, _, _ in requests):
            return None
        for (leg_side, size, kind, price), ref in zip(requests, refs, strict=True):
            await orders.follow_new_exit(
                account, contract_id, leg_side, kind, price, size, ref.custom_tag
            )
        return orders

    def _protects(self, order_id: int) -> bool:
        """The order is a stop the position watcher follows as the position's protection."""
        followed = self._positions.registry.by_order_id(order_id)
        return followed is not None and followed.kind is ExitKind.STOP

    async def link(self, order1_id: int, order2_id: int) -> OcoLinkResult:
        await self.resume()
        for oid in (order1_id, order2_id):
            if not isinstance(oid, int) or isinstance(oid, bool) or oid <= 0:
                raise ValidationError(f"order id must be a positive int, got {oid!r}")
        if order1_id == order2_id:
            raise ValidationError("an order cannot be OCO-linked to itself")
        ctx = self.ctx
        orders: list[Order] = []
        for oid in (order1_id, order2_id):
            order = await ctx.truth.get_order_by_id(oid, refresh=True)
            if order is None:
                raise ValidationError(f"order {oid} does not exist")
            if not order.is_working:
                raise ValidationError(f"order {oid} is {order.status.name.lower()}, not working")
            if self._linked_exit(oid) is not None:
                raise ValidationError(f"order {oid} is a bracket exit; its bracket links it")
            orders.append(order)
        if orders[0].account_id != orders[1].account_id:
            raise ValidationError("OCO-linked orders must belong to the same account")
        if self.linked(order1_id) == order2_id:
            pair = self._by_order[order1_id]
            return OcoLinkResult(True, pair.op.operation_id, order1_id, order2_id)
        replaced: list[int] = []
        for oid in (order1_id, order2_id):
            old = await self.unlink(oid, reason="relinked")
            if old is not None:
                replaced.append(old)
        op_id = await self._open_link(
            orders[0].account_id,
            orders[0].contract_id,
            (order1_id, order2_id),
            (orders[0].custom_tag, orders[1].custom_tag),
            {},
        )
        return OcoLinkResult(True, op_id, order1_id, order2_id, tuple(replaced))

    async def adopt_pair(
        self,
        account_id: int,
        contract_id: str,
        order1_id: int,
        order2_id: int,
        *,
        source: str,
    ) -> str:
        """Enforce the OCO pair an operation of the seed API declared (``add_oco_pair``, then
        ``complete_operation``); returns the id of the journaled pair. Unlike :meth:`link` a leg
        need not be working any more: one that already filled is the driver's to act on
        (cancel the other with confirmation, flatten a double fill)."""
        await self.resume()
        pair = self._by_order.get(order1_id)
        if pair is not None and not pair.done and _other(pair, order1_id) == order2_id:
            return pair.op.operation_id  # already linked (re-linked at start-up, say)
        extra = {"linked_for": source}
        return await self._open_link(
            account_id, contract_id, (order1_id, order2_id), (None, None), extra
        )

    async def _open_link(
        self,
        account_id: int,
        contract_id: str,
        ids: tuple[int, int],
        tags: tuple[str | None, str | None],
        extra: dict[str, str],
    ) -> str:
        """Journal a pair linked by order id and start its driver; returns its operation id."""
        ctx = self.ctx
        op = await ctx.recovery.start_operation(
            OperationType.OCO_PAIR,
            account_id=account_id,
            contract_id=contract_id,
            extra={"linked_order_ids": list(ids), **extra},
        )
        await ctx.recovery.transition_operation(op, OperationState.IN_PROGRESS, "orders linked")
        pair = _Pair(op, account_id, contract_id, [None, None], list(tags), [None, None])
        self._adopt(pair)
        self._route(pair, 0, ids[0])
        self._route(pair, 1, ids[1])
        self._start(pair)
        return op.operation_id

    async def unlink(self, order_id: int, *, reason: str = "unlinked by the caller") -> int | None:
        pair = self._by_order.get(order_id)
        if pair is None:
            return None
        sibling = _other(pair, order_id)
        await self._finish(pair, OperationState.COMPLETED, reason)
        return sibling

    def linked(self, order_id: int) -> int | None:
        pair = self._by_order.get(order_id)
        if pair is not None and not pair.done:
            return _other(pair, order_id)
        return self._linked_exit(order_id)

    async def resume(self) -> int:
        """Re-link the pairs of unfinished OCO_PAIR operations (after a restart). Once."""
        if self._resumed:
            return 0
        self._resumed = True
        count = 0
        for op in list(self.ctx.recovery.active_operations.values()):
            if op.operation_type is not OperationType.OCO_PAIR or op.operation_id in self._pairs:
                continue
            linked = op.extra.get("linked_order_ids")
            refs: list[OrderReference | None] = [op.orders.get("a"), op.orders.get("b")]
            if isinstance(linked, list) and len(linked) == 2:
                ids: list[int | None] = [int(linked[0]), int(linked[1])]
                refs = [None, None]
            else:
                ids = [None if r is None else r.order_id for r in refs]
            pair = _Pair(
                op,
                op.account_id or 0,
                op.contract_id or "",
                [None, None],
                [None if r is None else r.custom_tag for r in refs],
                refs,
            )
            self._adopt(pair)
            for i, oid in enumerate(ids):
                if oid is not None:
                    self._route(pair, i, oid)
            for tag in pair.tags:
                if tag is not None:
                    self._by_tag[tag] = pair
            self._start(pair)
            count += 1
        return count

    # -- the driver -------------------------------------------------------------------------------
    async def _run(self, pair: _Pair) -> None:
        ctx = self.ctx
        try:
            while not pair.done:
                pair.wake.clear()
                if pair.refresh:
                    pair.refresh = False
                    await self._refresh(pair)
                decision = self._decide(pair)
                if decision is None:
                    await self._idle(pair)
                    continue
                if decision.done:
                    await self._finish(pair, OperationState.COMPLETED, "one leg ended the pair")
                    break
                if decision.winner is not None:
                    pair.winner = decision.winner
                acted = False
                if decision.cancel:
                    results = await asyncio.gather(
                        *(self._cancel(pair, oid) for oid in decision.cancel)
                    )
                    acted = all(results)
                    await ctx.recovery.note_recovery("oco_sibling_cancel", acted)
                elif decision.flatten_qty and decision.flatten_side is not None:
                    acted = await self._flatten(pair, decision)
                    await ctx.recovery.note_recovery("oco_overfill_flatten", acted)
                if not acted:
                    pair.refresh = True
                    pair.idle_since = ctx.clock.monotonic()  # re-read after this, not before
                    await ctx.clock.sleep(
                        min(self.poll_interval, 0.25 * (1 + pair.cancel_failures))
                    )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("OCO pair %s: driver failed", pair.op.operation_id)
        finally:
            if not pair.done:
                self._retire(pair)

    def _decide(self, pair: _Pair) -> OcoDecision | None:
        legs: list[OcoLegState] = []
        for i, oid in enumerate(pair.ids):
            ref = pair.refs[i]
            if oid is None:
                if ref is not None and ref.status in ("rejected",):
                    # Never existed: treat as a leg that ended without a fill.
                    legs.append(OcoLegState(-(i + 1), OrderSide(ref.side), 0, False))
                    continue
                return OcoDecision() if ref is None else None  # still resolving
            view = self.ctx.tracker.get(oid)
            if view is None:
                return None
            legs.append(
                OcoLegState(oid, view.side, self.ctx.tracker.filled_volume(oid), view.is_working)
            )
        decision = oco_reaction(legs[0], legs[1], winner=pair.winner, flattened=pair.flattened)
        if decision.cancel and not any(leg.filled for leg in legs):
            # A leg ended without a fill (the platform cancelled the target, or
            # cancel_position_orders(("target",)) did): the stop of an exit pair goes on
            # protecting the position instead of leaving it bare; the position watcher keeps
            # following it, and the pair is over.
            kept = tuple(c for c in decision.cancel if c > 0 and self._protects(c))
            if kept:
                rest = tuple(c for c in decision.cancel if c not in kept)
                decision = OcoDecision(cancel=rest, done=not rest)
        if decision.cancel:
            decision = OcoDecision(
                cancel=tuple(c for c in decision.cancel if c > 0),
                winner=decision.winner,
                done=decision.done,
            )
        if not decision.cancel and not decision.flatten_qty and not decision.done:
            return None
        return decision

    async def _idle(self, pair: _Pair) -> None:
        # Quiet pairs back off (x2 up to poll_max_interval): a re-read per pair every 2 s spent
        # the account's whole rate budget with a handful of pairs, starving protective orders.
        wait = min(self.poll_interval * 2**pair.quiet_polls, self.poll_max_interval)
        pair.idle_since = self.ctx.clock.monotonic()
        try:
            await self.ctx.clock.wait_for(pair.wake.wait(), wait)
            pair.quiet_polls = 0
        except TimeoutError:
            pair.refresh = True  # events can be lost: re-read over REST
            pair.quiet_polls = min(pair.quiet_polls + 1, 8)

    async def _read_all(self, since: float) -> None:
        """One ``Order/search`` per account for every pair together: a pair whose wait began
        at ``since`` shares a read that is running, or one that started after ``since`` (what
        it returned is as fresh as the pair's own read would have been)."""
        if self._reading is None or self._reading.done():
            if self._last_read >= since:
                return
            self._reading = self.ctx.spawn(self._search_all())
        await asyncio.shield(self._reading)

    async def _search_all(self) -> None:
        ctx = self.ctx
        began = ctx.clock.monotonic()
        starts: dict[int, datetime] = {}
        for pair in self._pairs.values():
            acct, started = pair.account_id, pair.op.started_at
            starts[acct] = min(starts.get(acct, started), started)
        try:
            for acct, start in sorted(starts.items()):
                try:
                    orders = await ctx.gateway.search_orders(
                        acct, start=ctx.reference.window_start(start)
                    )
                except OrderGuardError as exc:
                    log.warning("OCO poll of account %s failed: %s", acct, exc)
                    continue
                for order in orders:
                    owner = self._by_order.get(order.id)
                    if owner is not None:
                        ctx.feed.ingest(order)  # the tracker's monotonic merge
                        owner.wake.set()
        finally:
            self._last_read = began

    async def _refresh(self, pair: _Pair) -> None:
        ctx = self.ctx
        if any(oid is not None for oid in pair.ids):
            await self._read_all(pair.idle_since)
        for i in range(2):
            try:
                if pair.ids[i] is not None:
                    continue
                ref = pair.refs[i]
                if ref is not None and ref.status == "unknown":
                    found = await ctx.truth.find_order_by_tag(pair.account_id, ref.custom_tag)
                    if found is not None:
                        self._route(pair, i, found.id)
                        await ctx.recovery.record_resolution(pair.op, ref, found)
            except OrderGuardError as exc:
                log.warning("OCO pair %s: refresh failed: %s", pair.op.operation_id, exc)

    async def _cancel(self, pair: _Pair, order_id: int) -> bool:
        try:
            result = await self.ctx.send.cancel_order(order_id, pair.account_id)
        except OrderGuardError as exc:
            log.warning("OCO pair %s: cancel failed: %s", pair.op.operation_id, exc)
            pair.cancel_failures += 1
            return False
        final = result.status is not None and result.status.is_terminal
        if not final:
            pair.cancel_failures += 1
        return final

    async def _flatten(self, pair: _Pair, decision: OcoDecision) -> bool:
        ctx = self.ctx
        assert decision.flatten_side is not None
        if decision.incident and decision.incident not in pair.op.errors:
            self.incidents += 1
            pair.op.errors.append(decision.incident)
            pair.op.extra.setdefault("incidents", []).append(decision.incident)
            log.error("OCO pair %s: %s", pair.op.operation_id, decision.incident)
        if pair.flatten_attempts >= self.max_attempts:
            await self._finish(pair, OperationState.FAILED, "could not flatten a double fill")
            return True
        pair.flatten_attempts += 1
        ref = await ctx.recovery.add_order_to_operation(
            pair.op,
            pair.contract_id,
            decision.flatten_side,
            decision.flatten_qty,
            "market",
            leg=numbered(FLATTEN, pair.flatten_attempts - 1),
            account_id=pair.account_id,
        )
        signed = decision.flatten_qty * decision.flatten_side.sign
        try:
            order = await ctx.send.flatten_quantity(
                pair.account_id, pair.contract_id, signed, ref.custom_tag
            )
        except OrderGuardError as exc:
            await ctx.recovery.record_order_failure(pair.op, ref, exc)
            return False
        if order is None:
            await ctx.recovery.record_order_failure(pair.op, ref, "flatten not confirmed")
            return False
        await ctx.recovery.record_order_state(pair.op, ref, order)
        pair.flattened += order.fill_volume
        return True

    async def _finish(self, pair: _Pair, state: OperationState, reason: str) -> None:
        if pair.done:
            return
        pair.done = True
        ctx = self.ctx
        for i, ref in enumerate(pair.refs):
            oid = pair.ids[i]
            view = None if oid is None else ctx.tracker.get(oid)
            if ref is not None and view is not None:
                await ctx.recovery.record_order_state(pair.op, ref, view)
        if not pair.op.state.is_terminal:
            await ctx.recovery.transition_operation(pair.op, state, reason)
        self._retire(pair)
        if pair.task is not None and pair.task is not asyncio.current_task():
            pair.task.cancel()

    # -- routing ----------------------------------------------------------------------------------
    def _start(self, pair: _Pair) -> None:
        pair.task = self.ctx.spawn(self._run(pair))

    def _adopt(self, pair: _Pair) -> None:
        self._pairs[pair.op.operation_id] = pair
        if self._remove_listener is None:
            self._remove_listener = self.ctx.listen(self._on_event)

    def _route(self, pair: _Pair, index: int, order_id: int) -> None:
        pair.ids[index] = order_id
        self._by_order[order_id] = pair
        pair.wake.set()

    def _retire(self, pair: _Pair) -> None:
        pair.done = True
        self._pairs.pop(pair.op.operation_id, None)
        for oid in pair.ids:
            if oid is not None and self._by_order.get(oid) is pair:
                del self._by_order[oid]
        for tag in pair.tags:
            if tag is not None and self._by_tag.get(tag) is pair:
                del self._by_tag[tag]
        if not self._pairs and self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None

    def _on_event(self, event: BrokerEvent) -> None:
        if isinstance(event, OrderEvent):
            order = event.order
            pair = self._by_order.get(order.id)
            if pair is None and order.custom_tag:
                pair = self._by_tag.get(order.custom_tag)
                if pair is not None:
                    index = pair.tags.index(order.custom_tag)
                    if pair.ids[index] is None:
                        self._route(pair, index, order.id)
            if pair is not None:
                pair.wake.set()
        elif isinstance(event, TradeEvent):
            pair = self._by_order.get(event.trade.order_id)
            if pair is not None:
                pair.wake.set()
        elif isinstance(event, ConnectionEvent):
            for pair in self._pairs.values():
                pair.refresh = True
                pair.wake.set()


def _other(pair: _Pair, order_id: int) -> int | None:
    a, b = pair.ids
    return b if order_id == a else a


__all__ = ["OcoEngine", "OcoLeg", "OcoLinkResult", "OcoOrderResponse", "OcoSettings"]
