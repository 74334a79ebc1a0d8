"""A bracket saga's exit legs at the broker: placing, re-sending, resizing and cancelling them.

:class:`ExitLegs` does the broker I/O of the planner's leg actions (``PlaceLeg``, ``RetryLeg``,
``ResizeLeg``, ``CancelLeg``) on the saga's slots, which it is given and updates in place. Every
leg intent is journaled with its deterministic tag before it is sent; a leg that provably never
left, or whose outcome is unknown and whose tag is absent at the broker, is sent again with the
*same* tag, so the broker itself refuses a duplicate. What the saga keeps — adopting an order id
into a leg, its backoff, re-measuring exposure — comes in as callbacks.

:func:`cancel_confirmed` is the one cancel every order of a bracket goes through (legs, strays,
the entry's rest).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from orderguard.broker.base import Rejected, Unknown, UnknownOrigin
from orderguard.errors import (
    CircuitOpenError,
    ConnectionFailedError,
    ExitNotReducingError,
    ExposureRefusedError,
    JournalError,
    OrderGuardError,
    OrderRejectedError,
    OutcomeUnknownError,
    RateLimitedError,
    ValidationError,
)
from orderguard.models import OrderRequest, OrderType
from orderguard.orders.bracket.plan import LegKind, LegPhase
from orderguard.orders.bracket.state import BracketRequest, Slot
from orderguard.orders.engine_context import EngineContext, Sending
from orderguard.orders.results import Resolution
from orderguard.recovery.legs import numbered
from orderguard.recovery.manager import RecoveryOperation
from orderguard.resilience import Priority

log = logging.getLogger("orderguard.orders.bracket")


async def cancel_confirmed(
    send: Sending, account_id: int, order_id: int, operation_id: str
) -> bool:
    """Cancel and confirm; True when the order is final (cancelled, or filled first)."""
    try:
        # The protective lane: cancelling an exit or an entry rest only reduces exposure,
        # and a sibling left working while the window is full can over-close.
        # Not settled: an unknown outcome is read once and the cancel re-sent on the saga's
        # own backoff, not polled for seconds while the exit still works.
        result = await send.cancel_journaled(
            order_id, account_id, priority=Priority.PROTECTIVE, settle=False
        )
    except OrderGuardError as exc:
        log.warning("bracket %s: cancel of %s failed: %s", operation_id, order_id, exc)
        return False
    return result.status is not None and result.status.is_terminal


class ExitLegs:
    """The stop and target of one bracket at the broker (see the module docstring)."""

    def __init__(
        self,
        ctx: EngineContext,
        operation: RecoveryOperation,
        request: BracketRequest,
        slots: Mapping[LegKind, Slot],
        *,
        adopt: Callable[[Slot, int], None],
        route_tag: Callable[[str], None],
        backoff: Callable[[int], float],
        changed: Callable[[], object],
    ) -> None:
        self.ctx = ctx
        self.op = operation
        self.req = request
        self.slots = slots
        self._adopt = adopt  # the order id is the slot's now (and an exit of the saga's)
        self._route_tag = route_tag
        self._backoff = backoff  # attempts -> when to try again (the saga's monotonic time)
        self._changed = changed  # re-measure and wake waiters after a leg changed

    @property
    def operation_id(self) -> str:
        return self.op.operation_id

    async def place(self, kind: LegKind, size: int) -> None:
        """Journal a new generation of this leg and send it."""
        slot = self.slots[kind]
        is_stop = kind is LegKind.STOP
        price = self.req.stop_price if is_stop else self.req.target_price
        leg = numbered(kind.value, slot.count)
        order_type = "stop" if is_stop else "limit"
        try:
            ref = await self.ctx.recovery.add_order_to_operation(
                self.op,
                self.req.contract_id,
                self.req.side.opposite,
                size,
                order_type,
                price,
                leg=leg,
                account_id=self.req.account_id,
            )
        except JournalError as exc:
            # An exit protects a filled position: it goes out with its deterministic tag and
            # is journaled once the journal works again (F20; ``flush_backlog``).
            ref = self.ctx.recovery.remember_unjournaled(
                self.op,
                self.req.contract_id,
                int(self.req.side.opposite),
                size,
                order_type,
                price,
                leg=leg,
                account_id=self.req.account_id,
                error=exc,
            )
        slot.count += 1
        slot.renew(ref, size)
        self._route_tag(ref.custom_tag)  # the shared poll finds it by tag
        await self._quietly(
            self.ctx.recovery.add_position_tracking(self.op, self.req.contract_id, ref)
        )
        await self.send(slot)

    async def send(self, slot: Slot) -> None:
        ref = slot.ref
        assert ref is not None
        is_stop = slot.kind is LegKind.STOP
        request = OrderRequest(
            account_id=self.req.account_id,
            contract_id=self.req.contract_id,
            type=OrderType.STOP if is_stop else OrderType.LIMIT,
            side=self.req.side.opposite,
            size=slot.size,
            stop_price=self.req.stop_price if is_stop else None,
            limit_price=None if is_stop else self.req.target_price,
            custom_tag=ref.custom_tag,
        )
        slot.attempts += 1
        rec = self.ctx.recovery
        try:
            placed = await self.ctx.send.submit(request, respect_latch=False, exit_only=True)
        except asyncio.CancelledError:
            slot.move(LegPhase.UNKNOWN)  # it may have left: found by its tag later
            raise
        except ExitNotReducingError as exc:
            # The position is not what the bracket owns: closed outside, say, with the event
            # lost. Not sent (it would open a position); the holdings follower credits the
            # change and the saga re-plans; until then the leg is tried again later.
            slot.move(LegPhase.RETRY)
            slot.error = str(exc)
            slot.retry_at = self._backoff(slot.attempts)
            await self._quietly(rec.record_order_failure(self.op, ref, str(exc)))  # says why
            self.ctx.holdings.schedule((self.req.account_id, self.req.contract_id))
        except ValidationError as exc:
            # E.g. the market moved through the stop: this protection cannot be placed.
            slot.move(LegPhase.FAILED)
            slot.error = str(exc)
            await self._quietly(rec.record_order_failure(self.op, ref, str(exc)))
        except OrderRejectedError as exc:
            if slot.attempts > 1 and await self.found_by_tag(slot):
                return  # a re-send refused as a duplicate: the first send did arrive
            slot.move(LegPhase.FAILED)
            slot.error = str(exc)
            rejected = Rejected(exc.code, str(exc), exc.order_id)
            await self._quietly(rec.record_order_failure(self.op, ref, rejected))
            if slot.count > 1 or slot.attempts > 1:  # a forward recovery (re-send, new generation)
                await self._quietly(rec.note_recovery("bracket_forward", False))
        except OutcomeUnknownError as exc:
            slot.move(LegPhase.UNKNOWN)
            slot.retry_at = self._backoff(slot.attempts)
            unknown = Unknown(UnknownOrigin.TIMEOUT_AFTER_SEND, exc.origin)
            await self._quietly(rec.record_order_failure(self.op, ref, unknown))
        except (ConnectionFailedError, CircuitOpenError) as exc:
            slot.move(LegPhase.RETRY)
            slot.error = str(exc)
            slot.retry_at = self._backoff(slot.attempts)
        except RateLimitedError as exc:
            slot.move(LegPhase.UNKNOWN if exc.sent else LegPhase.RETRY)
            slot.retry_at = max(
                self._backoff(slot.attempts), self.ctx.clock.monotonic() + (exc.retry_after or 0)
            )
        except OrderGuardError as exc:
            # Anything else may have left: resolve by tag before sending again.
            slot.move(LegPhase.UNKNOWN)
            slot.error = str(exc)
            slot.retry_at = self._backoff(slot.attempts)
        else:
            slot.size = request.size
            self._adopt(slot, placed.order_id)
            await self._quietly(rec.record_order_success(self.op, ref, placed))
            if slot.count > 1 or slot.attempts > 1 or placed.resolution is Resolution.RESENT:
                # A forward recovery: a re-send (here or by the placement), a new generation.
                await self._quietly(rec.note_recovery("bracket_forward", True))
        self._changed()

    async def _quietly(self, write: Awaitable[object]) -> None:
        """A record of an exit's life: while the journal refuses it, the operation is kept in
        memory for ``flush_backlog`` and the protection goes on (F20)."""
        try:
            await write
        except JournalError as exc:
            self.ctx.recovery.defer(self.op, exc)

    async def found_by_tag(self, slot: Slot) -> bool:
        """Look the slot's intent up by its tag; True when the broker has it (now adopted)."""
        assert slot.ref is not None
        try:
            found = await self.ctx.truth.find_order_by_tag(self.req.account_id, slot.ref.custom_tag)
        except OrderGuardError:
            return False
        if found is None:
            return False
        self._adopt(slot, found.id)
        await self._quietly(self.ctx.recovery.record_resolution(self.op, slot.ref, found))
        return True

    async def retry(self, kind: LegKind, *, resend: bool) -> None:
        slot = self.slots[kind]
        if slot.phase is LegPhase.UNKNOWN:
            if await self.found_by_tag(slot):
                return
            if not resend:
                slot.attempts += 1
                slot.retry_at = self._backoff(slot.attempts)
                return
        if resend and slot.ref is not None:
            await self.send(slot)  # the SAME tag: a duplicate is refused by the broker

    async def resize(self, kind: LegKind, order_id: int, size: int) -> None:
        slot = self.slots[kind]
        try:
            result = await self.ctx.send.modify_order(
                order_id, size=size, account_id=self.req.account_id, priority=Priority.PROTECTIVE
            )
            ok = result.success
        except ExposureRefusedError as exc:
            # Growing an order is refused while the contract is latched (an unknown outcome),
            # but a bigger exit is no new exposure. Replace it instead: a new generation of the
            # leg for the whole owned quantity goes out now (exits pass the latch), and the old
            # order, no longer held by the slot, is cancelled as a stray.
            log.warning("bracket %s: %s; replacing the %s", self.operation_id, exc, kind)
            if slot.order_id == order_id:
                slot.renew(None, 0)
            self._changed()
            return
        except OrderGuardError as exc:
            log.warning("bracket %s: resize of %s failed: %s", self.operation_id, kind, exc)
            ok = False
        if ok and slot.order_id == order_id:
            slot.size = size
            slot.failures = 0
        else:
            slot.failures += 1
            slot.retry_at = self._backoff(slot.failures)
        self._changed()

    async def cancel(self, kind: LegKind, order_id: int) -> None:
        slot = self.slots[kind]
        if slot.order_id == order_id:
            slot.cancelling = True
        final = await cancel_confirmed(
            self.ctx.send, self.req.account_id, order_id, self.operation_id
        )
        if slot.order_id == order_id:
            if final:
                slot.move(LegPhase.DONE)
            else:
                slot.failures += 1
                slot.retry_at = self._backoff(slot.failures)
        self._changed()


__all__ = ["ExitLegs", "cancel_confirmed"]
