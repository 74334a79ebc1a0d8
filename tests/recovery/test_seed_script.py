"""The seed's own calls, run as a script exactly as the seed writes them.

``shared/000_6cfe79c14ce09858.txt`` (project-x-py's "OrderManager error recovery" design) shows
these calls inside the OrderManager (``self``) and from user code (``suite.orders``). Here
``suite.orders`` is an :class:`~orderguard.orders.OrderManager` on the simulated exchange, and
``self`` is that same manager. Where the seed elides arguments (``...``) the script fills them in
the way project-x-py's bracket code does: it sends each leg with the manager's own
``place_*_order`` and records the response with ``record_order_success``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from orderguard import OperationType, OrderManager, OrderSide, SimBroker, VirtualClock

MNQ = "CON.F.US.MNQ.Z26"
contract_id = MNQ


@dataclass
class Suite:
    orders: OrderManager


async def test_the_seeds_calls_run_as_written() -> None:
    """Every call of the seed, in the seed's words, does what the seed says it does."""
    clock = VirtualClock()
    broker = SimBroker.create(clock, prices={MNQ: Decimal("21000.00")}, native_brackets=False)
    # The seed's "Circuit Breaker Settings ... In OrderManagerConfig", as a plain dict.
    # fmt: off
    config = {
        "status_check_circuit_breaker_threshold": 10,
        "status_check_circuit_breaker_reset_time": 300.0,
        "status_check_max_attempts": 5,
        "status_check_initial_delay": 0.5,
        "status_check_backoff_factor": 2.0,
        "status_check_max_delay": 30.0,
    }
    # fmt: on
    suite = Suite(OrderManager(broker, clock=clock, config=config))
    await clock.run(suite.orders.start())
    self = suite.orders  # the seed's bracket code runs as OrderManager methods

    async def seed_bracket() -> tuple[bool, str]:
        # fmt: off
        # Initialize recovery tracking
        recovery_manager = self._get_recovery_manager()
        operation = await recovery_manager.start_operation(
            OperationType.BRACKET_ORDER,
            max_retries=3,
            retry_delay=1.0
        )

        # Track each order
        entry_ref = await recovery_manager.add_order_to_operation(
            operation, contract_id, OrderSide.BUY, 1, "market"
        )
        entry_response = await self.place_market_order(contract_id, OrderSide.BUY, 1)
        await recovery_manager.record_order_success(operation, entry_ref, entry_response)
        stop_ref = await recovery_manager.add_order_to_operation(
            operation, contract_id, OrderSide.SELL, 1, "stop", Decimal("20990.00")
        )
        stop_response = await self.place_stop_order(
            contract_id, OrderSide.SELL, 1, Decimal("20990.00")
        )
        await recovery_manager.record_order_success(operation, stop_ref, stop_response)
        target_ref = await recovery_manager.add_order_to_operation(
            operation, contract_id, OrderSide.SELL, 1, "limit", Decimal("21010.00")
        )
        target_response = await self.place_limit_order(
            contract_id, OrderSide.SELL, 1, Decimal("21010.00")
        )
        await recovery_manager.record_order_success(operation, target_ref, target_response)
        await recovery_manager.add_oco_pair(operation, stop_ref, target_ref)
        await recovery_manager.add_position_tracking(operation, contract_id, stop_ref)

        # Attempt completion with automatic recovery
        operation_completed = await recovery_manager.complete_operation(operation)
        # fmt: on
        return operation_completed, operation.id

    operation_completed, operation_id = await clock.run(seed_bracket())
    assert operation_completed
    status = await self.get_operation_status(operation_id)
    assert status is not None and status["state"] == "completed"
    assert status["max_retries"] == 3 and status["retry_delay"] == 1.0

    # The target trades: its OCO sibling, the stop, goes with it.
    broker.exchange.set_price(MNQ, Decimal("21010.25"))
    await clock.advance(2.0)
    assert broker.exchange.position_size(1, MNQ) == 0
    assert [o for o in broker.exchange.orders(1) if o.is_working] == []

    # fmt: off
    recovery_stats = suite.orders.get_recovery_statistics()
    cb_status = suite.orders.get_circuit_breaker_status()
    # fmt: on
    for key in (
        "operations_started",
        "operations_completed",
        "operations_failed",
        "success_rate",
        "recovery_attempts",
        "recovery_success_rate",
        "active_operations",
    ):
        assert key in recovery_stats, key
    assert recovery_stats["recovery_attempts"] == 1  # the OCO sibling cancel
    assert recovery_stats["recovery_success_rate"] == 1.0
    assert cb_status["state"] == "closed" and cb_status["failure_count"] == 0
    assert cb_status["is_healthy"] is True
    assert cb_status["retry_config"] == {
        "max_attempts": 5,
        "initial_delay": 0.5,
        "backoff_factor": 2.0,
        "max_delay": 30.0,
    }

    # Enhanced position order cancellation, and the rest of the seed's "New Methods Added".
    await clock.run(self.place_market_order(contract_id, OrderSide.BUY, 1))
    await clock.run(self.place_stop_order(contract_id, OrderSide.SELL, 1, Decimal("20990.00")))
    # fmt: off
    results = await clock.run(self.cancel_position_orders(contract_id))
    # fmt: on
    assert results["stop"] == 1 and results["failed"] == 0 and results["errors"] == []
    assert await self.force_rollback_operation("not-an-operation") is False
    await clock.advance(0.1 * 3600)
    # fmt: off
    stale_count = await self.cleanup_stale_operations(max_age_hours=0.1)
    # fmt: on
    assert stale_count == 0  # nothing was left stuck
    await self.cleanup()
