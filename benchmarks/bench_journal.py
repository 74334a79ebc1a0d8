"""What journaling costs a bracket-sized operation.

One "bracket-sized operation" writes what a bracket writes: ``start_operation``, three intents
(entry, stop, target) each followed by a simulated broker round trip and its outcome, and three
``update_operation`` calls (four state changes with the creation). ``--concurrency`` operations
are in flight at once, so the SQLite journal's group commit shares fsyncs between them.

Compared side by side, on identical work: no journal, ``MemoryJournal``, ``SqliteJournal`` (WAL,
``synchronous=FULL``, on a temporary file). Reported per mode: median and p95 of the journal time
per operation (the time the operation spent awaiting journal calls), throughput in operations/s,
and throughput relative to the no-journal run.

The simulated broker round trip is ``asyncio.sleep(rtt)``; ``rtt=0`` is a bare await (pure
overhead comparison, the worst case for the journal), ``rtt=1ms`` is a loopback-gateway-like
round trip — ProjectX over the internet is tens of milliseconds, far slower than either.

Run: ``.venv/bin/python benchmarks/bench_journal.py [--ops N] [--concurrency C] [--rtt-ms X ...]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from orderguard.clock import SystemClock
from orderguard.journal import (
    IntentKind,
    IntentRecord,
    Journal,
    MemoryJournal,
    OperationRecord,
    OutcomeKind,
    OutcomeRecord,
    SqliteJournal,
)

LEGS = ("entry", "stop", "target")


async def bracket(journal: Journal | None, n: int, rtt: float, clock: SystemClock) -> float:
    """Run one bracket-shaped operation; return the seconds spent awaiting the journal."""
    spent = 0.0

    async def j(call: Awaitable[Any] | None) -> None:
        """Await one journal call (None when there is no journal) and add up the time."""
        nonlocal spent
        if call is None:
            return
        t0 = time.perf_counter()
        await call
        spent += time.perf_counter() - t0

    op_id = f"op-{n}"
    now = clock.now()
    op = OperationRecord(op_id, "bracket_order", "pending", now, now, 1001, "CON.F.US.MNQ.Z26")
    await j(journal.start_operation(op) if journal is not None else None)
    await j(
        journal.update_operation(op_id, "in_progress", reason="placing")
        if journal is not None
        else None
    )
    for i, leg in enumerate(LEGS):
        intent = IntentRecord(
            intent_id=f"{op_id}:{leg}:0",
            operation_id=op_id,
            leg=leg,
            generation=0,
            custom_tag=f"og-{op_id}-{leg}-0",
            account_id=1001,
            contract_id="CON.F.US.MNQ.Z26",
            kind=IntentKind.PLACE,
            request={"type": 1, "side": 0, "size": 2, "limitPrice": "21000.25"},
            created_at=clock.now(),
            correlation_id=op_id,
        )
        await j(journal.record_intent(intent) if journal is not None else None)
        await asyncio.sleep(rtt)  # the broker round trip
        outcome = OutcomeRecord(
            intent.intent_id, intent.custom_tag, OutcomeKind.CONFIRMED, n * 10 + i, None, "",
            clock.now(),
        )  # fmt: skip
        await j(journal.record_outcome(outcome) if journal is not None else None)
        if leg == "entry":
            await j(
                journal.update_operation(op_id, "partially_completed")
                if journal is not None
                else None
            )
    await j(journal.update_operation(op_id, "completed") if journal is not None else None)
    return spent


async def run_mode(
    mode: str, ops: int, concurrency: int, rtt: float, tmp: Path
) -> dict[str, float]:
    clock = SystemClock()
    journal: MemoryJournal | SqliteJournal | None
    if mode == "sqlite":
        journal = SqliteJournal(tmp / f"bench-{rtt}-{time.monotonic_ns()}.db", clock)
    elif mode == "memory":
        journal = MemoryJournal(clock)
    else:
        journal = None
    if journal is not None:
        await journal.open()
    spent: list[float] = []
    counter = iter(range(ops))

    async def worker() -> None:
        for n in counter:
            spent.append(await bracket(journal, n, rtt, clock))

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    batches = journal.batches if isinstance(journal, SqliteJournal) else 0
    if journal is not None:
        await journal.close()
    qs = statistics.quantiles(spent, n=20) if len(spent) > 1 else [0.0] * 19
    return {
        "median_ms": statistics.median(spent) * 1000,
        "p95_ms": qs[18] * 1000,
        "ops_s": ops / wall,
        "writes_per_commit": (ops * 10 / batches) if batches else 0.0,
    }


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--rtt-ms", type=float, nargs="*", default=[0.0, 1.0, 5.0])
    args = parser.parse_args()
    print(
        f"bracket-sized operation = start + 3 intents + 3 outcomes + 3 updates (10 durable "
        f"writes, 4 state changes); {args.ops} ops; python {sys.version.split()[0]}"
    )
    print("journal ms/op = time one operation spends awaiting the journal (p50, p95);")
    print("amortised = wall time the journal adds per operation = 1/ops_on - 1/ops_off")
    c = args.concurrency
    runs = [("off", c), ("memory", c), ("sqlite", c), ("sqlite", 1)]
    with tempfile.TemporaryDirectory() as tmp:
        for rtt_ms in args.rtt_ms:
            print(f"\nsimulated broker work per op: 3 x await asyncio.sleep({rtt_ms / 1000:g})")
            print(
                f"{'journal':<8} {'in flight':>9} {'ms/op p50':>10} {'p95':>7} {'ops/s':>8} "
                f"{'vs off':>7} {'amortised us':>13} {'writes/commit':>14}"
            )
            base: dict[int, float] = {}
            for mode, conc in runs:
                ops = args.ops if conc > 1 else max(200, args.ops // 10)
                r = await run_mode(mode, ops, conc, rtt_ms / 1000, Path(tmp))
                if mode == "off":
                    base[conc] = r["ops_s"]
                if conc not in base:  # the off baseline for this concurrency
                    off = await run_mode("off", ops, conc, rtt_ms / 1000, Path(tmp))
                    base[conc] = off["ops_s"]
                amortised = (1 / r["ops_s"] - 1 / base[conc]) * 1e6
                per_commit = f"{r['writes_per_commit']:.1f}" if r["writes_per_commit"] else "-"
                print(
                    f"{mode:<8} {conc:>9} {r['median_ms']:>10.3f} {r['p95_ms']:>7.3f} "
                    f"{r['ops_s']:>8.0f} {r['ops_s'] / base[conc]:>7.0%} {amortised:>13.1f} "
                    f"{per_commit:>14}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
