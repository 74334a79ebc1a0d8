"""SQLite batching rules: deferred records (held with ``linger`` until the next intent, or sent at
once by default) never break "an intent is durable before its send", nor queue order.

"Durable" is checked the strict way: a second, independent connection must see the rows (WAL
readers see committed transactions only), at the moment the intent's write returns or the moment
the order reaches the broker.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from orderguard.broker.base import Outcome
from orderguard.broker.sim import SimBroker
from orderguard.clock import SystemClock
from orderguard.config import OrderManagerConfig
from orderguard.journal import SqliteJournal
from orderguard.journal.testing import RecordFactory
from orderguard.models import OrderRequest, OrderSide, OrderType
from orderguard.orders import OrderManager
from orderguard.recovery.operations import OperationType

MNQ = "CON.F.US.MNQ.Z26"
NEVER = 3600.0  # a linger no test waits for: only an intent, flush or close releases


def _committed(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def _count(path: Path, table: str) -> int:
    return int(_committed(path, f"SELECT count(*) FROM {table}")[0][0])


async def test_deferred_records_wait_and_share_the_next_intents_commit(
    tmp_path: Path, make: RecordFactory
) -> None:
    """A deferred start and state change start no commit; the intent carries them, one commit."""
    path = tmp_path / "j.db"
    async with SqliteJournal(path, linger=NEVER) as journal:
        await journal.start_operation(make.op("op-1"), durable=False)
        await journal.update_operation("op-1", "in_progress", reason="first", durable=False)
        before = journal.batches
        assert _count(path, "operations") == 0  # held on the loop, not yet committed
        intent = make.intent("op-1")
        await journal.record_intent(intent)
        assert journal.batches == before + 1
        # Durable when the intent returns, and in queue order (the intent's operation exists).
        assert _committed(path, "SELECT state FROM operations") == [("in_progress",)]
        assert _committed(path, "SELECT custom_tag FROM intents") == [(intent.custom_tag,)]
        assert _count(path, "state_changes") == 2


async def test_held_records_commit_after_linger_without_any_intent(
    tmp_path: Path, make: RecordFactory
) -> None:
    """With no durable write coming, the linger timer releases deferred records on its own."""
    path = tmp_path / "j.db"
    async with SqliteJournal(path, linger=0.0) as journal:
        await journal.start_operation(make.op("op-1"), durable=False)
        assert _count(path, "operations") == 0
        await journal._settled(1)  # white-box: wait for the commit without flush()'s release
        assert _count(path, "operations") == 1


async def test_flush_and_close_commit_held_records(tmp_path: Path, make: RecordFactory) -> None:
    """flush() releases what is held; close() never leaves a held record behind."""
    path = tmp_path / "j.db"
    journal = SqliteJournal(path, linger=NEVER)
    await journal.open()
    await journal.start_operation(make.op("op-1"), durable=False)
    await journal.flush()
    assert _count(path, "operations") == 1
    await journal.start_operation(make.op("op-2"), durable=False)
    await journal.close()
    assert _count(path, "operations") == 2


async def test_held_deferred_failure_is_counted_once_released(
    tmp_path: Path, make: RecordFactory
) -> None:
    """A deferred update of an unknown operation fails when it commits, and is counted."""
    async with SqliteJournal(tmp_path / "j.db", linger=NEVER) as journal:
        await journal.update_operation("nope", "in_progress", durable=False)
        assert journal.deferred_failures == 0
        await journal.flush()
        assert journal.deferred_failures == 1


async def test_without_linger_deferred_records_commit_on_their_own(
    tmp_path: Path, make: RecordFactory
) -> None:
    """By default nothing is held: a deferred record reaches the writer at once."""
    path = tmp_path / "j.db"
    async with SqliteJournal(path) as journal:
        await journal.start_operation(make.op("op-1"), durable=False)
        await journal._settled(1)  # white-box: wait for the commit without flush()
        assert _count(path, "operations") == 1


def test_negative_linger_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="linger"):
        SqliteJournal(tmp_path / "j.db", linger=-1.0)


class _Witness:
    """A broker that, as each placement arrives, notes what the journal file holds durably."""

    def __init__(self, inner: SimBroker, path: Path) -> None:
        self._inner = inner
        self._path = path
        self.seen: dict[str, tuple[int, int]] = {}  # tag -> (intents with it, its operation rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def place_order(self, request: OrderRequest) -> Outcome:
        tag = request.custom_tag or ""
        rows = _committed(
            self._path,
            "SELECT count(*), (SELECT count(*) FROM operations o "
            "WHERE o.operation_id = i.operation_id) FROM intents i WHERE custom_tag = ?",
            (tag,),
        )
        self.seen[tag] = (int(rows[0][0]), int(rows[0][1] or 0))
        return await self._inner.place_order(request)


@pytest.mark.parametrize("linger", [None, NEVER])
async def test_leg_intent_and_deferred_operation_are_durable_before_the_send(
    tmp_path: Path, linger: float | None
) -> None:
    """Through the OrderManager: the operation start is deferred, yet when each leg reaches the
    broker its intent (with its customTag) and its operation are already committed."""
    path = tmp_path / "j.db"
    clock = SystemClock()
    price = Decimal("21000.00")
    async with SqliteJournal(path, linger=linger) as journal:
        broker = _Witness(SimBroker.create(clock, prices={MNQ: price}), path)
        manager = OrderManager(
            broker,  # type: ignore[arg-type]  # forwards everything else to the SimBroker
            clock=clock,
            config=OrderManagerConfig(rate_limit_requests=10**6, rate_limit_reserved=0),
            rng=random.Random(7),
            journal=journal,
        )
        await manager.start()
        rec = manager.recovery
        tags = []
        for i in range(3):
            op = await rec.start_operation(
                OperationType.BRACKET_ORDER, account_id=1, contract_id=MNQ
            )
            refs = await asyncio.gather(
                rec.add_order_to_operation(op, MNQ, OrderSide.BUY, 1, "limit", leg="entry"),
                rec.add_order_to_operation(op, MNQ, OrderSide.SELL, 1, "limit", leg="stop"),
            )
            for ref, offset in zip(refs, (-500 - i, 500 + i), strict=True):
                side = OrderSide.BUY if offset < 0 else OrderSide.SELL
                request = OrderRequest(
                    1,
                    MNQ,
                    OrderType.LIMIT,
                    side,
                    1,
                    limit_price=price + offset,
                    custom_tag=ref.custom_tag,
                )
                resp = await manager.submit(request, respect_latch=False)
                await rec.record_order_success(op, ref, resp)
                tags.append(ref.custom_tag)
            assert await rec.complete_operation(op)
        await manager.cleanup()
    assert broker.seen == dict.fromkeys(tags, (1, 1))
