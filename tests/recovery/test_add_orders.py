"""add_orders_to_operation: a bracket's known legs registered with one journal write."""

from __future__ import annotations

import pytest

from orderguard.errors import OperationError
from orderguard.models import OrderSide
from orderguard.recovery.manager import LegIntent, OperationRecoveryManager
from orderguard.recovery.operations import OperationState, OperationType

from .rig import MNQ, Rig

LEGS = [
    LegIntent(MNQ, OrderSide.BUY, 2, "limit", leg="entry"),
    LegIntent(MNQ, OrderSide.SELL, 2, "stop", leg="stop"),
    LegIntent(MNQ, OrderSide.SELL, 2, "limit", leg="target"),
]


async def test_the_legs_are_journaled_tagged_and_survive_a_restart(rig: Rig) -> None:
    rec = rig.manager.recovery
    op = await rec.start_operation(OperationType.BRACKET_ORDER, account_id=1, contract_id=MNQ)
    refs = await rec.add_orders_to_operation(op, LEGS)
    assert [r.leg for r in refs] == ["entry", "stop", "target"]
    assert [r.custom_tag for r in refs] == [rec.tag_for(op, r.leg, 0) for r in refs]
    assert op.state is OperationState.IN_PROGRESS
    journaled = await rig.journal.intents_for(op.operation_id)
    assert sorted(i.custom_tag for i in journaled) == sorted(r.custom_tag for r in refs)
    for ref in refs:
        assert rec.leg_for_tag(1, ref.custom_tag) == (op, ref)
    fresh = OperationRecoveryManager(rig.journal, rig.clock)
    await fresh.load()
    assert set(fresh.active_operations[op.operation_id].orders) == {"entry", "stop", "target"}


async def test_a_repeated_leg_is_refused_and_nothing_is_journaled(rig: Rig) -> None:
    rec = rig.manager.recovery
    op = await rec.start_operation(OperationType.BRACKET_ORDER, account_id=1, contract_id=MNQ)
    with pytest.raises(OperationError):
        await rec.add_orders_to_operation(op, [LEGS[0], LEGS[0]])
    assert await rig.journal.intents_for(op.operation_id) == []
    assert op.orders == {}
