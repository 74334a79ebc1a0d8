"""Chaos over the wire: the chaos workload in real time against a ProjectX-compatible server.

The deterministic runner (:mod:`orderguard.chaos.runner`) drives a simulated world on a virtual
clock. This one drives a real :class:`~orderguard.broker.projectx.ProjectXBroker` — REST and both
SignalR hubs — against any server that speaks the ProjectX protocol, on the system clock, with the
same workload (:mod:`orderguard.chaos.workload`) and the same invariant checks
(:mod:`orderguard.chaos.invariants`, :mod:`orderguard.chaos.bounds`) fed from the *server's* truth:

* with a control API (``orderguard gateway``; started on 127.0.0.1 for each seed when no
  ``api_url`` is given): truth is ``GET /control/truth``, polled every ``poll_interval`` so the I6
  and over-coverage bounds are judged continuously; faults are armed through ``/control/faults``
  and ``/control/hubs`` at seeded moments; the outside actor acts through ``/control/orders`` and
  ``/control/positions`` (the platform's own actions);
* without one (a real server): truth is read over REST by a second session at quiet points only
  (the rate limit is shared), no faults, no outside actor. The account must be flat, with no
  working orders, when a seed starts; each seed flattens what it leaves.

What is not done over the wire: crashes of the client (``tests/e2e_projectx/test_e2e_crash.py``
kills real processes with SIGKILL against the gateway instead), I7 (judged at the instant an
operation is written terminal, which needs the runner's journal hook), and exact replay: a seed
draws the same workload and fault schedule, but real time and the server decide what happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import tempfile
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from orderguard.broker.base import BrokerEvent, QuoteEvent
from orderguard.broker.projectx import ProjectXBroker, ProjectXSettings
from orderguard.chaos.bounds import BoundChecker, Bounds
from orderguard.chaos.invariants import (
    BrokerTruth,
    ExposureTracker,
    Violation,
    check_all,
    coverage,
    outside_positions,
)
from orderguard.chaos.report import ChaosReport, SeedResult, SeedViolation
from orderguard.chaos.runner import all_operations
from orderguard.chaos.truth import (
    ControlClient,
    GatewayPlatform,
    GatewayTruth,
    Platform,
    RestTruth,
    TruthSource,
)
from orderguard.chaos.wire_config import (
    CONTRACTS,
    FAULTS,
    START_PRICES,
    WireChaosConfig,
    WireTarget,
)
from orderguard.chaos.workload import (
    POSITION_CONTRACTS,
    Capabilities,
    Step,
    WorkloadActor,
    WorkloadState,
    batches,
    build_workload,
)
from orderguard.clock import SystemClock
from orderguard.errors import OrderGuardError
from orderguard.gateway import Gateway, GatewayConfig
from orderguard.gateway.config import AccountSpec
from orderguard.journal.base import Journal
from orderguard.journal.memory import MemoryJournal
from orderguard.journal.sqlite import SqliteJournal
from orderguard.models import OrderSide
from orderguard.orders import OrderManager

log = logging.getLogger("orderguard.chaos.wire")


class _WireSeed:
    """One seed over the wire (see the module docstring)."""

    def __init__(self, seed: int, config: WireChaosConfig, target: WireTarget) -> None:
        self.seed = seed
        self.config = config
        self.target = target
        self.rng = random.Random(f"orderguard.chaos:{seed}")
        self.fault_rng = random.Random(f"orderguard.chaos.wire.faults:{seed}")
        self.clock = SystemClock()
        self.result = SeedResult(seed)
        self.state = WorkloadState(side=self.rng.choice((OrderSide.BUY, OrderSide.SELL)))
        c = config.chaos
        outside = c.outside_actor
        self.outside = outside == "on" or (
            outside == "mixed" and random.Random(seed).random() < 0.5
        )
        self.tracker = ExposureTracker()
        self.bounds = BoundChecker(Bounds(c.protection_deadline, c.recovery_interval))
        self.prices: dict[str, Decimal] = dict(START_PRICES)
        self.started = 0.0
        self.account_id = target.account_id or 1
        self.control: ControlClient | None = None
        self.truth: TruthSource | None = None
        self.platform: Platform | None = None
        self.continuous = False
        self.faults_on = False
        self.poll_errors = 0
        self._observing = asyncio.Lock()
        self._before = 0  # the highest order id on the account when the seed started

    # -- time and logging -------------------------------------------------------------------
    def now(self) -> float:
        return time.monotonic() - self.started

    def log(self, text: str) -> None:
        self.result.event_log.append(f"{self.now():11.3f} {text}")

    # -- the run ------------------------------------------------------------------------------
    async def run(self) -> SeedResult:
        self.started = time.monotonic()
        if self.target.embedded:
            gateway = Gateway(
                GatewayConfig(
                    accounts=(AccountSpec(self.account_id, "SIM-1"),),
                    seed=self.seed,
                    start_prices=dict(START_PRICES),
                    keep_alive_interval=1.0,
                    retry_after=True,
                )
            )
            async with gateway.running(port=0) as gw:
                assert gw.urls is not None
                user, key = gw.credentials
                target = WireTarget(
                    gw.urls.base, control_url=gw.urls.base, username=user, api_key=key,
                    account_id=self.account_id,
                )  # fmt: skip
                return await self._run_on(target)
        return await self._run_on(self.target)

    def _settings(self, target: WireTarget, *, realtime: bool = True) -> ProjectXSettings:
        values: dict[str, Any] = {
            "api_url": target.api_url,
            "account_id": self.account_id,
            "first_connect_wait": 5.0,
            "quote_wait": 2.0,
            "keepalive_interval": 1.0,
            "silence_timeout": 3.0,
            "reconnect_initial_delay": 0.1,
            "reconnect_max_delay": 1.0,
            "read_timeout": 3.0,
            "handshake_timeout": 2.0,
            "invoke_timeout": 3.0,
        }
        if target.user_hub_url:
            values["user_hub_url"] = target.user_hub_url
        if target.market_hub_url:
            values["market_hub_url"] = target.market_hub_url
        if target.username is not None:
            values["username"] = target.username
        if target.api_key is not None:
            values["api_key"] = target.api_key
        return ProjectXSettings(**values)

    async def _run_on(self, target: WireTarget) -> SeedResult:
        broker = ProjectXBroker(self._settings(target))
        reader: ProjectXBroker | None = None
        journal, path = self._journal()
        if target.control_url:
            self.control = ControlClient(target.control_url)
            self.truth = GatewayTruth(self.control)
            self.platform = GatewayPlatform(self.control) if self.outside else None
            self.continuous = True
        else:
            # A session of its own reads the truth, so it cannot share the client's mistakes.
            reader = ProjectXBroker(self._settings(target), realtime=False)
            since = datetime.now(UTC) - timedelta(minutes=1)
            self.truth = RestTruth(reader, since)
            self.outside = False
        manager = OrderManager(
            broker,
            account_id=self.account_id,
            journal=journal,
            allow_memory_journal=self.config.journal == "memory",
        )
        poller: asyncio.Task[None] | None = None
        faulter: asyncio.Task[None] | None = None
        try:
            await self._require_flat()
            await manager.start()
            broker.subscribe(self._on_event)
            for contract in CONTRACTS:
                price = await broker.get_last_price(contract)
                if price is not None:
                    self.prices[contract] = price
            if self.continuous:
                poller = asyncio.create_task(self._poll())
            caps = Capabilities(brackets=True, wide=True, outside=self.platform is not None)
            steps = build_workload(self.rng, self.config.chaos.operations, caps)
            plan = batches(self.rng, steps)
            self.log(
                f"seed {self.seed} over the wire: {target.api_url} side={self.state.side.name} "
                f"steps={len(steps)} outside={self.platform is not None} "
                f"faults={self.config.chaos.faults if self.control else 'none'}"
            )
            self.result.variants = {
                "broker": "projectx",
                "outside": "on" if self.platform is not None else "off",
                "journal": self.config.journal,
            }
            actor = WorkloadActor(
                manager, self.clock, self._market, self.state, self.account_id,
                platform=self.platform,
            )  # fmt: skip
            actor.user_guard()
            if self.control is not None and self.config.chaos.faults != "none":
                faulter = asyncio.create_task(self._arm_faults())
            for number, batch in enumerate(plan, 1):
                self.faults_on = True
                await asyncio.gather(*(self._step(actor, step) for step in batch))
                self.faults_on = False
                await self._quiet_point(manager, f"batch {number}")
            self.result.virtual_seconds = self.now()
            if poller is not None:
                now = self.now()
                self.bounds.finish(now)
                for v in self.bounds.violations():
                    self._report(v, "continuous")
                episodes = self.tracker.all_episodes(now)
                self.result.episodes = len(episodes)
                self.result.unprotected_total = self.tracker.total_seconds(now)
                self.result.unprotected_max = self.tracker.max_seconds(now)
            if not self.target.embedded:
                await self._flatten(manager)
        except Exception as exc:  # a finding of the run, not a crash of the runner
            self.log(f"seed failed: {type(exc).__name__}: {exc}")
            self.result.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            for task in (poller, faulter):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
            if self.control is not None:
                with contextlib.suppress(OrderGuardError):
                    await self.control.post("faults/clear")
            with contextlib.suppress(Exception):
                await manager.cleanup()
            await broker.aclose()
            if reader is not None:
                await reader.aclose()
            await journal.close()
            if self.control is not None:
                await self.control.aclose()
            if path is not None:
                with contextlib.suppress(OSError):
                    path.unlink()
        self.result.virtual_seconds = self.now()
        return self.result

    def _journal(self) -> tuple[Journal, Path | None]:
        if self.config.journal == "memory":
            return MemoryJournal(), None
        path = Path(tempfile.mkdtemp(prefix="orderguard-wire-chaos-")) / f"seed{self.seed}.db"
        return SqliteJournal(path), path

    async def _read(self) -> BrokerTruth:
        """The server's truth about this seed: orders placed before it started (earlier seeds
        on the same server, closed out since) are left out; ids only grow, whatever the
        server's clock says."""
        assert self.truth is not None
        truth = await self.truth.read(self.account_id)
        return BrokerTruth(tuple(o for o in truth.orders if o.id > self._before), truth.positions)

    async def _require_flat(self) -> None:
        assert self.truth is not None
        truth = await self.truth.read(self.account_id)
        self._before = max((o.id for o in truth.orders), default=0)
        working = [o for o in truth.orders if o.is_working]
        if truth.positions or working:
            raise OrderGuardError(
                f"account {self.account_id} is not flat ({len(truth.positions)} positions, "
                f"{len(working)} working orders): chaos over the wire needs a flat account"
            )

    def _on_event(self, event: BrokerEvent) -> None:
        if isinstance(event, QuoteEvent):
            self.prices[event.contract_id] = event.last_price

    def _market(self, contract: str) -> Decimal:
        return self.prices[contract]

    # -- steps ------------------------------------------------------------------------------
    async def _step(self, actor: WorkloadActor, step: Step) -> None:
        self.log(f"step {step.describe()}")
        try:
            result = await asyncio.wait_for(actor.perform(step), self.config.step_timeout)
        except TimeoutError:
            self.result.errors.append(f"step {step.describe()} did not finish")
            self.log(f"step #{step.index} stuck")
            return
        self.result.operations[step.kind.value] += 1
        self.log(f"step #{step.index} -> {result.outcome}")
        if result.error is not None:
            self.result.errors.append(f"step {step.describe()}: {result.error}")

    async def _arm_faults(self) -> None:
        """One fault from the setting's list every few seconds while a batch runs."""
        assert self.control is not None
        kinds = FAULTS[self.config.chaos.faults]
        low, high = self.config.fault_every
        while True:
            await asyncio.sleep(self.fault_rng.uniform(low, high))
            target, kind, extra = kinds[self.fault_rng.randrange(len(kinds))]
            if not self.faults_on:
                continue
            try:
                if target.startswith("hub:") and kind == "disconnect":
                    await self.control.post("hubs", {"hub": target[4:], "action": "disconnect"})
                else:
                    await self.control.post("faults", {"target": target, "kind": kind, **extra})
            except OrderGuardError as exc:
                self.log(f"fault {target} {kind} not armed: {exc}")
                continue
            self.result.faults[f"{kind}@{target}"] += 1
            self.log(f"fault armed {kind} on {target} {extra}")

    # -- truth --------------------------------------------------------------------------------
    async def _observe(self) -> BrokerTruth:
        """Read the server's truth and fold it into the trackers (one reader at a time, so the
        trackers see snapshots in the order they were taken)."""
        assert self.truth is not None
        async with self._observing:
            truth = await self._read()
            now = self.now()
            self.tracker.observe(now, coverage(truth.positions, truth.orders))
            self.bounds.observe(now, truth.positions, truth.orders)
        return truth

    async def _poll(self) -> None:
        """Feed the continuous bounds from the server's truth."""
        while True:
            try:
                await self._observe()
            except OrderGuardError:
                self.poll_errors += 1
            await asyncio.sleep(self.config.poll_interval)

    async def _quiet_point(self, manager: OrderManager, label: str) -> None:
        """Faults off and cleared; obligations, young mismatches and open episodes given the
        time their bounds allow (exits left on a flat contract after an outside close, say);
        then I1-I5 from the server's truth."""
        if self.control is not None:
            await self.control.post("faults/clear")
        window = self.config.chaos.window
        deadline = time.monotonic() + self.config.settle_limit
        while True:
            truth = await self._observe()
            now = self.now()
            pending = self.tracker.mismatch_since().values()
            episodes = {*self.bounds.under, *self.bounds.over}
            ends = [d for k in episodes if (d := self.bounds.deadline(k)) is not None]
            settled = not pending or now - min(pending) >= window
            if settled and all(now >= end for end in ends) and not manager.protection.obligations():
                break
            if time.monotonic() >= deadline:
                break
            # Over REST each look costs two requests of the account's rate budget.
            await asyncio.sleep(0.2 if self.continuous else 1.0)
        ops = await all_operations(manager.journal)
        violations = check_all(
            truth,
            ops,
            now=self.now(),
            window=window,
            mismatch_since=self.tracker.mismatch_since(),
            strict_ownership=True,
            outside=outside_positions(ops, truth, self.state.outside_orders),
        )
        self.result.quiet_points += 1
        self.log(f"quiet point {label}: {len(ops)} operations, violations {len(violations)}")
        for v in violations:
            self._report(v, label)

    def _report(self, v: Violation, at: str) -> None:
        detail = v.detail if v.contract_id is None else f"{v.contract_id}: {v.detail}"
        self.log(f"  violation {v.invariant}: {detail} [{at}]")
        seen = {(x.invariant, x.detail) for x in self.result.violations}
        if (v.invariant, detail) not in seen:
            replay = self.config.replay(self.seed, self.target)
            self.result.violations.append(SeedViolation(self.seed, v.invariant, detail, replay, at))

    async def _flatten(self, manager: OrderManager) -> None:
        """Leave a real account as it was found: no working orders, no positions."""
        for contract in CONTRACTS:
            with contextlib.suppress(OrderGuardError):
                await manager.cancel_all_orders(contract)
        for contract in POSITION_CONTRACTS:
            with contextlib.suppress(OrderGuardError):
                await manager.close_position(contract, whole_contract=True)


async def run_wire_seed(seed: int, config: WireChaosConfig, target: WireTarget) -> SeedResult:
    """One seed over the wire, on the running event loop."""
    return await _WireSeed(seed, config, target).run()


async def run_wire_chaos_async(
    seeds: Iterable[int],
    config: WireChaosConfig,
    target: WireTarget | None = None,
    *,
    on_seed: Callable[[SeedResult], None] | None = None,
) -> ChaosReport:
    """Every seed in turn (one server, one account: never two at once)."""
    target = target or WireTarget()
    report = ChaosReport(config=config.chaos)
    started = time.perf_counter()
    for seed in seeds:
        result = await run_wire_seed(seed, config, target)
        if on_seed is not None:
            on_seed(result)
        result.event_log.clear()
        report.add(result)
    report.elapsed = time.perf_counter() - started
    return report


def run_wire_chaos(
    seeds: Iterable[int],
    config: WireChaosConfig,
    target: WireTarget | None = None,
    *,
    on_seed: Callable[[SeedResult], None] | None = None,
) -> ChaosReport:
    """:func:`run_wire_chaos_async` on a new event loop. Library logging (and the server's, for
    an embedded gateway) is off: the event log is the record, errors reach the report."""
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        return asyncio.run(run_wire_chaos_async(seeds, config, target, on_seed=on_seed))
    finally:
        logging.disable(previous)


__all__ = [
    "START_PRICES",
    "WireChaosConfig",
    "WireTarget",
    "run_wire_chaos",
    "run_wire_chaos_async",
    "run_wire_seed",
]
