"""Core flows end to end: orders, brackets (both modes), OCO, position orders, close, cancel."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from conftest import MNQ, Control, eventually
from orderguard.broker.base import ConnectionState
from orderguard.broker.projectx import ProjectXBroker, default_journal_path
from orderguard.gateway import Gateway
from orderguard.journal.sqlite import SqliteJournal
from orderguard.models import OrderStatus
from orderguard.orders import OrderManager
from orderguard.orders.bracket.values import BracketOutcome
from orderguard.orders.oco.engine import OcoLeg

D = Decimal


async def test_core_orders_place_modify_cancel(manager: OrderManager, control: Control) -> None:
    """A limit order is placed, modified and cancelled; a market order fills; the manager's view
    matches the gateway's truth."""
    placed = await manager.place_limit_order(MNQ, 0, 2, D("20990.25"))
    assert placed.success
    working = await control.working()
    assert [o["id"] for o in working] == [placed.orderId] and working[0]["customTag"]
    modified = await manager.modify_order(placed.orderId, limit_price=D("20991"))
    assert modified.success
    assert (await control.working())[0]["limitPrice"] == 20991
    cancelled = await manager.cancel_order(placed.orderId)
    assert cancelled and cancelled.status is OrderStatus.CANCELLED
    assert await control.working() == []
    market = await manager.place_market_order(MNQ, 0, 1)
    order = await manager.get_order_by_id(market.orderId)
    assert order is not None and order.status is OrderStatus.FILLED
    assert await control.position() == 1


async def test_native_bracket_protects_and_the_server_oco_closes(
    manager: OrderManager, control: Control
) -> None:
    """Native bracket: server-side legs with signed ticks; the target fills, the stop is
    cancelled by the server, the operation ends flat."""
    r = await manager.place_bracket_order(
        MNQ, 0, 1, None, D("20990"), D("21010"), entry_type="market"
    )
    assert r.success and r.native and r.outcome is BracketOutcome.PROTECTED
    legs = {o["id"]: o for o in await control.working()}
    assert set(legs) == {r.stop_order_id, r.target_order_id}
    # Native legs are tick offsets re-anchored at the actual fill (spec §9.1).
    fill = r.average_fill_price
    assert fill is not None
    assert legs[r.stop_order_id]["stopPrice"] < fill < legs[r.target_order_id]["limitPrice"]
    await control.price(D("21011"))
    done = await manager.wait_for_completion(r.operation_id, 10)
    assert done.finished and done.owned_size == 0
    assert await control.position() == 0 and await control.working() == []


async def test_bracket_falls_back_to_client_side_on_position_brackets(
    broker: ProjectXBroker, manager: OrderManager, control: Control
) -> None:
    """Account 2 is on Position Brackets: the native entry is refused, the bracket goes
    client-side, and the adapter remembers the account's mode."""
    r = await manager.place_bracket_order(
        MNQ, 1, 1, None, D("21010"), D("20990"), entry_type="market", account_id=2
    )
    assert r.success and not r.native and r.outcome is BracketOutcome.PROTECTED, r
    assert (await broker.get_capabilities(2)).native_brackets is False
    working = await control.working(2)
    assert sorted(o["type"] for o in working) == [1, 4]  # a limit target and a stop, client-side
    await control.price(D("21010"))
    done = await manager.wait_for_completion(r.operation_id, 10)
    assert done.finished
    await eventually(lambda: _flat_and_idle(control, 2), what="flat and no orders")


async def _flat_and_idle(control: Control, account: int = 1) -> bool:
    return await control.position(account) == 0 and await control.working(account) == []


async def test_oco_pair_cancels_the_sibling(manager: OrderManager, control: Control) -> None:
    r = await manager.place_oco_order(
        MNQ, OcoLeg(0, 1, D("20995")), OcoLeg(0, 1, D("21005"), "stop")
    )
    assert r.success
    assert len(await control.working()) == 2
    await control.price(D("20994.75"))
    await eventually(lambda: _one_filled_other_cancelled(control), what="OCO resolved")


async def _one_filled_other_cancelled(control: Control) -> bool:
    statuses = sorted(o["status"] for o in (await control.truth())["orders"])
    return statuses == [2, 3]


async def test_position_orders_and_close(manager: OrderManager, control: Control) -> None:
    """A stop for an outside position, then a close: the position goes flat and the stop with it."""
    await control.post(
        "orders/place", {"accountId": 1, "contractId": MNQ, "type": 2, "side": 0, "size": 2}
    )
    assert await control.position() == 2
    stop = await manager.add_stop_loss(MNQ, D("20980"))
    assert stop.success
    assert [o["size"] for o in await control.working()] == [2]
    closed = await manager.close_position(MNQ, whole_contract=True)
    assert closed.closed_size == 2
    await eventually(lambda: _flat_and_idle(control), what="flat, stop gone")


async def test_bulk_cancel(manager: OrderManager, control: Control) -> None:
    for price in ("20990", "20991", "20992"):
        assert (await manager.place_limit_order(MNQ, 0, 1, D(price))).success
    result = await manager.cancel_all_orders(MNQ)
    assert result.total == 3
    assert await control.working() == []


async def test_outside_close_cancels_the_bracket_exits(
    manager: OrderManager, control: Control
) -> None:
    """F17: the platform closes the position; the bracket's exits follow it to flat."""
    r = await manager.place_bracket_order(
        MNQ, 0, 1, None, D("20990"), D("21010"), entry_type="market"
    )
    assert r.outcome is BracketOutcome.PROTECTED
    await control.post("positions/close", {"accountId": 1, "contractId": MNQ})
    await eventually(
        lambda: _flat_and_idle(control), what="exits cancelled after the outside close"
    )


async def test_events_reach_the_manager_over_the_hub(
    broker: ProjectXBroker, manager: OrderManager, control: Control
) -> None:
    states: list[ConnectionState] = []
    broker.subscribe(lambda e: states.append(e.state) if hasattr(e, "state") else None)
    await manager.place_limit_order(MNQ, 0, 1, D("20990"))
    assert broker.stats["events"] > 0
    assert broker.stats["malformed_events"] == 0


async def test_the_documented_start_from_env(
    gateway: Gateway, control: Control, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/projectx.md's way in: from_env with project-x-py's variables, the selected account,
    the default journal path, a protected bracket."""
    user, key = gateway.credentials
    monkeypatch.setenv("PROJECT_X_API_KEY", key)
    monkeypatch.setenv("PROJECT_X_USERNAME", user)
    monkeypatch.setenv("PROJECT_X_ACCOUNT_NAME", "sim-1")
    monkeypatch.setenv("PROJECTX_API_URL", gateway.urls.api)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    async with ProjectXBroker.from_env() as broker:
        account = await broker.selected_account()
        assert account.id == 1
        path = default_journal_path(broker.firm, account.name)
        assert path.parent == tmp_path / "orderguard"
        journal = SqliteJournal(path)
        async with OrderManager(broker, account_id=account.id, journal=journal) as orders:
            r = await orders.place_bracket_order(
                MNQ, 0, 1, None, D("20990"), D("21010"), entry_type="market"
            )
            assert r.outcome is BracketOutcome.PROTECTED
        await journal.close()
    assert path.exists()
