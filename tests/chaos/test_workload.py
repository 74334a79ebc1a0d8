"""Workload steps: concurrent steps of one batch do not trip over each other's bookkeeping."""

from __future__ import annotations

from decimal import Decimal

from orderguard.broker.sim import SimExchange
from orderguard.chaos.workload import (
    RESTING_CONTRACT,
    Step,
    StepKind,
    WorkloadActor,
    WorkloadState,
)
from orderguard.clock import VirtualClock
from orderguard.models import Order, OrderRequest, OrderSide, OrderType


class _BulkCancelDuringLookup:
    """The part of the OrderManager a modify step uses, with a bulk-cancel step of the same
    batch finishing while the lookup is in flight (it cancels the order and forgets it)."""

    def __init__(self, exchange: SimExchange, state: WorkloadState) -> None:
        self.exchange = exchange
        self.state = state

    async def get_order_by_id(self, order_id: int) -> Order | None:
        self.exchange.cancel(1, order_id)
        self.state.resting.clear()  # what the cancel_all step does when it returns
        return self.exchange.order(1, order_id)


async def test_modify_limit_of_an_order_a_bulk_cancel_just_forgot_is_not_an_error() -> None:
    """The order is reported already final; the step does not fail with a bookkeeping error."""
    clock = VirtualClock()
    exchange = SimExchange(clock)
    exchange.open_account(account_id=1, name="SIM-1", balance=Decimal("50000"))
    exchange.set_price(RESTING_CONTRACT, Decimal("6000.00"))
    placed = exchange.place(
        OrderRequest(
            account_id=1,
            contract_id=RESTING_CONTRACT,
            type=OrderType.LIMIT,
            side=OrderSide.BUY,
            size=1,
            limit_price=Decimal("5750.00"),
        )
    )
    order_id = placed.order_id
    assert order_id is not None
    state = WorkloadState(side=OrderSide.BUY, resting=[order_id])
    manager = _BulkCancelDuringLookup(exchange, state)
    actor = WorkloadActor(manager, clock, lambda _: Decimal("6000.00"), state, 1)
    result = await actor.perform(Step(0, StepKind.MODIFY_LIMIT))
    assert result.error is None
    assert result.outcome == f"order {order_id} already final"
    assert state.resting == []
