"""The deterministic chaos runner: random workloads, faults and crashes, checked invariants.

One seed is one simulated world on a :class:`~orderguard.clock.VirtualClock`: a
:class:`~orderguard.broker.sim.SimBroker` whose markets follow seeded random walks, wrapped in the
seeded :class:`~orderguard.broker.faults.FaultyBroker`, a journal (memory or SQLite: the disk) and a
sequence of simulated processes, each an OrderManager behind a
:class:`~orderguard.chaos.process.ProcessScope`. The workload runs in small concurrent batches.

With ``crash``, each process is given a random step (a broker mutation or a journal write, before
or after it takes effect) at which it dies like ``kill -9``: its tasks are cancelled, its
subscriptions closed, and nothing it does afterwards reaches the exchange or the journal. A new
process starts on the same journal and runs start-up recovery before the workload continues.

With ``profile="wide"`` (the default) each seed also draws its variants from the seed
(:class:`Variants`): the SQLite journal (through :class:`~orderguard.chaos.journals.ChaosJournal`,
with injected write failures and a disk-full period), 40 ms latency with jitter, partial fills, an
outside actor on the same account, fault storms started right after fills, crashes at fills, and
graceful shutdowns that cancel a batch mid-flight.

After every batch comes a *quiet point*: faults off, in-flight faults and storms drained,
coverage mismatches given their bound to close; then I1–I5 are checked from the exchange's truth.
I6 and over-coverage are judged continuously from an exchange listener
(:class:`~orderguard.chaos.bounds.BoundChecker`, downtime included) and I7 whenever an operation
is written terminal.

A seed that *livelocks* — timers keep firing while virtual time stands still, e.g. a loop that
re-arms a zero timeout — is stopped by the clock after ``config.stall_limit`` such timers and
reported as an error with its replay command; what it logged and found until then is kept. (A
wall-clock budget remains the backstop for code that spins without awaiting at all.)

Everything random is derived from the seed, so the same seed gives a byte-identical event log.

Over 500 lines: one seed's run (_SeedRun: processes, crashes, batches, restarts, final checks)
shares one simulated world's state; the workload, report and process scope are their own modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import signal
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, TextIO

from orderguard.broker.base import (
    AccountEvent,
    BrokerEvent,
    OrderEvent,
    PositionEvent,
    QuoteEvent,
    TradeEvent,
)
from orderguard.broker.faults import FaultPlan, FaultyBroker, StormKind
from orderguard.broker.sim import LatencyModel, MarketDriver, RandomWalkPrices, SimBroker
from orderguard.broker.sim.rules import ExchangeRules
from orderguard.chaos.bounds import BoundChecker, Bounds, check_i7
from orderguard.chaos.invariants import (
    BrokerTruth,
    ExposureTracker,
    Key,
    Violation,
    WireRecord,
    check_all,
    coverage,
    outside_positions,
)
from orderguard.chaos.journals import ChaosJournal, JournalHome, as_journal
from orderguard.chaos.process import ProcessKilled, ProcessScope, ScopedBroker, scoped_journal
from orderguard.chaos.report import MIXED, ChaosConfig, ChaosReport, SeedResult, SeedViolation
from orderguard.chaos.truth import ExchangePlatform, ExchangeTruth
from orderguard.chaos.workload import (
    CLIENT_CONTRACT,
    POSITION_CONTRACT,
    RESTING_CONTRACT,
    USER_CONTRACT,
    Capabilities,
    Step,
    WorkloadActor,
    WorkloadState,
    batches,
    build_workload,
)
from orderguard.clock import LivelockError, VirtualClock
from orderguard.errors import OrderGuardError
from orderguard.journal.base import Journal
from orderguard.models import OrderSide
from orderguard.orders import OrderManager
from orderguard.recovery.manager import RecoveryOperation
from orderguard.recovery.startup import RecoveryReport
from orderguard.testing.crash import kill

ACCOUNT = 1
PRICES = {POSITION_CONTRACT: Decimal("21000.00"), RESTING_CONTRACT: Decimal("6000.00")}
WIDE_PRICES = {
    **PRICES,
    CLIENT_CONTRACT: Decimal("6000.00"),
    USER_CONTRACT: Decimal("21000.00"),
}
LOW_LATENCY = {"request": 0.02, "response": 0.02, "event": 0.01, "jitter": 0.01}
HIGH_LATENCY = {"request": 0.04, "response": 0.04, "event": 0.02, "jitter": 0.02}
MAX_STORMS = 2
FAULT_PLANS = {"none": FaultPlan.none, "mild": FaultPlan.mild, "all": FaultPlan.all}
# A process dies at a step drawn from [1, CRASH_HORIZON]: most processes die mid-workload.
CRASH_HORIZON = 250
_START_ATTEMPTS = 8
_FAILED_STARTS_MAX = 60  # processes a supervisor starts in a row before the seed fails

Judged = tuple[list[RecoveryOperation], list[Violation]]
"""The journal's operations and the I1–I5 violations found on them and broker truth."""


@dataclass(slots=True)
class _Process:
    scope: ProcessScope
    manager: OrderManager
    actor: WorkloadActor


class _StartFailed(Exception):
    """A process could not start within its attempts."""


@dataclass(frozen=True, slots=True)
class Variants:
    """What one seed's world is made of, drawn from the seed (forced by the config's switches)."""

    journal: str = "memory"  # memory | sqlite
    latency: str = "low"  # low | high
    outside: bool = False
    storms: bool = False
    partial_fills: bool = False  # liquidity 1: every order fills one contract per price move
    journal_failures: bool = False  # durable writes fail at random, and a disk-full period
    crash_at_fills: bool = False
    shutdowns: bool = False  # graceful shutdowns cancelling every task mid-batch
    exchange_rules: str = "default"  # default | harsh | mixed:<n> (ExchangeRules.named)

    @classmethod
    def of(cls, seed: int, config: ChaosConfig) -> Variants:
        rules = _exchange_rules(seed, config)
        if not config.wide:
            return cls(
                journal="memory" if config.journal == MIXED else config.journal,
                latency="low" if config.latency == MIXED else config.latency,
                outside=config.outside_actor == "on",
                storms=config.storms == "on",
                exchange_rules="default" if config.exchange_rules == MIXED else rules,
            )
        rng = random.Random(f"orderguard.chaos.variants:{seed}")
        draws = [rng.random() for _ in range(8)]  # a fixed number, whatever is forced

        def pick(setting: str, p: float, u: float, yes: str, no: str) -> str:
            return (yes if u < p else no) if setting == MIXED else setting

        return cls(
            journal=pick(config.journal, 0.3, draws[0], "sqlite", "memory"),
            latency=pick(config.latency, 0.4, draws[1], "high", "low"),
            outside=pick(config.outside_actor, 0.5, draws[2], "on", "off") == "on",
            storms=pick(config.storms, 0.3, draws[3], "on", "off") == "on",
            partial_fills=draws[4] < 0.35,
            journal_failures=draws[5] < 0.4,
            crash_at_fills=config.crash and draws[6] < 0.5,
            shutdowns=draws[7] < 0.3,
            exchange_rules=rules,
        )

    def as_dict(self) -> dict[str, str]:
        return {
            "journal": self.journal,
            "latency": self.latency,
            "outside": "on" if self.outside else "off",
            "storms": "on" if self.storms else "off",
            "partial_fills": "on" if self.partial_fills else "off",
            "journal_failures": "on" if self.journal_failures else "off",
            "crash_at_fills": "on" if self.crash_at_fills else "off",
            "shutdowns": "on" if self.shutdowns else "off",
            "exchange_rules": self.exchange_rules,
        }


def _exchange_rules(seed: int, config: ChaosConfig) -> str:
    """The seed's exchange readings (its own stream: the other variants draw as before)."""
    if config.exchange_rules != MIXED:
        return config.exchange_rules
    u = random.Random(f"orderguard.chaos.rules:{seed}").random()
    if u < 0.5:
        return "default"
    return "harsh" if u < 0.75 else f"mixed:{seed}"


class _SeedRun:
    """One seed (see the module docstring)."""

    def __init__(self, seed: int, config: ChaosConfig, clock: VirtualClock) -> None:
        self.seed = seed
        self.config = config
        self.clock = clock
        self.rng = random.Random(f"orderguard.chaos:{seed}")
        # Everything the wide profile adds draws from its own stream: classic seeds replay as
        # they did before it existed.
        self.wide_rng = random.Random(f"orderguard.chaos.wide:{seed}")
        self.storm_rng = random.Random(f"orderguard.chaos.storms:{seed}")
        self.variants = Variants.of(seed, config)
        self.prices = WIDE_PRICES if config.wide else PRICES
        latency = HIGH_LATENCY if self.variants.latency == "high" else LOW_LATENCY
        self.sim = SimBroker.create(
            clock,
            prices=self.prices,
            latency=LatencyModel(**latency, seed=seed),
            liquidity=1 if self.variants.partial_fills else None,
            rules=ExchangeRules.named(self.variants.exchange_rules),
        )
        self.exchange = self.sim.exchange
        self.truth = ExchangeTruth(self.exchange)
        self.faulty = FaultyBroker(self.sim, clock, FAULT_PLANS[config.faults](), seed=seed)
        self.home = JournalHome(self.variants.journal, clock)
        self.chaos_journal = ChaosJournal(
            self.home.backend,
            clock,
            rng=random.Random(f"orderguard.chaos.journal:{seed}"),
            write_failure=0.02 if self.variants.journal_failures else 0.0,
            serialize=self.home.serialize,
            log=self.log,
        )
        self.chaos_journal.on_terminal = self._on_terminal
        self.journal: Journal = as_journal(self.chaos_journal)
        self.tracker = ExposureTracker()
        self.bounds = BoundChecker(
            Bounds(config.protection_deadline, config.recovery_interval), self.faulty.storms
        )
        self.continuous: list[tuple[Violation, str]] = []
        self.wire: list[WireRecord] = []
        self.result = SeedResult(seed)
        self.result.variants = self.variants.as_dict() if config.wide else {}
        self.state = WorkloadState(side=self.rng.choice((OrderSide.BUY, OrderSide.SELL)))
        self.generation = 0
        self.died: asyncio.Event | None = None
        self.needs_recovery = False
        self.failed_starts = 0
        self.exchange.listen(self._on_exchange)

    # -- logging and measurement --------------------------------------------------------------
    def log(self, text: str) -> None:
        self.result.event_log.append(f"{self.clock.monotonic():11.3f} {text}")

    def _on_exchange(self, event: BrokerEvent) -> None:
        if isinstance(event, QuoteEvent | AccountEvent):
            return  # prices are seeded; logging every tick would only bloat the log
        if isinstance(event, OrderEvent):
            o = event.order
            self.log(
                f"exchange order {o.id} {o.custom_tag} {o.side.name} {o.type.name} {o.size} "
                f"{o.status.name} filled={o.fill_volume}"
            )
        elif isinstance(event, TradeEvent):
            t = event.trade
            self.log(f"exchange trade {t.id} order={t.order_id} {t.side.name} {t.size}@{t.price}")
        elif isinstance(event, PositionEvent):
            p = event.position
            self.log(f"exchange position {p.contract_id} {p.signed_size:+d}")
        now = self.clock.monotonic()
        positions, working = self.exchange.positions(ACCOUNT), self.exchange.open_orders(ACCOUNT)
        self.tracker.observe(now, coverage(positions, working))
        self.bounds.observe(now, positions, working)
        if isinstance(event, TradeEvent):
            self._maybe_storm(event)

    def _maybe_storm(self, event: TradeEvent) -> None:
        """A fault storm starts right after an entry fill of orderguard's (some seeds)."""
        if not self.variants.storms or len(self.faulty.storms) >= MAX_STORMS:
            return
        trade = event.trade
        order = self.exchange.order(ACCOUNT, trade.order_id)
        if order is None or not order.custom_tag or trade.order_id in self.state.outside_orders:
            return
        net = sum(p.signed_size for p in self.exchange.positions(ACCOUNT)
                  if p.contract_id == order.contract_id)  # fmt: skip
        if net == 0 or order.side.sign != (1 if net > 0 else -1):
            return  # not a fill that opened or grew a position
        u, kind_u, length_u = (self.storm_rng.random() for _ in range(3))
        if u >= 0.5:
            return
        kinds = tuple(StormKind)
        kind = kinds[int(kind_u * len(kinds)) % len(kinds)]
        seconds = round(30.0 + 90.0 * length_u, 3)
        storm = self.faulty.storm(kind, seconds)
        self.log(
            f"storm {kind.value} {storm.start:.3f}-{storm.end:.3f} after fill of order "
            f"{trade.order_id} ({order.custom_tag})"
        )

    async def _on_terminal(self, operation_id: str) -> None:
        """I7, judged the moment an operation is written terminal (see bounds.check_i7)."""
        ops = await all_operations(self.journal_reader)
        truth = await self.truth.read(ACCOUNT)
        for v in check_i7(operation_id, ops, truth):
            self.log(f"  violation {v.invariant}: {v.detail}")
            self.continuous.append((v, f"operation {operation_id} ended"))

    @property
    def journal_reader(self) -> Journal:
        return self.journal

    def record_faults(self) -> None:
        """Count the injected faults and append their log to the event log (end of the seed)."""
        self.result.faults.update({k.value: n for k, n in self.faulty.fault_counts.items()})
        for record in self.faulty.fault_log:
            self.result.event_log.append(
                f"{record.at:11.3f} fault {record.kind.value} {record.target}#{record.nth} "
                f"{record.detail}"
            )

    # -- processes ------------------------------------------------------------------------------
    def _on_death(self, where: str) -> None:
        if where == "shutdown":
            self.log(f"stopped proc{self.generation}")
            return
        self.log(f"crash proc{self.generation} at {where}")
        if self.died is not None:
            self.died.set()

    async def _start_process(self) -> _Process:
        """Start a process and run start-up recovery; a crash inside starts the next one."""
        while True:
            self.generation += 1
            crash_at: int | None = None
            crash_after = False
            crash_on_fill: int | None = None
            if self.config.crash and self.result.crashes < self.config.max_crashes:
                crash_at = self.rng.randint(1, CRASH_HORIZON)
                crash_after = self.rng.random() < 0.5
                if self.variants.crash_at_fills:
                    u, n = self.wide_rng.random(), self.wide_rng.randint(1, 4)
                    if u < 0.4:  # this process dies at a fill instead of at a step
                        crash_at, crash_on_fill = None, n
            self.died = asyncio.Event()
            scope = ProcessScope(
                f"proc{self.generation}",
                crash_at=crash_at,
                crash_after=crash_after,
                crash_on_fill=crash_on_fill,
                on_death=self._on_death,
                wire=self.wire,
            )
            manager = OrderManager(
                ScopedBroker(self.faulty, scope),
                clock=self.clock,
                journal=scoped_journal(self.journal, scope),
                rng=random.Random(f"orderguard.chaos:{self.seed}:proc{self.generation}"),
                account_id=ACCOUNT,
            )
            self.log(
                f"start proc{self.generation} crash_at={crash_at} after={crash_after}"
                + (f" at_fill={crash_on_fill}" if crash_on_fill is not None else "")
            )
            try:
                await self._start_manager(manager)  # start() runs start-up recovery itself
                report = manager.last_recovery
                if report is not None and (report.operations or report.error):
                    self._note_recovery(report)
            except ProcessKilled:
                self._bury(manager)
                continue
            except _StartFailed:
                # A supervisor gives up on this process and starts a fresh one (fresh breakers):
                # a storm can leave a breaker open for its whole reset time.
                self.log(f"proc{self.generation} did not start; starting another")
                scope.kill("shutdown")
                self._bury(manager, crash=False)
                continue
            actor = WorkloadActor(
                manager,
                self.clock,
                self._last,
                self.state,
                ACCOUNT,
                platform=ExchangePlatform(self.exchange) if self.variants.outside else None,
            )
            if self.config.wide:
                actor.user_guard()  # the user's strategy restarts with the process
            return _Process(scope, manager, actor)

    async def _start_manager(self, manager: OrderManager) -> None:
        """Start, retrying every second; :class:`_StartFailed` after ``_START_ATTEMPTS``."""
        for attempt in range(1, _START_ATTEMPTS + 1):
            try:
                await manager.start()
                return
            except OrderGuardError as exc:
                self.log(f"start attempt {attempt} failed: {type(exc).__name__}: {exc}")
                await self.clock.sleep(1.0)
        self.failed_starts += 1
        if self.failed_starts > _FAILED_STARTS_MAX:
            await manager.start()  # one last try, faults or not: let the error surface
            return
        raise _StartFailed

    async def _recover(self, manager: OrderManager) -> RecoveryReport:
        return self._note_recovery(await manager.rerun_recovery())

    def _note_recovery(self, report: RecoveryReport) -> RecoveryReport:
        self.result.recoveries += 1
        self.result.recovered_operations += len(report.operations)
        self.log(f"recovery queries={report.queries} waited={report.waited:.3f} ok={report.ok}")
        for op in report.operations:
            self.log(
                f"  recovered {op.operation_id} {op.type} {op.state_before}->{op.state_after} "
                f"via {op.resumer}: {'; '.join(op.actions)}"
                + (f" error={op.error}" if op.error else "")
            )
        self.needs_recovery = not report.ok
        return report

    def _bury(self, manager: OrderManager, *, crash: bool = True) -> None:
        """What dies with the process: its background tasks (its memory goes with the object)."""
        if crash:
            self.result.crashes += 1
        kill(manager)  # its tasks, in creation order; its subscription died with the scope

    def _last(self, contract: str) -> Decimal:
        price = self.exchange.last_price(contract)
        return price if price is not None else self.prices[contract]

    # -- the run --------------------------------------------------------------------------------
    async def main(self) -> SeedResult:
        drivers = [
            MarketDriver(
                self.exchange,
                self.clock,
                contract,
                RandomWalkPrices(seed=self.seed * 31 + i, start=price, max_ticks_per_step=2),
                interval=0.5,
            )
            for i, (contract, price) in enumerate(sorted(self.prices.items()))
        ]
        for driver in drivers:
            await driver.start()
        await self.home.open()
        try:
            return await self._main(drivers)
        finally:
            await self.home.close()

    async def _main(self, drivers: list[MarketDriver]) -> SeedResult:
        caps = Capabilities.of(OrderManager)
        if self.config.brackets is not None:
            caps = Capabilities(brackets=self.config.brackets and caps.brackets)
        caps = replace(caps, wide=self.config.wide, outside=self.variants.outside)
        if self.variants.journal_failures:
            start, seconds = self.wide_rng.uniform(5.0, 120.0), self.wide_rng.uniform(5.0, 30.0)
            self.clock.call_later(start, lambda: self.chaos_journal.disk_full(seconds))
        steps = build_workload(self.rng, self.config.operations, caps)
        plan = batches(self.rng, steps)
        self.log(f"seed {self.seed} side={self.state.side.name} steps={len(steps)} caps={caps}")
        if self.config.wide:
            self.log(f"variants {self.variants}")
        process = await self._start_process()
        for number, batch in enumerate(plan, 1):
            process = await self._run_batch(process, batch)
            process = await self._quiet_point(process, f"batch {number}")
        process = await self._quiet_point(process, "end", final=True)
        self.result.virtual_seconds = self.clock.monotonic()
        now = self.clock.monotonic()
        self._judge_bounds(now)
        episodes = self.tracker.all_episodes(now)
        self.result.episodes = len(episodes)
        self.result.unprotected_total = self.tracker.total_seconds(now)
        self.result.unprotected_max = self.tracker.max_seconds(now)
        self.record_faults()
        await process.manager.cleanup()
        for driver in drivers:
            await driver.stop()
        return self.result

    def _judge_bounds(self, now: float) -> None:
        """The continuous checks: I6 and over-coverage episodes, I7 at terminal writes."""
        self.bounds.finish(now)
        found = [(v, "continuous") for v in self.bounds.violations()] + self.continuous
        for v, where in found:
            self.log(f"  violation {v.invariant}: {v.detail} [{where}]")
            self._report(v, where)
        self.result.storm_causes = self.bounds.storm_causes()

    def _report(self, v: Violation, at: str) -> None:
        detail = v.detail if v.contract_id is None else f"{v.contract_id}: {v.detail}"
        # A lasting violation is reported once (its age, growing, is not part of what it is).
        seen = {(x.invariant, _ageless(x.detail)) for x in self.result.violations}
        if (v.invariant, _ageless(detail)) not in seen:
            self.result.violations.append(
                SeedViolation(self.seed, v.invariant, detail, self.config.replay(self.seed), at)
            )

    async def _run_batch(self, process: _Process, batch: list[Step]) -> _Process:
        died = self.died
        assert died is not None
        shutdown_after: float | None = None
        if self.variants.shutdowns:
            u, after = self.wide_rng.random(), self.wide_rng.uniform(0.2, 4.0)
            shutdown_after = after if u < 0.1 else None
        tasks = [asyncio.ensure_future(self._step(process.actor, step)) for step in batch]
        everything: asyncio.Future[list[object]] = asyncio.gather(*tasks, return_exceptions=True)
        death: asyncio.Future[object] = asyncio.ensure_future(died.wait())
        waiting: set[asyncio.Future[Any]] = {everything, death}
        shutdown: asyncio.Future[None] | None = None
        if shutdown_after is not None:
            shutdown = asyncio.ensure_future(self.clock.sleep(shutdown_after))
            waiting.add(shutdown)
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        death.cancel()
        if shutdown is not None and not shutdown.done():
            shutdown.cancel()
        if not died.is_set() and shutdown is not None and shutdown.done() and not everything.done():
            return await self._shut_down(process, tasks, everything)
        if not died.is_set():
            with contextlib.suppress(BaseException):
                await everything
            return process
        for task in tasks:
            task.cancel()
        with contextlib.suppress(BaseException):
            await everything
        self._bury(process.manager)
        return await self._start_process()

    async def _shut_down(
        self, process: _Process, tasks: list[asyncio.Task[None]], everything: asyncio.Future[Any]
    ) -> _Process:
        """A graceful shutdown mid-batch: the caller's tasks are cancelled (as ``asyncio.run``
        cancels them), then ``cleanup()``; the next process starts on the same journal."""
        self.log(f"shutdown proc{self.generation}: cancelling {len(tasks)} step tasks")
        for task in tasks:
            task.cancel()
        with contextlib.suppress(BaseException):
            await everything
        try:
            await self.clock.wait_for(process.manager.cleanup(), 60.0)
        except (TimeoutError, OrderGuardError, ProcessKilled) as exc:
            self.log(f"shutdown cleanup failed: {type(exc).__name__}: {exc}")
        self.died = None  # this death is no crash
        process.scope.kill("shutdown")
        self._bury(process.manager, crash=False)
        return await self._start_process()

    async def _step(self, actor: WorkloadActor, step: Step) -> None:
        self.log(f"step {step.describe()}")
        try:
            result = await self.clock.wait_for(actor.perform(step), self.config.step_timeout)
        except TimeoutError:
            self.result.errors.append(f"step {step.describe()} did not finish")
            self.log(f"step #{step.index} stuck")
            return
        self.result.operations[step.kind.value] += 1
        self.log(f"step #{step.index} -> {result.outcome}")
        if result.error is not None:
            self.result.errors.append(f"step {step.describe()}: {result.error}")
            self.log(f"step #{step.index} error {result.error}")

    async def _quiet_point(self, process: _Process, label: str, *, final: bool = False) -> _Process:
        self.faulty.enabled = False
        for _ in range(600):
            if self.faulty.pending_effects == 0:
                break
            await self.clock.sleep(0.5)
        process = await self._restarted_if_dead(process)
        if self.needs_recovery and process.scope.alive:
            # Start-up recovery could not finish under faults: a restarting process retries it.
            try:
                await self._recover(process.manager)
            except ProcessKilled:  # its crash point fell inside this recovery
                self._bury(process.manager)
                process = await self._start_process()
        # Rollbacks the protection executor drives are standing obligations: with the faults
        # off they end within a few of its capped retries (a quiet point is a settled world).
        for _ in range(120):
            if not process.scope.alive or not process.manager.protection.obligations():
                break
            await self.clock.sleep(0.5)
            process = await self._restarted_if_dead(process)
        # A coverage mismatch younger than its allowance may still close: give it that long
        # (the window, stretched past a storm that refused every request meanwhile).
        # So may an open unprotected or over-covered episode (exits left on a flat contract
        # after a close from outside, say) that its bound still allows.
        while True:
            pending = self._mismatch_since().values()
            now = self.clock.monotonic()
            episodes = {*self.bounds.under, *self.bounds.over}
            ends = [d for k in episodes if (d := self.bounds.deadline(k)) is not None]
            settled = not pending or now - min(pending) >= self.config.window
            if settled and all(now >= end for end in ends):
                break
            await self.clock.sleep(1.0)
            process = await self._restarted_if_dead(process)
        await self._check(label, await self._exits_just_orphaned())
        self.result.quiet_points += 1
        if not final:
            self.faulty.enabled = True
        return process

    async def _restarted_if_dead(self, process: _Process) -> _Process:
        """A process whose crash point a background task hit (its reconciler, a saga) between
        batches is restarted at once, as a supervisor would; left dead until the next batch, the
        quiet point measured its downtime as unprotected exposure nobody could act on."""
        if process.scope.alive:
            return process
        self._bury(process.manager)
        return await self._start_process()

    def _mismatch_since(self) -> dict[Key, float]:
        """Each coverage mismatch's start, moved later by the storms that overlapped it."""
        window = self.config.window
        return {
            key: self.bounds.allowed_end(since, window)[0] - window
            for key, since in self.tracker.mismatch_since().items()
        }

    def _others(self, ops: list[RecoveryOperation], truth: BrokerTruth) -> dict[Key, int]:
        """Fills outside every operation (see :func:`outside_positions`)."""
        return outside_positions(ops, truth, self.state.outside_orders)

    async def _exits_just_orphaned(self) -> Judged | None:
        """An exit whose position went flat (or shrank below it) less than a recovery interval
        ago is being cancelled, not outliving it: the over-coverage bound gives stops that
        long, and a quiet point that fell right after the fill gives targets as long (once;
        still there afterwards, I2 reports it). Only when I2 would fire, so a seed without
        such a moment replays as before. Returns the judgement when it stands (no wait)."""
        interval = self.bounds.bounds.recovery_interval
        now = self.clock.monotonic()
        judged = await self._judge()
        fresh = [
            at
            for v in judged[1]
            if v.invariant == "I2" and v.account_id is not None and v.contract_id is not None
            and now - (at := self.bounds.changed_at((v.account_id, v.contract_id))) < interval
        ]  # fmt: skip
        if not fresh:
            return judged
        await self.clock.sleep(max(fresh) + interval - now)
        return None

    async def _judge(self) -> Judged:
        """I1–I5 on the world as it is now: the journal's operations, broker truth."""
        ops = await all_operations(self.journal)
        truth = await self.truth.read(ACCOUNT)
        return ops, check_all(
            truth,
            ops,
            now=self.clock.monotonic(),
            window=self.config.window,
            mismatch_since=self._mismatch_since(),
            strict_ownership=True,
            wire=self.wire,
            outside=self._others(ops, truth),
        )

    async def _check(self, label: str, judged: Judged | None = None) -> None:
        ops, violations = judged if judged is not None else await self._judge()
        unfinished = [op.operation_id for op in ops if not op.state.is_terminal]
        self.log(
            f"quiet point {label}: {len(ops)} operations, unfinished {unfinished}, "
            f"violations {len(violations)}"
        )
        for v in violations:
            self.log(f"  violation {v.invariant}: {v.detail}")
            self._report(v, label)


def _ageless(detail: str) -> str:
    return re.sub(r" for [0-9.]+s \(window [0-9.]+s\)", "", detail)


async def all_operations(journal: Journal, page: int = 500) -> list[RecoveryOperation]:
    records = []
    offset = 0
    while True:
        chunk = await journal.operations(limit=page, offset=offset)
        records.extend(chunk)
        if len(chunk) < page:
            break
        offset += page
    return [RecoveryOperation.from_record(r) for r in reversed(records)]


async def run_seed_async(seed: int, config: ChaosConfig) -> SeedResult:
    """Run one seed on the current event loop under a fresh virtual clock.

    A livelock (timers firing while virtual time stands still) ends the seed as an error at a
    replayable point, keeping what the seed logged and found until then.
    """
    clock = VirtualClock(stall_limit=config.stall_limit)
    run = _SeedRun(seed, config, clock)
    asyncio.get_running_loop().set_exception_handler(_quiet_about_the_dead)
    try:
        return await clock.run(run.main())
    except LivelockError as exc:
        run.log(f"livelock: {exc}")
        run.result.virtual_seconds = clock.monotonic()
        run.record_faults()
        run.result.errors.append(f"livelock: {exc}; replay: {config.replay(seed)}")
        return run.result
    except Exception as exc:  # a finding of the run, not a crash of the runner
        run.log(f"seed failed: {type(exc).__name__}: {exc}")
        run.result.virtual_seconds = clock.monotonic()
        run.record_faults()
        run.result.errors.append(f"{type(exc).__name__}: {exc}; replay: {config.replay(seed)}")
        return run.result
    finally:
        # Tasks of dead processes may still wait on the clock: nothing of theirs may outlive us.
        current = asyncio.current_task()
        leftovers = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        for task in leftovers:
            task.cancel()
        if leftovers:
            await asyncio.gather(*leftovers, return_exceptions=True)


def _quiet_about_the_dead(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """A task of a killed process ends with ProcessKilled, which nobody awaits: that is how the
    process died (the event log records it), not an error worth a traceback on stderr."""
    if isinstance(context.get("exception"), ProcessKilled):
        return
    loop.default_exception_handler(context)


class SeedOverrunError(Exception):
    """A seed used more real time than its budget: something spins without letting time pass."""


def run_seed(seed: int, config: ChaosConfig) -> SeedResult:
    """Run one seed on a new event loop, under a wall-clock watchdog (main thread only).

    Loops that wait on the clock without letting time pass are caught by the clock itself
    (``config.stall_limit``). Virtual time cannot stop code that loops without awaiting at all,
    so a real-time alarm breaks in (raising inside whatever Python code spins) and the seed is
    reported as an error.
    """
    budget = config.wall_budget
    armed = (
        budget is not None
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    overran = False

    def alarm(signum: int, frame: object) -> None:
        nonlocal overran
        overran = True
        raise SeedOverrunError(f"seed {seed} exceeded {budget}s of real time")

    previous: Any = None
    if armed:
        assert budget is not None
        previous = signal.signal(signal.SIGALRM, alarm)
        signal.setitimer(signal.ITIMER_REAL, budget, 1.0)  # then every second until it stops
    try:
        result = asyncio.run(run_seed_async(seed, config))
    except SeedOverrunError:
        result = SeedResult(seed)
    finally:
        if armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    if overran:
        result.errors.append(
            f"livelock: exceeded {budget}s of real time at virtual "
            f"{result.virtual_seconds:.3f}s; replay: {config.replay(seed)}"
        )
    return result


def run_chaos(
    seeds: Iterable[int], config: ChaosConfig, *, event_log: TextIO | None = None
) -> ChaosReport:
    """Run every seed; write each seed's event log to ``event_log`` if given."""
    report = ChaosReport(config=config)
    started = time.perf_counter()
    # Library logging would interleave with the report and slow the run; the event log is the
    # record. Errors still reach the report as findings.
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        for seed in seeds:
            result = run_seed(seed, config)
            if event_log is not None:
                event_log.write(f"# seed {seed}\n")
                event_log.writelines(line + "\n" for line in result.event_log)
            result.event_log.clear()
            report.add(result)
    finally:
        logging.disable(previous)
    report.elapsed = time.perf_counter() - started
    return report


__all__ = [
    "FAULT_PLANS",
    "SeedOverrunError",
    "Variants",
    "all_operations",
    "run_chaos",
    "run_seed",
    "run_seed_async",
]
