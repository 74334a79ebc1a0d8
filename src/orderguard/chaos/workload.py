"""The chaos workload: a seeded list of steps (pure) and the code that performs each step.

:func:`build_workload` draws the steps from a ``random.Random``; it looks at nothing but the seed
and which operations the OrderManager offers (:class:`Capabilities`, read with ``hasattr`` when the
run starts, so brackets, OCO pairs and position orders join the workload as they land).

Contracts have jobs, so that every position the workload opens is owned by exactly one kind of
operation and protected in one way (I1 checks exact stop coverage per contract):

* ``MNQ`` — positions: protected market entries (a journaled saga: market entry, then a stop for the
  filled size, rolled back by recovery) and, when they exist, brackets. One side per seed, so
  operations on a contract never net against each other.
* ``ES`` — resting limit orders far from the market: modifications and bulk cancels, no exposure.

Performing a step (:class:`WorkloadActor`) uses only the OrderManager's public API. Expected
business outcomes (rejections, unknown outcomes, invalid prices after a fast market) are results,
not errors; anything else is recorded as an error of the run.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from orderguard.broker.base import Unknown, UnknownOrigin
from orderguard.chaos.process import intent_scope
from orderguard.clock import Clock
from orderguard.errors import (
    ExposureRefusedError,
    OperationError,
    OrderGuardError,
    OrderRejectedError,
    OutcomeUnknownError,
    ValidationError,
)
from orderguard.models import Order, OrderRequest, OrderSide, OrderType
from orderguard.recovery.operations import OperationType
from orderguard.recovery.startup import DEFAULT_IN_FLIGHT_GRACE

POSITION_CONTRACT = "CON.F.US.MNQ.Z26"
RESTING_CONTRACT = "CON.F.US.EP.Z26"
TICK = Decimal("0.25")
RESTING_DISTANCE_TICKS = 1000  # far enough that a random walk of one run never reaches it
PROTECTED_SAGA = "chaos.protected_entry"


class StepKind(StrEnum):
    PROTECTED_ENTRY = "protected_entry"
    CLOSE_OWNED = "close_owned"
    MODIFY_STOP = "modify_stop"
    RESTING_LIMIT = "resting_limit"
    MODIFY_LIMIT = "modify_limit"
    CANCEL_ALL = "cancel_all"
    BRACKET_MARKET = "bracket_market"
    BRACKET_LIMIT = "bracket_limit"


@dataclass(frozen=True, slots=True)
class Capabilities:
    """Which optional OrderManager operations exist in this build."""

    brackets: bool = False

    @classmethod
    def of(cls, manager_type: type) -> Capabilities:
        return cls(brackets=hasattr(manager_type, "place_bracket_order"))

    def kinds(self) -> tuple[StepKind, ...]:
        base: tuple[StepKind, ...] = (
            StepKind.PROTECTED_ENTRY,
            StepKind.CLOSE_OWNED,
            StepKind.MODIFY_STOP,
            StepKind.RESTING_LIMIT,
            StepKind.MODIFY_LIMIT,
            StepKind.CANCEL_ALL,
        )
        if self.brackets:
            base = (*base, StepKind.BRACKET_MARKET, StepKind.BRACKET_LIMIT)
        return base


# Relative weights: enough entries that there is something to protect, modify and close.
_WEIGHTS: dict[StepKind, int] = {
    StepKind.PROTECTED_ENTRY: 5,
    StepKind.CLOSE_OWNED: 2,
    StepKind.MODIFY_STOP: 2,
    StepKind.RESTING_LIMIT: 3,
    StepKind.MODIFY_LIMIT: 2,
    StepKind.CANCEL_ALL: 1,
    StepKind.BRACKET_MARKET: 4,
    StepKind.BRACKET_LIMIT: 3,
}


@dataclass(frozen=True, slots=True)
class Step:
    """One thing the workload does. Prices are tick offsets from the market when it runs."""

    index: int
    kind: StepKind
    size: int = 1
    ticks: int = 0  # stop / limit distance
    ticks2: int = 0  # target distance (brackets)
    pick: int = 0  # which earlier operation or order to act on (modulo what exists)
    delay: float = 0.0  # seconds after the batch starts

    def describe(self) -> str:
        return (
            f"#{self.index} {self.kind.value} size={self.size} ticks={self.ticks}/{self.ticks2} "
            f"pick={self.pick} delay={self.delay:.2f}"
        )


def build_workload(rng: random.Random, operations: int, caps: Capabilities) -> list[Step]:
    """``operations`` steps drawn from ``rng`` over the kinds ``caps`` allows."""
    kinds = caps.kinds()
    weights = [_WEIGHTS[k] for k in kinds]
    steps: list[Step] = []
    for index in range(operations):
        kind = rng.choices(kinds, weights)[0]
        steps.append(
            Step(
                index=index,
                kind=kind,
                size=rng.randint(1, 3),
                ticks=rng.randint(12, 40),
                ticks2=rng.randint(12, 40),
                pick=rng.randrange(1_000),
                delay=round(rng.uniform(0.0, 2.0), 3),
            )
        )
    return steps


def batches(rng: random.Random, steps: list[Step]) -> list[list[Step]]:
    """Split the steps into runs of 1–4 that execute concurrently."""
    out: list[list[Step]] = []
    i = 0
    while i < len(steps):
        n = rng.randint(1, 4)
        out.append(steps[i : i + n])
        i += n
    return out


@dataclass(slots=True)
class WorkloadState:
    """What the workload remembers across steps and across crashes (ids are durable)."""

    side: OrderSide = OrderSide.BUY
    protected: list[str] = field(default_factory=list)  # operation ids of protected entries
    resting: list[int] = field(default_factory=list)  # order ids of resting limits


@dataclass(frozen=True, slots=True)
class StepResult:
    step: Step
    outcome: str
    error: str | None = None  # an unexpected exception: a finding of the run


Market = Callable[[str], Decimal]
"""Current last price of a contract (the workload's view of the market)."""

_EXPECTED: tuple[type[BaseException], ...] = (
    OrderRejectedError,
    OutcomeUnknownError,
    ExposureRefusedError,
    ValidationError,
    OperationError,
)


class WorkloadActor:
    """Performs steps with one OrderManager (a new actor per simulated process)."""

    def __init__(
        self, manager: Any, clock: Clock, market: Market, state: WorkloadState, account_id: int
    ) -> None:
        self.manager = manager
        self.clock = clock
        self.market = market
        self.state = state
        self.account_id = account_id

    async def perform(self, step: Step) -> StepResult:
        if step.delay:
            await self.clock.sleep(step.delay)
        action: Callable[[Step], Awaitable[str]] = getattr(self, f"_do_{step.kind.value}")
        try:
            return StepResult(step, await action(step))
        except _EXPECTED as exc:
            return StepResult(step, f"{type(exc).__name__}: {exc}")
        except OrderGuardError as exc:
            # Broker errors after the manager's own retries: a result under injected faults.
            return StepResult(step, f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            return StepResult(step, "error", f"{type(exc).__name__}: {exc}")

    # -- helpers ----------------------------------------------------------------------------
    def _price(self, contract: str, ticks: int) -> Decimal:
        return (self.market(contract) + TICK * ticks).quantize(TICK)

    def _pick(self, items: list[Any], step: Step) -> Any | None:
        return items[step.pick % len(items)] if items else None

    async def _final(self, order_id: int, seconds: float = 30.0) -> Order | None:
        """Poll the order until it is final (market orders fill at once; a fault may delay us)."""
        deadline = self.clock.monotonic() + seconds
        order: Order | None = None
        while self.clock.monotonic() < deadline:
            try:
                order = await self.manager.get_order_by_id(order_id, refresh=True)
            except OrderGuardError:
                order = None
            if order is not None and order.is_terminal:
                return order
            await self.clock.sleep(0.5)
        return order

    async def _find_by_tag(self, tag: str, seconds: float = 60.0) -> Order | None:
        """Settle an unknown placement by its tag; None once it can no longer appear."""
        deadline = self.clock.monotonic() + seconds
        while self.clock.monotonic() < deadline:
            try:
                found: Order | None = await self.manager.find_order_by_tag(self.account_id, tag)
            except OrderGuardError:
                found = None
            if found is not None:
                return found
            await self.clock.sleep(5.0)
        return None

    # -- protected market entry: a small journaled saga -------------------------------------
    async def _do_protected_entry(self, step: Step) -> str:
        rec = self.manager.recovery
        side = self.state.side
        contract = POSITION_CONTRACT
        op = await rec.start_operation(
            OperationType.BRACKET_ORDER,
            account_id=self.account_id,
            contract_id=contract,
            # Recovery rolls this saga back (it has no re-protecting resumer of its own).
            extra={"resumer": "rollback", "saga": PROTECTED_SAGA},
        )
        entry = await rec.add_order_to_operation(
            op, contract, side, step.size, "market", leg="entry", account_id=self.account_id
        )
        request = OrderRequest(
            self.account_id,
            contract,
            OrderType.MARKET,
            side,
            step.size,
            custom_tag=entry.custom_tag,
        )
        order = await self._place_leg(op, entry, request)
        if order is None:
            await rec.complete_operation(op)
            return f"op {op.operation_id}: entry not placed ({op.state.value})"
        final = await self._final(order.id)
        filled = 0 if final is None else final.fill_volume
        if final is not None:
            await rec.record_order_state(op, entry, final)
        if filled == 0 or final is None or final.filled_price is None:
            ok = await rec.complete_operation(op)
            return f"op {op.operation_id}: entry unfilled (completed={ok})"
        stop_price = (final.filled_price - side.sign * TICK * step.ticks).quantize(TICK)
        stop = await rec.add_order_to_operation(
            op, contract, side.opposite, filled, "stop", stop_price, leg="stop",
            account_id=self.account_id,
        )  # fmt: skip
        await rec.add_position_tracking(op, contract, stop, "protective")
        stop_request = OrderRequest(
            self.account_id, contract, OrderType.STOP, side.opposite, filled,
            stop_price=stop_price, custom_tag=stop.custom_tag,
        )  # fmt: skip
        placed = await self._place_leg(op, stop, stop_request, protective=True)
        if placed is None:
            await rec.force_rollback_operation(op.operation_id)
            return f"op {op.operation_id}: stop failed, rolled back ({op.state.value})"
        if await rec.complete_operation(op):
            self.state.protected.append(op.operation_id)
        return f"op {op.operation_id}: {filled} protected at {stop_price} ({op.state.value})"

    async def _place_leg(
        self, op: Any, ref: Any, request: OrderRequest, *, protective: bool = False
    ) -> Order | None:
        """Send one leg; an unknown outcome is settled by tag, never re-sent under a new tag."""
        rec = self.manager.recovery
        try:
            response = await self.manager.submit(request, respect_latch=not protective)
        except (OrderRejectedError, ValidationError, ExposureRefusedError) as exc:
            await rec.record_order_failure(op, ref, str(exc))
            return None
        except OutcomeUnknownError as exc:
            await rec.record_order_failure(
                op, ref, Unknown(UnknownOrigin.TIMEOUT_AFTER_SEND, str(exc))
            )
            # A stop in doubt guards a filled entry: past the in-flight grace its absence is
            # evidence (F1), and waiting the full minute let the entry sit naked for longer
            # than the protection window before the rollback could flatten it (F3).
            wait = DEFAULT_IN_FLIGHT_GRACE if protective else 60.0
            found = await self._find_by_tag(request.custom_tag or "", wait)
            await rec.record_resolution(op, ref, found)
            return found if found is not None and found.status.name != "REJECTED" else None
        except OrderGuardError as exc:
            if not exc.retryable:
                raise
            # Provably never sent (429 before send, connection refused) after the manager's
            # own re-sends: a failed leg like a rejection. Escaping, it left the operation in
            # progress with a filled entry nobody drove any more (chaos seed 1564).
            await rec.record_order_failure(op, ref, str(exc))
            return None
        await rec.record_order_success(op, ref, response)
        order: Order | None = await self.manager.get_order_by_id(response.order_id)
        if order is None:
            return await self._find_by_tag(request.custom_tag or "")
        return order

    async def _do_close_owned(self, step: Step) -> str:
        op_id = self._pick(self.state.protected, step)
        if op_id is None:
            return "nothing to close"
        self.state.protected.remove(op_id)
        safe = await self.manager.force_rollback_operation(op_id)
        return f"op {op_id}: closed (safe={safe})"

    async def _do_modify_stop(self, step: Step) -> str:
        op_id = self._pick(self.state.protected, step)
        if op_id is None:
            return "no stop to modify"
        status = await self.manager.get_operation_status(op_id)
        leg = None if status is None else status["orders"].get("stop")
        if leg is None or leg.get("order_id") is None:
            return f"op {op_id}: no stop order"
        new_stop = self._price(POSITION_CONTRACT, -self.state.side.sign * step.ticks)
        result = await self.manager.modify_order(int(leg["order_id"]), stop_price=new_stop)
        return f"op {op_id}: stop -> {new_stop} success={result.success}"

    # -- resting limits, modifications, bulk cancels ----------------------------------------
    async def _do_resting_limit(self, step: Step) -> str:
        side = OrderSide.BUY if step.pick % 2 else OrderSide.SELL
        price = self._price(RESTING_CONTRACT, -side.sign * RESTING_DISTANCE_TICKS)
        with intent_scope(f"step{step.index}"):
            response = await self.manager.place_limit_order(
                RESTING_CONTRACT, side, step.size, price
            )
        self.state.resting.append(response.order_id)
        return f"resting {side.name} {step.size} @ {price}: order {response.order_id}"

    async def _do_modify_limit(self, step: Step) -> str:
        order_id = self._pick(self.state.resting, step)
        if order_id is None:
            return "no resting order"
        order = await self.manager.get_order_by_id(order_id)
        if order is None or order.is_terminal:
            # A bulk-cancel step of the same batch may have forgotten it while we looked it up.
            if order_id in self.state.resting:
                self.state.resting.remove(order_id)
            return f"order {order_id} already final"
        offset = RESTING_DISTANCE_TICKS + step.ticks
        price = self._price(RESTING_CONTRACT, -order.side.sign * offset)
        result = await self.manager.modify_order(order_id, limit_price=price)
        return f"order {order_id}: limit -> {price} success={result.success}"

    async def _do_cancel_all(self, step: Step) -> str:
        result = await self.manager.cancel_all_orders(RESTING_CONTRACT)
        self.state.resting.clear()
        return f"bulk cancel: {len(getattr(result, 'results', ()))} orders"

    # -- brackets (when orders/bracket.py provides them) ------------------------------------
    async def _do_bracket_market(self, step: Step) -> str:
        return await self._bracket(step, "market")

    async def _do_bracket_limit(self, step: Step) -> str:
        return await self._bracket(step, "limit")

    async def _bracket(self, step: Step, entry_type: str) -> str:
        side = self.state.side
        entry = self._price(POSITION_CONTRACT, -side.sign * (2 if entry_type == "limit" else 0))
        stop = (entry - side.sign * TICK * step.ticks).quantize(TICK)
        target = (entry + side.sign * TICK * step.ticks2).quantize(TICK)
        result = await self.manager.place_bracket_order(
            contract_id=POSITION_CONTRACT,
            side=side,
            size=step.size,
            entry_price=entry,
            stop_loss_price=stop,
            take_profit_price=target,
            entry_type=entry_type,
        )
        outcome = getattr(result, "outcome", None)
        return f"bracket {entry_type}: {getattr(result, 'operation_id', '?')} {outcome}"


__all__ = [
    "POSITION_CONTRACT",
    "RESTING_CONTRACT",
    "Capabilities",
    "Step",
    "StepKind",
    "StepResult",
    "WorkloadActor",
    "WorkloadState",
    "batches",
    "build_workload",
]
