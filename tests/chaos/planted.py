"""Deliberate bugs, switched on only inside a ``with`` block, to prove the chaos runner can fail.

A checker that never fails proves nothing. Each :class:`PlantedBug` re-creates one known way of
breaking the promise (FAILURES.md) by patching one narrow seam of one engine for the duration of
the block::

    with planted_bugs(PlantedBug.OCO_SIBLING_NOT_CANCELLED):
        report = run_chaos(range(5), ChaosConfig(faults="all"))
    assert report.violations

Test-only (kept under ``tests/``, never in the package): nothing in orderguard reads these
switches, and leaving the block restores the original code even if the block raises. A seam that
no longer exists (the order code was refactored) fails loudly instead of planting nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from enum import StrEnum
from typing import Any

from orderguard.broker.base import Confirmed, Rejected
from orderguard.chaos import runner as chaos_runner
from orderguard.chaos.journals import ChaosJournal
from orderguard.errors import OrderRejectedError
from orderguard.models import Order, OrderRequest, OrderSide, OrderStatus, OrderType
from orderguard.orders import startup_recovery
from orderguard.orders.bracket import plan as bracket_plan
from orderguard.orders.bracket.engine import BracketEngine
from orderguard.orders.bracket.plan import PlaceLeg, ResizeLeg
from orderguard.orders.feed.reconciler import Reconciler
from orderguard.orders.manager import OrderManager
from orderguard.orders.oco.engine import OcoEngine
from orderguard.orders.positions.watch import PositionWatcher
from orderguard.orders.results import OrderPlaceResponse
from orderguard.orders.send.cancellation import Canceller
from orderguard.orders.send.latch import AmbiguityLatch
from orderguard.orders.send.placement import PlacementPipeline
from orderguard.recovery.startup import RecoveryReport, ResumeContext
from orderguard.resilience.ratelimit import Priority


class PlantedBug(StrEnum):
    SKIP_TAG_RESOLUTION = "skip_tag_resolution"
    """Placement: an Unknown placement is taken for a failure and re-sent under a new customTag,
    without looking the first tag up (project-x-py's duplicate-order bug)."""
    OPEN_ORDERS_ONLY_LOOKUP = "open_orders_only_lookup"
    """Placement: an Unknown placement is looked up among *open* orders only, so an order that
    filled (or was cancelled) meanwhile reads as never placed."""
    LATCH_IGNORED = "latch_ignored"
    """Latch: new exposure goes out while a mutation on the contract is still Unknown."""
    OCO_SIBLING_NOT_CANCELLED = "oco_sibling_not_cancelled"
    """OCO engine: when a leg fills, the pair is declared done without cancelling its sibling."""
    BRACKET_LEGS_NOT_RESIZED = "bracket_legs_not_resized"
    """Bracket planner: live legs are never resized to the owned quantity (a partial fill, a
    partial close) — they keep their first size."""
    PROTECTIVE_STOP_WRONG_SIZE = "protective_stop_wrong_size"
    """Bracket planner: a protective leg is placed one contract larger than what is owned."""
    FILLED_BRACKET_NOT_RESUMED = "filled_bracket_not_resumed"
    """Start-up recovery: a bracket whose entry filled before the crash is not rolled forward
    (no saga restarted, nothing re-protected); it is only noted."""
    STARTUP_SKIPS_UNFINISHED = "startup_skips_unfinished"
    """Start-up recovery: the journal's unfinished operations are not reconciled at all."""
    RECONCILER_DISABLED = "reconciler_disabled"
    """Reconciler: never started (no periodic pass over broker truth)."""
    CANCEL_NOT_CONFIRMED = "cancel_not_confirmed"
    """Cancellation: after a cancel is sent, the order is taken as cancelled without reading its
    final state (a fill racing the cancel, or a lost cancel, goes unseen)."""
    FLATTEN_WHOLE_CONTRACT = "flatten_whole_contract"
    """Flattening: a rollback or forced flatten closes the whole contract's net position
    instead of the quantity the operation owns (F13)."""
    WATCHER_KEEPS_EXITS = "watcher_keeps_exits"
    """Position watcher: managed exits are never cancelled, also when the position went flat."""
    JOURNAL_LOSES_WRITES_AT_CRASH = "journal_loses_writes_at_crash"
    """Journal (``synchronous=OFF``): acknowledged writes reach the disk only a second later,
    and a crash loses what had not reached it yet."""


# ------------------------------------------------------------------------------------------------
# the replacements
# ------------------------------------------------------------------------------------------------
async def _resend_with_new_tag(
    self: PlacementPipeline, request: Any, *args: Any, **kwargs: Any
) -> OrderPlaceResponse:
    # THE BUG: never ask the broker whether the first request executed.
    retry = dataclasses.replace(request, custom_tag=self._ctx.tags.next_tag())
    outcome = await self._ctx.gateway.inner.place_order(retry)  # the adapter itself, unguarded
    if isinstance(outcome, Confirmed) and outcome.order_id is not None:
        return OrderPlaceResponse(order_id=outcome.order_id, custom_tag=retry.custom_tag)
    if isinstance(outcome, Rejected):
        raise OrderRejectedError(outcome.message, code=outcome.code, order_id=outcome.order_id)
    return await _resend_with_new_tag(self, retry)


async def _find_among_open_orders(
    self: PlacementPipeline, account_id: int, tag: str, sent_at: Any, priority: Any = None
) -> Order | None:
    # THE BUG: open orders only; a filled order is "not found".
    try:
        orders = await self._ctx.gateway.inner.search_open_orders(account_id)
    except Exception:
        return None
    for order in orders:
        if order.custom_tag == tag:
            self._ingest(order)
            found: Order | None = self._ctx.tracker.by_tag(account_id, tag)
            return found
    return None


def _no_latch_check(self: AmbiguityLatch, account_id: int, contract_id: str) -> None:
    return None  # THE BUG: the latch is never consulted


def _oco_decide_without_cancel(original: Callable[..., Any]) -> Callable[..., Any]:
    def decide(self: OcoEngine, pair: Any) -> Any:
        decision = original(self, pair)
        if decision is not None and decision.cancel:
            # THE BUG: the sibling cancel is skipped and the pair declared done.
            return dataclasses.replace(decision, cancel=(), done=True)
        return decision

    return decide


def _plan_leg_without_resize(original: Callable[..., Any]) -> Callable[..., Any]:
    def plan_leg(f: Any, leg: Any, owned: int) -> list[Any]:
        return [a for a in original(f, leg, owned) if not isinstance(a, ResizeLeg)]

    return plan_leg


def _plan_leg_wrong_size(original: Callable[..., Any]) -> Callable[..., Any]:
    def plan_leg(f: Any, leg: Any, owned: int) -> list[Any]:
        return [
            PlaceLeg(a.kind, a.size + 1) if isinstance(a, PlaceLeg) else a
            for a in original(f, leg, owned)
        ]

    return plan_leg


async def _resume_bracket_never(engine: BracketEngine, ctx: ResumeContext) -> None:
    if ctx.plan.pivot_passed and not ctx.operation.state.is_terminal:
        ctx.note("filled bracket left as it was")  # THE BUG: no roll-forward, no hand-off
        return
    await ctx.roll_back("rolled back at start-up recovery")


async def _recover_nothing(host: Any, **kwargs: Any) -> RecoveryReport:
    return RecoveryReport()  # THE BUG: the journal's unfinished operations are ignored


def _reconciler_start_nothing(self: Reconciler) -> None:
    return None  # THE BUG: no periodic reconciliation


def _await_final_unread(original: Callable[..., Any]) -> Callable[..., Any]:
    async def await_final(self: Canceller, account_id: int, order_id: int, **kw: Any) -> Any:
        view = self._ctx.tracker.get(order_id)
        if view is None or view.is_terminal:
            return view
        # THE BUG: a working order we sent a cancel for is taken as cancelled, unread.
        return dataclasses.replace(view, status=OrderStatus.CANCELLED)

    return await_final


async def _flatten_whole_contract(
    self: OrderManager,
    account_id: int,
    contract_id: str,
    signed_size: int,
    custom_tag: str,
    *,
    exit_only: bool = False,
) -> Order | None:
    if signed_size == 0:
        return None
    net = await self.owned_position(account_id, contract_id)
    # THE BUG: the whole net position of the contract, not the operation's quantity.
    whole = -net if net and (net > 0) != (signed_size > 0) else signed_size
    request = OrderRequest(
        account_id=account_id,
        contract_id=contract_id,
        type=OrderType.MARKET,
        side=OrderSide.BUY if whole > 0 else OrderSide.SELL,
        size=abs(whole),
        custom_tag=custom_tag,
    )
    placed = await self.submit(
        request, respect_latch=False, priority=Priority.FLATTEN, exit_only=exit_only
    )
    return self.tracker.get(placed.order_id)


async def _watcher_never_cancels(self: PositionWatcher, account_id: int, action: Any) -> None:
    return None  # THE BUG: exits outlive their position


def _journal_write_later(original: Callable[..., Any]) -> Callable[..., Any]:
    async def write(
        self: ChaosJournal, name: str, target: Any, args: tuple[Any, ...], kw: Any
    ) -> Any:
        if name == "record_event":
            return await original(self, name, target, args, kw)
        # THE BUG: acknowledged now, on disk a second later; a crash loses what is in between.
        pending: list[Any] = self.__dict__.setdefault("_planted_pending", [])
        entry = (target, args, kw)
        pending.append(entry)

        def land() -> None:
            if entry in pending:
                pending.remove(entry)
                task = asyncio.get_running_loop().create_task(_quietly(target(*args, **kw)))
                self.__dict__.setdefault("_planted_tasks", set()).add(task)

        self._clock.call_later(1.0, land)
        return None

    return write


async def _quietly(write: Any) -> None:
    try:
        await write
    except Exception:  # a write that lands after its operation was lost: gone too
        return


def _bury_losing_writes(original: Callable[..., Any]) -> Callable[..., Any]:
    def bury(self: Any, manager: Any, *, crash: bool = True) -> None:
        if crash:
            self.chaos_journal.__dict__.get("_planted_pending", []).clear()
        original(self, manager, crash=crash)

    return bury


# ------------------------------------------------------------------------------------------------
# planting
# ------------------------------------------------------------------------------------------------
def _setattr(stack: ExitStack, owner: Any, name: str, value: Any) -> None:
    if name not in vars(owner):
        raise RuntimeError(f"cannot plant: {owner.__name__}.{name} is gone")
    original = vars(owner)[name]
    setattr(owner, name, value)
    stack.callback(setattr, owner, name, original)


def _wrap(stack: ExitStack, owner: Any, name: str, wrapper: Callable[[Any], Any]) -> None:
    if name not in vars(owner):
        raise RuntimeError(f"cannot plant: {owner.__name__}.{name} is gone")
    _setattr(stack, owner, name, wrapper(vars(owner)[name]))


def _plant(stack: ExitStack, bug: PlantedBug) -> None:
    match bug:
        case PlantedBug.SKIP_TAG_RESOLUTION:
            _setattr(stack, PlacementPipeline, "_resolve_placement", _resend_with_new_tag)
        case PlantedBug.OPEN_ORDERS_ONLY_LOOKUP:
            _setattr(stack, PlacementPipeline, "_find_by_tag", _find_among_open_orders)
        case PlantedBug.LATCH_IGNORED:
            _setattr(stack, AmbiguityLatch, "check", _no_latch_check)
        case PlantedBug.OCO_SIBLING_NOT_CANCELLED:
            _wrap(stack, OcoEngine, "_decide", _oco_decide_without_cancel)
        case PlantedBug.BRACKET_LEGS_NOT_RESIZED:
            _wrap(stack, bracket_plan, "_plan_leg", _plan_leg_without_resize)
        case PlantedBug.PROTECTIVE_STOP_WRONG_SIZE:
            _wrap(stack, bracket_plan, "_plan_leg", _plan_leg_wrong_size)
        case PlantedBug.FILLED_BRACKET_NOT_RESUMED:
            _setattr(stack, BracketEngine, "resume_at_startup", _resume_bracket_never)
        case PlantedBug.STARTUP_SKIPS_UNFINISHED:
            _setattr(stack, startup_recovery, "recover", _recover_nothing)
        case PlantedBug.RECONCILER_DISABLED:
            _setattr(stack, Reconciler, "start", _reconciler_start_nothing)
        case PlantedBug.CANCEL_NOT_CONFIRMED:
            _wrap(stack, Canceller, "await_final", _await_final_unread)
        case PlantedBug.FLATTEN_WHOLE_CONTRACT:
            _setattr(stack, OrderManager, "flatten_quantity", _flatten_whole_contract)
        case PlantedBug.WATCHER_KEEPS_EXITS:
            _setattr(stack, PositionWatcher, "_cancel", _watcher_never_cancels)
        case PlantedBug.JOURNAL_LOSES_WRITES_AT_CRASH:
            _wrap(stack, ChaosJournal, "_write", _journal_write_later)
            _wrap(stack, chaos_runner._SeedRun, "_bury", _bury_losing_writes)


@contextmanager
def planted_bugs(*bugs: PlantedBug) -> Iterator[None]:
    """Switch ``bugs`` on for the block (see the module docstring)."""
    with ExitStack() as stack:
        for bug in bugs:
            _plant(stack, bug)
        yield


__all__ = ["PlantedBug", "planted_bugs"]
