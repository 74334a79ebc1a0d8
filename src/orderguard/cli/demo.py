"""The ``orderguard demo`` scenario: a short, scripted session on the embedded simulated exchange.

This module is the scenario only. It reports what happens as :class:`DemoLine` values through a
sink and returns a :class:`DemoSummary` read from the exchange's truth; it never prints and never
reads wall time. ``render.py`` draws the lines, ``demo_command.py`` paces the run in real time.

The story, on one SIM account trading MNQ along a seeded random walk (each step is
``interval`` seconds of virtual time):

1. buy 2 at market (the exchange fills 1 contract per price step, so it fills in parts);
2. protect what filled with a stop 10 ticks under the market;
3. add on a dip with a resting limit, and join the bid with one more;
4. stop adding and move protection to a trailing stop sized to the whole position;
5. a bracket (market entry, stop, target) whose legs follow its fills, OCO;
6. close the bracket, cancel everything, close the position, and audit the exchange: flat, no
   working orders, balance adds up.

With faults on, the broker is wrapped in a seeded :class:`FaultyBroker`; each injected fault is
reported as it happens, followed by what the manager made of it.

Over 500 lines: a scripted story, one method per scene, read top to bottom; drawing and pacing are
render.py and demo_command.py.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from orderguard.broker.base import AccountEvent, BrokerEvent, PositionEvent, QuoteEvent
from orderguard.broker.faults import FaultKind, FaultPlan, FaultRecord, FaultyBroker
from orderguard.broker.sim import (
    LatencyModel,
    MarketDriver,
    RandomWalkPrices,
    SimBroker,
    SimExchange,
)
from orderguard.clock import VirtualClock
from orderguard.errors import (
    ExposureRefusedError,
    OrderGuardError,
    OrderRejectedError,
    OutcomeUnknownError,
)
from orderguard.models import Order, OrderSide, OrderType, Trade
from orderguard.orders import OrderManager, OrderPlaceResponse, Resolution
from orderguard.orders.bracket.values import BracketOrderResponse

MNQ = "CON.F.US.MNQ.Z26"
ACCOUNT_ID = 1
START_PRICE = Decimal("21000.00")
START_BALANCE = Decimal("50000.00")
TICK = Decimal("0.25")
MIN_STEPS = 30
DEFAULT_STEPS = 120
DEFAULT_INTERVAL = 0.25  # virtual seconds per price step

Sink = Callable[["DemoLine"], None]
Pace = Callable[[], Awaitable[None]]


class FaultLevel(StrEnum):
    NONE = "none"
    MILD = "mild"
    ALL = "all"


class LineKind(StrEnum):
    SECTION = "section"
    INFO = "info"
    MARKET = "market"
    ACTION = "action"
    ORDER = "order"
    FILL = "fill"
    POSITION = "position"
    BRACKET = "bracket"
    FAULT = "fault"
    RECOVERY = "recovery"
    ERROR = "error"
    CHECK = "check"


@dataclass(frozen=True, slots=True)
class DemoLine:
    """One thing that happened, stamped with virtual time. ``quiet`` marks background noise."""

    at: datetime
    kind: LineKind
    text: str
    quiet: bool = False


@dataclass(frozen=True, slots=True)
class DemoOptions:
    seed: int = 1
    steps: int = DEFAULT_STEPS
    faults: FaultLevel = FaultLevel.NONE
    interval: float = DEFAULT_INTERVAL
    close_at_end: bool = True
    """False skips cancel-all and the flat close, so the final audit fails (shows exit codes)."""

    def __post_init__(self) -> None:
        if self.steps < MIN_STEPS:
            raise ValueError(f"the demo needs at least {MIN_STEPS} steps, got {self.steps}")
        if not self.interval > 0:
            raise ValueError("interval must be positive")


@dataclass(frozen=True, slots=True)
class OrderRow:
    """One order as the exchange has it at the end, with the role the demo gave it."""

    id: int
    role: str
    type: OrderType
    side: OrderSide
    size: int
    filled: int
    average_price: Decimal | None
    status: str


@dataclass(frozen=True, slots=True)
class DemoSummary:
    """What the run did, read from the exchange's truth and the manager's statistics."""

    seed: int
    faults: FaultLevel
    steps: int
    virtual_seconds: float
    orders: tuple[OrderRow, ...]
    fills: int
    contracts_traded: int
    realised_pnl: Decimal
    fees: Decimal
    start_balance: Decimal
    end_balance: Decimal
    final_position: int
    working_orders: int
    order_stats: Mapping[str, int]
    recovery_stats: Mapping[str, Any]
    fault_counts: Mapping[str, int]
    bracket: str
    violations: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def net_pnl(self) -> Decimal:
        return self.realised_pnl - self.fees

    @property
    def faults_injected(self) -> int:
        return sum(self.fault_counts.values())


@dataclass(frozen=True, slots=True)
class _Schedule:
    """The price step at which each part of the story starts."""

    entry: int
    stop: int
    dip: int
    join: int
    trail: int
    bracket: int
    close: int

    @classmethod
    def for_steps(cls, steps: int) -> _Schedule:
        return cls(
            entry=2,
            stop=max(4, steps * 10 // 100),
            dip=steps * 20 // 100,
            join=steps * 30 // 100,
            trail=steps * 45 // 100,
            bracket=steps * 60 // 100,
            close=steps,
        )


# What each injected fault means, in a newcomer's words (the manager's reaction follows it).
_FAULT_MEANING: dict[FaultKind, str] = {
    FaultKind.REJECT: "a definitive rejection",
    FaultKind.FAIL_BEFORE_SEND: "connection refused: provably never sent",
    FaultKind.RATE_LIMITED: "HTTP 429 before execution: provably never sent",
    FaultKind.LOST: "lost on the way: reported Unknown",
    FaultKind.AMBIGUOUS: "executed, but the answer timed out: Unknown",
    FaultKind.SERVER_ERROR: "executed, but answered 5xx: Unknown",
    FaultKind.PENDING: "executed, answered 'pending': Unknown",
    FaultKind.UNKNOWN_CODE: "executed, answered with an unknown code: Unknown",
    FaultKind.RATE_LIMITED_AFTER_SEND: "executed, answered 429: Unknown",
    FaultKind.LATE: "timed out now, executed later: Unknown",
    FaultKind.DELAY: "slow",
    FaultKind.QUERY_ERROR: "a read failed (5xx)",
    FaultKind.QUERY_TIMEOUT: "a read timed out",
    FaultKind.DROP: "event lost",
    FaultKind.DUPLICATE: "event delivered twice (the tracker applies it once)",
    FaultKind.EVENT_DELAY: "event late (the tracker never moves an order backwards)",
    FaultKind.REORDER: "events out of order (the tracker never moves an order backwards)",
    FaultKind.DISCONNECT: "stream disconnected (on reconnect the manager re-reads its orders)",
    FaultKind.GO_SILENT: "stream silent: events lost without notice",
    FaultKind.LOST_IN_GAP: "event lost in the gap",
}

# Manager statistics whose increase is worth a line, and what the increase means.
_STAT_MEANING: dict[str, str] = {
    "connect_retries": "the request provably never left: re-sent with the same customTag",
    "placements_unresolved": "outcome still unknown after the look-ups: new MNQ exposure latched",
    "unknown_resolved_later": "a latched placement was found by its tag: MNQ unlatched",
    "reconciliations": "stream back: every recent order re-read from REST",
    "query_retries": "a read failed: asked again (reads are safe to repeat)",
    "event_errors": "an event could not be applied (logged)",
}

_TYPE_NAMES: dict[OrderType, str] = {
    OrderType.LIMIT: "limit",
    OrderType.MARKET: "market",
    OrderType.STOP_LIMIT: "stop-limit",
    OrderType.STOP: "stop",
    OrderType.TRAILING_STOP: "trailing stop",
    OrderType.JOIN_BID: "join-bid",
    OrderType.JOIN_ASK: "join-ask",
}


def fault_plan(level: FaultLevel) -> FaultPlan | None:
    """The preset for ``level``, plus a few scripted faults so every run shows the headline cases.

    Random rates alone may inject nothing interesting in a 30-second run; the scripted ones make
    sure a newcomer sees an unknown outcome resolved by tag (and, with ``all``, a re-send of a
    request that never left, an ambiguous cancel and a stream disconnect).
    """
    if level is FaultLevel.NONE:
        return None
    if level is FaultLevel.MILD:
        return FaultPlan.mild().script("place_order#1=ambiguous")
    return FaultPlan.all().script(
        "place_order#1=ambiguous",
        "place_order#3=fail_before_send",
        "cancel_order#1=ambiguous",
        "event#60=disconnect:2",
    )


def price_text(price: Decimal | None) -> str:
    """A price with at least two decimals and no trailing noise (averages can have more)."""
    if price is None:
        return "-"
    if price == price.quantize(Decimal("0.01")):
        return f"{price:.2f}"
    # Averages carry the wire's 9 places; four are plenty to read.
    return f"{price.quantize(Decimal('0.0001')).normalize():f}"


def money(value: Decimal, *, signed: bool = False) -> str:
    return f"{value:+,.2f}" if signed else f"{value:,.2f}"


def order_label(order: Order) -> str:
    """``limit buy 2 @ 20999.00``: what an order is, without its id."""
    text = f"{_TYPE_NAMES[order.type]} {order.side.name.lower()} {order.size}"
    if order.type is OrderType.TRAILING_STOP:
        return f"{text}, trail {price_text(order.trail_price)}, stop {price_text(order.stop_price)}"
    price = order.stop_price if order.type is OrderType.STOP else order.limit_price
    return f"{text} @ {price_text(price)}" if price is not None else text


def audit(
    orders: list[Order], open_positions: Mapping[str, int], balance: Decimal, trades: list[Trade]
) -> list[str]:
    """Invariants that must hold at the end of the demo, checked on the exchange's truth."""
    problems: list[str] = []
    flat = not any(open_positions.values())
    for contract_id, size in sorted(open_positions.items()):
        if size:
            side = "long" if size > 0 else "short"
            problems.append(f"position left open: {side} {abs(size)} {contract_id}")
    for order in orders:
        if order.is_working:
            what = "exit order left on a flat position" if flat else "order left working"
            problems.append(f"{what}: #{order.id} {order_label(order)} ({order.status.name})")
    booked = START_BALANCE + sum(
        ((t.profit_and_loss or Decimal(0)) - t.fees for t in trades), Decimal(0)
    )
    if booked != balance:
        problems.append(f"balance {money(balance)} does not add up to {money(booked)}")
    return problems


@dataclass
class _Feed:
    """The demo's view of the market and the account, from the exchange's own event stream."""

    last: Decimal = START_PRICE
    bid: Decimal = START_PRICE
    ask: Decimal = START_PRICE + TICK
    position: int = 0
    average: Decimal = Decimal(0)
    shown_stops: dict[int, Decimal] = field(default_factory=dict)


class DemoScenario:
    """One run of the demo. Build it, then ``await drive(scenario)`` (or use :func:`run_demo`)."""

    def __init__(
        self,
        options: DemoOptions | None = None,
        *,
        clock: VirtualClock | None = None,
        sink: Sink | None = None,
    ) -> None:
        self.options = options or DemoOptions()
        self.clock = clock or VirtualClock()
        self._sink = sink
        seed = self.options.seed
        self.sim = SimBroker.create(
            self.clock,
            account_id=ACCOUNT_ID,
            balance=START_BALANCE,
            prices={MNQ: START_PRICE},
            # 20 ms each way like a nearby gateway; events 10 ms behind the exchange.
            latency=LatencyModel(request=0.02, response=0.02, event=0.01, seed=seed),
            # One contract per order per price step, so a 2-lot fills in parts.
            liquidity=1,
        )
        plan = fault_plan(self.options.faults)
        self.faulty = None if plan is None else FaultyBroker(self.sim, self.clock, plan, seed=seed)
        self.manager = OrderManager(
            self.faulty or self.sim,
            clock=self.clock,
            account_id=ACCOUNT_ID,
            rng=random.Random(seed),  # seeded: same tags, same jitter, same run
        )
        contract = self.sim.exchange.contract(MNQ)
        assert contract is not None  # listed by default
        self.contract = contract
        self.driver = MarketDriver(
            self.sim.exchange,
            self.clock,
            MNQ,
            RandomWalkPrices(seed=seed, start=START_PRICE, tick=TICK, max_ticks_per_step=2),
            interval=self.options.interval,
        )
        self._schedule = _Schedule.for_steps(self.options.steps)
        self._feed = _Feed()
        self._roles: dict[int, str] = {}
        self._seen: dict[int, Order] = {}
        self._faults_shown = 0
        self._quote_faults = 0
        self._stats = dict.fromkeys(_STAT_MEANING, 0)
        self._t0 = 0.0
        self._step = 0
        self._bracket_note = "not run"
        self._bracket_id: str | None = None
        self._bracket_shown: tuple[object, ...] | None = None
        self.lines: list[DemoLine] = []

    @property
    def exchange(self) -> SimExchange:
        return self.sim.exchange

    # ------------------------------------------------------------------------------------------
    # running
    # ------------------------------------------------------------------------------------------
    async def run(self) -> DemoSummary:
        self._t0 = self.clock.monotonic()
        self._section("Setup")
        self._emit(
            LineKind.INFO,
            f"opened simulated account SIM-{ACCOUNT_ID} with {money(START_BALANCE)} USD; "
            f"{self.contract.name} ({self.contract.description}), tick {self.contract.tick_size}"
            f" = {money(self.contract.tick_value)} USD, fee {money(self.exchange.fee_per_contract)}"
            " per contract",
        )
        self._emit(
            LineKind.INFO,
            f"MNQ follows a seeded random walk (seed {self.options.seed}) from "
            f"{price_text(START_PRICE)}, one step every {self.options.interval:g} s; "
            "the exchange fills at most 1 contract per order per step",
        )
        if self.faulty is not None:
            # The demo starts from a known state: setup reads are not faulted.
            self.faulty.enabled = False
        self.manager.on_order_update(self._on_order)
        self.manager.add_callback("trade_executed", self._on_trade)
        await self.manager.start()
        feed = self.sim.subscribe(self._on_exchange_event)
        await self.driver.start()
        if self.faulty is not None:
            self.faulty.enabled = True
            self._emit(
                LineKind.INFO,
                f"fault injection on: preset '{self.options.faults.value}', seed "
                f"{self.options.seed}; each fault is shown as it happens",
            )
        ticker = asyncio.create_task(self._tick(), name="demo-ticker")
        try:
            await self._script()
            self._drain_faults()
            self._check_stats()
            self._watch_bracket()
            summary = self._summarise()
        finally:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
            await self.driver.stop()
            feed.close()
            await self.manager.cleanup()
        self._report(summary)
        return summary

    async def _tick(self) -> None:
        """One iteration per price step: surface faults and stat changes, show the market."""
        every = max(1, self.options.steps // 12)
        while True:
            await self.clock.sleep(self.options.interval)
            self._step += 1
            self._drain_faults()
            self._check_stats()
            self._watch_bracket()
            if self._step % every == 0:
                f = self._feed
                move = f.last - START_PRICE
                self._emit(
                    LineKind.MARKET,
                    f"MNQ {price_text(f.last)}  bid {price_text(f.bid)} / ask "
                    f"{price_text(f.ask)}  ({money(move, signed=True)} since the open)",
                )

    async def _until(self, step: int) -> None:
        """Wait (in virtual time) until the market has made ``step`` steps since the start."""
        due = self._t0 + step * self.options.interval
        wait = due - self.clock.monotonic()
        if wait > 0:
            await self.clock.sleep(wait)

    async def _steps(self, count: int) -> None:
        await self.clock.sleep(count * self.options.interval)

    # ------------------------------------------------------------------------------------------
    # the story
    # ------------------------------------------------------------------------------------------
    async def _script(self) -> None:
        s = self._schedule
        await self._until(s.entry)
        self._section("Trading")
        entry = await self._place(
            "entry",
            "buy 2 MNQ at market",
            self.manager.place_market_order(MNQ, OrderSide.BUY, 2),
        )
        await self._until(s.stop)
        await self._protect(entry)
        await self._until(s.dip)
        dip = self._feed.last - 4 * TICK
        await self._place(
            "dip limit",
            f"add on a dip: buy 1 limit @ {price_text(dip)} (4 ticks under the market)",
            self.manager.place_limit_order(MNQ, OrderSide.BUY, 1, dip),
        )
        await self._until(s.join)
        await self._place(
            "join-bid",
            f"join the bid: buy 1 at the best bid ({price_text(self._feed.bid)})",
            self.manager.place_join_bid_order(MNQ, 1),
        )
        await self._until(s.trail)
        await self._trail()
        await self._until(s.bracket)
        await self._bracket()
        await self._until(s.close)
        if self.options.close_at_end:
            await self._close()
        else:
            self._section("Closing skipped (--skip-close)")
            self._emit(LineKind.INFO, "leaving orders and position as they are")

    async def _protect(self, entry: int | None) -> None:
        filled = self._filled(entry)
        if entry is None or filled == 0:
            self._emit(LineKind.INFO, "nothing filled on the entry yet: no stop needed")
            return
        stop = self._feed.last - 10 * TICK
        await self._place(
            "stop",
            f"protect the {filled} filled: sell {filled} stop @ {price_text(stop)} "
            "(10 ticks under the market)",
            self.manager.place_stop_order(MNQ, OrderSide.SELL, filled, stop),
        )

    async def _trail(self) -> None:
        self._emit(LineKind.ACTION, "stop adding; move protection to a trailing stop")
        old_stop_working = False
        for role in ("dip limit", "join-bid", "stop"):
            order_id = self._role_id(role)
            view = None if order_id is None else self.manager.tracker.get(order_id)
            if order_id is None or view is None or not view.is_working:
                continue
            try:
                result = await self.manager.cancel_order(order_id)
            except OrderGuardError as exc:
                self._emit(LineKind.ERROR, f"cancel {role} #{order_id} failed: {exc}")
                continue
            if not result.cancelled:
                # A cancel can lose the race to a fill; the result says what is true.
                self._emit(
                    LineKind.ORDER,
                    f"{self._name(order_id)} not cancelled: {_status(result.status)}",
                )
            if result.resolution is not Resolution.CONFIRMED:
                self._emit(
                    LineKind.RECOVERY,
                    f"cancel of #{order_id}: answer lost or refused; re-read the order "
                    f"({result.resolution.value}): {_status(result.status)}",
                )
            if role == "stop" and result.status is not None and result.status.is_working:
                old_stop_working = True
        if old_stop_working:
            # Two stops for one position could both fire and leave it short: keep the old one.
            self._emit(LineKind.INFO, "the old stop may still be working: no trailing stop added")
            return
        position = await self._read_position()
        if position is None:
            return
        if position <= 0:
            self._emit(LineKind.INFO, f"position is {position}: nothing to trail")
            return
        trail = 8 * TICK
        await self._place(
            "trailing stop",
            f"sell {position} trailing stop {price_text(trail)} points behind the market",
            self.manager.place_trailing_stop_order(MNQ, OrderSide.SELL, position, trail),
        )

    async def _bracket(self) -> None:
        """A market bracket in client-side mode, so the manager itself places and sizes the legs.

        (Native mode, the default where the account allows it, leaves the legs to the exchange;
        client-side shows more of orderguard: protection placed on each fill increment, resized
        with the fill, OCO on a leg fill.) The ticker then reports each change of its status.
        """
        last = self._feed.last
        stop, target = last - 8 * TICK, last + 10 * TICK
        self._emit(
            LineKind.ACTION,
            f"bracket: buy 2 at market, stop {price_text(stop)}, target {price_text(target)} "
            "(client-side OCO: legs sized to each fill)",
        )
        try:
            # A market entry returns once protection is confirmed (or the outcome is final).
            response = await self.manager.place_bracket_order(
                MNQ, OrderSide.BUY, 2, None, stop, target, entry_type="market", native=False
            )
        except OrderGuardError as exc:
            self._bracket_note = f"not placed: {exc}"
            self._emit(LineKind.ERROR, f"bracket not placed: {exc}")
            return
        finally:
            self._drain_faults()
            self._check_stats()
        self._bracket_id = response.operation_id
        self._bracket_note = response.outcome.value
        self._show_bracket(response)

    def _watch_bracket(self) -> None:
        if self._bracket_id is None:
            return
        response = self.manager.get_bracket_status(self._bracket_id)
        if response is not None:
            self._show_bracket(response)

    def _show_bracket(self, r: BracketOrderResponse) -> None:
        """One line per change of the bracket's state (outcome, sizes, legs)."""
        for order_id, role in (
            (r.entry_order_id, "bracket entry"),
            (r.stop_order_id, "bracket stop"),
            (r.target_order_id, "bracket target"),
        ):
            if order_id is not None:
                self._roles.setdefault(order_id, role)
        key = (r.outcome, r.filled_size, r.protected_size, r.owned_size, r.finished, r.reason)
        if key == self._bracket_shown:
            return
        self._bracket_shown = key
        self._bracket_note = r.outcome.value + (f" ({r.reason})" if r.reason else "")
        legs = ", ".join(
            f"{name} #{order_id}"
            for name, order_id in (
                ("entry", r.entry_order_id),
                ("stop", r.stop_order_id),
                ("target", r.target_order_id),
            )
            if order_id is not None
        )
        text = (
            f"bracket {r.operation_id}: {r.outcome.value.upper()}  filled {r.filled_size}/2, "
            f"owned {r.owned_size}, protected {r.protected_size}"
        )
        if legs:
            text += f"  [{legs}]"
        if r.finished:
            text += "  finished" + (f": {r.reason}" if r.reason else "")
        self._emit(LineKind.BRACKET, text)

    async def _close_bracket(self) -> None:
        """Close the bracket first: it cancels its own orders and flattens exactly what it owns."""
        if self._bracket_id is None:
            return
        status = self.manager.get_bracket_status(self._bracket_id)
        if status is None or status.finished:
            return
        self._emit(LineKind.ACTION, f"close_bracket({self._bracket_id})")
        try:
            await self.manager.close_bracket(self._bracket_id)
            result = await self.manager.wait_for_completion(self._bracket_id, timeout=60.0)
        except OrderGuardError as exc:
            self._emit(LineKind.ERROR, f"close_bracket failed: {exc}")
            return
        finally:
            self._drain_faults()
            self._check_stats()
        self._show_bracket(result)

    async def _close(self) -> None:
        self._section("Closing")
        await self._close_bracket()
        self._emit(LineKind.ACTION, "cancel_all_orders()")
        await self._cancel_all()
        await self._flatten()
        if self.faulty is not None:
            await self._quiet_point()

    async def _cancel_all(self) -> None:
        try:
            result = await self.manager.cancel_all_orders()
        except OrderGuardError as exc:
            self._emit(LineKind.ERROR, f"cancel_all_orders failed: {exc}")
            return
        for item in result:
            if not item.cancelled or item.resolution is not Resolution.CONFIRMED:
                self._emit(
                    LineKind.RECOVERY,
                    f"#{item.order_id}: {_status(item.status)} "
                    f"({item.resolution.value}{': ' + item.detail if item.detail else ''})",
                )
        self._emit(
            LineKind.INFO,
            f"cancel_all: {result.total} working, {result.cancelled} cancelled, "
            f"{result.failed} not cancelled",
        )

    async def _flatten(self) -> None:
        """Close the whole MNQ position with the manager's journaled close (reads truth first)."""
        self._emit(LineKind.ACTION, "close_position(MNQ, whole_contract=True)")
        try:
            result = await self.manager.close_position(MNQ, whole_contract=True)
        except OrderGuardError as exc:
            self._emit(LineKind.ERROR, f"close_position failed: {exc}")
            return
        finally:
            self._drain_faults()
            self._check_stats()
        if result.order_id is not None:
            self._roles.setdefault(result.order_id, "close")
        final = "unknown" if result.final_position is None else f"{result.final_position:+d}"
        text = (
            f"close {result.outcome.value}: closed {result.closed_size} of "
            f"{result.requested_size}, position {result.position_before:+d} -> {final}"
        )
        if result.detail:
            text += f" ({result.detail})"
        self._emit(LineKind.ORDER if result else LineKind.RECOVERY, text)
        await self._steps(1)  # let the last position and balance events arrive

    async def _quiet_point(self) -> None:
        """Faults off; wait for those still in flight; then make sure the account is clean."""
        assert self.faulty is not None
        self.faulty.enabled = False
        self._emit(
            LineKind.INFO,
            "quiet point: fault injection off; waiting for delayed events and late executions",
        )
        for _ in range(240):
            if self.faulty.pending_effects == 0:
                break
            await self._steps(1)
        await self._steps(2)
        open_orders = await self._open_orders()
        position = await self._read_position()
        if open_orders:
            self._emit(LineKind.RECOVERY, f"{len(open_orders)} order(s) still working: cancel")
            await self._cancel_all()
        if position:
            self._emit(LineKind.RECOVERY, f"position {position:+d} after the faults: flatten")
            await self._flatten()
        # Orders the manager still believes working: one REST read each brings its view back.
        for order in self.manager.tracker.orders(ACCOUNT_ID):
            if order.is_working:
                await self.manager.get_order_by_id(order.id, refresh=True)

    # ------------------------------------------------------------------------------------------
    # actions and their reports
    # ------------------------------------------------------------------------------------------
    async def _place(self, role: str, what: str, call: Awaitable[OrderPlaceResponse]) -> int | None:
        """Announce, send, and report the outcome (and how the manager reached it)."""
        self._emit(LineKind.ACTION, what)
        try:
            response = await call
        except ExposureRefusedError as exc:
            self._emit(LineKind.RECOVERY, f"{role} refused: {exc}")
            return None
        except OrderRejectedError as exc:
            self._emit(
                LineKind.ERROR, f"{role} rejected (code {exc.code}): definitive, not re-sent"
            )
            return None
        except OutcomeUnknownError as exc:
            self._emit(
                LineKind.RECOVERY,
                f"{role}: outcome still unknown ({exc.origin}); MNQ latched against new exposure"
                " while a background look-up continues",
            )
            return None
        except OrderGuardError as exc:
            self._emit(LineKind.ERROR, f"{role} failed before anything was sent: {exc}")
            return None
        finally:
            self._drain_faults()
            self._check_stats()
        self._roles[response.order_id] = role
        view = self.manager.tracker.get(response.order_id)
        state = _status(view.status if view is not None else response.status)
        if response.resolution is Resolution.TAG_LOOKUP:
            self._emit(
                LineKind.RECOVERY,
                f"unknown outcome resolved by tag: found {response.custom_tag} as order "
                f"#{response.order_id} ({state}); nothing re-sent",
            )
        else:
            self._emit(
                LineKind.ORDER,
                f"#{response.order_id} {role}: accepted, {state} (tag {response.custom_tag})",
            )
        return response.order_id

    async def _read_position(self) -> int | None:
        """The net MNQ position as the broker reports it (a read: safe to retry)."""
        for _ in range(3):
            try:
                return await self.manager.owned_position(ACCOUNT_ID, MNQ)
            except OrderGuardError as exc:
                self._emit(LineKind.RECOVERY, f"position read failed ({exc}); reading again")
                await self._steps(1)
        self._emit(LineKind.ERROR, "could not read the position")
        return None

    async def _open_orders(self) -> list[Order]:
        for _ in range(3):
            try:
                return await self.manager.search_open_orders()
            except OrderGuardError as exc:
                self._emit(LineKind.RECOVERY, f"open-order read failed ({exc}); reading again")
                await self._steps(1)
        return []

    def _filled(self, order_id: int | None) -> int:
        view = None if order_id is None else self.manager.tracker.get(order_id)
        return 0 if view is None else view.fill_volume

    def _role_id(self, role: str) -> int | None:
        for order_id, name in self._roles.items():
            if name == role:
                return order_id
        return None

    def _name(self, order_id: int) -> str:
        """``#3 dip limit``; before the placement returns the role is unknown, so the type."""
        role = self._roles.get(order_id)
        if role:
            return f"#{order_id} {role}"
        view = self.manager.tracker.get(order_id)
        return f"#{order_id} {_TYPE_NAMES[view.type]}" if view is not None else f"#{order_id}"

    # ------------------------------------------------------------------------------------------
    # event handlers (plain functions: they run on the loop, outside any lock)
    # ------------------------------------------------------------------------------------------
    def _on_order(self, order: Order) -> None:
        previous = self._seen.get(order.id)
        self._seen[order.id] = order
        status_changed = previous is None or previous.status is not order.status
        if status_changed and order.is_terminal and order.status.name != "FILLED":
            # Fills are reported by trade; cancels and rejections only here.
            text = f"{self._name(order.id)}: {_status(order.status)}"
            if order.fill_volume:
                text += f" after {order.fill_volume}/{order.size} filled"
            self._emit(LineKind.ORDER, text)
        elif order.type is OrderType.TRAILING_STOP and order.stop_price is not None:
            shown = self._feed.shown_stops.get(order.id)
            # Trailing stops move on most steps; a line per point of progress is enough.
            if shown is None or abs(order.stop_price - shown) >= 4 * TICK:
                self._feed.shown_stops[order.id] = order.stop_price
                if shown is not None:
                    self._emit(
                        LineKind.ORDER,
                        f"{self._name(order.id)} follows the market: stop now "
                        f"{price_text(order.stop_price)}",
                    )

    def _on_trade(self, trade: Trade) -> None:
        view = self.manager.tracker.get(trade.order_id)
        progress = f" ({view.fill_volume}/{view.size})" if view is not None else ""
        text = (
            f"{self._name(trade.order_id)}: {trade.side.name.lower()} {trade.size} @ "
            f"{price_text(trade.price)}{progress}  fee {money(trade.fees)}"
        )
        if trade.profit_and_loss is not None:
            text += f"  P&L {money(trade.profit_and_loss, signed=True)}"
        self._emit(LineKind.FILL, text)

    def _on_exchange_event(self, event: BrokerEvent) -> None:
        f = self._feed
        if isinstance(event, QuoteEvent):
            f.last, f.bid, f.ask = event.last_price, event.best_bid, event.best_ask
        elif isinstance(event, PositionEvent):
            f.position = event.position.signed_size
            f.average = event.position.average_price
        elif isinstance(event, AccountEvent):
            # One AccountEvent follows each fill's position update: report both together.
            if f.position == 0:
                where = "flat"
            else:
                side = "long" if f.position > 0 else "short"
                where = f"{side} {abs(f.position)} @ {price_text(f.average)}"
            self._emit(
                LineKind.POSITION,
                f"position {where}  balance {money(event.account.balance)}",
            )

    # ------------------------------------------------------------------------------------------
    # faults and statistics
    # ------------------------------------------------------------------------------------------
    def _drain_faults(self) -> None:
        if self.faulty is None:
            return
        log = self.faulty.fault_log
        while self._faults_shown < len(log):
            record = log[self._faults_shown]
            self._faults_shown += 1
            if record.target == "event" and " quote " in f" {record.detail} ":
                self._quote_faults += 1  # price ticks: counted, not shown one by one
                continue
            self._publish(self._fault_line(record))

    def _fault_line(self, record: FaultRecord) -> DemoLine:
        at = self.clock.now() - timedelta(seconds=self.clock.monotonic() - record.at)
        where = f"{record.target} #{record.nth}" if record.nth else record.target
        detail = f" [{record.detail}]" if record.detail else ""
        text = f"{record.kind.value} on {where}: {_FAULT_MEANING[record.kind]}{detail}"
        quiet = record.kind in (FaultKind.DELAY, FaultKind.LOST_IN_GAP)
        return DemoLine(at, LineKind.FAULT, text, quiet)

    def _check_stats(self) -> None:
        stats = self.manager.get_order_statistics()
        for key, meaning in _STAT_MEANING.items():
            now = stats.get(key, 0)
            if now > self._stats[key]:
                self._stats[key] = now
                self._emit(LineKind.RECOVERY, meaning)

    # ------------------------------------------------------------------------------------------
    # output
    # ------------------------------------------------------------------------------------------
    def _emit(self, kind: LineKind, text: str, *, quiet: bool = False) -> None:
        self._drain_faults()  # a fault is shown before what it caused
        self._publish(DemoLine(self.clock.now(), kind, text, quiet))

    def _publish(self, line: DemoLine) -> None:
        self.lines.append(line)
        if self._sink is not None:
            self._sink(line)

    def _section(self, title: str) -> None:
        self._emit(LineKind.SECTION, title)

    def _summarise(self) -> DemoSummary:
        ex = self.exchange
        orders = ex.orders(ACCOUNT_ID)
        trades = ex.trades(ACCOUNT_ID)
        positions = {p.contract_id: p.signed_size for p in ex.positions(ACCOUNT_ID)}
        balance = ex.account(ACCOUNT_ID).balance
        violations = audit(orders, positions, balance, trades)
        stale = [
            o.id
            for o in orders
            if (view := self.manager.tracker.get(o.id)) is not None and view.status is not o.status
        ]
        if stale and self.options.close_at_end:
            violations.append(
                "the manager's view disagrees with the exchange on orders "
                + ", ".join(f"#{i}" for i in stale)
            )
        fault_counts = (
            {}
            if self.faulty is None
            else {k.value: v for k, v in sorted(self.faulty.fault_counts.items())}
        )
        return DemoSummary(
            seed=self.options.seed,
            faults=self.options.faults,
            steps=self.options.steps,
            virtual_seconds=self.clock.monotonic() - self._t0,
            orders=tuple(
                OrderRow(
                    id=o.id,
                    role=self._roles.get(o.id, "-"),
                    type=o.type,
                    side=o.side,
                    size=o.size,
                    filled=o.fill_volume,
                    average_price=o.filled_price,
                    status=_status(o.status),
                )
                for o in orders
            ),
            fills=len(trades),
            contracts_traded=sum(t.size for t in trades),
            realised_pnl=sum((t.profit_and_loss or Decimal(0) for t in trades), Decimal(0)),
            fees=sum((t.fees for t in trades), Decimal(0)),
            start_balance=START_BALANCE,
            end_balance=balance,
            final_position=sum(positions.values()),
            working_orders=sum(1 for o in orders if o.is_working),
            order_stats=self.manager.get_order_statistics(),
            recovery_stats=self.manager.get_recovery_statistics(),
            fault_counts=fault_counts,
            bracket=self._bracket_note,
            violations=tuple(violations),
        )

    def _report(self, summary: DemoSummary) -> None:
        self._section("Audit (exchange truth)")
        if self._quote_faults:
            self._emit(
                LineKind.FAULT,
                f"{self._quote_faults} more faults hit price-quote events (not shown one by one)",
                quiet=True,
            )
        if summary.ok:
            self._emit(
                LineKind.CHECK,
                "flat, no working orders, balance = start + realised P&L - fees",
            )
        for problem in summary.violations:
            self._emit(LineKind.ERROR, f"invariant broken: {problem}")


def _status(status: object) -> str:
    name = getattr(status, "name", None)
    return "not found" if name is None else str(name).lower().replace("_", " ")


async def drive(scenario: DemoScenario, *, pace: Pace | None = None) -> DemoSummary:
    """Run ``scenario`` inside a running event loop, moving its virtual clock one step at a time.

    ``pace`` is awaited between steps (the CLI sleeps there, in real time). Virtual time moves
    only through ``clock.advance``, which fires every due timer in order, so the run, and every
    line it reports, is the same with or without pacing.
    """
    clock = scenario.clock
    step = scenario.options.interval
    # A bound on virtual time: a scenario that waits forever fails instead of hanging.
    limit = clock.monotonic() + scenario.options.steps * step + 600.0
    task = asyncio.ensure_future(scenario.run())
    try:
        await clock.settle()
        while not task.done():
            if clock.monotonic() > limit:
                raise TimeoutError(f"the demo did not finish within {limit:.0f} s of virtual time")
            await clock.advance(step)
            if pace is not None and not task.done():
                await pace()
        return task.result()
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def run_scenario(
    options: DemoOptions | None = None,
    *,
    clock: VirtualClock | None = None,
    sink: Sink | None = None,
    pace: Pace | None = None,
) -> DemoSummary:
    """Build and :func:`drive` a scenario (inside a running event loop)."""
    return await drive(DemoScenario(options, clock=clock, sink=sink), pace=pace)


def run_demo(
    options: DemoOptions | None = None,
    *,
    clock: VirtualClock | None = None,
    sink: Sink | None = None,
    pace: Pace | None = None,
) -> DemoSummary:
    """Run the demo on a fresh event loop (for the CLI and scripts)."""
    return asyncio.run(run_scenario(options, clock=clock, sink=sink, pace=pace))


__all__ = [
    "ACCOUNT_ID",
    "MNQ",
    "DemoLine",
    "DemoOptions",
    "DemoScenario",
    "DemoSummary",
    "FaultLevel",
    "LineKind",
    "OrderRow",
    "audit",
    "drive",
    "fault_plan",
    "money",
    "order_label",
    "price_text",
    "run_demo",
    "run_scenario",
]
