"""A bracket saga's flatten orders: market orders removing exactly what the bracket owns.

:class:`Flattening` keeps the saga's flatten records and does their broker I/O: the position
read that gates a flatten, the send (journaled first, with a deterministic tag), the look-up by
tag of one whose outcome is in doubt, and the re-send with the *same* tag of one absent at the
broker. The saga decides when (the pure planner's ``Flatten``/``ResolveFlatten``); what this
changes it reports through the callbacks it is given (routing an order or tag to the saga, and
re-measuring after a send).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from orderguard.broker.base import Rejected
from orderguard.errors import OrderGuardError, OrderRejectedError
from orderguard.models import OrderRequest, OrderSide, OrderType
from orderguard.orders.bracket_state import BracketRequest, FlattenOrder
from orderguard.orders.bracket_types import BracketSettings
from orderguard.recovery.manager import OrderReference, RecoveryOperation, RefStatus
from orderguard.resilience import Priority

if TYPE_CHECKING:
    from orderguard.orders.manager import OrderManager

log = logging.getLogger("orderguard.orders.bracket")


class Flattening:
    """The flatten orders of one bracket (see the module docstring)."""

    def __init__(
        self,
        manager: OrderManager,
        operation: RecoveryOperation,
        request: BracketRequest,
        settings: BracketSettings,
        *,
        route_order: Callable[[int], None],
        route_tag: Callable[[str], None],
        changed: Callable[[], object],
    ) -> None:
        self.m = manager
        self.op = operation
        self.req = request
        self.settings = settings
        self._route_order = route_order
        self._route_tag = route_tag
        self._changed = changed
        self.orders: list[FlattenOrder] = []
        self.read_failures = 0
        """Position reads (gating a flatten) that failed: each counts as a flatten attempt."""

    @property
    def pending(self) -> bool:
        """A flatten was sent (or is about to be) but not confirmed."""
        return any(f.pending for f in self.orders)

    @property
    def grace(self) -> float:
        """How long a flatten's unfilled rest may work before it is cancelled and sent again
        (each new market order takes what the book offers at once)."""
        return self.settings.retry_delay * 4

    def _now(self) -> float:
        return self.m.clock.monotonic()

    def restore(self, ref: OrderReference) -> None:
        """Take a journaled flatten leg back (after a restart): its fills count in ``owned``,
        and one still in doubt is resolved by its tag before anything is flattened again."""
        sent = ref.order_id is not None
        doubt = not sent and ref.status in (RefStatus.UNKNOWN, RefStatus.INTENDED)
        fl = FlattenOrder(ref, OrderSide(ref.side), ref.size, ref.order_id, doubt, attempts=1)
        fl.placed_at = self._now()
        self.orders.append(fl)
        self._route_tag(ref.custom_tag)
        if ref.order_id is not None:
            self._route_order(ref.order_id)

    async def flatten(self, owned: int) -> None:
        """Send a market order removing exactly ``owned`` — never more than the account holds."""
        sign = self.req.side.sign
        acct, contract = self.req.account_id, self.req.contract_id
        remove = sign * owned  # signed account quantity to take away
        qty = abs(remove)
        if owned > 0:
            try:
                held = await self.held()
            except OrderGuardError as exc:
                # No evidence, no blind flatten: count the attempt, back off, plan again.
                log.warning("bracket %s: position read failed: %s", self.op.operation_id, exc)
                self.read_failures += 1
                await self.m.clock.sleep(self.settings.retry_delay * self.read_failures)
                return
            if held == 0 or (held > 0) != (remove > 0):
                # Already gone at the broker (closed by someone else): credit it, send nothing.
                await self.m.recovery.record_external_close(self.op, -remove)
                return
            qty = min(abs(remove), abs(held))
            if qty < abs(remove):
                await self.m.recovery.record_external_close(
                    self.op, -(abs(remove) - qty) * (1 if remove > 0 else -1)
                )
        # An over-close (owned < 0) is bought back without that check: the excess is made of
        # our own fills, and the account's net position on a contract shared with other
        # operations (possibly larger the other way) says nothing about it.
        side = OrderSide.SELL if remove > 0 else OrderSide.BUY
        ref = await self.m.recovery.add_order_to_operation(
            self.op,
            contract,
            side,
            qty,
            "market",
            leg=f"flatten{len(self.orders)}",
            account_id=acct,
        )
        fl = FlattenOrder(ref, side, qty)
        self.orders.append(fl)
        self._route_tag(ref.custom_tag)
        await self.send(fl)

    async def held(self) -> int:
        """The account's signed net position on our contract (broker truth), read in the
        flattening lane: it gates a flatten, so it must not wait behind ordinary reads."""
        positions = await self.m.gateway.search_positions(
            self.req.account_id, priority=Priority.FLATTEN
        )
        for position in positions:
            if position.contract_id == self.req.contract_id:
                return position.signed_size
        return 0

    async def send(self, fl: FlattenOrder) -> None:
        fl.attempts += 1
        fl.pending = True
        rec = self.m.recovery
        request = OrderRequest(
            account_id=self.req.account_id,
            contract_id=self.req.contract_id,
            type=OrderType.MARKET,
            side=fl.side,
            size=fl.size,
            custom_tag=fl.ref.custom_tag,
        )
        try:
            # Not flatten_quantity: it also polls until the order is final, and those reads
            # queue behind every other read when the rate window is full. Fills arrive as
            # events (or by the shared poll); a rest that does not fill is cancelled (strays).
            placed = await self.m.submit(request, respect_latch=False, priority=Priority.FLATTEN)
        except OrderRejectedError as exc:
            found = await self.find(fl)
            if not found:
                fl.pending = False
                await rec.record_order_failure(self.op, fl.ref, Rejected(exc.code, str(exc)))
                await rec.note_recovery("bracket_flatten", False)
            return
        except OrderGuardError as exc:
            log.warning("bracket %s: flatten failed: %s", self.op.operation_id, exc)
            return  # stays pending: resolved by tag, then re-sent with the same tag
        fl.order_id, fl.pending, fl.placed_at = placed.order_id, False, self._now()
        self._route_order(placed.order_id)
        await rec.record_order_success(self.op, fl.ref, placed)
        await rec.note_recovery("bracket_flatten", True)
        self._changed()

    async def find(self, fl: FlattenOrder) -> bool:
        """Look a flatten up by its tag; True when the broker has it (now adopted)."""
        try:
            found = await self.m.find_order_by_tag(self.req.account_id, fl.ref.custom_tag)
        except OrderGuardError:
            return False
        if found is None:
            return False
        fl.order_id, fl.pending, fl.placed_at = found.id, False, self._now()
        self._route_order(found.id)
        await self.m.recovery.record_resolution(self.op, fl.ref, found)
        return True

    async def resolve(self) -> None:
        """Resolve every pending flatten by its tag; send one absent at the broker again."""
        for fl in self.orders:
            if not fl.pending:
                continue
            if await self.find(fl):
                continue
            if fl.attempts >= self.settings.max_attempts:
                fl.pending = False  # give up: the owned quantity stays visible as NAKED
                await self.m.recovery.record_order_failure(
                    self.op, fl.ref, "flatten not confirmed after retries"
                )
                continue
            await self.send(fl)  # absent at the broker: the same tag again


__all__ = ["Flattening"]
