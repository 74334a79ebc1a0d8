"""OrderManager: project-x-py's core order API on the Broker port, with the three-outcome rule.

Every placement is validated completely before anything is sent, gets a customTag fixed before
the request leaves, and ends in one of three ways: a response (Confirmed, or an Unknown resolved by
finding the tag among *all* the account's orders), :class:`OrderRejectedError` (definitive), or
:class:`OutcomeUnknownError` after the bounded look-ups failed, which latches the (account,
contract) against new exposure until a background re-check or an event finds the order.

Concurrency: there is no lock. State lives in the pure :class:`OrderTracker`, whose updates are
synchronous (atomic on the event loop), so no broker I/O and no user callback ever runs under a lock
(FAILURES F12), and a callback may call back into the manager freely.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime, timedelta
from decimal import Decimal
from types import TracebackType
from typing import Any, Self

from orderguard.broker.base import (
    Broker,
    BrokerEvent,
    Confirmed,
    ConnectionEvent,
    ConnectionState,
    OrderEvent,
    Outcome,
    PlaceCode,
    Rejected,
    Subscription,
    TradeEvent,
    Unknown,
    UnknownOrigin,
)
from orderguard.clock import Clock, SystemClock
from orderguard.config import OrderManagerConfig
from orderguard.errors import (
    InvalidSideError,
    OrderGuardError,
    OrderNotFoundError,
    OrderRejectedError,
    OutcomeUnknownError,
    UnknownAccountError,
    UnknownContractError,
    ValidationError,
)
from orderguard.journal.base import IntentKind, Journal
from orderguard.journal.memory import MemoryJournal
from orderguard.models import (
    PLACEABLE_ORDER_TYPES,
    Account,
    Contract,
    Order,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
)
from orderguard.orders import bracket as _bracket
from orderguard.orders import oco as _oco
from orderguard.orders import positions as _positions
from orderguard.orders.backoff import status_check_delays
from orderguard.orders.callbacks import TRADE_EXECUTED, Callback, CallbackRegistry, events_for
from orderguard.orders.contracts import ContractResolver
from orderguard.orders.gateway import GuardedBroker
from orderguard.orders.journaling import Intent, SendJournal, request_payload
from orderguard.orders.latch import AmbiguityLatch, LatchEntry
from orderguard.orders.operations import OrderOperations
from orderguard.orders.reconciler import Reconciler
from orderguard.orders.results import (
    CancelAllResult,
    CancelResult,
    ClosePositionResult,
    ModifyResult,
    OrderPlaceResponse,
    Resolution,
)
from orderguard.orders.tags import TagFactory
from orderguard.orders.tracking import OrderChange, OrderTracker
from orderguard.orders.validation import (
    check_account_id,
    check_size,
    check_stop_vs_market,
    check_tick,
    coerce_price,
    coerce_side,
)
from orderguard.recovery.manager import OperationRecoveryManager, RecoveryOperation
from orderguard.recovery.operations import OperationType
from orderguard.recovery.startup import RecoveryReport, recover
from orderguard.resilience import PRIORITY_LANE, BreakerStatus, Priority

log = logging.getLogger("orderguard.orders")

_LIMIT_PRICED = frozenset({OrderType.LIMIT, OrderType.STOP_LIMIT})
_STOP_PRICED = frozenset({OrderType.STOP, OrderType.STOP_LIMIT})


class OrderManager:
    """Places, modifies, cancels and tracks orders on one broker (see module docstring)."""

    def __init__(
        self,
        broker: Broker,
        *,
        clock: Clock | None = None,
        config: OrderManagerConfig | None = None,
        account_id: int | None = None,
        rng: random.Random | None = None,
        journal: Journal | None = None,
    ) -> None:
        self._broker = broker
        self._clock: Clock = clock if clock is not None else SystemClock()
        self.config = config if config is not None else OrderManagerConfig()
        # Unseeded: fresh OS entropy, so two processes on one account get different tag sessions.
        rng = rng if rng is not None else random.Random()
        self._tags = TagFactory(self.config.tag_prefix, rng)
        # A separate stream for jitter, so fault history never shifts the tags of later orders.
        self._jitter = random.Random(rng.getrandbits(64))
        self._requested_account = account_id
        self._account_id: int | None = None
        self._accounts: dict[int, Account] = {}
        self._max_size: dict[int, int] = {}
        self._stats: Counter[str] = Counter()
        # Finished orders are kept for a bounded count; legs of unfinished operations never drop.
        self.tracker = OrderTracker(
            max_finished=self.config.tracked_finished_orders, pinned=self._orders_in_use
        )
        self.latch = AmbiguityLatch()
        self._callbacks = CallbackRegistry(self._spawn)
        self._subscription: Subscription | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # (account, customTag) -> recheck task, for placements whose outcome is still unknown.
        self._unresolved: dict[tuple[int, str], tuple[str, asyncio.Task[None] | None]] = {}
        self._unresolved_intents: dict[tuple[int, str], Intent] = {}
        # Without a journal given, operations are tracked in memory only (not crash-safe).
        self._owns_journal = journal is None
        self.journal: Journal = journal if journal is not None else MemoryJournal(self._clock)
        self.recovery = OperationRecoveryManager(
            self.journal,
            self._clock,
            actions=self,
            rng=random.Random(rng.getrandbits(64)),
            tag_prefix=self.config.tag_prefix,
        )
        # Every broker call goes through the limiter and the breakers (queries also retry).
        self.gateway = GuardedBroker(
            broker, self._clock, self.config, random.Random(rng.getrandbits(64)), self._stats
        )
        self._contracts = ContractResolver(self.gateway)
        self._journal = SendJournal(self.recovery, self._stats)
        self._operations = OrderOperations(self)
        self._event_listeners: list[Callable[[BrokerEvent], None]] = []
        self.reconciler = Reconciler(self)
        self.last_recovery: RecoveryReport | None = None
        """What start-up recovery did (``start`` runs it); ``error`` set while broker truth
        could not be read, during which new exposure is refused."""

    # ------------------------------------------------------------------------------------------
    # lifecycle
    # ------------------------------------------------------------------------------------------
    @property
    def started(self) -> bool:
        return self._account_id is not None

    @property
    def account_id(self) -> int:
        """The default account (resolved by :meth:`start`)."""
        if self._account_id is None:
            raise UnknownAccountError("OrderManager not started: call `await start()` first")
        return self._account_id

    @property
    def tags(self) -> TagFactory:
        return self._tags

    async def start(self) -> None:
        """Subscribe, resolve the default account, recover, reconcile continuously. Idempotent.

        Before ``start`` returns, start-up recovery (:func:`~orderguard.recovery.startup.recover`)
        has reconciled every unfinished operation of the journal with broker truth and rolled it
        forward or back (the report is :attr:`last_recovery`); managed position exits are
        re-checked; and the continuous :class:`~orderguard.orders.reconciler.Reconciler` runs.
        If broker truth could not be read, ``start`` still returns, but new exposure is refused
        (:class:`~orderguard.errors.ExposureRefusedError`) until the reconciler's retry of the
        recovery succeeds; cancels, protection and flattening stay allowed.
        """
        if self._account_id is not None:
            return
        # Subscribe before the first query so no event between the two is missed.
        self._subscription = self._broker.subscribe(self._on_event)  # events need no guarding
        try:
            await self._load_accounts()
            if self._requested_account is not None:
                account = await self._known_account(self._requested_account)
            else:
                tradable = [a for a in self._accounts.values() if a.can_trade]
                if not tradable:
                    raise UnknownAccountError("the broker lists no tradable account")
                account = tradable[0]
            await self._max_order_size(account.id)
        except BaseException:
            self._close_subscription()
            raise
        await self.journal.open()
        await self.recovery.load()
        self._account_id = account.id
        log.info(
            "order manager started on account %s (tag session %s)", account.id, self._tags.session
        )
        await self.rerun_recovery()
        await self._resume_position_orders()
        await self._resume_oco_pairs()
        self.reconciler.start()

    async def rerun_recovery(self) -> RecoveryReport:
        """Run start-up recovery (again); new exposure is held while it cannot read the broker.

        ``start`` calls it; the reconciler calls it again while the last report says broker truth
        was unavailable. Operations it leaves unfinished are handed to the reconciler.
        """
        if self.recovery.active_operations:
            # Nothing may be stacked on operations whose broker state we have not read yet.
            self.latch.hold("start-up recovery has not reconciled the journal with the broker")
        driven = self.saga_operations() | {
            i for i in self.recovery.active_operations if self.recovery.rolling_back(i)
        }
        mine = [i for i in self.recovery.active_operations if i not in driven]
        try:
            # Claimed: the reconciler leaves these alone while recovery works on them.
            with self.recovery.claimed(mine):
                report = await recover(self, exclude=driven)
        except OrderGuardError as exc:
            # A journal or broker failure while resuming: the report says so; retried later.
            report = RecoveryReport(error=f"start-up recovery failed: {exc}")
        except Exception as exc:
            # A bug in a resumer must not leave the manager half-started with exposure allowed:
            # it is logged loudly, exposure stays held, and the reconciler retries.
            log.exception("start-up recovery raised")
            report = RecoveryReport(error=f"start-up recovery raised {type(exc).__name__}: {exc}")
        self.last_recovery = report
        self._stats["startup_recoveries"] += 1
        if report.error is not None:
            self._stats["startup_recovery_failures"] += 1
            self.latch.hold(f"broker truth unavailable at start-up ({report.error}); retrying")
            log.error("start-up recovery incomplete: %s; new exposure refused", report.error)
            return report
        self.latch.lift()
        # Unfinished ones are retried; handed-off OCO pairs are watched (if nobody resumes
        # their engine, the reconciler still applies the OCO rule when a leg fills).
        self.reconciler.leftover.update(o.operation_id for o in report.unfinished)
        self.reconciler.leftover.update(o.operation_id for o in report.handed_off)
        if report.operations:
            log.warning(
                "start-up recovery: %d operations, %d left to the reconciler",
                len(report.operations),
                len(report.unfinished),
            )
        return report

    async def _resume_oco_pairs(self) -> None:
        """OCO pairs recovery left working (both legs live) get their engine back: a leg's fill
        must cancel its sibling with confirmation, as before the restart."""
        pending = any(
            op.operation_type is OperationType.OCO_PAIR
            for op in self.recovery.active_operations.values()
        )
        if not pending or self.last_recovery is None or self.last_recovery.error is not None:
            return  # nothing to re-link, or truth unread: the reconciler's rerun comes first
        try:
            await _oco.oco_engine(self).resume()
        except OrderGuardError as exc:
            log.warning("re-linking OCO pairs failed: %s", exc)

    async def _resume_position_orders(self) -> None:
        """Managed exits journaled by an earlier process are re-checked against positions."""
        try:
            await self.position_orders.resume()
        except OrderGuardError as exc:
            # The watcher's periodic re-check and the reconciler try again.
            log.warning("resuming managed position exits failed: %s", exc)

    def unresolved_since(self) -> list[tuple[int, datetime]]:
        """(account, since) of every placement whose outcome is still unknown."""
        return [(e.account_id, e.since) for e in self.latch.entries()]

    def saga_operations(self) -> set[str]:
        """Operations a running bracket saga or OCO pair drives (they poll on their own)."""
        return {*_bracket.driven_operations(self), *_oco.driven_operations(self)}

    async def cleanup(self) -> None:
        """Unsubscribe, stop the reconciler, cancel background tasks, drop callbacks. Idempotent.

        Internal listeners (brackets, OCO, position orders) stay attached: they belong to
        engines that live as long as the manager, so a later ``start`` finds them in place.
        """
        self._close_subscription()
        self.reconciler.stop()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._unresolved.clear()
        self._unresolved_intents.clear()
        self._callbacks.clear()
        self._account_id = None
        if self._owns_journal:
            await self.journal.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.cleanup()

    def _orders_in_use(self) -> set[int]:
        """Orders unfinished operations still read from the tracker (a bracket owns its entry's
        fill volume for as long as its exits work), so the tracker never drops them."""
        return {
            ref.order_id
            for op in self.recovery.active_operations.values()
            for ref in op.orders.values()
            if ref.order_id is not None
        }

    @property
    def background_tasks(self) -> int:
        """Background work in flight (re-checks, sagas, callbacks); the reconciler's own
        always-running loop is not counted (see ``reconciler.running``)."""
        return len(self._tasks) - (1 if self.reconciler.running else 0)

    @property
    def subscribed(self) -> bool:
        return self._subscription is not None

    def _close_subscription(self) -> None:
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None

    # ------------------------------------------------------------------------------------------
    # callbacks and statistics
    # ------------------------------------------------------------------------------------------
    def add_callback(self, event_name: str, fn: Callback) -> None:
        """Call ``fn(order)`` (``fn(trade)`` for ``trade_executed``) after each such event."""
        self._callbacks.add(event_name, fn)

    def remove_callback(self, event_name: str, fn: Callback) -> bool:
        return self._callbacks.remove(event_name, fn)

    def on_order_update(self, fn: Callback) -> Callback:
        """Register ``fn`` for every change of any order's state; usable as a decorator."""
        self._callbacks.add("order_update", fn)
        return fn

    def get_order_statistics(self) -> dict[str, int]:
        stats = dict(self._stats)
        stats["callback_errors"] = self._callbacks.errors
        stats["latched_outcomes"] = len(self.latch)
        stats["tracked_orders"] = len(self.tracker)
        return stats

    # ------------------------------------------------------------------------------------------
    # placement
    # ------------------------------------------------------------------------------------------
    async def place_market_order(
        self, contract_id: str, side: int, size: int, account_id: int | None = None
    ) -> OrderPlaceResponse:
        return await self._place(OrderType.MARKET, contract_id, side, size, account_id)

    async def place_limit_order(
        self,
        contract_id: str,
        side: int,
        size: int,
        limit_price: Decimal | float | int | str,
        account_id: int | None = None,
    ) -> OrderPlaceResponse:
        return await self._place(
            OrderType.LIMIT, contract_id, side, size, account_id, limit_price=limit_price
        )

    async def place_stop_order(
        self,
        contract_id: str,
        side: int,
        size: int,
        stop_price: Decimal | float | int | str,
        account_id: int | None = None,
    ) -> OrderPlaceResponse:
        return await self._place(
            OrderType.STOP, contract_id, side, size, account_id, stop_price=stop_price
        )

    async def place_trailing_stop_order(
        self,
        contract_id: str,
        side: int,
        size: int,
        trail_price: Decimal | float | int | str,
        account_id: int | None = None,
    ) -> OrderPlaceResponse:
        """``trail_price`` is the trailing distance in price units (a multiple of the tick)."""
        return await self._place(
            OrderType.TRAILING_STOP, contract_id, side, size, account_id, trail_price=trail_price
        )

    async def place_join_bid_order(
        self, contract_id: str, size: int, account_id: int | None = None
    ) -> OrderPlaceResponse:
        """Buy at the current best bid."""
        return await self._place(OrderType.JOIN_BID, contract_id, OrderSide.BUY, size, account_id)

    async def place_join_ask_order(
        self, contract_id: str, size: int, account_id: int | None = None
    ) -> OrderPlaceResponse:
        """Sell at the current best ask."""
        return await self._place(OrderType.JOIN_ASK, contract_id, OrderSide.SELL, size, account_id)

    async def _place(
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
        # 1. Everything that needs no I/O, in the order a caller would fix it.
        side = coerce_side(side_in)
        size = check_size(size_in, self.config.max_order_size)
        limit = coerce_price(limit_price, "limit_price") if order_type in _LIMIT_PRICED else None
        stop = coerce_price(stop_price, "stop_price") if order_type in _STOP_PRICED else None
        trail = (
            coerce_price(trail_price, "trail_price")
            if order_type is OrderType.TRAILING_STOP
            else None
        )
        # 2. Checks against broker reference data (cached after first use).
        account_id = await self._trading_account(account_in)
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
            custom_tag=self._tags.next_tag(),  # fixed before anything leaves
        )
        return await self._checked_send(
            request, contract, respect_latch=True, priority=Priority.NORMAL
        )

    async def submit(
        self,
        request: OrderRequest,
        *,
        respect_latch: bool = True,
        priority: Priority | None = None,
    ) -> OrderPlaceResponse:
        """Validate and send a request whose customTag the caller fixed.

        For orderguard's multi-step operations, which derive tags with ``tags.tag(op, leg, gen)``
        so a re-send of the same intent reuses its tag. ``respect_latch=False`` is only for
        protective or flattening orders, which must go out even while the contract is latched.

        ``priority`` is the rate-limiter lane: NORMAL (the default) for entries, PROTECTIVE for
        stops and targets, FLATTEN for closing. A request sent with ``respect_latch=False`` and no
        explicit priority is protective. Protective and flattening orders also go out when the
        journal cannot be written (F15); entries are then refused.
        """
        if not request.custom_tag:
            raise ValidationError("a submitted request must carry its customTag")
        if request.type not in PLACEABLE_ORDER_TYPES:
            raise ValidationError(f"order type {request.type!r} cannot be placed")
        if coerce_side(request.side) is not request.side:
            raise InvalidSideError(f"side must be an OrderSide, got {request.side!r}")
        check_size(request.size, self.config.max_order_size)
        kind = request.type
        for name, price, needed in (
            ("limit_price", request.limit_price, kind in _LIMIT_PRICED),
            ("stop_price", request.stop_price, kind in _STOP_PRICED),
            ("trail_price", request.trail_price, kind is OrderType.TRAILING_STOP),
        ):
            if needed or price is not None:
                coerce_price(price, name)
        await self._trading_account(request.account_id)
        contract = await self._contracts.resolve(request.contract_id)
        if contract.id != request.contract_id:
            raise UnknownContractError(f"{request.contract_id!r} is not an exact contract id")
        if priority is None:
            priority = Priority.NORMAL if respect_latch else Priority.PROTECTIVE
        return await self._checked_send(
            request, contract, respect_latch=respect_latch, priority=priority
        )

    async def _checked_send(
        self,
        request: OrderRequest,
        contract: Contract,
        *,
        respect_latch: bool,
        priority: Priority,
    ) -> OrderPlaceResponse:
        """The checks that need reference data, the exposure gate, then the send."""
        check_size(request.size, await self._max_order_size(request.account_id))
        if not contract.active:
            raise UnknownContractError(f"contract {contract.id} is not active")
        for name, price in (
            ("limit_price", request.limit_price),
            ("stop_price", request.stop_price),
            ("trail_price", request.trail_price),
        ):
            if price is not None:
                check_tick(contract, price, name)
        if request.stop_price is not None and priority not in PRIORITY_LANE:
            # Entries and user stops only. A protective or flattening leg is not held back by a
            # last-price read (a round trip, and a queued read when the rate window is full):
            # a stop already through the market is rejected — the bracket's forward recovery
            # handles that — or triggers at once, which is the right exit anyway. (Protective
            # orders a caller asks for, add_stop_loss, are checked against the market first.)
            await self._check_stop(contract, request.side, request.stop_price)
        if respect_latch:
            self.latch.check(request.account_id, contract.id)
        return await self._send(request, priority)

    async def _send(self, request: OrderRequest, priority: Priority) -> OrderPlaceResponse:
        tag = request.custom_tag
        assert tag is not None  # every caller sets it before sending
        # Journal first: the intent (with its tag) is durable before the request can leave.
        intent = await self._journal.before(
            IntentKind.PLACE,
            account_id=request.account_id,
            contract_id=request.contract_id,
            custom_tag=tag,
            request=request_payload(request),
            reduces_exposure=priority in PRIORITY_LANE,
        )
        sent_at = self._clock.now()
        try:
            outcome = await self._mutate(
                lambda: self.gateway.place_order(request, priority=priority)
            )
        except asyncio.CancelledError:
            # The caller gave up mid-flight: the request may have left. Treat it like Unknown.
            self._remember_unresolved(request, "cancelled", sent_at, intent)
            raise
        except OrderGuardError as exc:
            await self._journal.refused(intent, exc)  # it never left: nothing exists
            raise
        await self._journal.after(intent, outcome)
        if isinstance(outcome, Confirmed) and outcome.order_id is not None:
            self._stats["orders_placed"] += 1
            view = self.tracker.get(outcome.order_id)
            return OrderPlaceResponse(
                order_id=outcome.order_id,
                custom_tag=tag,
                status=view.status if view is not None else None,
            )
        if isinstance(outcome, Rejected):
            self._stats["orders_rejected"] += 1
            raise OrderRejectedError(
                f"order {tag} rejected (code {outcome.code}): {outcome.message}",
                code=outcome.code,
                order_id=outcome.order_id,
            )
        origin = outcome.origin.value if isinstance(outcome, Unknown) else "confirmed_without_id"
        return await self._resolve_placement(request, tag, origin, sent_at, intent, priority)

    async def _mutate(self, send: Callable[[], Awaitable[Outcome]]) -> Outcome:
        """Run one mutation; re-send only when the broker proves the request never left."""
        retries = self.config.placement_connect_retries
        attempt = 0
        while True:
            try:
                return await send()
            except OrderGuardError as exc:
                if not exc.retryable or attempt >= retries:
                    raise
                attempt += 1
                self._stats["connect_retries"] += 1
                wait = max(self.config.placement_connect_retry_delay, _retry_after(exc))
                log.warning(
                    "request never left (%s); re-sending in %.2fs", type(exc).__name__, wait
                )
                await self._clock.sleep(wait)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Not part of the port's contract: we cannot know whether the request left.
                log.exception("broker raised during a mutation; outcome unknown")
                return Unknown(_exception_origin(exc), type(exc).__name__)

    async def _resolve_placement(
        self,
        request: OrderRequest,
        tag: str,
        origin: str,
        sent_at: datetime,
        intent: Intent,
        priority: Priority = Priority.QUERY,
    ) -> OrderPlaceResponse:
        """Find the order by its tag among all the account's orders, with bounded look-ups."""
        account_id = request.account_id
        for delay in status_check_delays(self.config, self._jitter):
            if delay:
                await self._clock.sleep(delay)
            # A protective or flattening order in doubt is looked up in its own lane: behind
            # ordinary reads in a full rate window, the look-up outlasted the protection deadline.
            lane = priority if priority in PRIORITY_LANE else Priority.QUERY
            found = await self._find_by_tag(account_id, tag, sent_at, lane)
            if found is not None:
                self._stats["placements_resolved_by_tag"] += 1
                await self._journal.resolved(intent, found)
                return _found_response(found, tag)
        self._stats["placements_unresolved"] += 1
        self._remember_unresolved(request, origin, sent_at, intent)
        raise OutcomeUnknownError(
            f"placement {tag} on {request.contract_id}: outcome unknown after "
            f"{self.config.status_check_max_attempts} look-ups ({origin}); new exposure there is "
            "refused until it is resolved",
            origin=origin,
            custom_tag=tag,
        )

    async def _find_by_tag(
        self, account_id: int, tag: str, sent_at: datetime, priority: Priority = Priority.QUERY
    ) -> Order | None:
        known = self.tracker.by_tag(account_id, tag)
        if known is not None:
            return known
        try:
            orders = await self.gateway.search_orders(
                account_id, start=self._window_start(sent_at), priority=priority
            )
        except OrderGuardError as exc:
            # A failed query is no evidence either way; the next attempt asks again.
            log.warning("order search for %s failed: %s", tag, exc)
            return None
        for order in orders:
            if order.custom_tag == tag:
                self._ingest_order(order)
                return self.tracker.by_tag(account_id, tag)
        return None

    def _remember_unresolved(
        self, request: OrderRequest, origin: str, sent_at: datetime, intent: Intent
    ) -> None:
        tag = request.custom_tag
        assert tag is not None
        key = (request.account_id, tag)
        if key in self._unresolved:
            return
        self._unresolved_intents[key] = intent
        self.latch.latch(
            LatchEntry(request.account_id, request.contract_id, tag, origin, self._clock.now())
        )
        self._unresolved[key] = (request.contract_id, None)
        task = self._spawn(self._recheck(request.account_id, request.contract_id, tag, sent_at))
        self._unresolved[key] = (request.contract_id, task)
        log.error(
            "placement %s on %s unresolved (%s): account %s latched on that contract",
            tag,
            request.contract_id,
            origin,
            request.account_id,
        )

    async def _recheck(
        self, account_id: int, contract_id: str, tag: str, sent_at: datetime
    ) -> None:
        """Background: look the tag up every ``status_check_max_delay`` s until it is found."""
        while (account_id, tag) in self._unresolved:
            await self._clock.sleep(self.config.status_check_max_delay)
            found = await self._find_by_tag(account_id, tag, sent_at)
            if found is not None:
                # _ingest_order normally released it already; this covers a tracker hit.
                self._release(account_id, tag, found)

    def _release(self, account_id: int, tag: str, order: Order | None = None) -> None:
        entry = self._unresolved.pop((account_id, tag), None)
        intent = self._unresolved_intents.pop((account_id, tag), None)
        if entry is None:
            return
        contract_id, task = entry
        self.latch.release(account_id, contract_id, tag)
        if intent is not None:
            self._spawn(self._journal.resolved(intent, order))
        self._stats["unknown_resolved_later"] += 1
        log.warning("unresolved placement %s found; %s unlatched", tag, contract_id)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def release_latch(self, account_id: int, contract_id: str) -> int:
        """Operator override after checking the broker by hand: clear an (account, contract)."""
        for key in [
            k
            for k, (cid, _) in self._unresolved.items()
            if k[0] == account_id and cid == contract_id
        ]:
            _, task = self._unresolved.pop(key)
            self._unresolved_intents.pop(key, None)
            if task is not None:
                task.cancel()
        return self.latch.release_all(account_id, contract_id)

    # ------------------------------------------------------------------------------------------
    # cancel
    # ------------------------------------------------------------------------------------------
    async def cancel_order(self, order_id: int, account_id: int | None = None) -> CancelResult:
        """Cancel and report the order's final state; truthy only when it ends cancelled.

        "Not found" and "already filled" are states, returned, not raised (FAILURES F11).
        """
        return await self.cancel_journaled(order_id, account_id)

    async def cancel_journaled(
        self,
        order_id: int,
        account_id: int | None = None,
        *,
        operation: RecoveryOperation | None = None,
        priority: Priority = Priority.NORMAL,
        settle: bool = True,
    ) -> CancelResult:
        """:meth:`cancel_order` as one journaled mutation, optionally part of ``operation``.

        A cancel reduces risk, so it goes out even when the journal cannot be written. The reads
        confirming a protective or flattening cancel take its lane. ``settle=False``: after an
        unknown outcome the order is read once, not polled through the whole status-check
        schedule (seconds): for a caller that retries on its own (a bracket saga), which then
        sends the cancel again at once if the order still works — a repeated cancel duplicates
        nothing, while polling left an exit working on a flat contract meanwhile (I2).
        """
        _check_order_id(order_id)
        known = self.tracker.get(order_id)
        account = await self._any_account(account_id, known)
        if known is not None and known.is_terminal:
            return _cancel_result(
                order_id, known, accepted=False, resolution=Resolution.ALREADY_FINAL
            )
        intent = await self._journal.before(
            IntentKind.CANCEL,
            account_id=account,
            contract_id=known.contract_id if known is not None else "",
            custom_tag=self._tags.journal_key("c"),
            request={"order_id": order_id},
            reduces_exposure=True,
            operation=operation,
            leg=f"cancel{order_id}",
        )
        try:
            outcome = await self._mutate(
                lambda: self.gateway.cancel_order(account, order_id, priority=priority)
            )
        except OrderGuardError as exc:
            await self._journal.refused(intent, exc)
            raise
        self._stats["cancels_sent"] += 1
        await self._journal.after(intent, outcome, order_id)
        lane = priority if priority in PRIORITY_LANE else Priority.QUERY
        if isinstance(outcome, Confirmed):
            view = self.tracker.get(order_id)
            if view is None or not view.is_terminal:
                # Accepted; confirm the final state (a cancel can lose the race to a fill).
                view = await self._await_final(account, order_id, poll=True, priority=lane)
            return _cancel_result(order_id, view, accepted=True, resolution=Resolution.CONFIRMED)
        code = outcome.code if isinstance(outcome, Rejected) else 0
        detail = outcome.message if isinstance(outcome, Rejected) else outcome.detail
        view = await self._await_final(
            account, order_id, poll=settle and isinstance(outcome, Unknown), priority=lane
        )
        if isinstance(outcome, Unknown) and (view is None or view.is_terminal):
            await self._journal.resolved(
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

    async def _await_final(
        self, account_id: int, order_id: int, *, poll: bool, priority: Priority = Priority.QUERY
    ) -> Order | None:
        """Re-read the order; with ``poll``, keep reading (status-check schedule) until final."""
        view = self.tracker.get(order_id)
        delays = status_check_delays(self.config, self._jitter) if poll else iter((0.0,))
        for delay in delays:
            if delay:
                await self._clock.sleep(delay)
            try:
                view = await self._refresh_order(account_id, order_id, priority)
            except OrderGuardError as exc:
                log.warning("re-reading order %s failed: %s", order_id, exc)
                continue
            if view is None or view.is_terminal:
                return view
        return view

    # ------------------------------------------------------------------------------------------
    # operations: bulk cancel, modification, position close (orders/operations.py)
    # ------------------------------------------------------------------------------------------
    async def cancel_all_orders(
        self, contract_id: str | None = None, account_id: int | None = None
    ) -> CancelAllResult:
        """Cancel every working order (of one contract, if given) as one journaled BULK_CANCEL
        operation; one final state per order."""
        return await self._operations.cancel_all(contract_id, account_id)

    async def modify_order(
        self,
        order_id: int,
        limit_price: Decimal | float | int | str | None = None,
        stop_price: Decimal | float | int | str | None = None,
        size: int | None = None,
        *,
        trail_price: Decimal | float | int | str | None = None,
        account_id: int | None = None,
        priority: Priority = Priority.NORMAL,
    ) -> ModifyResult:
        """Change a working order as a journaled ORDER_MODIFICATION operation.

        The result says what is live: the changed order, the previous working state (a
        rejected modification changes nothing), or the re-read order after an unknown outcome.
        ``priority`` is the rate-limiter lane: PROTECTIVE for resizing an exit to its position
        (brackets and managed exits do), so that entries filling the budget cannot hold it back.
        """
        return await self._operations.modify(
            order_id,
            limit_price=limit_price,
            stop_price=stop_price,
            size=size,
            trail_price=trail_price,
            account_id=account_id,
            priority=priority,
        )

    async def close_position(
        self,
        contract_id: str,
        *,
        size: int | None = None,
        operation_id: str | None = None,
        whole_contract: bool = False,
        account_id: int | None = None,
    ) -> ClosePositionResult:
        """Flatten what the caller owns on ``contract_id`` as a journaled POSITION_CLOSE operation.

        Exactly one of: ``operation_id`` (that operation's net filled quantity), ``size``, or
        ``whole_contract=True`` (the whole net position). Never more than the position (F13).
        """
        return await self._operations.close_position(
            contract_id,
            size=size,
            operation_id=operation_id,
            whole_contract=whole_contract,
            account_id=account_id,
        )

    async def _read_quietly(
        self, account_id: int, order_id: int, priority: Priority = Priority.QUERY
    ) -> Order | None:
        try:
            return await self._refresh_order(account_id, order_id, priority)
        except OrderGuardError as exc:
            log.warning("re-reading order %s failed: %s", order_id, exc)
            return self.tracker.get(order_id)

    # ------------------------------------------------------------------------------------------
    # queries
    # ------------------------------------------------------------------------------------------
    async def search_open_orders(
        self,
        contract_id: str | None = None,
        side: int | None = None,
        account_id: int | None = None,
    ) -> list[Order]:
        """Working orders from the broker, merged into (and read back from) the tracker."""
        wanted_side = None if side is None else coerce_side(side)
        wanted_contract = None
        if contract_id is not None:
            wanted_contract = (await self._contracts.resolve(contract_id)).id
        account = await self._any_account(account_id, None)
        result: list[Order] = []
        for order in await self.gateway.search_open_orders(account):
            self._ingest_order(order)
            view = self.tracker.get(order.id)
            if view is None or not view.is_working:
                continue  # an event already told us it finished
            if wanted_contract is not None and view.contract_id != wanted_contract:
                continue
            if wanted_side is not None and view.side is not wanted_side:
                continue
            result.append(view)
        return result

    async def get_order_by_id(
        self, order_id: int, account_id: int | None = None, *, refresh: bool = False
    ) -> Order | None:
        """The order in any status (cache, then ``get_order``, then an ``Order/search`` window).

        Returns None only when the broker has no such order at all.
        """
        _check_order_id(order_id)
        known = self.tracker.get(order_id)
        if known is not None and not refresh:
            return known
        account = await self._any_account(account_id, known)
        return await self._refresh_order(account, order_id)

    async def is_order_filled(self, order_id: int, account_id: int | None = None) -> bool:
        """True when the order is completely filled; a working order is re-read from the broker."""
        _check_order_id(order_id)
        known = self.tracker.get(order_id)
        if known is not None and known.is_terminal:
            return known.status is OrderStatus.FILLED
        account = await self._any_account(account_id, known)
        order = await self._refresh_order(account, order_id)
        if order is None:
            raise OrderNotFoundError(f"order {order_id} not found in any status")
        return order.status is OrderStatus.FILLED

    async def _refresh_order(
        self, account_id: int, order_id: int, priority: Priority = Priority.QUERY
    ) -> Order | None:
        """Read the order from the broker through the monotonic merge; the merged view wins.

        ``priority``: the lane of the step that needs the read (a protective step's read must
        not wait behind entries)."""
        order = await self.gateway.get_order(account_id, order_id, priority=priority)
        if order is None:
            # get_order may only see recent or open orders on some adapters: widen to a window.
            start = self._window_start(self._clock.now())
            found = await self.gateway.search_orders(account_id, start=start, priority=priority)
            for candidate in found:
                if candidate.id == order_id:
                    order = candidate
                    break
        if order is not None:
            self._ingest_order(order)
        return self.tracker.get(order_id)

    # ------------------------------------------------------------------------------------------
    # events
    # ------------------------------------------------------------------------------------------
    def _on_event(self, event: BrokerEvent) -> None:
        try:
            if isinstance(event, OrderEvent):
                self._ingest_order(event.order)
            elif isinstance(event, TradeEvent):
                is_new, change = self.tracker.apply_trade(event.trade)
                if change is not None:
                    self._announce(change)
                if is_new:
                    self._callbacks.dispatch(TRADE_EXECUTED, event.trade)
            elif (
                isinstance(event, ConnectionEvent)
                and event.state is ConnectionState.RECONNECTED
                and not self.reconciler.running
            ):
                # Events in the gap are lost: the reconciler resyncs orders and positions (it
                # sees the event below); before it runs (mid-start), re-read the orders at least.
                self._spawn(self._reconcile_after_gap())
            self.reconciler.on_event(event)
        except Exception:
            self._stats["event_errors"] += 1
            log.exception("handling %s failed", type(event).__name__)
        self._notify_listeners(event)

    def _notify_listeners(self, event: BrokerEvent) -> None:
        """Internal listeners (brackets, OCO, position orders) see the event after the tracker;
        the reconciler also hands them what it found by REST."""
        for listener in tuple(self._event_listeners):
            try:
                listener(event)
            except Exception:
                self._stats["event_errors"] += 1
                log.exception("event listener failed on %s", type(event).__name__)

    def add_event_listener(self, fn: Callable[[BrokerEvent], None]) -> Callable[[], None]:
        """Internal hook: ``fn(event)`` after the tracker applied it; returns the remover.

        Listeners must not block or do I/O inline (spawn a task instead); they run on the event
        loop outside any lock.
        """
        self._event_listeners.append(fn)

        def remove() -> None:
            if fn in self._event_listeners:
                self._event_listeners.remove(fn)

        return remove

    @property
    def broker(self) -> Broker:
        """The broker port as the manager uses it: through the rate limiter, the circuit
        breakers and (queries only) retries. Collaborators (brackets, OCO, position orders) call
        this, so their requests share the one budget and the one view of endpoint health."""
        return self.gateway

    @property
    def raw_broker(self) -> Broker:
        """The adapter itself, unguarded (for tests and diagnostics only)."""
        return self._broker

    @property
    def clock(self) -> Clock:
        return self._clock

    def _ingest_order(self, order: Order) -> None:
        change = self.tracker.apply_order(order)
        if order.custom_tag and (order.account_id, order.custom_tag) in self._unresolved:
            self._release(order.account_id, order.custom_tag, order)
        if change is not None:
            self._announce(change)

    def _announce(self, change: OrderChange) -> None:
        for name in events_for(change):
            self._callbacks.dispatch(name, change.current)

    async def _reconcile_after_gap(self) -> None:
        accounts = {o.account_id for o in self.tracker.orders()}
        if self._account_id is not None:
            accounts.add(self._account_id)
        start = self._window_start(self._clock.now())
        for account in sorted(accounts):
            try:
                orders = await self.gateway.search_orders(account, start=start)
            except OrderGuardError as exc:
                log.warning("reconciling orders of account %s failed: %s", account, exc)
                continue
            for order in orders:
                self._ingest_order(order)
        self._stats["reconciliations"] += 1

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        """A background task ended. Nobody awaits most of them, so a failure is logged and
        counted here, at once, rather than by asyncio whenever the task is garbage-collected."""
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()  # marks it retrieved
        if isinstance(exc, Exception):
            self._stats["background_task_failures"] += 1
            log.error("background task %s failed", task.get_name(), exc_info=exc)

    # ------------------------------------------------------------------------------------------
    # reference data
    # ------------------------------------------------------------------------------------------
    async def _load_accounts(self) -> None:
        self._accounts = {a.id: a for a in await self.gateway.get_accounts()}

    async def _known_account(self, account_id: object) -> Account:
        acct = check_account_id(account_id)
        account = self._accounts.get(acct)
        if account is None:
            await self._load_accounts()  # opened since we last looked?
            account = self._accounts.get(acct)
        if account is None:
            raise UnknownAccountError(f"account {acct} is not known to the broker")
        return account

    async def _trading_account(self, account_id: int | None) -> int:
        if account_id is None:
            return self.account_id
        account = await self._known_account(account_id)
        if not account.can_trade:
            raise UnknownAccountError(f"account {account.id} is not allowed to trade")
        return account.id

    async def _any_account(self, account_id: int | None, known: Order | None) -> int:
        if account_id is not None:
            return (await self._known_account(account_id)).id
        if known is not None:
            return known.account_id
        return self.account_id

    async def _max_order_size(self, account_id: int) -> int:
        cached = self._max_size.get(account_id)
        if cached is not None:
            return cached
        caps = await self.gateway.get_capabilities(account_id)
        limit = self.config.max_order_size
        if caps.max_order_size is not None:
            limit = min(limit, caps.max_order_size)
        self._max_size[account_id] = limit
        return limit

    async def _check_stop(self, contract: Contract, side: OrderSide, stop: Decimal) -> None:
        if not self.config.validate_stop_against_market:
            return
        last = await self.gateway.get_last_price(contract.id)
        check_stop_vs_market(
            side, stop, last, allow_unknown=self.config.allow_stop_without_last_price
        )

    def _window_start(self, reference: datetime) -> datetime:
        return reference - timedelta(hours=self.config.unknown_resolution_window_hours)

    # ------------------------------------------------------------------------------------------
    # RecoveryActions: broker work for the OperationRecoveryManager
    # ------------------------------------------------------------------------------------------
    async def find_order_by_tag(self, account_id: int, custom_tag: str) -> Order | None:
        """The order carrying ``custom_tag`` in ANY status, or None if the broker has none."""
        known = self.tracker.by_tag(account_id, custom_tag)
        if known is not None and known.is_terminal:
            return known
        start = self._window_start(self._clock.now())
        orders = await self.gateway.search_orders(account_id, start=start)
        for order in orders:
            if order.custom_tag == custom_tag:
                self._ingest_order(order)
                return self.tracker.by_tag(account_id, custom_tag)
        return known

    async def cancel_and_confirm(self, account_id: int, order_id: int) -> Order | None:
        """Cancel and return the order's final (or latest known) state."""
        await self.cancel_order(order_id, account_id)
        return self.tracker.get(order_id)

    async def flatten_quantity(
        self, account_id: int, contract_id: str, signed_size: int, custom_tag: str
    ) -> Order | None:
        """A tagged market order of exactly ``signed_size``; returns its state once final.

        Goes out even while the contract is latched: flattening reduces exposure.
        """
        if signed_size == 0:
            return None
        request = OrderRequest(
            account_id=account_id,
            contract_id=contract_id,
            type=OrderType.MARKET,
            side=OrderSide.BUY if signed_size > 0 else OrderSide.SELL,
            size=abs(signed_size),
            custom_tag=custom_tag,
        )
        try:
            placed = await self.submit(request, respect_latch=False, priority=Priority.FLATTEN)
        except OutcomeUnknownError:
            return None
        view = self.tracker.get(placed.order_id)
        if view is None or not view.is_terminal:
            view = await self._await_final(account_id, placed.order_id, poll=True)
        return view

    async def owned_position(self, account_id: int, contract_id: str) -> int:
        """The account's signed net position on the contract (broker truth)."""
        for position in await self.gateway.search_positions(account_id):
            if position.contract_id == contract_id:
                return position.signed_size
        return 0

    # ------------------------------------------------------------------------------------------
    # operations (the seed's recovery API, delegated)
    # ------------------------------------------------------------------------------------------
    def get_recovery_statistics(self) -> dict[str, Any]:
        """The recovery engine's statistics (journal-backed), plus the send path's own counts:
        unknown outcomes seen and resolved on any mutation, journal failures, refusals."""
        stats = self.recovery.get_recovery_statistics()
        s = self._stats
        stats.update(
            {
                "mutation_unknown_outcomes": s["unknown_outcomes"],
                "mutation_unknown_resolved": s["unknown_resolved"],
                "journal_failures": s["journal_failures"],
                "exposure_refused_journal": s["exposure_refused_journal"],
                "unjournaled_sends": s["unjournaled_sends"],
                "position_closes": s["position_closes"],
                "breaker_refusals": s["breaker_refusals"],
                "breaker_bypassed": s["breaker_bypassed"],
                "query_retries": s["query_retries"],
            }
        )
        return stats

    def get_circuit_breaker_status(self) -> dict[str, BreakerStatus]:
        """Per endpoint family (orders, positions, queries): state, failure_count, is_healthy,
        retry_config — project-x-py's shape."""
        return self.gateway.status()

    def get_operation_status(self, operation_id: str) -> dict[str, Any] | None:
        return self.recovery.get_operation_status(operation_id)

    async def force_rollback_operation(self, operation_id: str) -> bool:
        """Roll an operation back: cancel its orders, flatten exactly what it owns. True when
        it ended safe (nothing owned, nothing working).

        A running bracket is rolled back by its own saga (``close_bracket``): one actor per
        operation. The recovery manager working on it beside the saga raced it — it flattened
        before the stop's cancel was confirmed, and the saga re-protected what it flattened.
        """
        engine = _bracket.bracket_engine(self)
        if operation_id in engine.active():
            await engine.close(operation_id, reason="forced by the caller")
            settings = engine.settings
            done = await engine.wait_for_completion(
                operation_id, timeout=settings.protection_deadline + settings.poll_max_interval * 4
            )
            # A finished FLAT bracket has nothing working either (the saga ends only then).
            return (
                done.finished
                and done.owned_size == 0
                and done.outcome is _bracket.BracketOutcome.FLAT
            )
        return await self.recovery.force_rollback_operation(operation_id)

    async def cleanup_stale_operations(self, max_age_hours: float = 24.0) -> int:
        return await self.recovery.cleanup_stale_operations(max_age_hours)

    # ------------------------------------------------------------------------------------------
    # brackets, OCO pairs, position orders (orders/bracket.py, orders/oco.py, orders/positions.py)
    # ------------------------------------------------------------------------------------------
    # (thin delegating methods go here)

    # -- position orders (orders/positions.py) --
    @property
    def position_orders(self) -> _positions.PositionOrders:
        """Position orders and the watcher that keeps managed exits sized to their position."""
        return _positions.position_orders_for(self)

    async def add_stop_loss(
        self,
        contract_id: str,
        stop_price: Decimal | float | int | str,
        size: int | None = None,
        account_id: int | None = None,
    ) -> _positions.ProtectiveOrderResponse:
        """A stop for the current position (opposite side, its size unless ``size``), managed."""
        return await self.position_orders.add_stop_loss(contract_id, stop_price, size, account_id)

    async def add_take_profit(
        self,
        contract_id: str,
        limit_price: Decimal | float | int | str,
        size: int | None = None,
        account_id: int | None = None,
    ) -> _positions.ProtectiveOrderResponse:
        """A limit target for the current position (opposite side, its size), managed."""
        return await self.position_orders.add_take_profit(
            contract_id, limit_price, size, account_id
        )

    async def cancel_position_orders(
        self,
        contract_id: str,
        order_types: _positions.OrderKinds = ("entry", "stop", "target"),
        account_id: int | None = None,
    ) -> _positions.CancelPositionOrdersResult:
        """Cancel the contract's working entry/stop/target orders; per-type counts and states."""
        return await self.position_orders.cancel_position_orders(
            contract_id, order_types, account_id
        )

    # -- brackets (orders/bracket.py) --
    async def place_bracket_order(
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
    ) -> _bracket.BracketOrderResponse:
        """A journaled bracket saga whose pivot is the entry fill (see orders/bracket.py)."""
        return await _bracket.bracket_engine(self).place(
            contract_id,
            side,
            size,
            entry_price,
            stop_loss_price,
            take_profit_price,
            entry_type,
            account_id,
            entry_timeout=entry_timeout,
            protection_deadline=protection_deadline,
            native=native,
        )

    async def wait_for_protection(
        self, operation_id: str, timeout: float | None = None
    ) -> _bracket.BracketOrderResponse:
        """Until the bracket's filled quantity is covered by its stop, or the bracket is over."""
        return await _bracket.bracket_engine(self).wait_for_protection(operation_id, timeout)

    async def wait_for_completion(
        self, operation_id: str, timeout: float | None = None
    ) -> _bracket.BracketOrderResponse:
        """Until the bracket is over (its result says how it ended)."""
        return await _bracket.bracket_engine(self).wait_for_completion(operation_id, timeout)

    def get_bracket_status(self, operation_id: str) -> _bracket.BracketOrderResponse | None:
        return _bracket.bracket_engine(self).status(operation_id)

    async def close_bracket(self, operation_id: str) -> bool:
        """Close one bracket: cancel its orders, flatten exactly what it owns (F13)."""
        return await _bracket.bracket_engine(self).close(operation_id)

    @property
    def brackets(self) -> _bracket.BracketEngine:
        """The bracket engine (settings, active sagas, statistics)."""
        return _bracket.bracket_engine(self)

    # -- OCO pairs (orders/oco.py) --
    async def place_oco_order(
        self,
        contract_id: str,
        first: _oco.OcoLeg,
        second: _oco.OcoLeg,
        account_id: int | None = None,
    ) -> _oco.OcoOrderResponse:
        """Place two orders one-cancels-other, linked (and journaled) before either is sent."""
        return await _oco.oco_engine(self).place(contract_id, first, second, account_id)

    async def link_oco_orders(self, order1_id: int, order2_id: int) -> _oco.OcoLinkResult:
        """Link two working orders one-cancels-other (journaled; survives a restart)."""
        return await _oco.oco_engine(self).link(order1_id, order2_id)

    async def unlink_oco_orders(self, order_id: int) -> int | None:
        """Break the order's OCO link; returns the former sibling's id (None if unlinked)."""
        return await _oco.oco_engine(self).unlink(order_id)

    def get_oco_linked_order(self, order_id: int) -> int | None:
        """The order's OCO sibling (an OCO pair or a bracket's stop/target), or None."""
        return _oco.oco_engine(self).linked(order_id)

    async def resume_operations(self) -> int:
        """Restart bracket sagas and OCO links of unfinished operations from the journal.

        ``start()`` already does this (start-up recovery restarts filled brackets' sagas and the
        working OCO pairs are re-linked), so it normally finds nothing left; kept for callers of
        the seed API. Operations being rolled back are left to their rollback."""
        started = await _bracket.bracket_engine(self).resume()
        return started + await _oco.oco_engine(self).resume()


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def _check_order_id(order_id: object) -> None:
    if not isinstance(order_id, int) or isinstance(order_id, bool) or order_id <= 0:
        raise ValidationError(f"order id must be a positive int, got {order_id!r}")


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


def _retry_after(exc: OrderGuardError) -> float:
    value = getattr(exc, "retry_after", None)
    return float(value) if isinstance(value, int | float) else 0.0


def _exception_origin(exc: BaseException) -> UnknownOrigin:
    if isinstance(exc, TimeoutError):
        return UnknownOrigin.TIMEOUT_AFTER_SEND
    return UnknownOrigin.CONNECTION_LOST


__all__ = ["OrderManager"]
