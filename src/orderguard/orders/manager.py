"""OrderManager: project-x-py's core order API on the Broker port, with the three-outcome rule.

The manager is the facade: it owns the lifecycle (subscribe, start-up recovery, continuous
reconciliation, background tasks, cleanup) and the order tracker, and wires the mechanisms behind
the facade as collaborators, given what they need explicitly; none of them imports this module:

* :mod:`~orderguard.orders.send.placement`: journal-first placement, the three outcomes (confirmed,
  :class:`~orderguard.errors.OrderRejectedError`, or
  :class:`~orderguard.errors.OutcomeUnknownError` after the bounded look-ups by customTag failed)
  and the ambiguity latch fed by unresolved placements;
* :mod:`~orderguard.orders.send.cancellation`: journaled cancels confirmed by the order's final
  state;
* :mod:`~orderguard.orders.feed.order_feed`: broker events and order reads into the tracker, then to
  callbacks, the placement pipeline, the reconciler and internal listeners;
* :mod:`~orderguard.orders.reference_data`: accounts, order-size caps, stop-vs-market checks;
* :mod:`~orderguard.orders.send.mutation`: when a mutation may be re-sent;
* :mod:`~orderguard.orders.startup_recovery`: exposure held until broker truth is read;
* :mod:`~orderguard.orders.operations`: bulk cancel, modification, position close;
* brackets, OCO pairs and position orders (their own modules, reached through thin methods here).

The engines (brackets, OCO pairs, position orders, operations) are built in the constructor,
each on one :class:`~orderguard.orders.engine_context.EngineContext`: the clock, the journaled
mutations (``send``), the reads of broker truth (``truth``), the journal, the event stream and
the protection executor; their settings are constructor arguments (``bracket_settings``,
``oco_settings``). None of them imports this module. The reconciler sees the manager as a
:class:`~orderguard.orders.feed.reconciler.ReconcilerHost`; start-up recovery is handed the engines'
resumers (:meth:`resumers`), not a process-wide registry.

Concurrency: there is no lock. State lives in the pure :class:`OrderTracker`, whose updates are
synchronous (atomic on the event loop), so no broker I/O and no user callback ever runs under a lock
(FAILURES F12), and a callback may call back into the manager freely.

Over 500 lines: the facade of the seed API (about 45 public methods, most a few lines handing the
call to a collaborator) and the host callbacks recovery and protection call; every mechanism lives
in its own module.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

import httpx2

from orderguard.broker.base import Broker, BrokerEvent, Outcome, Subscription
from orderguard.clock import Clock, SystemClock, VirtualClock
from orderguard.config import OrderManagerConfig
from orderguard.errors import (
    JournalError,
    OrderGuardError,
    OrderNotFoundError,
    OutcomeUnknownError,
    UnknownAccountError,
    ValidationError,
)
from orderguard.journal.base import Journal
from orderguard.journal.memory import MemoryJournal
from orderguard.models import Order, OrderRequest, OrderSide, OrderStatus, OrderType, Position
from orderguard.ops.alerts import AlertCallback, AlertPolicy
from orderguard.ops.hooks import HookPoint, RecoveryHooks, journal_recorder
from orderguard.ops.monitor import AlertMonitor
from orderguard.ops.telemetry import Telemetry
from orderguard.orders import operator_tools
from orderguard.orders.bracket import engine as _bracket
from orderguard.orders.callbacks import Callback, CallbackRegistry
from orderguard.orders.contracts import ContractResolver
from orderguard.orders.engine_context import EngineContext
from orderguard.orders.feed.order_feed import OrderFeed
from orderguard.orders.feed.reconciler import Reconciler
from orderguard.orders.feed.tracking import OrderTracker
from orderguard.orders.gateway import GuardedBroker
from orderguard.orders.metrics import Counters, Metric, by_name
from orderguard.orders.oco import engine as _oco
from orderguard.orders.operations import OrderOperations
from orderguard.orders.positions import engine as _positions
from orderguard.orders.positions.holdings import HoldingsFollower
from orderguard.orders.reference_data import ReferenceData
from orderguard.orders.results import (
    CancelAllResult,
    CancelResult,
    ClosePositionResult,
    ModifyResult,
    OrderPlaceResponse,
)
from orderguard.orders.send.cancellation import Canceller
from orderguard.orders.send.journaled_send import JournaledSend, SendContext
from orderguard.orders.send.journaling import SendJournal
from orderguard.orders.send.latch import AmbiguityLatch
from orderguard.orders.send.placement import PlacementPipeline
from orderguard.orders.send.risk import RiskGate
from orderguard.orders.send.validation import check_duration, coerce_side
from orderguard.orders.startup_recovery import StartupRecovery
from orderguard.orders.tags import TagFactory
from orderguard.recovery.legs import STOP, LegId, numbered
from orderguard.recovery.manager import (
    LegIntent,
    OperationRecoveryManager,
    OrderReference,
    RecoveryOperation,
    RefStatus,
)
from orderguard.recovery.operations import OperationType
from orderguard.recovery.protection import ProtectionAlert, ProtectionExecutor, ProtectionPolicy
from orderguard.recovery.reconcile import AccountSnapshot, consistent
from orderguard.recovery.startup import SNAPSHOT_ATTEMPTS, RecoveryReport, Resumer
from orderguard.resilience import BreakerStatus, Priority

log = logging.getLogger("orderguard.orders")

P = ParamSpec("P")
R = TypeVar("R")


def _survives_caller(
    method: Callable[Concatenate[OrderManager, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[OrderManager, P], Coroutine[Any, Any, R]]:
    """Caller cancellation is never an outcome (F18): the public call runs as a task the
    manager owns, and the caller awaits it shielded. A caller that gives up (a ``wait_for``
    timeout, a task cancelled in a shutdown of the strategy) stops waiting; the operation goes
    on under the manager and its record says what happened at the broker. ``cleanup`` (the
    manager itself going down) does cancel it: the journal then holds it unfinished, for
    start-up recovery. Only for the calls a user starts — engines call the inner paths, whose
    cancellation they rely on."""

    async def run(self: OrderManager, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return await self.detached(method(self, *args, **kwargs))

    return functools.update_wrapper(run, method)


class OrderManager:
    """Places, modifies, cancels and tracks orders on one broker (see module docstring)."""

    def __init__(
        self,
        broker: Broker,
        *,
        clock: Clock | None = None,
        config: OrderManagerConfig | Mapping[str, Any] | None = None,
        account_id: int | None = None,
        rng: random.Random | None = None,
        journal: Journal | None = None,
        allow_memory_journal: bool = False,
        bracket_settings: _bracket.BracketSettings | None = None,
        oco_settings: _oco.OcoSettings | None = None,
        resumers: Mapping[str, Resumer] | None = None,
    ) -> None:
        """``bracket_settings`` and ``oco_settings`` configure the engines; ``resumers`` adds
        start-up resumers of the caller's own operations, by operation type or by the name an
        operation gives in ``extra["resumer"]`` (see recovery/startup.py); they take precedence
        over the engines' own."""
        _check_journal(broker, journal, allow_memory_journal)
        self._own_resumers = dict(resumers or {})
        self._broker = broker
        self._clock: Clock = _agreed_clock(broker, clock)
        # The seed passes a plain dict of its keys; an unknown key is a ConfigurationError.
        if config is None:
            config = OrderManagerConfig()
        elif not isinstance(config, OrderManagerConfig):
            config = OrderManagerConfig.from_mapping(config)
        self.config: OrderManagerConfig = config
        # Unseeded: fresh OS entropy, so two processes on one account get different tag sessions.
        rng = rng if rng is not None else random.Random()
        self._tags = TagFactory(self.config.tag_prefix, rng)
        # A separate stream for jitter, so fault history never shifts the tags of later orders.
        self._jitter = random.Random(rng.getrandbits(64))
        self._requested_account = account_id
        self._account_id: int | None = None
        self.stats: Counters = Counter()
        """Internal: the send path's counters; collaborators and engines count into it and
        :meth:`get_order_statistics` reports it."""
        # Finished orders are kept for a bounded count; legs of unfinished operations never drop.
        self.tracker = OrderTracker(
            max_finished=self.config.tracked_finished_orders, pinned=self._orders_in_use
        )
        self.latch = AmbiguityLatch()
        self._callbacks = CallbackRegistry(self.spawn)
        self._subscription: Subscription | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        # Without a journal given, operations are tracked in memory only (not crash-safe).
        self._owns_journal = journal is None
        self.journal: Journal = journal if journal is not None else MemoryJournal(self._clock)
        self.recovery = OperationRecoveryManager(
            self.journal,
            self._clock,
            actions=self,
            rng=random.Random(rng.getrandbits(64)),
            tag_prefix=self.config.tag_prefix,
            # Once started, operations and legs of the seed API default to this account.
            default_account=lambda: self._account_id,
        )
        # Every broker call goes through the limiter and the breakers (queries also retry).
        self.gateway = GuardedBroker(
            broker, self._clock, self.config, random.Random(rng.getrandbits(64)), self.stats
        )
        self.contracts = ContractResolver(self.gateway)
        """Internal: contract look-ups (cached), shared with the engines."""
        self.journaled = JournaledSend(
            SendJournal(self.recovery, self.stats),
            self.gateway,
            self.config,
            self._clock,
            self.stats,
        )
        """Internal: the one journaled send (intent before, send, outcome after) every
        mutation goes through (orders/send/journaled_send.py)."""
        self.reference = ReferenceData(self.gateway, self.config, lambda: self.account_id)
        """Internal: accounts, order-size caps, stop-vs-market checks, the search window."""
        self.risk = RiskGate(
            self.config,
            self.gateway,
            self._clock,
            lambda: self.journal,
            self.stats,
            operation_of=self._operation_of_tag,
        )
        """Internal: the risk limits (orders/send/risk.py), checked before exposure only."""
        # Placement and cancels draw their status-check delays from the one jitter stream.
        sending = SendContext(
            gateway=self.gateway,
            config=self.config,
            clock=self._clock,
            jitter=self._jitter,
            stats=self.stats,
            tags=self._tags,
            reference=self.reference,
            send=self.journaled,
            tracker=self.tracker,
        )
        self._placement = PlacementPipeline(
            sending,
            contracts=self.contracts,
            latch=self.latch,
            # Late-bound: the feed is built below, around this pipeline's own order hook.
            ingest=lambda order: self.feed.ingest(order),  # noqa: PLW0108
            spawn=self.spawn,
            position=lambda account, contract: self.feed.position(account, contract),  # noqa: PLW0108
            read_position=lambda account, contract: self.owned_position(
                account, contract, priority=Priority.FLATTEN
            ),
            position_event=lambda account, contract, shows: self.feed.position_event(
                account, contract, shows, self.config.position_event_grace
            ),
            resend_pause=self.config.protection_retry_max_delay,
            risk=self.risk.reserve,
        )
        self.reconciler = Reconciler(self)
        self.feed: OrderFeed = OrderFeed(
            gateway=self.gateway,
            clock=self._clock,
            stats=self.stats,
            tracker=self.tracker,
            callbacks=self._callbacks,
            on_order=self._placement.on_order,
            watcher=self.reconciler,
            window_start=self.reference.window_start,
            default_account=lambda: self._account_id,
            spawn=self.spawn,
        )
        """Internal: every order seen (event or read) goes through :meth:`OrderFeed.ingest`;
        the reconciler hands internal listeners what it found via ``notify_listeners``."""
        self._settling: set[str] = set()  # finished operations' legs being settled by tag
        self._canceller = Canceller(
            sending,
            refresh=self.feed.refresh,
        )
        self.protection = ProtectionExecutor(
            self,
            ProtectionPolicy(
                deadline=self.config.protection_deadline,
                max_delay=self.config.protection_retry_max_delay,
            ),
            in_flight_grace=self.config.in_flight_grace,
            spawn=self.spawn,
        )
        """The one executor of rollbacks and standing protection obligations."""
        self.recovery.protection = self.protection
        self.feed.add_listener(self._wake_protection)
        self.holdings = HoldingsFollower(
            self,
            spawn=self.spawn,
            wake_driver=self.wake_driver,
            driven_elsewhere=self.protection.driving,
        )
        """Credits outside changes of a position to the operations that hold it."""
        self.feed.add_listener(self.holdings.on_event)
        self.hooks = RecoveryHooks(
            self._clock, record=journal_recorder(self.journal, self._clock, self.spawn)
        )
        """User recovery hooks at named points of an operation's life (ops/hooks.py)."""
        self.telemetry = Telemetry()
        """Time-to-protection and unprotected-seconds histograms for /metrics (ops/telemetry.py)."""
        # The engines, each on the same narrow context (orders/engine_context.py).
        engines = EngineContext(
            clock=self._clock,
            config=self.config,
            send=self,
            truth=self,
            recovery=self.recovery,
            journal=self.journal,
            journaled=self.journaled,
            gateway=self.gateway,
            tracker=self.tracker,
            feed=self.feed,
            listen=self.feed.add_listener,
            reference=self.reference,
            contracts=self.contracts,
            tags=self._tags,
            stats=self.stats,
            spawn=self.spawn,
            protection=self.protection,
            holdings=self.holdings,
            risk=self.risk,
            hooks=self.hooks,
            telemetry=self.telemetry,
        )
        self._operations = OrderOperations(engines, latch=self.latch, wake_driver=self.wake_driver)
        self._brackets = _bracket.BracketEngine(engines, bracket_settings)
        self._position_orders = _positions.PositionOrders(
            engines, release_exits=self._brackets.release_exits
        )
        self._oco = _oco.OcoEngine(
            engines,
            positions=self._position_orders,
            linked_exit=self._brackets.linked_exit,
            settings=oco_settings,
        )
        self._startup = StartupRecovery(
            host=self,
            resumers=self.resumers,
            latch=self.latch,
            stats=self.stats,
            saga_operations=self.saga_operations,
            leftover=self.reconciler.leftover,
            resume_position_orders=self._position_orders.resume,
            resume_oco_pairs=self._oco.resume,
            in_flight_grace=self.config.in_flight_grace,
            protection=self.protection,
            settle_timeout=self.config.protection_deadline,
        )
        self.alerts: AlertMonitor | None = None
        """The alert monitor, once :meth:`enable_alerts` was called."""
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
        re-checked; and the continuous :class:`~orderguard.orders.feed.reconciler.Reconciler` runs.
        If broker truth could not be read, ``start`` still returns, but new exposure is refused
        (:class:`~orderguard.errors.ExposureRefusedError`) until the reconciler's retry of the
        recovery succeeds; cancels, protection and flattening stay allowed.
        """
        if self._account_id is not None:
            return
        # Subscribe before the first query so no event between the two is missed.
        self._subscription = self._broker.subscribe(self.feed.on_event)  # events need no guarding
        try:
            await self.journal.open()
            await self.recovery.load()
            # Exits journaled by an earlier process follow their positions from now on, not
            # only once start-up recovery is through (its reads, retried under faults, and its
            # bounded wait for rollbacks took seconds while a closed position kept its stops,
            # or a grown one waited for its whole-position stop). Their re-checks run in the
            # background.
            await self.position_orders.resume()
            # What the journal left unfinished may hold a position: its recovery never waits on
            # reference data (each operation names its account), so the two run side by side.
            reference = asyncio.ensure_future(self._resolve_account())
            try:
                report = await self.rerun_recovery() if self.recovery.active_operations else None
                account_id = await reference
            finally:
                reference.cancel()
        except BaseException:
            self._close_subscription()
            raise
        self._account_id = account_id
        log.info(
            "order manager started on account %s (tag session %s)", account_id, self._tags.session
        )
        if report is None:
            report = await self.rerun_recovery()
        await self._startup.resume_engines(report)
        self.reconciler.start()

    def _operation_of_tag(self, account_id: int, custom_tag: str) -> str | None:
        leg = self.recovery.leg_for_tag(account_id, custom_tag)
        return None if leg is None else leg[0].operation_id

    async def _resolve_account(self) -> int:
        account = await self.reference.resolve_default(self._requested_account)
        await self.reference.max_order_size(account.id)
        return account.id

    async def rerun_recovery(self) -> RecoveryReport:
        """Run start-up recovery (again); new exposure is held while it cannot read the broker.

        ``start`` calls it; the reconciler calls it again while the last report says broker truth
        was unavailable. Operations it leaves unfinished are handed to the reconciler.
        """
        report = await self._startup.run()  # orders/startup_recovery.py
        self.last_recovery = report
        await self.hooks.consult(operator_tools.after_recovery(report))
        return report

    def unresolved_since(self) -> list[tuple[int, datetime]]:
        """(account, since) of every placement whose outcome is still unknown."""
        return [(e.account_id, e.since) for e in self.latch.entries()]

    def saga_operations(self) -> set[str]:
        """Operations a running bracket saga or OCO pair drives (they poll on their own)."""
        return {*self._brackets.active(), *self._oco.active()}

    def resumers(self) -> dict[str, Resumer]:
        """Internal: the resumers of this manager's engines for start-up recovery and the
        reconciler, by operation type (recovery/startup.py): a filled bracket's saga is
        restarted by its engine."""
        return {
            OperationType.BRACKET_ORDER.value: self._brackets.resume_at_startup,
            **self._own_resumers,
        }

    async def cleanup(self) -> None:
        """Unsubscribe, stop the reconciler, cancel background tasks, drop callbacks. Idempotent.

        Internal listeners (brackets, OCO, position orders) stay attached: they belong to
        engines that live as long as the manager, so a later ``start`` finds them in place.
        """
        self._close_subscription()
        self.reconciler.stop()
        if self.alerts is not None:
            await self.alerts.stop()
            self.alerts = None
        await self.protection.shutdown()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._placement.forget_unresolved()
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

    # ------------------------------------------------------------------------------------------
    # operator's tools: alerts (ops/; docs/operators.md; the dashboard serves a manager from
    # orderguard.dashboard.serve_dashboard, above this layer)
    # ------------------------------------------------------------------------------------------
    def enable_alerts(
        self,
        *,
        callback: AlertCallback | None = None,
        webhook: str | None = None,
        policy: AlertPolicy | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> AlertMonitor:
        """Watch for incidents and tell ``callback`` and/or POST them to ``webhook``
        (rate-limited, journaled); the monitor runs until :meth:`cleanup`."""
        if self.alerts is not None:
            raise RuntimeError("alerts are already enabled on this manager")
        self.alerts = operator_tools.enable_alerts(
            self, callback=callback, webhook=webhook, policy=policy, transport=transport
        )
        return self.alerts

    def get_order_statistics(self) -> dict[str, int]:
        """The metrics counted at least once (first counted first), then three gauges."""
        stats = by_name(self.stats)
        stats["callback_errors"] = self._callbacks.errors
        stats["latched_outcomes"] = len(self.latch)
        stats["tracked_orders"] = len(self.tracker)
        return stats

    # ------------------------------------------------------------------------------------------
    # placement
    # ------------------------------------------------------------------------------------------
    @_survives_caller
    async def place_market_order(
        self, contract_id: str, side: int, size: int, account_id: int | None = None
    ) -> OrderPlaceResponse:
        return await self._placement.place(OrderType.MARKET, contract_id, side, size, account_id)

    @_survives_caller
    async def place_limit_order(
        self,
        contract_id: str,
        side: int,
        size: int,
        limit_price: Decimal | float | int | str,
        account_id: int | None = None,
    ) -> OrderPlaceResponse:
        return await self._placement.place(
            OrderType.LIMIT, contract_id, side, size, account_id, limit_price=limit_price
        )

    @_survives_caller
    async def place_stop_order(
        self,
        contract_id: str,
        side: int,
        size: int,
        stop_price: Decimal | float | int | str,
        account_id: int | None = None,
    ) -> OrderPlaceResponse:
        return await self._placement.place(
            OrderType.STOP, contract_id, side, size, account_id, stop_price=stop_price
        )

    @_survives_caller
    async def place_trailing_stop_order(
        self,
        contract_id: str,
        side: int,
        size: int,
        trail_price: Decimal | float | int | str,
        account_id: int | None = None,
    ) -> OrderPlaceResponse:
        """``trail_price`` is the trailing distance in price units (a multiple of the tick)."""
        return await self._placement.place(
            OrderType.TRAILING_STOP, contract_id, side, size, account_id, trail_price=trail_price
        )

    @_survives_caller
    async def place_join_bid_order(
        self, contract_id: str, size: int, account_id: int | None = None
    ) -> OrderPlaceResponse:
        """Buy at the current best bid."""
        return await self._placement.place(
            OrderType.JOIN_BID, contract_id, OrderSide.BUY, size, account_id
        )

    @_survives_caller
    async def place_join_ask_order(
        self, contract_id: str, size: int, account_id: int | None = None
    ) -> OrderPlaceResponse:
        """Sell at the current best ask."""
        return await self._placement.place(
            OrderType.JOIN_ASK, contract_id, OrderSide.SELL, size, account_id
        )

    async def submit(
        self,
        request: OrderRequest,
        *,
        respect_latch: bool = True,
        priority: Priority | None = None,
        exit_only: bool = False,
    ) -> OrderPlaceResponse:
        """Validate and send a request whose customTag the caller fixed.

        For orderguard's multi-step operations, which derive tags with ``tags.tag(op, leg, gen)``
        so a re-send of the same intent reuses its tag. ``respect_latch=False`` is only for
        protective or flattening orders, which must go out even while the contract is latched.

        ``priority`` is the rate-limiter lane: NORMAL (the default) for entries, PROTECTIVE for
        stops and targets, FLATTEN for closing. A request sent with ``respect_latch=False`` and no
        explicit priority is protective. Protective and flattening orders also go out when the
        journal cannot be written (F15); entries are then refused.

        ``exit_only`` marks an exit of a position the caller believes is there: when a read of
        the account shows it would not reduce the position, it is not sent
        (:class:`~orderguard.errors.ExitNotReducingError`) — filled, it would open one.
        """
        return await self._placement.submit(
            request, respect_latch=respect_latch, priority=priority, exit_only=exit_only
        )

    def release_latch(self, account_id: int, contract_id: str) -> int:
        """Operator override after checking the broker by hand: clear an (account, contract)."""
        return self._placement.release_latch(account_id, contract_id)

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
        return await self._canceller.cancel(
            order_id, account_id, operation=operation, priority=priority, settle=settle
        )

    # ------------------------------------------------------------------------------------------
    # operations: bulk cancel, modification, position close (orders/operations.py)
    # ------------------------------------------------------------------------------------------
    @_survives_caller
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

    @_survives_caller
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
            wanted_contract = (await self.contracts.resolve(contract_id)).id
        account = await self.reference.any_account(account_id, None)
        return [
            view
            for view in await self.feed.working_orders(account)
            if (wanted_contract is None or view.contract_id == wanted_contract)
            and (wanted_side is None or view.side is wanted_side)
        ]

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
        account = await self.reference.any_account(account_id, known)
        return await self.feed.refresh(account, order_id)

    async def is_order_filled(self, order_id: int, account_id: int | None = None) -> bool:
        """True when the order is completely filled; a working order is re-read from the broker."""
        _check_order_id(order_id)
        known = self.tracker.get(order_id)
        if known is not None and known.is_terminal:
            return known.status is OrderStatus.FILLED
        account = await self.reference.any_account(account_id, known)
        order = await self.feed.refresh(account, order_id)
        if order is None:
            raise OrderNotFoundError(f"order {order_id} not found in any status")
        return order.status is OrderStatus.FILLED

    # ------------------------------------------------------------------------------------------
    # events
    # ------------------------------------------------------------------------------------------
    def add_event_listener(self, fn: Callable[[BrokerEvent], None]) -> Callable[[], None]:
        """Internal hook: ``fn(event)`` after the tracker applied it; returns the remover.

        Listeners must not block or do I/O inline (spawn a task instead); they run on the event
        loop outside any lock.
        """
        return self.feed.add_listener(fn)

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

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Internal: run ``coro`` as a background task the manager owns: ``cleanup`` cancels
        it, and a failure is logged and counted (``background_task_failures``) when it ends."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    async def detached(self, coro: Coroutine[Any, Any, R]) -> R:
        """Run ``coro`` as a task the manager owns and await it shielded (see
        :func:`_survives_caller`)."""
        task: asyncio.Task[R] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._detached_done)
        return await asyncio.shield(task)

    def _detached_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Also raised to the caller, if it still waits; retrieved here either way, so a
            # caller that gave up leaves no "exception was never retrieved" behind.
            log.debug("detached call ended with %r", task.exception())

    def _task_done(self, task: asyncio.Task[None]) -> None:
        """A background task ended. Nobody awaits most of them, so a failure is logged and
        counted here, at once, rather than by asyncio whenever the task is garbage-collected."""
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()  # marks it retrieved
        if isinstance(exc, Exception):
            self.stats[Metric.BACKGROUND_TASK_FAILURES] += 1
            log.error("background task %s failed", task.get_name(), exc_info=exc)

    # ------------------------------------------------------------------------------------------
    # RecoveryActions: broker work for the OperationRecoveryManager
    # ------------------------------------------------------------------------------------------
    async def find_order_by_tag(self, account_id: int, custom_tag: str) -> Order | None:
        """The order carrying ``custom_tag`` in ANY status, or None if the broker has none."""
        return await self.feed.find_by_tag(account_id, custom_tag)

    def cancel_requested(self, order_id: int) -> bool:
        """Internal: whether this process sent (or tried to send) a cancel of ``order_id``."""
        return self._canceller.requested(order_id)

    async def cancel_and_confirm(self, account_id: int, order_id: int) -> Order | None:
        """Cancel and return the order's final (or latest known) state."""
        await self.cancel_order(order_id, account_id)
        return self.tracker.get(order_id)

    async def flatten_quantity(
        self,
        account_id: int,
        contract_id: str,
        signed_size: int,
        custom_tag: str,
        *,
        exit_only: bool = False,
    ) -> Order | None:
        """A tagged market order of exactly ``signed_size``; returns its state once final.

        Goes out even while the contract is latched: flattening reduces exposure. With
        ``exit_only`` it is refused (:class:`~orderguard.errors.ExitNotReducingError`) when a
        read shows it would not reduce the position any more (someone flattened it first).
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
            placed = await self.submit(
                request, respect_latch=False, priority=Priority.FLATTEN, exit_only=exit_only
            )
        except OutcomeUnknownError:
            return None
        view = self.tracker.get(placed.order_id)
        if view is None or not view.is_terminal:
            view = await self._canceller.await_final(account_id, placed.order_id, poll=True)
        return view

    # ------------------------------------------------------------------------------------------
    # ProtectionHost: broker work for the protection executor
    # ------------------------------------------------------------------------------------------
    async def read_truth(self, account_id: int, start: datetime) -> AccountSnapshot:
        """Orders since ``start`` and positions, read so that no fill fell between them (orders,
        positions, orders again), in the flattening lane; the orders are folded in."""
        gateway = self.gateway
        lane = Priority.FLATTEN
        orders = await gateway.search_orders(account_id, start=start, priority=lane)
        positions = []
        asked = self._clock.monotonic()
        for _ in range(SNAPSHOT_ATTEMPTS):
            asked = self._clock.monotonic()
            positions = await gateway.search_positions(account_id, priority=lane)
            again = await gateway.search_orders(account_id, start=start, priority=lane)
            stable = consistent(orders, again)
            orders = again
            if stable:
                break
        for order in orders:
            self.feed.ingest(order)
        self.feed.note_positions(account_id, positions, asked)
        return AccountSnapshot(account_id, tuple(orders), tuple(positions), since=start)

    async def read_orders(self, account_id: int, start: datetime) -> list[Order]:
        return await self.gateway.search_orders(account_id, start=start, priority=Priority.FLATTEN)

    async def read_positions(self, account_id: int) -> list[Position]:
        asked = self._clock.monotonic()
        positions = await self.gateway.search_positions(account_id, priority=Priority.FLATTEN)
        self.feed.note_positions(account_id, positions, asked)
        return positions

    def known(self, account_id: int) -> AccountSnapshot:
        """What this process knows of the account without asking: the tracker's views of its
        orders (fill volumes from trades included) and the positions last seen."""
        orders: list[Order] = []
        for view in self.tracker.orders(account_id):
            filled = self.tracker.filled_volume(view.id)
            orders.append(view if filled <= view.fill_volume else replace(view, fill_volume=filled))
        positions = self.feed.known_positions(account_id, self.clock.now())
        return AccountSnapshot(account_id, tuple(orders), tuple(positions))

    async def cancel_exit(self, account_id: int, order_id: int) -> Order | None:
        """Cancel in the protective lane without polling (the executor reads again itself)."""
        result = await self.cancel_journaled(
            order_id, account_id, priority=Priority.PROTECTIVE, settle=False
        )
        del result  # its status is the tracker's view, returned below
        return self.tracker.get(order_id)

    async def resize_exit(self, account_id: int, order_id: int, size: int) -> Order | None:
        """Resize an exit (protective lane); the order as the broker now has it."""
        result = await self.modify_order(
            order_id, size=size, account_id=account_id, priority=Priority.PROTECTIVE
        )
        return result.order

    async def replace_stop(self, op: RecoveryOperation, gone: OrderReference, size: int) -> None:
        """Place a finished holder's cancelled stop again as a new leg of it (the record keeps
        its protection's history), journal first — or, when the journal refuses, kept in
        memory and sent anyway (F20): it reduces exposure."""
        recovery = self.recovery
        n = sum(1 for name in op.orders if LegId.parse(name).role == STOP)  # "stop" counts too
        while numbered(STOP, n) in op.orders:
            n += 1
        leg = numbered(STOP, n)
        try:
            (ref,) = await recovery.add_orders_to_operation(
                op,
                [
                    LegIntent(
                        gone.contract_id,
                        gone.side,
                        size,
                        "stop",
                        gone.price,
                        leg=leg,
                        account_id=gone.account_id,
                    )
                ],
                finished_holder=True,
            )
        except JournalError as exc:
            ref = recovery.remember_unjournaled(
                op, gone.contract_id, gone.side, size, "stop", gone.price,
                leg=leg, account_id=gone.account_id, error=exc,
            )  # fmt: skip
        request = OrderRequest(
            account_id=ref.account_id,
            contract_id=ref.contract_id,
            type=OrderType.STOP,
            side=OrderSide(ref.side),
            size=size,
            stop_price=gone.price,
            custom_tag=ref.custom_tag,
        )
        try:
            placed = await self.submit(
                request, respect_latch=False, priority=Priority.PROTECTIVE, exit_only=True
            )
        except OutcomeUnknownError as exc:
            await recovery.record_order_failure(op, ref, exc)
            self.settle_leg(op, ref)
            return
        except OrderGuardError as exc:
            await recovery.record_order_failure(op, ref, str(exc))  # refused: the next check
            return
        await recovery.record_order_success(op, ref, placed)

    def settle_leg(self, op: RecoveryOperation, ref: OrderReference) -> None:
        """Settle a finished operation's leg in doubt by its tag, in the background (once)."""
        key = ref.intent_id or ref.custom_tag
        if key not in self._settling:
            self._settling.add(key)
            self.spawn(self._settle_in_doubt(op, ref, key))

    async def _settle_in_doubt(self, op: RecoveryOperation, ref: OrderReference, key: str) -> None:
        """A finished operation's leg whose placement stayed in doubt (or was journaled by a
        process that died before sending it): nobody drives it, so its tag is looked up until
        found, or until it cannot be in flight any more (absent)."""
        in_doubt = (RefStatus.UNKNOWN, RefStatus.INTENDED)
        try:
            for pause in (1.0, 2.0, 4.0, 8.0, 16.0, 32.0):
                await self._clock.sleep(pause)
                if ref.status not in in_doubt:
                    return
                try:
                    found = await self.find_order_by_tag(ref.account_id, ref.custom_tag)
                except OrderGuardError:
                    continue
                if found is not None:
                    await self.recovery.record_resolution(op, ref, found)
                    return
            if ref.status in in_doubt:
                await self.recovery.record_resolution(op, ref, None)
        finally:
            self._settling.discard(key)

    def wake_driver(self, operation_id: str) -> bool:
        """Wake the engine driving ``operation_id`` (a bracket saga, an OCO pair)."""
        if self.brackets.wake(operation_id):
            return True
        return self._oco.wake(operation_id)

    async def send_flatten(self, request: OrderRequest) -> Outcome:
        return await self._placement.send_once(request, Priority.FLATTEN)

    def protection_alert(self, alert: ProtectionAlert) -> None:
        """An obligation outlived the protection deadline: counted, logged, and announced to
        ``protection_overdue`` callbacks (it goes on being driven)."""
        self.stats[Metric.PROTECTION_OVERDUE] += 1
        self._callbacks.dispatch("protection_overdue", alert)
        if self.hooks.registered(HookPoint.PROTECTION_LATE):
            # Recovery hooks are told; the executor goes on whatever they answer.
            self.spawn(self.hooks.tell(operator_tools.protection_late(alert)))

    def _wake_protection(self, event: BrokerEvent) -> None:
        if self.protection.obligations():
            self.protection.wake()

    async def owned_position(
        self, account_id: int, contract_id: str, *, priority: Priority = Priority.QUERY
    ) -> int:
        """The account's signed net position on the contract (broker truth: a read, or the
        position events that came after the read was asked — a delayed answer is older than
        them, and exits sized from it were cut below a position that had grown)."""
        asked = self._clock.monotonic()
        positions = await self.gateway.search_positions(account_id, priority=priority)
        self.feed.note_positions(account_id, positions, asked)
        newer = self.feed.newer_than(account_id, contract_id, asked)
        if newer is not None:
            return newer
        for position in positions:
            if position.contract_id == contract_id:
                return position.signed_size
        return 0

    async def hand_off_oco_pair(
        self, operation: RecoveryOperation, first: OrderReference, second: OrderReference
    ) -> str:
        """The OCO engine enforces a pair the seed API declared (``add_oco_pair`` then
        ``complete_operation``): journaled as its own ``oco_pair`` operation, re-linked by
        start-up recovery like any pair. Returns that operation's id."""
        assert first.order_id is not None and second.order_id is not None
        return await self._oco.adopt_pair(
            first.account_id,
            first.contract_id,
            first.order_id,
            second.order_id,
            source=operation.operation_id,
        )

    # ------------------------------------------------------------------------------------------
    # operations (the seed's recovery API, delegated)
    # ------------------------------------------------------------------------------------------
    def get_recovery_statistics(self) -> dict[str, Any]:
        """The recovery engine's statistics (journal-backed), plus the send path's own counts:
        unknown outcomes seen and resolved on any mutation, journal failures, refusals."""
        stats = self.recovery.get_recovery_statistics()
        s = self.stats
        stats.update(
            {
                "mutation_unknown_outcomes": s[Metric.UNKNOWN_OUTCOMES],
                "mutation_unknown_resolved": s[Metric.UNKNOWN_RESOLVED],
                "journal_failures": s[Metric.JOURNAL_FAILURES],
                "exposure_refused_journal": s[Metric.EXPOSURE_REFUSED_JOURNAL],
                "unjournaled_sends": s[Metric.UNJOURNALED_SENDS],
                "position_closes": s[Metric.POSITION_CLOSES],
                "breaker_refusals": s[Metric.BREAKER_REFUSALS],
                "breaker_bypassed": s[Metric.BREAKER_BYPASSED],
                "query_retries": s[Metric.QUERY_RETRIES],
            }
        )
        return stats

    def get_circuit_breaker_status(self) -> dict[str, Any]:
        """The seed's shape — ``state``, ``failure_count``, ``is_healthy``, ``retry_config`` —
        summarising every endpoint family (the worst state wins; ``failure_count`` is the
        highest), plus each family's own status under ``families`` (orders, positions,
        queries: orderguard keeps one breaker per family)."""
        families = self.gateway.status()
        return {**_summary(families), "families": families}

    def _get_recovery_manager(self) -> OperationRecoveryManager:
        """The recovery manager (the seed's accessor; :attr:`recovery` is the same object)."""
        return self.recovery

    async def get_operation_status(self, operation_id: str) -> dict[str, Any] | None:
        """A snapshot of the operation (the seed's shape), or None if it is not in memory.

        Async, as in the seed; the recovery manager keeps the synchronous accessor."""
        return self.recovery.get_operation_status(operation_id)

    async def force_rollback_operation(self, operation_id: str) -> bool:
        """Roll an operation back: cancel its orders, flatten exactly what it owns. True when
        it ended safe (nothing owned, nothing working); False for an unknown id.

        A running bracket is rolled back by its own saga (``close_bracket``): one actor per
        operation. The recovery manager working on it beside the saga raced it — it flattened
        before the stop's cancel was confirmed, and the saga re-protected what it flattened.
        """
        engine = self.brackets
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
        op = self.recovery.active_operations.get(operation_id)
        if op is not None and self.hooks.registered(HookPoint.BEFORE_ROLLBACK):
            await self.hooks.consult(operator_tools.forced_rollback(op))
        return await self.recovery.force_rollback_operation(operation_id)

    async def cleanup_stale_operations(self, max_age_hours: float = 24.0) -> int:
        check_duration(max_age_hours, "max_age_hours")
        return await self.recovery.cleanup_stale_operations(max_age_hours)

    # ------------------------------------------------------------------------------------------
    # brackets, OCO pairs, position orders (orders/bracket/, orders/oco/, orders/positions/)
    # ------------------------------------------------------------------------------------------
    # -- position orders (orders/positions/engine.py) --
    @property
    def position_orders(self) -> _positions.PositionOrders:
        """Position orders and the watcher that keeps managed exits sized to their position."""
        return self._position_orders

    @_survives_caller
    async def add_stop_loss(
        self,
        contract_id: str,
        stop_price: Decimal | float | int | str,
        size: int | None = None,
        account_id: int | None = None,
    ) -> _positions.ProtectiveOrderResponse:
        """A stop for the current position (opposite side, its size unless ``size``), managed."""
        return await self.position_orders.add_stop_loss(contract_id, stop_price, size, account_id)

    @_survives_caller
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

    @_survives_caller
    async def cancel_position_orders(
        self,
        contract_id: str,
        order_types: _positions.OrderKinds | None = None,
        account_id: int | None = None,
    ) -> _positions.CancelPositionOrdersResult:
        """Cancel the contract's working entry/stop/target orders; per-type counts and states.

        ``order_types`` None (the default, as in the seed) means every kind."""
        kinds = _positions.DEFAULT_ORDER_TYPES if order_types is None else order_types
        return await self.position_orders.cancel_position_orders(contract_id, kinds, account_id)

    # -- brackets (orders/bracket/engine.py) --
    @_survives_caller
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
        """A journaled bracket saga whose pivot is the entry fill (see orders/bracket/engine.py).

        ``entry_timeout`` and ``protection_deadline`` are seconds, finite and above zero
        (:class:`~orderguard.errors.ValidationError` otherwise, before anything is written)."""
        if entry_timeout is not None:
            check_duration(entry_timeout, "entry_timeout", positive=True)
        if protection_deadline is not None:
            check_duration(protection_deadline, "protection_deadline", positive=True)
        return await self.brackets.place(
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
        """Until the bracket's filled quantity is covered by its stop, or the bracket is over.

        ``timeout``: seconds, finite and not negative (None: the engine's default)."""
        if timeout is not None:
            check_duration(timeout, "timeout")
        return await self.brackets.wait_for_protection(operation_id, timeout)

    async def wait_for_completion(
        self, operation_id: str, timeout: float | None = None
    ) -> _bracket.BracketOrderResponse:
        """Until the bracket is over (its result says how it ended); ``timeout`` as above."""
        if timeout is not None:
            check_duration(timeout, "timeout")
        return await self.brackets.wait_for_completion(operation_id, timeout)

    def get_bracket_status(self, operation_id: str) -> _bracket.BracketOrderResponse | None:
        return self.brackets.status(operation_id)

    async def close_bracket(self, operation_id: str) -> bool:
        """Close one bracket: cancel its orders, flatten exactly what it owns (F13)."""
        return await self.brackets.close(operation_id)

    @property
    def brackets(self) -> _bracket.BracketEngine:
        """The bracket engine (settings, active sagas, statistics)."""
        self._brackets.note_first_use()
        return self._brackets

    @property
    def oco(self) -> _oco.OcoEngine:
        """The OCO engine (its active pairs)."""
        return self._oco

    # -- OCO pairs (orders/oco/engine.py) --
    @_survives_caller
    async def place_oco_order(
        self,
        contract_id: str,
        first: _oco.OcoLeg,
        second: _oco.OcoLeg,
        account_id: int | None = None,
    ) -> _oco.OcoOrderResponse:
        """Place two orders one-cancels-other, linked (and journaled) before either is sent."""
        return await self._oco.place(contract_id, first, second, account_id)

    @_survives_caller
    async def link_oco_orders(self, order1_id: int, order2_id: int) -> _oco.OcoLinkResult:
        """Link two working orders one-cancels-other (journaled; survives a restart)."""
        return await self._oco.link(order1_id, order2_id)

    async def unlink_oco_orders(self, order_id: int) -> int | None:
        """Break the order's OCO link; returns the former sibling's id (None if unlinked)."""
        return await self._oco.unlink(order_id)

    def get_oco_linked_order(self, order_id: int) -> int | None:
        """The order's OCO sibling (an OCO pair or a bracket's stop/target), or None."""
        return self._oco.linked(order_id)

    async def resume_operations(self) -> int:
        """Restart bracket sagas and OCO links of unfinished operations from the journal.

        ``start()`` already does this (start-up recovery restarts filled brackets' sagas and the
        working OCO pairs are re-linked), so it normally finds nothing left; kept for callers of
        the seed API. Operations being rolled back are left to their rollback."""
        started = await self.brackets.resume()
        return started + await self._oco.resume()


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def _agreed_clock(broker: Broker, clock: Clock | None) -> Clock:
    """The manager's clock: the one given, else the broker's own (a simulated exchange's), else
    the system clock.

    A manager and a simulated exchange on different clocks cannot work together: the manager's
    order searches are time windows on its clock, and a frozen virtual exchange stamps its
    orders at its epoch, so after a restart recovery finds nothing and takes a protected bracket
    for an unfilled one. Refused outright when one of the two clocks is virtual.
    """
    own = getattr(broker, "clock", None)
    if clock is None:
        return own if isinstance(own, VirtualClock) else SystemClock()
    mismatched = isinstance(own, VirtualClock | SystemClock) and own is not clock
    if mismatched and (isinstance(own, VirtualClock) or isinstance(clock, VirtualClock)):
        raise ValueError(
            "the broker and the OrderManager run on different clocks and one of them is "
            "virtual: give the manager the broker's clock (OrderManager(broker, "
            "clock=broker.clock))"
        )
    return clock


_BREAKER_SEVERITY = {"closed": 0, "half_open": 1, "open": 2}


def _summary(families: Mapping[str, BreakerStatus]) -> dict[str, Any]:
    """The seed's one-breaker status from the families': the worst state, the highest failure
    count, healthy only if every family is, and the (shared) retry configuration."""
    statuses = list(families.values())
    worst = max(statuses, key=lambda st: _BREAKER_SEVERITY.get(st["state"], 2), default=None)
    return {
        "state": "closed" if worst is None else worst["state"],
        "failure_count": max((st["failure_count"] for st in statuses), default=0),
        "is_healthy": all(st["is_healthy"] for st in statuses),
        "retry_config": {} if worst is None else dict(worst["retry_config"]),
    }


def _check_journal(broker: Broker, journal: Journal | None, allow_memory: bool) -> None:
    """A real broker (``durable_journal_required``, looked up through wrappers' ``inner``) needs
    a durable journal: after a crash, an in-memory one forgets every order it sent."""
    if allow_memory or (journal is not None and not isinstance(journal, MemoryJournal)):
        return
    seen: object = broker
    for _ in range(8):
        if getattr(seen, "durable_journal_required", False) is True:
            raise ValueError(
                "this broker trades for real and the journal is in memory: pass a durable "
                "journal (e.g. SqliteJournal(default_journal_path(...))) or "
                "allow_memory_journal=True"
            )
        seen = getattr(seen, "inner", None)
        if seen is None:
            return


def _check_order_id(order_id: object) -> None:
    if not isinstance(order_id, int) or isinstance(order_id, bool) or order_id <= 0:
        raise ValidationError(f"order id must be a positive int, got {order_id!r}")


__all__ = ["OrderManager"]
