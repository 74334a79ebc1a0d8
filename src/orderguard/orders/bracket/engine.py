"""Bracket orders: validation, mode choice, entry placement and the sagas' event routing.

:class:`BracketEngine` is the per-manager home of every running :class:`BracketSaga`. It holds
one event listener while at least one bracket runs (none otherwise: no handler leaks per
bracket) and routes each event by order id, customTag, parent order id (native children) or
contract. Listeners do no I/O; each saga's driver task does.

``place_bracket_order`` checks everything before anything is sent — side, size (the manager's and
the account's limits), tick alignment, stop and target on the correct sides of the entry (or of
the market for a market entry) — then journals a BRACKET_ORDER operation and places the entry:

* native mode (server-side OCO, ProjectX ``stopLossBracket``/``takeProfitBracket`` in signed ticks
  from the fill) where the account allows it; the "Position Brackets" rejection switches the
  account to client-side mode for the session and the entry is placed again client-side under a
  new generation of its tag;
* client-side mode otherwise: the saga places stop and target concurrently on every fill
  increment and keeps them sized to the filled quantity.

It returns once the entry is acknowledged (a resting limit is fine: nothing blocks for a fill),
or, for a market entry, once protection is confirmed or the outcome is final.

Over 500 lines: the engine's own work (validation, the entry's placement, routing events and the
REST poll shared by every saga) is here; the saga, its legs, the planner and its facts are separate
modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from orderguard.broker.base import (
    AccountEvent,
    BrokerEvent,
    ConnectionEvent,
    ConnectionState,
    OrderEvent,
    PositionEvent,
    Rejected,
    TradeEvent,
    Unknown,
    UnknownOrigin,
)
from orderguard.errors import (
    CircuitOpenError,
    ConnectionFailedError,
    InvalidPriceError,
    OperationError,
    OrderGuardError,
    OrderRejectedError,
    OutcomeUnknownError,
    RateLimitedError,
    RiskLimitError,
    ValidationError,
)
from orderguard.models import BracketSpec, Contract, Order, OrderRequest, OrderType
from orderguard.orders.bracket.plan import (
    EntryPhase,
    Finish,
    LegKind,
    LegPhase,
    check_bracket_prices,
    native_ticks,
)
from orderguard.orders.bracket.saga import BracketRequest, BracketSaga
from orderguard.orders.bracket.values import BracketOrderResponse, BracketOutcome, BracketSettings
from orderguard.orders.engine_context import EngineContext
from orderguard.orders.exposure import EpisodeEnd, ExposureStats
from orderguard.orders.send.validation import check_size, check_tick, coerce_price, coerce_side
from orderguard.recovery.legs import ENTRY, FLATTEN, LegId
from orderguard.recovery.manager import RecoveryOperation, RefStatus
from orderguard.recovery.operations import OperationState, OperationType
from orderguard.recovery.startup import ResumeContext
from orderguard.resilience import Priority

log = logging.getLogger("orderguard.orders.bracket")

POSITION_BRACKETS_TEXT = "position brackets"
"""Substring (case-insensitive) of the rejection of native brackets on a legacy account."""

_ENTRY_TYPES = {"limit": False, "market": True}


class BracketEngine:
    """Runs the bracket sagas of one OrderManager (see the module docstring)."""

    def __init__(self, ctx: EngineContext, settings: BracketSettings | None = None) -> None:
        self.ctx = ctx
        self.settings = settings or BracketSettings()
        self.stats = ExposureStats()
        self.last_event_at = ctx.clock.monotonic()
        self._used = False
        self._sagas: dict[str, BracketSaga] = {}
        self._finished: OrderedDict[str, BracketOrderResponse] = OrderedDict()
        self._by_order: dict[int, BracketSaga] = {}
        self._by_tag: dict[str, BracketSaga] = {}
        self._by_parent: dict[int, BracketSaga] = {}
        # Insertion-ordered (a dict, not a set): iteration must not depend on addresses, so a
        # seeded run replays identically.
        self._by_contract: dict[str, dict[BracketSaga, None]] = {}
        self._client_side: set[int] = set()  # accounts refused native brackets this session
        self._native_caps: dict[int, bool] = {}  # accounts' native-bracket capability, read once
        self._remove_listener: Callable[[], None] | None = None
        self._poller: asyncio.Task[None] | None = None
        self._poll_now = asyncio.Event()
        self._next_poll: asyncio.Future[bool] | None = None  # sagas waiting for a fresh read
        self.polls = 0
        self._resumed = False
        ctx.recovery.register_statistics(self.stats.as_dict)

    def note_first_use(self) -> None:
        """The event-silence clock (``last_event_at``, which shortens the poll) starts at the
        engine's first use, not when the manager was built: no listener hears events while no
        bracket runs, so a manager that traded an hour without brackets must not take the
        stream of its first one for silent. The manager's bracket entry points call this
        (through :attr:`OrderManager.brackets`), as do the other engines' calls below."""
        if not self._used:
            self._used = True
            self.last_event_at = self.ctx.clock.monotonic()

    # -- public ---------------------------------------------------------------------------------
    async def place(
        self,
        contract_id: str,
        side: int,
        size: int,
        entry_price: Decimal | float | int | str | None,
        stop_loss_price: Decimal | float | int | str,
        take_profit_price: Decimal | float | int | str,
        entry_type: str = "limit",
        account_id: int | None = None,
        *,
        entry_timeout: float | None = None,
        protection_deadline: float | None = None,
        native: bool | None = None,
    ) -> BracketOrderResponse:
        # No implicit resume() here: start-up recovery restarts the sagas of unfinished
        # brackets (resume_at_startup), and a second actor beside a rollback would race it.
        request, contract = await self._validate(
            contract_id,
            side,
            size,
            entry_price,
            stop_loss_price,
            take_profit_price,
            entry_type,
            account_id,
            entry_timeout,
        )
        settings = self.settings
        if protection_deadline is not None:
            settings = replace(settings, protection_deadline=protection_deadline)
        use_native = await self._use_native(request.account_id, native)
        op = await self.ctx.recovery.start_operation(
            OperationType.BRACKET_ORDER,
            account_id=request.account_id,
            contract_id=request.contract_id,
            extra={
                "bracket": request.as_dict(),
                "native": use_native,
                "protection_deadline": settings.protection_deadline,
            },
        )
        saga = BracketSaga(self, op, request, settings, native=use_native)
        self._adopt(saga)
        try:
            error = await self._place_entry(saga, contract)
        except asyncio.CancelledError:
            # The manager is going down while the entry may be on its way (a caller that gives
            # up does not get here: public calls survive their caller). The operation stays
            # unfinished in the journal, its intent says what may have been sent, and start-up
            # recovery resolves it by its tag: "not sent" would be a guess, maybe a lie (F18).
            self.retire(saga)
            raise
        except BaseException:
            await self._abandon(saga, "the entry could not be sent")
            raise
        if error is not None:
            await self._abandon(saga, error)
            return saga.response(error=error)
        self._start(saga)
        if request.market or saga.owned():
            # A market entry fills at once: return when protection is confirmed or final.
            await self._wait(saga, _protected_or_final, settings.protection_deadline * 2)
        return saga.response()

    async def wait_for_protection(
        self, operation_id: str, timeout: float | None = None
    ) -> BracketOrderResponse:
        """Until the owned quantity is covered by the stop, or the bracket is over."""
        return await self._wait_for(operation_id, _protected_or_final, timeout)

    async def wait_for_completion(
        self, operation_id: str, timeout: float | None = None
    ) -> BracketOrderResponse:
        """Until the bracket is over (nothing working, nothing owned, or a truthful failure)."""
        return await self._wait_for(operation_id, _final, timeout)

    def status(self, operation_id: str) -> BracketOrderResponse | None:
        saga = self._sagas.get(operation_id)
        if saga is not None:
            return saga.response()
        return self._finished.get(operation_id)

    async def close(self, operation_id: str, reason: str = "closed by the caller") -> bool:
        """Close this bracket only: cancel its entry rest and exits, flatten exactly what it owns
        (never the whole contract, F13). True once the request is taken; wait_for_completion
        gives the result."""
        saga = self._sagas.get(operation_id)
        if saga is None:
            if operation_id in self._finished:
                return False
            raise OperationError(f"no running bracket {operation_id!r}")
        if not saga.handed_over:
            await saga.hand_over(reason)
        return True

    def active(self) -> list[str]:
        return list(self._sagas)

    def wake(self, operation_id: str) -> bool:
        """Wake the saga of ``operation_id`` to plan again (its holdings changed); False when
        no saga of this engine drives it."""
        saga = self._sagas.get(operation_id)
        if saga is None:
            return False
        saga.news()
        return True

    def release_exits(self, order_ids: Iterable[int], why: str) -> list[str]:
        """The caller is removing these orders: a running bracket one of them is an exit of
        does not place it again (and, its stop removed, stops protecting: see
        ``BracketSaga.release``). Returns the operations released."""
        self.note_first_use()
        legs: dict[str, tuple[BracketSaga, set[LegKind]]] = {}
        for order_id in order_ids:
            saga = self._by_order.get(order_id)
            if saga is None:
                continue
            for kind, slot in saga.slots.items():
                if slot.order_id == order_id:
                    legs.setdefault(saga.operation_id, (saga, set()))[1].add(kind)
        return [op_id for op_id, (saga, kinds) in legs.items() if saga.release(why, kinds)]

    def linked_exit(self, order_id: int) -> int | None:
        """The OCO sibling of a bracket exit (stop <-> target), if both are known."""
        self.note_first_use()
        saga = self._by_order.get(order_id)
        if saga is None:
            return None
        stop = saga.slots[LegKind.STOP].order_id
        target = saga.slots[LegKind.TARGET].order_id
        if order_id == stop:
            return target
        if order_id == target:
            return stop
        return None

    async def resume(self) -> int:
        """Restart sagas of unfinished BRACKET_ORDER operations from the journal (once)."""
        if self._resumed:
            return 0
        self._resumed = True
        started = 0
        for op in list(self.ctx.recovery.active_operations.values()):
            if self.resume_operation(op) is not None:
                started += 1
        return started

    def resume_operation(
        self, op: RecoveryOperation, truth: Sequence[Order] | None = None
    ) -> BracketSaga | None:
        """Restart the saga of one unfinished bracket from its journaled legs (None when it is
        not a bracket of this engine's making, or already driven).

        The saga reads its orders over REST before it plans anything (a new process's tracker
        knows nothing yet: "no fill seen" must not read as "nothing owned"); live legs are
        adopted, missing ones placed as a new generation (a tag is never placed twice), and
        everything is sized to exactly the quantity the operation owns."""
        if (
            op.operation_type is not OperationType.BRACKET_ORDER
            or op.operation_id in self._sagas
            or op.state.is_terminal  # finished meanwhile (by a saga of this process)
            or op.state is OperationState.ROLLING_BACK  # a rollback drives it: one actor
        ):
            return None
        data = op.extra.get("bracket")
        if not isinstance(data, dict):
            return None
        settings = replace(
            self.settings,
            protection_deadline=float(
                op.extra.get("protection_deadline", self.settings.protection_deadline)
            ),
        )
        saga = BracketSaga(
            self, op, BracketRequest.from_dict(data), settings, native=bool(op.extra.get("native"))
        )
        _restore(saga)
        saga.primed = False
        saga.prime_orders = truth
        self._adopt(saga)
        self._start(saga)
        return saga

    async def resume_at_startup(self, ctx: ResumeContext) -> None:
        """Start-up recovery of a BRACKET_ORDER operation (the manager hands this resumer to
        recovery for the type).

        After the pivot (an entry fill) it rolls forward: the bracket's own saga is restarted
        on the folded journal and re-protects exactly the owned quantity with the legs' tags
        (live legs adopted, missing ones placed as a new generation). The operation stays in
        progress, driven by that saga. Before the pivot, or while it was already rolling back,
        or for a bracket-typed operation the engine did not make, it rolls back as the default
        does."""
        self.note_first_use()
        op = ctx.operation
        if op.operation_id in self._sagas or op.state.is_terminal:
            ctx.note("already driven by its saga" if not op.state.is_terminal else "already over")
            return
        if op.state is OperationState.ROLLING_BACK or not isinstance(op.extra.get("bracket"), dict):
            await ctx.roll_back("rolled back at start-up recovery")
            return
        if not ctx.plan.pivot_passed:
            await ctx.roll_back("the entry had not filled before the restart")
            return
        truth = None
        if ctx.snapshot is not None:
            truth = ctx.snapshot.orders  # the saga starts from the truth just read
            for order in truth:
                self.ctx.feed.ingest(order)
        self.resume_operation(op, truth)
        ctx.handed_off = True  # unfinished on purpose: its saga drives it from here
        ctx.note(f"saga restarted: re-protecting {ctx.plan.flattenable:+d} with the legs' tags")

    async def shutdown(self) -> None:
        """Stop every driver (positions stay protected by the orders at the broker)."""
        tasks = [s.task for s in self._sagas.values() if s.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- statistics ---------------------------------------------------------------------------
    def record_episode(self, end: EpisodeEnd, operation_id: str | None = None) -> None:
        self.stats.add(end)
        self.ctx.telemetry.record_episode(end.seconds, end.time_to_protection, operation_id)

    def record_incident(self) -> None:
        self.stats.incidents += 1

    # -- validation -----------------------------------------------------------------------------
    async def _validate(
        self,
        contract_key: str,
        side_in: object,
        size_in: object,
        entry_in: object,
        stop_in: object,
        target_in: object,
        entry_type: object,
        account_in: int | None,
        entry_timeout: float | None,
    ) -> tuple[BracketRequest, Contract]:
        m = self.ctx
        if not isinstance(entry_type, str) or entry_type.lower() not in _ENTRY_TYPES:
            raise ValidationError(f"entry_type must be 'limit' or 'market', got {entry_type!r}")
        market = _ENTRY_TYPES[entry_type.lower()]
        side = coerce_side(side_in)
        size = check_size(size_in, m.config.max_order_size)
        stop = coerce_price(stop_in, "stop_loss_price")
        target = coerce_price(target_in, "take_profit_price")
        entry = None if market else coerce_price(entry_in, "entry_price")
        if entry_timeout is not None and not entry_timeout > 0:
            raise ValidationError(f"entry_timeout must be positive, got {entry_timeout!r}")
        account = await m.reference.trading_account(account_in)
        contract = await m.contracts.resolve(contract_key)
        check_size(size, await m.reference.max_order_size(account))
        for name, price in (
            ("entry_price", entry),
            ("stop_loss_price", stop),
            ("take_profit_price", target),
        ):
            if price is not None:
                check_tick(contract, price, name)
        if entry is not None:
            check_bracket_prices(side, entry, stop, target, what=f"entry price {entry}")
        else:
            last = await m.gateway.get_last_price(contract.id)
            if last is None:
                raise InvalidPriceError("the market price is unknown: a market bracket needs it")
            check_bracket_prices(side, last, stop, target, what=f"last price {last}")
        return (
            BracketRequest(
                account_id=account,
                contract_id=contract.id,
                side=side,
                size=size,
                market=market,
                entry_price=entry,
                stop_price=stop,
                target_price=target,
                entry_timeout=entry_timeout,
            ),
            contract,
        )

    async def _use_native(self, account_id: int, wanted: bool | None) -> bool:
        if wanted is False or account_id in self._client_side:
            return False
        if wanted:
            # The account setting cannot be read on the real API: an explicit request tries it,
            # and the "Position Brackets" rejection falls back to client-side.
            return True
        known = self._native_caps.get(account_id)
        if known is None:
            # Once per account and session: a read per bracket spent the rate budget, and the
            # setting does not change under a session (a refusal switches to client-side).
            caps = await self.ctx.gateway.get_capabilities(account_id)
            known = self._native_caps[account_id] = caps.native_brackets
        return known

    # -- the entry ------------------------------------------------------------------------------
    async def _place_entry(self, saga: BracketSaga, contract: Contract) -> str | None:
        """Journal and send the entry; None when the saga should run, else why it cannot."""
        m, req = self.ctx, saga.req
        generation = 0
        while True:
            native = saga.native
            # The native legs' offsets may need a price read: done before the intent is
            # journaled, so a failed read leaves no entry leg that was never sent (I5).
            stop_spec = await self._native_leg(saga, contract, LegKind.STOP) if native else None
            target_spec = await self._native_leg(saga, contract, LegKind.TARGET) if native else None
            ref = await m.recovery.add_order_to_operation(
                saga.op,
                req.contract_id,
                req.side,
                req.size,
                "market" if req.market else "limit",
                req.entry_price,
                leg="entry",
                account_id=req.account_id,
                generation=generation,
                request={**req.as_dict(), "native": native},
            )
            saga.entry.ref = ref
            saga.entry.phase = EntryPhase.UNKNOWN
            self._by_tag[ref.custom_tag] = saga
            request = OrderRequest(
                account_id=req.account_id,
                contract_id=req.contract_id,
                type=OrderType.MARKET if req.market else OrderType.LIMIT,
                side=req.side,
                size=req.size,
                limit_price=req.entry_price,
                custom_tag=ref.custom_tag,
                stop_loss_bracket=stop_spec,
                take_profit_bracket=target_spec,
            )
            try:
                placed = await m.send.submit(request)
            except OrderRejectedError as exc:
                if native and POSITION_BRACKETS_TEXT in str(exc).lower():
                    # The account is on legacy Position Brackets: client-side from now on.
                    log.warning("account %s refuses native brackets; client-side", req.account_id)
                    self._client_side.add(req.account_id)
                    saga.native = False
                    saga.op.extra["native"] = False
                    await m.recovery.record_order_failure(
                        saga.op, ref, Rejected(exc.code, str(exc), exc.order_id)
                    )
                    generation += 1  # a rejected order record may hold the old tag
                    continue
                saga.entry.phase = EntryPhase.REJECTED
                await m.recovery.record_order_failure(
                    saga.op, ref, Rejected(exc.code, str(exc), exc.order_id)
                )
                return f"entry rejected: {exc}"
            except (ValidationError, OperationError, RiskLimitError) as exc:
                # Refused before anything was sent: the journaled intent says so (I5).
                saga.entry.phase = EntryPhase.REJECTED
                await m.recovery.record_order_failure(saga.op, ref, str(exc))
                raise
            except (ConnectionFailedError, CircuitOpenError) as exc:
                saga.entry.phase = EntryPhase.REJECTED
                await m.recovery.record_order_failure(saga.op, ref, exc)
                return f"entry not sent: {exc}"
            except RateLimitedError as exc:
                if not exc.sent:
                    saga.entry.phase = EntryPhase.REJECTED
                    await m.recovery.record_order_failure(saga.op, ref, exc)
                    return f"entry not sent: {exc}"
                await self._entry_unknown(saga, str(exc))
                return None
            except OutcomeUnknownError as exc:
                await self._entry_unknown(saga, exc.origin)
                return None
            except OrderGuardError as exc:
                # Anything else may have left (an auth error mid-send, a 5xx): never failure.
                await self._entry_unknown(saga, f"{type(exc).__name__}: {exc}")
                return None
            saga.entry.order_id = placed.order_id
            saga.entry.phase = EntryPhase.WORKING
            saga.entry.acked_at = m.clock.monotonic()
            self.route_order(saga, placed.order_id)
            self.route_parent(saga, placed.order_id)
            await m.recovery.record_order_success(saga.op, ref, placed)
            await m.recovery.add_position_tracking(saga.op, req.contract_id, ref, "entry")
            saga.evaluate()
            return None

    async def _entry_unknown(self, saga: BracketSaga, detail: str) -> None:
        # Never failure: the saga keeps looking for the tag (and protects it if it shows up).
        ref = saga.entry.ref
        assert ref is not None
        saga.entry.phase = EntryPhase.UNKNOWN
        saga.entry.acked_at = self.ctx.clock.monotonic()
        await self.ctx.recovery.record_order_failure(
            saga.op, ref, Unknown(UnknownOrigin.TIMEOUT_AFTER_SEND, detail)
        )
        saga.refresh_due = True

    async def _native_leg(
        self, saga: BracketSaga, contract: Contract, kind: LegKind
    ) -> BracketSpec:
        req = saga.req
        if req.entry_price is not None:
            anchor = req.entry_price
        else:
            last = await self.ctx.gateway.get_last_price(contract.id)
            anchor = last if last is not None else req.stop_price
        if kind is LegKind.STOP:
            return BracketSpec(native_ticks(contract, anchor, req.stop_price), OrderType.STOP)
        return BracketSpec(native_ticks(contract, anchor, req.target_price), OrderType.LIMIT)

    async def _abandon(self, saga: BracketSaga, reason: str) -> None:
        """The entry never reached the broker: the operation fails with nothing live."""
        op = saga.op
        op.last_error = reason
        if not op.state.is_terminal:
            await self.ctx.recovery.transition_operation(op, OperationState.FAILED, reason)
        saga.final = Finish(OperationState.FAILED, BracketOutcome.FLAT, reason)
        self.retire(saga)

    # -- running and waiting ----------------------------------------------------------------------
    def _start(self, saga: BracketSaga) -> None:
        saga.task = self.ctx.spawn(saga.run())

    async def _wait(
        self, saga: BracketSaga, predicate: Callable[[BracketSaga], bool], timeout: float | None
    ) -> None:
        # On timeout the response still says truthfully where the bracket stands.
        with contextlib.suppress(TimeoutError):
            await self.ctx.clock.wait_for(saga.wait(predicate), timeout)

    async def _wait_for(
        self,
        operation_id: str,
        predicate: Callable[[BracketSaga], bool],
        timeout: float | None,
    ) -> BracketOrderResponse:
        saga = self._sagas.get(operation_id)
        if saga is None:
            done = self._finished.get(operation_id)
            if done is None:
                raise OperationError(f"unknown bracket operation {operation_id!r}")
            return done
        await self._wait(saga, predicate, timeout)
        return saga.response()

    # -- routing ----------------------------------------------------------------------------------
    def _adopt(self, saga: BracketSaga) -> None:
        self._sagas[saga.operation_id] = saga
        self._by_contract.setdefault(saga.req.contract_id, {})[saga] = None
        if self._remove_listener is None:
            self._remove_listener = self.ctx.listen(self._on_event)
        if self._poller is None or self._poller.done():
            self._poller = self.ctx.spawn(self._poll_loop())

    def route_order(self, saga: BracketSaga, order_id: int) -> None:
        self._by_order[order_id] = saga

    def route_tag(self, saga: BracketSaga, custom_tag: str) -> None:
        self._by_tag[custom_tag] = saga

    def route_parent(self, saga: BracketSaga, order_id: int) -> None:
        if saga.native:
            self._by_parent[order_id] = saga

    def retire(self, saga: BracketSaga) -> None:
        """Forget a finished saga; the listener goes when the last bracket ends."""
        if self._sagas.pop(saga.operation_id, None) is None:
            return
        self._finished[saga.operation_id] = saga.response()
        while len(self._finished) > self.settings.history:
            self._finished.popitem(last=False)
        for table in (self._by_order, self._by_parent):
            for key in [k for k, v in table.items() if v is saga]:
                del table[key]
        for tag in [k for k, v in self._by_tag.items() if v is saga]:
            del self._by_tag[tag]
        peers = self._by_contract.get(saga.req.contract_id)
        if peers is not None:
            peers.pop(saga, None)
            if not peers:
                del self._by_contract[saga.req.contract_id]
        if not self._sagas and self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        if not self._sagas:
            self._poll_now.set()  # the poller sees no bracket left and ends

    def _on_event(self, event: BrokerEvent) -> None:
        """Route one event (sync, no I/O: sagas fold it in and wake their drivers)."""
        self.last_event_at = self.ctx.clock.monotonic()
        if isinstance(event, OrderEvent):
            self._route_order(event.order)
        elif isinstance(event, TradeEvent):
            saga = self._by_order.get(event.trade.order_id)
            if saga is not None:
                saga.news()
        elif isinstance(event, PositionEvent | AccountEvent):
            # A position changed outside the brackets is credited to them by the manager's
            # holdings follower (orders/positions/holdings.py), which wakes the sagas it concerns.
            pass  # balance only; the order and position events carry what we need
        elif isinstance(event, ConnectionEvent) and event.state in (
            ConnectionState.RECONNECTED,
            ConnectionState.SILENT,
        ):
            self._poll_now.set()  # events in the gap are lost: re-read over REST at once

    def _ours(self, order: Order) -> bool:
        return (
            order.id in self._by_order
            or (order.custom_tag is not None and order.custom_tag in self._by_tag)
            or (order.parent_order_id is not None and order.parent_order_id in self._by_parent)
            or self._by_leg_tag(order.custom_tag) is not None
        )

    def _by_leg_tag(self, custom_tag: str | None) -> BracketSaga | None:
        """The saga whose operation a leg tag names, though no record of that leg holds the
        tag (sent while the journal could not record it, and the process died)."""
        leg = None if custom_tag is None else self.ctx.tags.leg_of(custom_tag)
        return None if leg is None else self._sagas.get(leg[0])

    def _route_order(self, order: Order) -> None:
        saga = self._by_order.get(order.id)
        if saga is None and order.custom_tag:
            saga = self._by_tag.get(order.custom_tag) or self._by_leg_tag(order.custom_tag)
        if saga is None and order.parent_order_id is not None:
            saga = self._by_parent.get(order.parent_order_id)
        if saga is not None:
            saga.on_order(order)

    # -- the shared REST poll -------------------------------------------------------------------
    def poll_interval(self) -> float:
        """Short while the event stream is silent; never longer than half the flatten point,
        so a fill whose events were all lost is still protected (or flattened) in time."""
        s = self.settings
        now = self.ctx.clock.monotonic()
        quiet = now - self.last_event_at >= s.poll_interval
        base = s.poll_interval if quiet else s.poll_max_interval
        shortest = min((saga.settings.flatten_after for saga in self._sagas.values()), default=0)
        return min(base, shortest / 2) if shortest else base

    async def _poll_loop(self) -> None:
        """One ``Order/search`` per account per interval for every bracket together (events
        can be lost; a per-bracket poll would spend the rate budget on quiet brackets)."""
        clock = self.ctx.clock
        while self._sagas:
            self._poll_now.clear()
            with contextlib.suppress(TimeoutError):
                await clock.wait_for(self._poll_now.wait(), self.poll_interval())
            if not self._sagas:
                break
            await self.poll()

    async def shared_read(self) -> bool:
        """A REST re-read for one saga, shared with every other saga asking meanwhile: the next
        poll starts at once and serves them all (one ``Order/search`` per account instead of
        one per saga — with many brackets in doubt, per-saga reads spent the rate budget).
        True when every account was read."""
        if self._next_poll is None:
            self._next_poll = asyncio.get_running_loop().create_future()
        waiter = self._next_poll
        self._poll_now.set()
        if self._poller is None or self._poller.done():
            self._poller = self.ctx.spawn(self._poll_loop())
        return await asyncio.shield(waiter)

    async def poll(self) -> None:
        """Re-read every order of the running brackets' window and route it like an event."""
        # Only a poll that starts after a request answers it (an older one may predate it).
        waiter, self._next_poll = self._next_poll, None
        complete = True
        try:
            complete = await self._poll_accounts()
        finally:
            if waiter is not None and not waiter.done():
                waiter.set_result(complete)

    async def _poll_accounts(self) -> bool:
        m = self.ctx
        complete = True
        starts: dict[int, datetime] = {}
        exposed: set[int] = set()
        for saga in self._sagas.values():
            acct = saga.req.account_id
            starts[acct] = min(starts.get(acct, saga.op.started_at), saga.op.started_at)
            if saga.final is None and not saga.protected:
                exposed.add(acct)
        for acct, start in starts.items():
            # A saga whose entry may have filled without its stop in place waits on this read:
            # it goes in the flattening lane (past an open breaker, ahead of ordinary reads).
            lane = Priority.FLATTEN if acct in exposed else Priority.QUERY
            try:
                orders = await m.gateway.search_orders(acct, start=start, priority=lane)
            except OrderGuardError as exc:
                log.warning("bracket poll of account %s failed: %s", acct, exc)
                complete = False
                continue
            self.polls += 1
            for order in orders:
                if not self._ours(order):
                    continue  # other orders are not ours to re-read (and cost on every poll)
                before = m.tracker.get(order.id)
                m.feed.ingest(order)  # the tracker's monotonic merge: never backwards
                if (
                    before is None
                    or m.tracker.get(order.id) != before
                    # Known to the tracker by another path (the manager resolving an unknown
                    # placement by its tag) but never routed: the saga has not adopted it.
                    or order.id not in self._by_order
                ):
                    self._route_order(order)  # only news is news
        for saga in tuple(self._sagas.values()):
            saga.news()
        return complete


def _protected_or_final(saga: BracketSaga) -> bool:
    return (
        saga.final is not None
        or saga.protected
        or (saga.entry.phase is EntryPhase.UNKNOWN and saga.entry.order_id is None)
    )


def _final(saga: BracketSaga) -> bool:
    return saga.final is not None


def _restore(saga: BracketSaga) -> None:
    """Rebuild a saga's in-memory state from its journaled legs (after a restart)."""
    op = saga.op
    for leg, ref in sorted(op.orders.items(), key=lambda item: LegId.parse(item[0]).sort_key):
        leg_id = LegId.parse(leg)
        if leg_id.is_numbered(FLATTEN):
            saga.engine.route_tag(saga, ref.custom_tag)  # its fills count in owned (by tag)
            continue
        if leg == ENTRY:
            saga.entry.ref = ref
            saga.entry.order_id = ref.order_id
            saga.entry.phase = EntryPhase.WORKING if ref.order_id else EntryPhase.UNKNOWN
            if ref.status == RefStatus.REJECTED:
                saga.entry.phase = EntryPhase.REJECTED
            saga.entry.acked_at = saga.ctx.clock.monotonic()
            saga.engine.route_tag(saga, ref.custom_tag)
            if ref.order_id:
                saga.engine.route_order(saga, ref.order_id)
                saga.engine.route_parent(saga, ref.order_id)
            continue
        for kind in LegKind:
            if not leg_id.is_numbered(kind.value) or leg_id.index is None:
                continue
            slot = saga.slots[kind]
            saga.engine.route_tag(saga, ref.custom_tag)
            index = leg_id.index
            slot.count = max(slot.count, index + 1)
            if saga.native and ref.order_id is None and ref.status != RefStatus.CONFIRMED:
                # Native mode: an unresolved leg is most likely a server-side child journaled
                # without its id (children carry no tag, so "absent by tag" proves nothing).
                # The slot stays empty: the children are looked up by parent id first, and an
                # order carrying the leg's tag is still adopted (as a stray) if it exists.
                continue
            if ref.order_id is not None:
                saga.exit_ids.append(ref.order_id)
                saga.engine.route_order(saga, ref.order_id)
            if slot.ref is None or index >= (LegId.parse(slot.ref.leg).index or 0):
                slot.ref, slot.order_id, slot.size = ref, ref.order_id, ref.size
                slot.native = leg in op.extra.get("native_legs", [])
                # A rejected leg (or one found absent after the crash) is placed again as a new
                # generation: forward recovery gets its retry, and a rejection that repeats
                # sends the bracket flat as before.
                slot.restored(
                    {
                        RefStatus.CONFIRMED: LegPhase.LIVE,
                        RefStatus.FILLED: LegPhase.DONE,
                        RefStatus.CANCELLED: LegPhase.DONE,
                        RefStatus.REJECTED: LegPhase.NONE,
                    }.get(ref.status, LegPhase.UNKNOWN)
                )
                if slot.phase is LegPhase.NONE:
                    slot.order_id = None
    if op.state in (OperationState.ROLLING_BACK, OperationState.PARTIALLY_COMPLETED):
        saga.going_flat = op.last_error or "resumed a rollback after a restart"


__all__ = [
    "POSITION_BRACKETS_TEXT",
    "BracketEngine",
    "BracketOrderResponse",
    "BracketOutcome",
    "BracketSettings",
]
