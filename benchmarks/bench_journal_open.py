"""What the integrity check costs when a SQLite journal is opened (issue 10.9).

``SqliteJournal.open()`` runs ``PRAGMA quick_check`` on every journal file that existed before
(a damaged or empty one is refused with ``JournalCorruptError``). This builds journals of N
bracket-sized operations (the operation record with three legs in its data, three intents, three
outcomes, two state changes each), then reports, median of ``--runs``:

* ``open``: ``SqliteJournal.open()`` + ``close()`` as orderguard does it (check included);
* ``quick_check`` and ``integrity_check`` alone, on a plain ``sqlite3`` connection, for scale;
* the file size.

The OS page cache is warm after the build (as it is for a process restarted on the same
machine); a cold cache after a reboot reads the whole file once more. Run::

    .venv/bin/python benchmarks/bench_journal_open.py [--ops 1000 10000] [--runs 5] [--dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from orderguard.clock import DEFAULT_EPOCH
from orderguard.journal import SqliteJournal
from orderguard.journal.base import (
    IntentKind,
    IntentRecord,
    OperationRecord,
    OutcomeKind,
    OutcomeRecord,
)
from orderguard.recovery.manager import OrderReference, RecoveryOperation, RefStatus
from orderguard.recovery.operations import OperationState, OperationType

MNQ = "CON.F.US.MNQ.Z26"
LEGS = (
    ("entry", 0, "market", None),
    ("stop0", 1, "stop", "20990.00"),
    ("target0", 1, "limit", "21010.00"),
)


def _operation(i: int) -> RecoveryOperation:
    op_id = f"{i:012x}"
    op = RecoveryOperation(
        op_id, OperationType.BRACKET_ORDER, OperationState.COMPLETED, DEFAULT_EPOCH, 1, MNQ
    )
    for n, (leg, side, kind, price) in enumerate(LEGS):
        op.orders[leg] = OrderReference(
            leg=leg,
            custom_tag=f"og-{op_id}-{leg}-0",
            contract_id=MNQ,
            side=side,
            size=1,
            order_type=kind,
            price=None if price is None else Decimal(price),
            account_id=1,
            intent_id=f"{op_id}:{leg}:0",
            order_id=3 * i + n + 1,
            status=RefStatus.FILLED if leg != "stop0" else RefStatus.CANCELLED,
            filled_size=1 if leg != "stop0" else 0,
            placed_successfully=True,
        )
    op.extra["bracket"] = {"contract_id": MNQ, "side": 0, "size": 1, "stop": "20990.00"}
    return op


async def build(path: Path, n: int) -> None:
    async with SqliteJournal(path) as journal:
        for i in range(n):
            op = _operation(i)
            at = DEFAULT_EPOCH
            await journal.start_operation(
                OperationRecord(op.operation_id, op.type, "pending", at, at, 1, MNQ, op.to_data()),
                durable=False,
            )
            intents = [
                IntentRecord(
                    ref.intent_id,
                    op.operation_id,
                    ref.leg,
                    0,
                    ref.custom_tag,
                    1,
                    MNQ,
                    IntentKind.PLACE,
                    {"side": ref.side, "size": 1, "type": ref.order_type},
                    at,
                    op.operation_id,
                )
                for ref in op.orders.values()
            ]
            await journal.record_intents(intents)
            for ref in op.orders.values():
                await journal.record_outcome(
                    OutcomeRecord(
                        ref.intent_id,
                        ref.custom_tag,
                        OutcomeKind.CONFIRMED,
                        ref.order_id,
                        None,
                        "",
                        at,
                    ),
                    durable=False,
                )
            for state in ("in_progress", "completed"):
                await journal.update_operation(
                    op.operation_id, state, data=op.to_data(), at=at, durable=False
                )
        await journal.flush()


def _pragma(path: Path, name: str) -> float:
    conn = sqlite3.connect(path)
    try:
        began = time.perf_counter()
        rows = conn.execute(f"PRAGMA {name}").fetchall()
        took = time.perf_counter() - began
    finally:
        conn.close()
    assert rows == [("ok",)], rows
    return took


async def _open(path: Path) -> float:
    began = time.perf_counter()
    journal = SqliteJournal(path)
    await journal.open()
    took = time.perf_counter() - began
    await journal.close()
    return took


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        created = await _open(Path(tmp) / "fresh.db")  # created now: no check
        print(f"new journal (created, no check): open {created * 1000:.1f} ms")
        for n in args.ops:
            path = Path(tmp) / f"j{n}.db"
            await build(path, n)
            opens = [await _open(path) for _ in range(args.runs)]
            quick = [_pragma(path, "quick_check") for _ in range(args.runs)]
            full = [_pragma(path, "integrity_check") for _ in range(args.runs)]
            size = path.stat().st_size / 1e6
            print(
                f"{n:>6} operations ({size:.1f} MB): open {statistics.median(opens) * 1000:.1f} ms"
                f" (range {min(opens) * 1000:.1f}-{max(opens) * 1000:.1f}); quick_check"
                f" {statistics.median(quick) * 1000:.1f} ms; integrity_check"
                f" {statistics.median(full) * 1000:.1f} ms"
            )


if __name__ == "__main__":
    asyncio.run(main())
