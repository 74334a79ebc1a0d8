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

The ``wide`` profile (:class:`Capabilities` ``wide=True``) adds, one job per contract again:

* ``MNQ`` also: closes of brackets by ``close_position(operation_id=)``, ``modify_order`` of a
  bracket's stop and ``cancel_order`` of a bracket's limit entry, both racing fills, and entry
  timeouts.
* ``MES`` — client-side brackets (``native=False``), market and limit entries, entry timeouts,
  with the same modifications, cancels and closes.
* ``NQ`` — *user-protected* positions, made only of public single calls: ``place_market_order``
  then protection by ``place_stop_order``, ``add_stop_loss`` (once, or twice), ``add_stop_loss`` +
  ``add_take_profit``, or an OCO exit pair (``place_oco_order``: stop + target); closes by
  ``close_position(size=)`` and ``close_position(whole_contract=True)``, and
  ``cancel_position_orders``. The user's code is careful: its steps on this contract run one at a
  time, and each ends with a *guard* (also run when a process starts) that covers what is
  uncovered with ``add_stop_loss`` or flattens it with ``close_position(size=)``, retrying.
* ``ES`` also: OCO pairs of resting limits far from the market, ``cancel_order`` of resting
  orders.
* The **outside actor** (the trading platform on the same account, acting on the exchange
  directly): closes and partial closes of positions, cancelling one of orderguard's working exit
  orders, manual resting limits 1000 ticks from the market on the position contracts, and
  cancelling them. Manual orders never *add* exposure: they are limits that a seed's random walk
  cannot reach, so every position stays one that orderguard's operations (or the outside
  closes) made, and ownership stays checkable.
* **Caller timeouts**: a share of steps wrap their public call in ``wait_for`` with a short
  timeout (the operation must go on under the manager, or end in a confirmed state).

Performing a step (:class:`WorkloadActor`) uses only the OrderManager's public API. Expected
business outcomes (rejections, unknown outcomes, invalid prices after a fast market) are results,
not errors; anything else is recorded as an error of the run.

Over 500 lines: one perform method per step kind (about forty) on one actor that keeps the state
they share; the step list itself is the pure build_workload.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import StrEnum
from typing import Any

from orderguard.broker.base import Unknown, UnknownOrigin
from orderguard.chaos.process import intent_scope
from orderguard.chaos.truth import Platform
from orderguard.clock import Clock
from orderguard.errors import (
    AlreadyProtectedError,
    ExposureRefusedError,
    JournalError,
    NoPositionError,
    OperationError,
    OrderGuardError,
    OrderRejectedError,
    OutcomeUnknownError,
    ValidationError,
)
from orderguard.models import STOP_TYPES, Order, OrderRequest, OrderSide, OrderType
from orderguard.orders.oco.engine import OcoLeg
from orderguard.orders.results import CloseOutcome
from orderguard.recovery.operations import OperationState, OperationType
from orderguard.recovery.startup import DEFAULT_IN_FLIGHT_GRACE

POSITION_CONTRACT = "CON.F.US.MNQ.Z26"
RESTING_CONTRACT = "CON.F.US.EP.Z26"
CLIENT_CONTRACT = "CON.F.US.MES.Z26"  # client-side brackets (wide)
USER_CONTRACT = "CON.F.US.ENQ.Z26"  # user-protected single orders (wide)
POSITION_CONTRACTS = (POSITION_CONTRACT, CLIENT_CONTRACT, USER_CONTRACT)
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
    # -- wide --
    CLIENT_BRACKET_MARKET = "client_bracket_market"
    CLIENT_BRACKET_LIMIT = "client_bracket_limit"
    CLOSE_BRACKET = "close_bracket"  # close_position(operation_id=)
    MODIFY_BRACKET_STOP = "modify_bracket_stop"
    CANCEL_BRACKET_ENTRY = "cancel_bracket_entry"
    USER_ENTRY = "user_entry"  # place_market_order + a protection of the user's choice
    USER_CLOSE_SIZE = "user_close_size"  # close_position(size=)
    USER_CLOSE_ALL = "user_close_all"  # close_position(whole_contract=True) (+ cancel exits)
    USER_CANCEL_TARGETS = "user_cancel_targets"  # cancel_position_orders(("target",))
    RESTING_OCO = "resting_oco"
    CANCEL_RESTING = "cancel_resting"
    OUTSIDE_CLOSE = "outside_close"
    OUTSIDE_PARTIAL = "outside_partial"
    OUTSIDE_CANCEL_EXIT = "outside_cancel_exit"
    OUTSIDE_MANUAL = "outside_manual"
    OUTSIDE_CANCEL_MANUAL = "outside_cancel_manual"


WIDE_KINDS: tuple[StepKind, ...] = (
    StepKind.CLIENT_BRACKET_MARKET,
    StepKind.CLIENT_BRACKET_LIMIT,
    StepKind.CLOSE_BRACKET,
    StepKind.MODIFY_BRACKET_STOP,
    StepKind.CANCEL_BRACKET_ENTRY,
    StepKind.USER_ENTRY,
    StepKind.USER_CLOSE_SIZE,
    StepKind.USER_CLOSE_ALL,
    StepKind.USER_CANCEL_TARGETS,
    StepKind.RESTING_OCO,
    StepKind.CANCEL_RESTING,
)
OUTSIDE_KINDS: tuple[StepKind, ...] = (
    StepKind.OUTSIDE_CLOSE,
    StepKind.OUTSIDE_PARTIAL,
    StepKind.OUTSIDE_CANCEL_EXIT,
    StepKind.OUTSIDE_MANUAL,
    StepKind.OUTSIDE_CANCEL_MANUAL,
)
# Kinds whose public call a caller may wrap in a short wait_for (wide).
TIMEOUT_KINDS = frozenset(
    {
        StepKind.BRACKET_MARKET,
        StepKind.BRACKET_LIMIT,
        StepKind.CLIENT_BRACKET_MARKET,
        StepKind.CLIENT_BRACKET_LIMIT,
        StepKind.CLOSE_BRACKET,
        StepKind.USER_CLOSE_SIZE,
        StepKind.USER_CLOSE_ALL,
        StepKind.RESTING_OCO,
        StepKind.CANCEL_ALL,
        StepKind.MODIFY_BRACKET_STOP,
    }
)


@dataclass(frozen=True, slots=True)
class Capabilities:
    """Which optional OrderManager operations exist in this build."""

    brackets: bool = False
    wide: bool = False
    outside: bool = False

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
        if self.wide:
            wide = WIDE_KINDS
            if not self.brackets:
                bracket_only = {
                    StepKind.CLIENT_BRACKET_MARKET,
                    StepKind.CLIENT_BRACKET_LIMIT,
                    StepKind.CLOSE_BRACKET,
                    StepKind.MODIFY_BRACKET_STOP,
                    StepKind.CANCEL_BRACKET_ENTRY,
                }
                wide = tuple(k for k in wide if k not in bracket_only)
            base = (*base, *wide)
        if self.outside:
            base = (*base, *OUTSIDE_KINDS)
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
    StepKind.CLIENT_BRACKET_MARKET: 4,
    StepKind.CLIENT_BRACKET_LIMIT: 3,
    StepKind.CLOSE_BRACKET: 2,
    StepKind.MODIFY_BRACKET_STOP: 2,
    StepKind.CANCEL_BRACKET_ENTRY: 2,
    StepKind.USER_ENTRY: 5,
    StepKind.USER_CLOSE_SIZE: 2,
    StepKind.USER_CLOSE_ALL: 1,
    StepKind.USER_CANCEL_TARGETS: 1,
    StepKind.RESTING_OCO: 2,
    StepKind.CANCEL_RESTING: 1,
    StepKind.OUTSIDE_CLOSE: 1,
    StepKind.OUTSIDE_PARTIAL: 2,
    StepKind.OUTSIDE_CANCEL_EXIT: 2,
    StepKind.OUTSIDE_MANUAL: 1,
    StepKind.OUTSIDE_CANCEL_MANUAL: 1,
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
    timeout: float | None = None  # the caller's wait_for around its public call (wide)
    variant: int = 0  # which flavour of the step (wide: protection method, entry timeout...)

    def describe(self) -> str:
        text = (
            f"#{self.index} {self.kind.value} size={self.size} ticks={self.ticks}/{self.ticks2} "
            f"pick={self.pick} delay={self.delay:.2f}"
        )
        if self.variant:
            text += f" variant={self.variant}"
        if self.timeout is not None:
            text += f" timeout={self.timeout:.2f}"
        return text


def build_workload(rng: random.Random, operations: int, caps: Capabilities) -> list[Step]:
    """``operations`` steps drawn from ``rng`` over the kinds ``caps`` allows."""
    kinds = caps.kinds()
    weights = [_WEIGHTS[k] for k in kinds]
    if caps.wide:
        # Each seed leans its own way (one seed heavy on OCO, another on outside closes).
        weights = [w * rng.choice((1, 2, 3)) for w in weights]
    steps: list[Step] = []
    for index in range(operations):
        kind = rng.choices(kinds, weights)[0]
        step = Step(
            index=index,
            kind=kind,
            size=rng.randint(1, 3),
            ticks=rng.randint(12, 40),
            ticks2=rng.randint(12, 40),
            pick=rng.randrange(1_000),
            delay=round(rng.uniform(0.0, 2.0), 3),
        )
        if caps.wide:
            timeout: float | None = None
            if kind in TIMEOUT_KINDS and rng.random() < 0.15:
                timeout = round(rng.uniform(0.05, 3.0), 3)
            step = replace(step, timeout=timeout, variant=rng.randrange(1, 1_000))
        steps.append(step)
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
    brackets: list[tuple[str, str]] = field(default_factory=list)  # (operation id, contract)
    outside_orders: list[int] = field(default_factory=list)  # every order the outside placed
    manual: list[int] = field(default_factory=list)  # outside resting orders still working


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


_SOFT: tuple[type[BaseException], ...] = (*_EXPECTED, OrderGuardError)


class _Unanswered(Exception):
    """No look-up of a tag got an answer (see ``WorkloadActor._find_by_tag``)."""


class WorkloadActor:
    """Performs steps with one OrderManager (a new actor per simulated process)."""

    def __init__(
        self,
        manager: Any,
        clock: Clock,
        market: Market,
        state: WorkloadState,
        account_id: int,
        *,
        platform: Platform | None = None,
    ) -> None:
        self.manager = manager
        self.clock = clock
        self.market = market
        self.state = state
        self.account_id = account_id
        self.platform = platform  # the outside actor's way in (the trading platform)
        self._user_lock = asyncio.Lock()  # the user's code does one thing at a time on NQ
        self._guard: asyncio.Task[None] | None = None

    async def perform(self, step: Step) -> StepResult:
        if step.delay:
            await self.clock.sleep(step.delay)
        action: Callable[[Step], Awaitable[str]] = getattr(self, f"_do_{step.kind.value}")
        try:
            if step.timeout is not None:
                try:
                    return StepResult(step, await self.clock.wait_for(action(step), step.timeout))
                except TimeoutError:
                    return StepResult(step, f"caller timed out after {step.timeout:.2f}s")
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
                # A trader protecting a fill bounds each read (one hanging for the transport's
                # whole timeout left the fill bare past the protection window: seed 140).
                order = await self.clock.wait_for(
                    self.manager.get_order_by_id(order_id, refresh=True), 1.0
                )
            except (OrderGuardError, TimeoutError):
                order = None
            if order is not None and order.is_terminal:
                return order
            await self.clock.sleep(0.5)
        return order

    async def _find_by_tag(self, tag: str, seconds: float = 60.0) -> Order | None:
        """Settle an unknown placement by its tag; None once it can no longer appear.

        Raises :class:`_Unanswered` when no look-up got an answer: a failed query is no
        evidence of absence (chaos seed 132 recorded a filled entry as rejected so)."""
        deadline = self.clock.monotonic() + seconds
        answered = False
        while self.clock.monotonic() < deadline:
            try:
                found: Order | None = await self.manager.find_order_by_tag(self.account_id, tag)
            except OrderGuardError:
                found = None
            else:
                answered = True
            if found is not None:
                return found
            await self.clock.sleep(min(5.0, seconds / 10))  # a stop in doubt is asked often
        if not answered:
            raise _Unanswered(tag)
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
            if op.state.is_terminal or op.state is OperationState.ROLLING_BACK:
                return f"op {op.operation_id}: entry in doubt, rolled back ({op.state.value})"
            await rec.complete_operation(op)
            return f"op {op.operation_id}: entry not placed ({op.state.value})"
        try:
            return await self._protect_entry(step, op, entry, order)
        except JournalError:
            # A record of the saga cannot be written (disk full): it places nothing unjournaled,
            # so it rolls back, which flattens what it owns (F15/F20). Escaping, the error left
            # the filled entry bare with nobody driving it (chaos seed 44).
            safe = await self.manager.force_rollback_operation(op.operation_id)
            return f"op {op.operation_id}: journal refused, rolled back (safe={safe})"

    async def _protect_entry(self, step: Step, op: Any, entry: Any, order: Order) -> str:
        rec = self.manager.recovery
        side = self.state.side
        contract = POSITION_CONTRACT
        final = await self._final(order.id)
        if final is None or not final.is_terminal:
            # The entry's state could not be read (a storm): absence is not evidence. Roll the
            # saga back, which flattens whatever it turns out to own (chaos seed 27 completed
            # it as "unfilled" while its entry had filled: the saga's own I7 violation).
            safe = await self.manager.force_rollback_operation(op.operation_id)
            return f"op {op.operation_id}: entry state unknown, rolled back (safe={safe})"
        filled = final.fill_volume
        await rec.record_order_state(op, entry, final)
        if filled == 0 or final.filled_price is None:
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
            try:
                found = await self._find_by_tag(request.custom_tag or "", wait)
            except _Unanswered:
                # The leg stays in doubt; the rollback settles it by its tag and flattens
                # whatever the operation turns out to own.
                await self.manager.force_rollback_operation(op.operation_id)
                return None
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
        try:
            order: Order | None = await self.manager.get_order_by_id(response.order_id)
        except OrderGuardError:
            order = None  # unreadable now (a storm): looked up by its tag below
        if order is None:
            try:
                return await self._find_by_tag(request.custom_tag or "")
            except _Unanswered:
                await self.manager.force_rollback_operation(op.operation_id)
                return None
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

    # -- brackets (orders/bracket/) ---------------------------------------------------------
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

    # -- wide: client-side brackets, bracket closes, modifications and cancels racing fills --
    async def _wide_bracket(self, step: Step, contract: str, entry_type: str, native: bool) -> str:
        side = self.state.side
        entry = self._price(
            contract, -side.sign * (1 + step.variant % 3 if entry_type == "limit" else 0)
        )
        stop = (entry - side.sign * TICK * step.ticks).quantize(TICK)
        target = (entry + side.sign * TICK * step.ticks2).quantize(TICK)
        timeout = None
        if entry_type == "limit" and step.variant % 2:
            timeout = float(1 + step.variant % 10)  # an entry timeout of 1-10 s
        result = await self.manager.place_bracket_order(
            contract_id=contract,
            side=side,
            size=step.size,
            entry_price=entry,
            stop_loss_price=stop,
            take_profit_price=target,
            entry_type=entry_type,
            entry_timeout=timeout,
            native=native,
        )
        op_id = getattr(result, "operation_id", "")
        if op_id:
            self.state.brackets.append((op_id, contract))
        kind = "native" if native else "client"
        return f"{kind} bracket {entry_type} timeout={timeout}: {op_id} {result.outcome}"

    async def _do_bracket_market(self, step: Step) -> str:
        if not step.variant:
            return await self._bracket(step, "market")
        return await self._wide_bracket(step, POSITION_CONTRACT, "market", True)

    async def _do_bracket_limit(self, step: Step) -> str:
        if not step.variant:
            return await self._bracket(step, "limit")
        return await self._wide_bracket(step, POSITION_CONTRACT, "limit", True)

    async def _do_client_bracket_market(self, step: Step) -> str:
        return await self._wide_bracket(step, CLIENT_CONTRACT, "market", False)

    async def _do_client_bracket_limit(self, step: Step) -> str:
        return await self._wide_bracket(step, CLIENT_CONTRACT, "limit", False)

    async def _do_close_bracket(self, step: Step) -> str:
        picked = self._pick(self.state.brackets, step)
        if picked is None:
            return "no bracket to close"
        op_id, contract = picked
        result = await self.manager.close_position(contract, operation_id=op_id)
        return (
            f"close {op_id}: {result.outcome} closed {result.closed_size} "
            f"of {result.requested_size}, final {result.final_position}"
        )

    def _bracket_leg(self, step: Step, leg: str) -> tuple[str, int] | None:
        picked = self._pick(self.state.brackets, step)
        if picked is None:
            return None
        status = self.manager.get_bracket_status(picked[0])
        order_id = None if status is None else getattr(status, f"{leg}_order_id", None)
        return None if order_id is None else (picked[0], int(order_id))

    async def _do_modify_bracket_stop(self, step: Step) -> str:
        found = self._bracket_leg(step, "stop")
        if found is None:
            return "no bracket stop to modify"
        op_id, order_id = found
        contract = dict(self.state.brackets)[op_id]
        new_stop = self._price(contract, -self.state.side.sign * step.ticks)
        result = await self.manager.modify_order(order_id, stop_price=new_stop)
        return f"{op_id} stop {order_id} -> {new_stop} success={result.success}"

    async def _do_cancel_bracket_entry(self, step: Step) -> str:
        found = self._bracket_leg(step, "entry")
        if found is None:
            return "no bracket entry to cancel"
        op_id, order_id = found
        result = await self.manager.cancel_order(order_id)
        return f"{op_id} entry {order_id} cancel -> {bool(result)}"

    # -- wide: user-protected positions from public single calls (NQ) -----------------------
    async def _do_user_entry(self, step: Step) -> str:
        async with self._user_lock:
            try:
                return await self._user_entry(step)
            except _SOFT as exc:  # the entry's own outcome in doubt: the guard still runs
                return f"{type(exc).__name__}: {exc}" + self.user_guard()

    async def _user_entry(self, step: Step) -> str:
        """A market entry protected at once, without waiting to read the fill back (a market
        order has filled, or partly, by the time its placement is answered)."""
        side, contract = self.state.side, USER_CONTRACT
        with intent_scope(f"step{step.index}"):
            placed = await self.manager.place_market_order(contract, side, step.size)
        price = self.market(contract)
        stop = (price - side.sign * TICK * step.ticks).quantize(TICK)
        target = (price + side.sign * TICK * step.ticks2).quantize(TICK)
        size = step.size
        how = step.variant % 5
        done = "?"
        try:
            if how == 0:
                r = await self.manager.place_stop_order(contract, side.opposite, size, stop)
                done = f"stop order {r.order_id}"
            elif how == 1:
                r = await self.manager.add_stop_loss(contract, stop, size=size)
                done = f"add_stop_loss {r.order_id} size {r.size}"
            elif how == 2:
                r = await self.manager.add_stop_loss(contract, stop)
                nearer = (stop + side.sign * TICK * 4).quantize(TICK)
                r2 = await self.manager.add_stop_loss(contract, nearer)
                done = f"add_stop_loss twice {r.order_id}/{r2.order_id} sizes {r.size}/{r2.size}"
            elif how == 3:
                r = await self.manager.add_stop_loss(contract, stop, size=size)
                t = await self.manager.add_take_profit(contract, target, size=size)
                done = f"add_stop_loss {r.order_id} + add_take_profit {t.order_id}"
            else:
                oco = await self.manager.place_oco_order(
                    contract,
                    OcoLeg(side.opposite, size, stop, "stop"),
                    OcoLeg(side.opposite, size, target, "limit"),
                )
                done = (
                    f"oco exits {oco.operation_id} {oco.order1_id}/{oco.order2_id} ok={oco.success}"
                )
        except _SOFT as exc:
            done = f"protection failed: {type(exc).__name__}: {exc}"
        return f"user entry {placed.order_id} size {size}: {done}" + self.user_guard()

    def user_guard(self) -> str:
        """Start the user's safety net on NQ unless it runs already (see :meth:`_guard_pass`).

        It runs in the background of the process (it dies with it), so no step waits on it;
        it is also started when a process starts (the user's strategy restarts with it).
        """
        if self._guard is None or self._guard.done():
            self._guard = self.manager.spawn(self._guard_loop())
            return "; guard started"
        return ""

    async def _guard_loop(self, budget: float = 600.0) -> None:
        """Cover what is uncovered on NQ with ``add_stop_loss``, else flatten it; retry (each
        pass under the user's lock, the waits outside it) until covered or flat: after a
        second, or up to four while the broker does not answer (a loop asking a dead broker
        every second spent the account's whole rate budget in a storm, and the protective
        orders after it waited for the window to free up)."""
        deadline = self.clock.monotonic() + budget
        pause = 1.0
        while self.clock.monotonic() < deadline:
            async with self._user_lock:
                outcome = await self._guard_pass()
            if outcome is True:
                return
            pause = 1.0 if outcome is False else min(pause * 2, 4.0)
            await self.clock.sleep(pause)

    async def _guard_pass(self) -> bool | None:
        """One pass of the guard; True when NQ is flat or covered, None when the broker did not
        answer.

        It asks orderguard to cover what is uncovered: ``add_stop_loss`` without a size covers
        exactly the part of the position no working stop covers, and says so when nothing is
        left (``AlreadyProtectedError``) or there is no position (``NoPositionError``). Only
        when the stop is refused does it read the position itself and flatten the uncovered
        part; when the broker does not answer it asks again on the next pass.
        (It used to read first, in the query lane: after a storm those reads were refused by
        the open breaker, or waited out their retry backoff, for tens of seconds while the
        protective call itself would have gone through.)"""
        contract = USER_CONTRACT
        price = self._price(contract, -self.state.side.sign * 30)
        try:
            await self.manager.add_stop_loss(contract, price)
            return False  # the next pass checks what it did
        except (NoPositionError, AlreadyProtectedError):
            return True
        except (OrderRejectedError, ValidationError, ExposureRefusedError):
            pass  # refused: flatten instead
        except OutcomeUnknownError:
            return False  # the stop is in doubt: the next pass sees whether it is there
        except _SOFT:
            return None  # the broker did not answer: ask again, less often
        try:
            positions = await self.manager.broker.search_positions(self.account_id)
            net = sum(p.signed_size for p in positions if p.contract_id == contract)
            if net == 0:
                return True
            working = await self.manager.search_open_orders(contract)
            stops = sum(
                o.remaining
                for o in working
                if o.type in STOP_TYPES and o.side.sign != (1 if net > 0 else -1)
            )
            missing = abs(net) - stops
            if missing <= 0:
                return True
            await self.manager.close_position(contract, size=missing)
        except _SOFT:
            pass
        return False

    async def _do_user_close_size(self, step: Step) -> str:
        async with self._user_lock:
            result = await self.manager.close_position(USER_CONTRACT, size=step.size)
            return (
                f"close size={step.size}: {result.outcome} closed {result.closed_size}, "
                f"final {result.final_position}" + self.user_guard()
            )

    async def _do_user_close_all(self, step: Step) -> str:
        async with self._user_lock:
            result = await self.manager.close_position(USER_CONTRACT, whole_contract=True)
            text = f"close whole contract: {result.outcome} closed {result.closed_size}"
            # A trader cancels what is left working once the close went through; after a
            # refused or unknown close the exits are all that protects the position (removing
            # them then is the caller unprotecting it, which orderguard must not undo).
            if step.variant % 2 and result.outcome in (
                CloseOutcome.CLOSED,
                CloseOutcome.NOTHING_TO_CLOSE,
            ):
                cancelled = await self.manager.cancel_position_orders(USER_CONTRACT)
                text += f"; cancel_position_orders {dict(cancelled)}"
            return text + self.user_guard()

    async def _do_user_cancel_targets(self, step: Step) -> str:
        async with self._user_lock:
            cancelled = await self.manager.cancel_position_orders(USER_CONTRACT, ("target",))
            return f"cancel_position_orders(target): {dict(cancelled)}" + self.user_guard()

    # -- wide: OCO pairs and cancels of resting orders (ES) ---------------------------------
    async def _do_resting_oco(self, step: Step) -> str:
        side = OrderSide.BUY if step.pick % 2 else OrderSide.SELL
        far = RESTING_DISTANCE_TICKS
        first = self._price(RESTING_CONTRACT, -side.sign * far)
        second = self._price(RESTING_CONTRACT, -side.sign * (far + step.ticks))
        # No intent scope: one OCO call rightly places two intents (two tags).
        result = await self.manager.place_oco_order(
            RESTING_CONTRACT,
            OcoLeg(side, step.size, first, "limit"),
            OcoLeg(side, step.size, second, "limit"),
        )
        for order_id in (result.order1_id, result.order2_id):
            if order_id is not None:
                self.state.resting.append(order_id)
        return (
            f"oco {result.operation_id}: {result.order1_id}/{result.order2_id} ok={result.success}"
        )

    async def _do_cancel_resting(self, step: Step) -> str:
        order_id = self._pick(self.state.resting, step)
        if order_id is None:
            return "no resting order"
        result = await self.manager.cancel_order(order_id)
        if order_id in self.state.resting:
            self.state.resting.remove(order_id)
        return f"cancel {order_id} -> {bool(result)}"

    # -- wide: the outside actor (the trading platform, straight on the exchange) ------------
    def _outside(self) -> Platform:
        if self.platform is None:
            raise RuntimeError("the outside actor needs the trading platform")
        return self.platform

    async def _outside_position(self, step: Step) -> tuple[str, int] | None:
        open_ = [
            (p.contract_id, p.signed_size)
            for p in await self._outside().positions(self.account_id)
            if p.size and p.contract_id in POSITION_CONTRACTS
        ]
        return self._pick(sorted(open_), step)

    async def _do_outside_close(self, step: Step) -> str:
        found = await self._outside_position(step)
        if found is None:
            return "outside: nothing to close"
        contract, net = found
        result = await self._outside().close(self.account_id, contract)
        if result.order_id is not None:
            self.state.outside_orders.append(result.order_id)
        return f"outside close {contract} {net:+d}: order {result.order_id} ok={result.success}"

    async def _do_outside_partial(self, step: Step) -> str:
        found = await self._outside_position(step)
        if found is None:
            return "outside: nothing to reduce"
        contract, net = found
        size = 1 + step.variant % abs(net) if abs(net) > 1 else 1
        result = await self._outside().partial_close(self.account_id, contract, size)
        if result.order_id is not None:
            self.state.outside_orders.append(result.order_id)
        return f"outside partial close {contract} {net:+d} by {size}: order {result.order_id}"

    async def _do_outside_cancel_exit(self, step: Step) -> str:
        platform = self._outside()
        exits = [
            o
            for o in await platform.open_orders(self.account_id)
            if o.contract_id in POSITION_CONTRACTS
            and o.id not in self.state.outside_orders
            and o.type in (OrderType.STOP, OrderType.LIMIT)
            and o.status.name == "OPEN"
            and o.side is self.state.side.opposite
        ]
        order = self._pick(sorted(exits, key=lambda o: o.id), step)
        if order is None:
            return "outside: no exit to cancel"
        result = await platform.cancel(self.account_id, order.id)
        return (
            f"outside cancel exit {order.id} {order.custom_tag} {order.type.name}: {result.success}"
        )

    async def _do_outside_manual(self, step: Step) -> str:
        contract = POSITION_CONTRACTS[step.variant % len(POSITION_CONTRACTS)]
        side = OrderSide.BUY if step.pick % 2 else OrderSide.SELL
        price = self._price(contract, -side.sign * RESTING_DISTANCE_TICKS)
        request = OrderRequest(
            self.account_id, contract, OrderType.LIMIT, side, 1, limit_price=price
        )
        result = await self._outside().place(request)
        if result.order_id is not None:
            self.state.outside_orders.append(result.order_id)
            self.state.manual.append(result.order_id)
        return f"outside manual {side.name} limit {contract} @ {price}: order {result.order_id}"

    async def _do_outside_cancel_manual(self, step: Step) -> str:
        order_id = self._pick(self.state.manual, step)
        if order_id is None:
            return "outside: no manual order"
        self.state.manual.remove(order_id)
        result = await self._outside().cancel(self.account_id, order_id)
        return f"outside cancel manual {order_id}: {result.success}"


__all__ = [
    "CLIENT_CONTRACT",
    "OUTSIDE_KINDS",
    "POSITION_CONTRACT",
    "POSITION_CONTRACTS",
    "RESTING_CONTRACT",
    "USER_CONTRACT",
    "WIDE_KINDS",
    "Capabilities",
    "Step",
    "StepKind",
    "StepResult",
    "WorkloadActor",
    "WorkloadState",
    "batches",
    "build_workload",
]
