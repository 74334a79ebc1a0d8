"""close_position as a journaled POSITION_CLOSE operation that flattens only what is owned (F13)."""

from __future__ import annotations

import pytest

from orderguard.errors import ValidationError
from orderguard.models import OrderSide
from orderguard.orders.results import CloseOutcome
from orderguard.recovery.operations import OperationType

from .conftest import MNQ, Harness
from .operations_helpers import tagged_market
from .position_helpers import open_position, position, quiet


async def _owning_operation(h: Harness, size: int) -> str:
    """An operation that bought ``size`` at market under its own tag; returns its id."""
    rec = h.manager.recovery
    op = await rec.start_operation(OperationType.BRACKET_ORDER, account_id=1, contract_id=MNQ)
    ref = await rec.add_order_to_operation(op, MNQ, OrderSide.BUY, size, "market", leg="entry")
    await h.manager.submit(tagged_market(ref.custom_tag, OrderSide.BUY, size))
    await quiet(h)
    found = await h.manager.find_order_by_tag(1, ref.custom_tag)
    assert found is not None
    await rec.record_order_state(op, ref, found)
    return op.operation_id


async def test_close_by_operation_flattens_only_its_quantity(h: Harness) -> None:
    """F13: closing one operation's 2 lots leaves another caller's 3 lots in place."""
    op_id = await _owning_operation(h, 2)
    await open_position(h, 3)
    assert position(h) == 5
    result = await h.manager.close_position(MNQ, operation_id=op_id)
    await quiet(h)
    assert position(h) == 3
    assert (result.requested_size, result.closed_size, result.final_position) == (2, 2, 3)
    assert result.outcome is CloseOutcome.CLOSED and result


async def test_closing_an_operation_twice_flattens_once(h: Harness) -> None:
    """The second close of the same operation finds nothing it owns."""
    op_id = await _owning_operation(h, 2)
    await open_position(h, 1)
    await h.manager.close_position(MNQ, operation_id=op_id)
    again = await h.manager.close_position(MNQ, operation_id=op_id)
    await quiet(h)
    assert again.outcome is CloseOutcome.NOTHING_TO_CLOSE
    assert position(h) == 1


async def test_close_size_is_capped_at_the_position(h: Harness) -> None:
    """A size larger than the position closes the position, never flips it."""
    await open_position(h, 2)
    result = await h.manager.close_position(MNQ, size=10)
    await quiet(h)
    assert position(h) == 0
    assert (result.requested_size, result.closed_size) == (2, 2)


async def test_close_short_position_by_size(h: Harness) -> None:
    """Closing part of a short buys back exactly that size."""
    await open_position(h, -4)
    result = await h.manager.close_position(MNQ, size=1)
    await quiet(h)
    assert position(h) == -3 and result.final_position == -3


async def test_whole_contract_only_when_asked(h: Harness) -> None:
    """Without operation_id, size or whole_contract=True nothing is sent."""
    await open_position(h, 2)
    calls = len(h.broker.calls)
    with pytest.raises(ValidationError):
        await h.manager.close_position(MNQ)
    assert len(h.broker.calls) == calls and position(h) == 2
    result = await h.manager.close_position(MNQ, whole_contract=True)
    await quiet(h)
    assert position(h) == 0 and result.closed_size == 2


async def test_close_when_flat_is_nothing_to_close(h: Harness) -> None:
    """A flat account: the operation completes with nothing sent."""
    calls = len(h.broker.calls)
    result = await h.manager.close_position(MNQ, whole_contract=True)
    assert result.outcome is CloseOutcome.NOTHING_TO_CLOSE
    assert len(h.broker.calls) == calls
    status = h.manager.recovery.get_operation_status(result.operation_id or "")
    assert status is not None and status["state"] == "completed"


async def test_close_is_a_journaled_operation(h: Harness) -> None:
    """The close is a position_close operation whose leg's intent precedes a confirmed outcome."""
    await open_position(h, 1)
    result = await h.manager.close_position(MNQ, size=1)
    assert result.operation_id is not None
    journal = h.manager.journal
    op = await journal.get_operation(result.operation_id)
    assert op is not None and (op.type, op.state) == ("position_close", "completed")
    [intent] = await journal.intents_for(result.operation_id)
    assert intent.leg == "close"
    kinds = [o.kind.value for o in await journal.outcomes_for(intent.intent_id)]
    assert kinds == ["confirmed"]
