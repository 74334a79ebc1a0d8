"""Journal-first placement with the three-outcome rule, and the ambiguity latch it feeds.

Every placement is validated completely before anything is sent, gets a customTag fixed before
the request leaves, and its intent (with that tag) is durable in the journal before the request can
leave. It then goes through the rate limiter and the circuit breakers and ends in one of three ways:
a response (Confirmed, or an Unknown resolved by finding the tag among *all* the account's orders),
:class:`~orderguard.errors.OrderRejectedError` (definitive), or
:class:`~orderguard.errors.OutcomeUnknownError` after the bounded look-ups failed, which latches
the (account, contract) against new exposure until a background re-check or an event finds the
order.

:class:`PlacementPipeline` is owned by the :class:`~orderguard.orders.manager.OrderManager`, which
gives it its collaborators explicitly and feeds it every order it learns of (:meth:`on_order`).

Over 500 lines: the three-outcome rule is one sequence (validate, journal, send, resolve by tag,
latch) whose steps share the pipeline's state; when a mutation may be re-sent is send/mutation.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any

from orderguard.broker.base import Confirmed, Outcome, Rejected, Unknown
from orderguard.broker.projectx.codes import PlaceCode
from orderguard.errors import (
    ExitNotReducingError,
    InvalidSideError,
    OrderGuardError,
    OrderRejectedError,
    OutcomeUnknownError,
    UnknownContractError,
    ValidationError,
)
from orderguard.journal.base import IntentKind
from orderguard.models import (
    PLACEABLE_ORDER_TYPES,
    Contract,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
)
from orderguard.orders.contracts import ContractResolver
from orderguard.orders.metrics import Metric
from orderguard.orders.results import OrderPlaceResponse, Resolution
from orderguard.orders.send.backoff import status_check_delays
from orderguard.orders.send.journaled_send import Mutation, SendContext
from orderguard.orders.send.journaling import Intent, request_payload
from orderguard.orders.send.latch import AmbiguityLatch, LatchEntry
from orderguard.orders.send.validation import (
    LIMIT_PRICED,
    STOP_PRICED,
    check_size,
    check_tick,
    coerce_price,
    coerce_side,
)
from orderguard.resilience import PRIORITY_LANE, Priority

log = logging.getLogger("orderguard.orders")


class PlacementPipeline:
    """Validates, journals, sends and resolves placements (see the module docstring).

    ``ingest`` merges an order read from the broker into the manager's tracker (and hands it
    back to :meth:`on_order`); ``spawn`` runs a background task the manager owns and cancels.
    """

    def __init__(
        self,
        ctx: SendContext,
        *,
        contracts: ContractResolver,
        latch: AmbiguityLatch,
        ingest: Callable[[Order], None],
        spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]],
        position: Callable[[int, str], int | None],
        read_position: Callable[[int, str], Awaitable[int]],
        position_event: Callable[[int, str, Callable[[int], bool]], Awaitable[int | None]]
        | None = None,
        resend_pause: float = 2.0,
        risk: Callable[[OrderRequest, Contract], AbstractAsyncContextManager[None]] | None = None,
    ) -> None:
        self._ctx = ctx
        self._risk = risk  # risk limits: checked for exposure only, after the latch
        self._contracts = contracts
        self._latch = latch
        self._ingest = ingest
        self._spawn = spawn
        self._position = position  # the last position seen (events, reads), None if unseen
        self._read_position = read_position  # broker truth, in the flattening lane
        # The book once its events show an expected position (None after a short wait).
        self._position_event = position_event
        self._resend_pause = resend_pause  # a protective order in doubt: re-checked this often
        # (account, customTag) -> recheck task, for placements whose outcome is still unknown.
        self._unresolved: dict[tuple[int, str], tuple[str, asyncio.Task[None] | None]] = {}
        self._unresolved_intents: dict[tuple[int, str], Intent] = {}

    async def place(
        self,
        order_type: OrderType,
        contract_key: str,
        side_in: object,
        size_in: object,
        account_in: int | None,
        *,
        limit_price: object = None,
        stop_price: object = None,
        trail_price: object = None,
    ) -> OrderPlaceResponse:
        """A new order from a caller's loose input, with a fresh customTag."""
        # 1. Everything that needs no I/O, in the order a caller would fix it.
        side = coerce_side(side_in)
        size = check_size(size_in, self._ctx.config.max_order_size)
        limit = coerce_price(limit_price, "limit_price") if order_type in LIMIT_PRICED else None
        stop = coerce_price(stop_price, "stop_price") if order_type in STOP_PRICED else None
        trail = (
            coerce_price(trail_price, "trail_price")
            if order_type is OrderType.TRAILING_STOP
            else None
        )
        # 2. Checks against broker reference data (cached after first use).
        account_id = await self._ctx.reference.trading_account(account_in)
        contract = await self._contracts.resolve(contract_key)
        request = OrderRequest(
            account_id=account_id,
            contract_id=contract.id,
            type=order_type,
            side=side,
            size=size,
            limit_price=limit,
            stop_price=stop,
            trail_price=trail,
            custom_tag=self._ctx.tags.next_tag(),  # fixed before anything leaves
        )
        return await self._checked_send(
            request, contract, respect_latch=True, priority=Priority.NORMAL
        )

    async def submit(
        self,
        request: OrderRequest,
        *,
        respect_latch: bool,
        priority: Priority | None,
        exit_only: bool = False,
    ) -> OrderPlaceResponse:
        """Validate and send a request whose customTag the caller fixed (see
        :meth:`OrderManager.submit <orderguard.orders.manager.OrderManager.submit>`)."""
        if not request.custom_tag:
            raise ValidationError("a submitted request must carry its customTag")
        if request.type not in PLACEABLE_ORDER_TYPES:
            raise ValidationError(f"order type {request.type!r} cannot be placed")
        if coerce_side(request.side) is not request.side:
            raise InvalidSideError(f"side must be an OrderSide, got {request.side!r}")
        check_size(request.size, self._ctx.config.max_order_size)
        kind = request.type
        for name, price, needed in (
            ("limit_price", request.limit_price, kind in LIMIT_PRICED),
            ("stop_price", request.stop_price, kind in STOP_PRICED),
            ("trail_price", request.trail_price, kind is OrderType.TRAILING_STOP),
        ):
            if needed or price is not None:
                coerce_price(price, name)
        if priority is None:
            priority = Priority.NORMAL if respect_latch else Priority.PROTECTIVE
        claimed = not respect_latch or priority in PRIORITY_LANE
        reduces = await self._reduces(request, confirm=claimed or exit_only, exit_only=exit_only)
        contract = self._contracts.cached(request.contract_id) if reduces else None
        if contract is None and not reduces:
            await self._ctx.reference.trading_account(request.account_id)
            contract = await self._contracts.resolve(request.contract_id)
        if contract is not None and contract.id != request.contract_id:
            raise UnknownContractError(f"{request.contract_id!r} is not an exact contract id")
        return await self._checked_send(
            request, contract, respect_latch=respect_latch, priority=priority, reduces=reduces
        )

    async def _checked_send(
        self,
        request: OrderRequest,
        contract: Contract | None,
        *,
        respect_latch: bool,
        priority: Priority,
        reduces: bool | None = None,
    ) -> OrderPlaceResponse:
        """The checks that need reference data, the exposure gate, then the send.

        Whether the request reduces exposure is a fact of the account's position, never the
        caller's word (``respect_latch`` and ``priority`` only ask): a request that would only
        reduce the position goes in a priority lane and passes the ambiguity latch, the
        start-up hold, the journal-down refusal and an open breaker; anything else is
        exposure, and meets all four. A reducing request is checked against the reference
        data at hand only (``contract`` None: not cached): a read of it must not stand between
        a filled position and its stop, and the exchange refuses what is wrong anyway.
        """
        claimed = not respect_latch or priority in PRIORITY_LANE
        if reduces is None:
            reduces = await self._reduces(request, confirm=claimed)
        reference = self._ctx.reference
        if reduces:
            limit = reference.cached_max_order_size(request.account_id)
        else:
            limit = await reference.max_order_size(request.account_id)
        if limit is not None:
            check_size(request.size, limit)
        if contract is not None:
            if not contract.active:
                raise UnknownContractError(f"contract {contract.id} is not active")
            for name, price in (
                ("limit_price", request.limit_price),
                ("stop_price", request.stop_price),
                ("trail_price", request.trail_price),
            ):
                if price is not None:
                    check_tick(contract, price, name)
        if reduces:
            if priority not in PRIORITY_LANE:
                priority = Priority.PROTECTIVE
        else:
            if priority in PRIORITY_LANE:
                self._ctx.stats[Metric.PROTECTIVE_CLAIMS_REFUSED] += 1
                priority = Priority.NORMAL
            assert contract is not None  # exposure is always checked against its contract
            if request.stop_price is not None:
                # Entries only. A stop that reduces the position is not held back by a
                # last-price read (a round trip, a queued read in a full rate window): one
                # already through the market is refused by the exchange or triggers at once,
                # which is the right exit anyway.
                await self._ctx.reference.check_stop(contract, request.side, request.stop_price)
            self._latch.check(request.account_id, contract.id)
            if self._risk is not None:
                async with self._risk(request, contract):  # limits hold while it is sent
                    return await self._send(request, priority, reduces=reduces)
        return await self._send(request, priority, reduces=reduces)

    async def _reduces(
        self, request: OrderRequest, *, confirm: bool, exit_only: bool = False
    ) -> bool:
        """The order, if it filled alone, would only shrink the account's position there.

        Decided from the last position seen (events and reads). When the caller expects a
        reduction (a protective or flattening request) that the last position does not show —
        or no position was seen yet — from a read of the broker in the flattening lane: its
        position event may not have arrived yet. An ``exit_only`` request that the read shows
        would not reduce raises :class:`ExitNotReducingError` (an unreadable position never
        does: absence of evidence)."""
        key = (request.account_id, request.contract_id)
        position = self._position(*key)
        if position is None and not confirm:
            return False  # no claim and no position seen: treated as exposure (no read spent)
        if position is None or (confirm and not _reduces(request, position)):
            if confirm and self._position_event is not None:
                # The fill this request answers may be a moment ahead of its position event
                # (they arrive separately): that event, if it comes at once, spares a read.
                shown = await self._position_event(*key, lambda signed: _reduces(request, signed))
                if shown is not None:
                    return True
            try:
                position = await self._read_position(*key)
            except OrderGuardError as exc:
                if position is None:
                    # No evidence of a position to reduce: exposure (refused while latched).
                    log.warning("position unreadable for %s: %s", request.custom_tag, exc)
                    return False
                return _reduces(request, position)
            if exit_only and not _reduces(request, position):
                self._ctx.stats[Metric.EXITS_REFUSED_NOT_REDUCING] += 1
                raise ExitNotReducingError(
                    f"exit {request.custom_tag} ({request.side.name} {request.size}) would not "
                    f"reduce the position on {request.contract_id}, {position:+d} now",
                    position=position,
                )
        return _reduces(request, position)

    async def _send(
        self, request: OrderRequest, priority: Priority, *, reduces: bool
    ) -> OrderPlaceResponse:
        tag = request.custom_tag
        assert tag is not None  # every caller sets it before sending
        # Journal first: the intent (with its tag) is durable before the request can leave.
        intent = await self._ctx.send.intent(_placing(request, tag, reduces))
        sent_at = self._ctx.clock.now()
        outcome = await self._ctx.send.place(
            intent,
            request,
            priority,
            # The caller gave up mid-flight: the request may have left. Treat it like Unknown.
            cancelled_in_flight=lambda: self._remember_unresolved(
                request, "cancelled", sent_at, intent
            ),
        )
        if isinstance(outcome, Confirmed) and outcome.order_id is not None:
            self._ctx.stats[Metric.ORDERS_PLACED] += 1
            view = self._ctx.tracker.get(outcome.order_id)
            return OrderPlaceResponse(
                order_id=outcome.order_id,
                custom_tag=tag,
                status=view.status if view is not None else None,
            )
        if isinstance(outcome, Rejected):
            self._ctx.stats[Metric.ORDERS_REJECTED] += 1
            raise OrderRejectedError(
                f"order {tag} rejected (code {outcome.code}): {outcome.message}",
                code=outcome.code,
                order_id=outcome.order_id,
            )
        origin = outcome.origin.value if isinstance(outcome, Unknown) else "confirmed_without_id"
        return await self._resolve_placement(
            request, tag, origin, sent_at, intent, priority, reduces=reduces
        )

    async def send_once(self, request: OrderRequest, priority: Priority) -> Outcome:
        """Journal, send once, record the answer, and return it as an Outcome.

        For the protection executor's flattens: it resolves an Unknown by the tag on its next
        pass (and re-sends the same tag if absent), so no look-ups are made here. Raises the
        broker's error when the request provably never left (it is re-sent on the next pass).
        """
        tag = request.custom_tag
        assert tag is not None
        intent = await self._ctx.send.intent(_placing(request, tag, reduces=True))
        outcome = await self._ctx.send.place(intent, request, priority)
        if isinstance(outcome, Confirmed):
            self._ctx.stats[Metric.ORDERS_PLACED] += 1
        return outcome

    async def _resolve_placement(
        self,
        request: OrderRequest,
        tag: str,
        origin: str,
        sent_at: datetime,
        intent: Intent,
        priority: Priority = Priority.QUERY,
        *,
        reduces: bool = False,
    ) -> OrderPlaceResponse:
        """Find the order by its tag among all the account's orders, with bounded look-ups.

        An order that reduces the position is sent again under the *same* tag whenever a
        look-up misses it (the broker refuses a duplicate tag, so it can never exist twice):
        a protective stop whose request was lost is in place within a look-up or two instead of
        leaving the position bare until someone notices (F1, F19)."""
        account_id = request.account_id
        for delay in status_check_delays(self._ctx.config, self._ctx.jitter):
            if delay:
                await self._ctx.clock.sleep(delay)
            # A protective or flattening order in doubt is looked up in its own lane: behind
            # ordinary reads in a full rate window, the look-up outlasted the protection deadline.
            lane = priority if priority in PRIORITY_LANE else Priority.QUERY
            found = await self._find_by_tag(account_id, tag, sent_at, lane)
            if found is not None:
                self._ctx.stats[Metric.PLACEMENTS_RESOLVED_BY_TAG] += 1
                if found.status is not OrderStatus.REJECTED:
                    self._ctx.stats[Metric.ORDERS_PLACED] += 1  # it was placed: the tag says so
                await self._ctx.send.resolved(intent, found)
                return _found_response(found, tag)
            if reduces:
                placed = await self._resend(request, priority)
                if placed is not None:
                    self._ctx.stats[Metric.PLACEMENTS_RESENT] += 1
                    await self._ctx.send.resolved(intent, placed, "re-sent under its tag")
                    return OrderPlaceResponse(
                        order_id=placed.id,
                        custom_tag=tag,
                        status=placed.status,
                        resolution=Resolution.RESENT,
                    )
        self._ctx.stats[Metric.PLACEMENTS_UNRESOLVED] += 1
        self._remember_unresolved(request, origin, sent_at, intent, reduces=reduces)
        raise OutcomeUnknownError(
            f"placement {tag} on {request.contract_id}: outcome unknown after "
            f"{self._ctx.config.status_check_max_attempts} look-ups ({origin}); "
            "new exposure there is refused until it is resolved",
            origin=origin,
            custom_tag=tag,
        )

    async def _resend(self, request: OrderRequest, priority: Priority) -> Order | None:
        """Send a reducing order in doubt again, same tag; the order if the broker took it now.

        A refusal proves nothing (most likely the tag exists: the first send arrived after
        all); the next look-up tells."""
        try:
            outcome = await self._ctx.send.resend(request, priority)
        except OrderGuardError as exc:
            log.warning("re-send of %s not sent: %s", request.custom_tag, exc)
            return None
        if isinstance(outcome, Confirmed) and outcome.order_id is not None:
            self._ctx.stats[Metric.ORDERS_PLACED] += 1
            view = self._ctx.tracker.get(outcome.order_id)
            if view is not None:
                return view
            return await self._find_by_tag(
                request.account_id,
                request.custom_tag or "",
                self._ctx.clock.now(),
                priority,
            )
        return None

    async def _find_by_tag(
        self, account_id: int, tag: str, sent_at: datetime, priority: Priority = Priority.QUERY
    ) -> Order | None:
        known = self._ctx.tracker.by_tag(account_id, tag)
        if known is not None:
            return known
        try:
            orders = await self._ctx.gateway.search_orders(
                account_id, start=self._ctx.reference.window_start(sent_at), priority=priority
            )
        except OrderGuardError as exc:
            # A failed query is no evidence either way; the next attempt asks again.
            log.warning("order search for %s failed: %s", tag, exc)
            return None
        for order in orders:
            if order.custom_tag == tag:
                self._ingest(order)
                return self._ctx.tracker.by_tag(account_id, tag)
        return None

    # -- the unresolved placements behind the latch ----------------------------------------------
    def _remember_unresolved(
        self,
        request: OrderRequest,
        origin: str,
        sent_at: datetime,
        intent: Intent,
        *,
        reduces: bool = False,
    ) -> None:
        tag = request.custom_tag
        assert tag is not None
        key = (request.account_id, tag)
        if key in self._unresolved:
            return
        self._unresolved_intents[key] = intent
        self._latch.latch(
            LatchEntry(request.account_id, request.contract_id, tag, origin, self._ctx.clock.now())
        )
        self._unresolved[key] = (request.contract_id, None)
        task = self._spawn(
            self._recheck(
                request.account_id, request.contract_id, tag, sent_at, request if reduces else None
            )
        )
        self._unresolved[key] = (request.contract_id, task)
        log.error(
            "placement %s on %s unresolved (%s): account %s latched on that contract",
            tag,
            request.contract_id,
            origin,
            request.account_id,
        )

    async def _recheck(
        self,
        account_id: int,
        contract_id: str,
        tag: str,
        sent_at: datetime,
        reducing: OrderRequest | None = None,
    ) -> None:
        """Background: look the tag up every ``status_check_max_delay`` s until it is found.

        A reducing order (``reducing``) is looked up every ``resend_pause`` s in the protective
        lane and, while the broker has no trace of it, sent again under its tag: protection in
        doubt is never left to a slow schedule, however long the caller's call gave up before."""
        while (account_id, tag) in self._unresolved:
            if reducing is None:
                await self._ctx.clock.sleep(self._ctx.config.status_check_max_delay)
                # An order in doubt may have opened a position nobody protects yet: finding
                # it is protection work (the flattening lane, past an open breaker).
                found = await self._find_by_tag(account_id, tag, sent_at, Priority.FLATTEN)
            else:
                await self._ctx.clock.sleep(self._resend_pause)
                found = await self._find_by_tag(account_id, tag, sent_at, Priority.PROTECTIVE)
                if found is None:
                    found = await self._resend(reducing, Priority.PROTECTIVE)
            if found is not None:
                # on_order (through ingest) normally released it already; this covers a
                # tracker hit.
                self._release(account_id, tag, found)

    def on_order(self, order: Order) -> None:
        """An order learned of (event or read): if it carries an unresolved tag, that placement
        is resolved and its contract unlatched."""
        if order.custom_tag and (order.account_id, order.custom_tag) in self._unresolved:
            self._release(order.account_id, order.custom_tag, order)

    def _release(self, account_id: int, tag: str, order: Order | None = None) -> None:
        entry = self._unresolved.pop((account_id, tag), None)
        intent = self._unresolved_intents.pop((account_id, tag), None)
        if entry is None:
            return
        contract_id, task = entry
        self._latch.release(account_id, contract_id, tag)
        if intent is not None:
            self._spawn(self._ctx.send.resolved(intent, order))
        self._ctx.stats[Metric.UNKNOWN_RESOLVED_LATER] += 1
        if order is not None and order.status is not OrderStatus.REJECTED:
            self._ctx.stats[Metric.ORDERS_PLACED] += 1  # placed after all: found by its tag
        log.warning("unresolved placement %s found; %s unlatched", tag, contract_id)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def release_latch(self, account_id: int, contract_id: str) -> int:
        """Stop re-checking the contract's unresolved placements and clear its latch entries;
        returns how many entries were cleared."""
        for key in [
            k
            for k, (cid, _) in self._unresolved.items()
            if k[0] == account_id and cid == contract_id
        ]:
            _, task = self._unresolved.pop(key)
            self._unresolved_intents.pop(key, None)
            if task is not None:
                task.cancel()
        return self._latch.release_all(account_id, contract_id)

    def forget_unresolved(self) -> None:
        """Drop the unresolved placements (the manager cancelled their re-check tasks)."""
        self._unresolved.clear()
        self._unresolved_intents.clear()


def _placing(request: OrderRequest, tag: str, reduces: bool) -> Mutation:
    """The intent of a placement: its tag and request (a leg of an operation already journaled
    under that tag is found by it)."""
    return Mutation(
        IntentKind.PLACE,
        account_id=request.account_id,
        contract_id=request.contract_id,
        custom_tag=tag,
        request=request_payload(request),
        reduces_exposure=reduces,
    )


def _reduces(request: OrderRequest, position: int) -> bool:
    """Filled alone, the order would shrink ``position`` without crossing through zero."""
    if position == 0 or request.side.sign == (1 if position > 0 else -1):
        return False
    return request.size <= abs(position)


def _found_response(order: Order, tag: str) -> OrderPlaceResponse:
    if order.status is OrderStatus.REJECTED:
        raise OrderRejectedError(
            f"order {tag} was found rejected after an unknown outcome",
            code=PlaceCode.ORDER_REJECTED,
            order_id=order.id,
        )
    return OrderPlaceResponse(
        order_id=order.id, custom_tag=tag, status=order.status, resolution=Resolution.TAG_LOOKUP
    )


__all__ = ["PlacementPipeline"]
