"""The deterministic chaos runner: random workloads, faults and crashes, checked invariants.

One seed is one simulated world on a :class:`~orderguard.clock.VirtualClock`: a
:class:`~orderguard.broker.sim.SimBroker` whose markets follow seeded random walks, wrapped in the
seeded :class:`~orderguard.broker.faults.FaultyBroker`, a :class:`MemoryJournal` (the disk) and a
sequence of simulated processes, each an OrderManager behind a
:class:`~orderguard.chaos.process.ProcessScope`. The workload runs in small concurrent batches.

With ``crash``, each process is given a random step (a broker mutation or a journal write, before
or after it takes effect) at which it dies like ``kill -9``: its tasks are cancelled, its
subscriptions closed, and nothing it does afterwards reaches the exchange or the journal. A new
process starts on the same journal and runs start-up recovery before the workload continues.

After every batch comes a *quiet point*: faults off, in-flight faults drained, protection windows
given time to close; then I1–I5 are checked from the exchange's truth. I6 (unprotected exposure)
is measured continuously from an exchange listener.

A seed that *livelocks* — timers keep firing while virtual time stands still, e.g. a loop that
re-arms a zero timeout — is stopped by the clock after ``config.stall_limit`` such timers and
reported as an error with its replay command; what it logged and found until then is kept. (A
wall-clock budget remains the backstop for code that spins without awaiting at all.)

Everything random is derived from the seed, so the same seed gives a byte-identical event log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
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
from orderguard.broker.faults import FaultPlan, FaultyBroker
from orderguard.broker.sim import LatencyModel, MarketDriver, RandomWalkPrices, SimBroker
from orderguard.chaos.invariants import (
    BrokerTruth,
    ExposureTracker,
    WireRecord,
    check_all,
    coverage,
)
from orderguard.chaos.process import ProcessKilled, ProcessScope, ScopedBroker, scoped_journal
from orderguard.chaos.report import ChaosConfig, ChaosReport, SeedResult, SeedViolation
from orderguard.chaos.workload import (
    POSITION_CONTRACT,
    RESTING_CONTRACT,
    Capabilities,
    Step,
    WorkloadActor,
    WorkloadState,
    batches,
    build_workload,
)
from orderguard.clock import LivelockError, VirtualClock
from orderguard.errors import OrderGuardError
from orderguard.journal.memory import MemoryJournal
from orderguard.models import OrderSide
from orderguard.orders import OrderManager
from orderguard.recovery.manager import RecoveryOperation
from orderguard.recovery.startup import RecoveryReport

ACCOUNT = 1
PRICES = {POSITION_CONTRACT: Decimal("21000.00"), RESTING_CONTRACT: Decimal("6000.00")}
FAULT_PLANS = {"none": FaultPlan.none, "mild": FaultPlan.mild, "all": FaultPlan.all}
# A process dies at a step drawn from [1, CRASH_HORIZON]: most processes die mid-workload.
CRASH_HORIZON = 250
_START_ATTEMPTS = 8


@dataclass(slots=True)
class _Process:
    scope: ProcessScope
    manager: OrderManager
    actor: WorkloadActor


class _SeedRun:
    """One seed (see the module docstring)."""

    def __init__(self, seed: int, config: ChaosConfig, clock: VirtualClock) -> None:
        self.seed = seed
        self.config = config
        self.clock = clock
        self.rng = random.Random(f"orderguard.chaos:{seed}")
        self.sim = SimBroker.create(
            clock,
            prices=PRICES,
            latency=LatencyModel(request=0.02, response=0.02, event=0.01, jitter=0.01, seed=seed),
        )
        self.exchange = self.sim.exchange
        self.faulty = FaultyBroker(self.sim, clock, FAULT_PLANS[config.faults](), seed=seed)
        self.journal = MemoryJournal(clock)
        self.tracker = ExposureTracker()
        self.wire: list[WireRecord] = []
        self.result = SeedResult(seed)
        self.state = WorkloadState(side=self.rng.choice((OrderSide.BUY, OrderSide.SELL)))
        self.generation = 0
        self.died: asyncio.Event | None = None
        self.needs_recovery = False
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
        self.tracker.observe(
            self.clock.monotonic(),
            coverage(self.exchange.positions(ACCOUNT), self.exchange.open_orders(ACCOUNT)),
        )

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
        self.log(f"crash proc{self.generation} at {where}")
        if self.died is not None:
            self.died.set()

    async def _start_process(self) -> _Process:
        """Start a process and run start-up recovery; a crash inside starts the next one."""
        while True:
            self.generation += 1
            crash_at: int | None = None
            crash_after = False
            if self.config.crash and self.result.crashes < self.config.max_crashes:
                crash_at = self.rng.randint(1, CRASH_HORIZON)
                crash_after = self.rng.random() < 0.5
            self.died = asyncio.Event()
            scope = ProcessScope(
                f"proc{self.generation}",
                crash_at=crash_at,
                crash_after=crash_after,
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
            self.log(f"start proc{self.generation} crash_at={crash_at} after={crash_after}")
            try:
                await self._start_manager(manager)  # start() runs start-up recovery itself
                report = manager.last_recovery
                if report is not None and (report.operations or report.error):
                    self._note_recovery(report)
            except ProcessKilled:
                self._bury(manager)
                continue
            actor = WorkloadActor(manager, self.clock, self._last, self.state, ACCOUNT)
            return _Process(scope, manager, actor)

    async def _start_manager(self, manager: OrderManager) -> None:
        for attempt in range(1, _START_ATTEMPTS + 1):
            try:
                await manager.start()
                return
            except OrderGuardError as exc:
                self.log(f"start attempt {attempt} failed: {type(exc).__name__}")
                await self.clock.sleep(1.0)
        await manager.start()  # one last try, faults or not: let the error surface

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

    def _bury(self, manager: OrderManager) -> None:
        """What dies with the process: its background tasks (its memory goes with the object)."""
        self.result.crashes += 1
        # The manager's spawned tasks are its threads of control; a dead process runs none.
        # Cancelled in creation order: a set iterates by address, which would break replay.
        for task in sorted(manager._tasks, key=_creation_order):  # no default: a rename must fail
            task.cancel()

    def _last(self, contract: str) -> Decimal:
        price = self.exchange.last_price(contract)
        return price if price is not None else PRICES[contract]

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
            for i, (contract, price) in enumerate(sorted(PRICES.items()))
        ]
        for driver in drivers:
            await driver.start()
        caps = Capabilities.of(OrderManager)
        if self.config.brackets is not None:
            caps = Capabilities(brackets=self.config.brackets and caps.brackets)
        steps = build_workload(self.rng, self.config.operations, caps)
        plan = batches(self.rng, steps)
        self.log(f"seed {self.seed} side={self.state.side.name} steps={len(steps)} caps={caps}")
        process = await self._start_process()
        for number, batch in enumerate(plan, 1):
            process = await self._run_batch(process, batch)
            process = await self._quiet_point(process, f"batch {number}")
        process = await self._quiet_point(process, "end", final=True)
        self.result.virtual_seconds = self.clock.monotonic()
        now = self.clock.monotonic()
        episodes = self.tracker.all_episodes(now)
        self.result.episodes = len(episodes)
        self.result.unprotected_total = self.tracker.total_seconds(now)
        self.result.unprotected_max = self.tracker.max_seconds(now)
        self.record_faults()
        await process.manager.cleanup()
        for driver in drivers:
            await driver.stop()
        return self.result

    async def _run_batch(self, process: _Process, batch: list[Step]) -> _Process:
        died = self.died
        assert died is not None
        tasks = [asyncio.ensure_future(self._step(process.actor, step)) for step in batch]
        everything: asyncio.Future[list[object]] = asyncio.gather(*tasks, return_exceptions=True)
        death: asyncio.Future[object] = asyncio.ensure_future(died.wait())
        await asyncio.wait((everything, death), return_when=asyncio.FIRST_COMPLETED)
        death.cancel()
        if not died.is_set():
            return process
        for task in tasks:
            task.cancel()
        with contextlib.suppress(BaseException):
            await everything
        self._bury(process.manager)
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
        # A coverage mismatch younger than the window may still close: give it the window.
        window = self.config.protection_window
        while True:
            pending = self.tracker.mismatch_since().values()
            now = self.clock.monotonic()
            if not pending or now - min(pending) >= window:
                break
            await self.clock.sleep(1.0)
            process = await self._restarted_if_dead(process)
        await self._check(label)
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

    async def _check(self, label: str) -> None:
        ops = await _all_operations(self.journal)
        truth = BrokerTruth(
            tuple(self.exchange.orders(ACCOUNT)), tuple(self.exchange.positions(ACCOUNT))
        )
        violations = check_all(
            truth,
            ops,
            now=self.clock.monotonic(),
            window=self.config.protection_window,
            mismatch_since=self.tracker.mismatch_since(),
            strict_ownership=True,
            wire=self.wire,
        )
        unfinished = [op.operation_id for op in ops if not op.state.is_terminal]
        self.log(
            f"quiet point {label}: {len(ops)} operations, unfinished {unfinished}, "
            f"violations {len(violations)}"
        )
        seen = {(v.invariant, v.detail) for v in self.result.violations}
        for v in violations:
            self.log(f"  violation {v.invariant}: {v.detail}")
            if (v.invariant, v.detail) not in seen:  # a lasting violation is reported once
                self.result.violations.append(
                    SeedViolation.of(self.seed, v, self.config.replay(self.seed), label)
                )


def _creation_order(task: asyncio.Task[object]) -> tuple[str, int]:
    """asyncio names tasks ``Task-<n>`` from a process-wide counter: n is creation order."""
    name = task.get_name()
    head, _, tail = name.rpartition("-")
    return (head, int(tail)) if tail.isdigit() else (name, 0)


async def _all_operations(journal: MemoryJournal, page: int = 500) -> list[RecoveryOperation]:
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


__all__ = ["FAULT_PLANS", "SeedOverrunError", "run_chaos", "run_seed", "run_seed_async"]
