"""What the durable journal costs a bracket-sized operation run through the OrderManager.

One operation does what a bracket does: ``start_operation``; the entry, stop and target intents
(journaled together, so they share one commit); the entry's send and outcome; the stop and target
sends and outcomes; ``complete_operation`` (pending -> in_progress -> completed). Everything
goes through the real :class:`~orderguard.orders.OrderManager` (journal-first send path, rate
limiter, circuit breakers) to an embedded SimBroker with zero latency, so the broker costs as
little as it can and the journal's share is as large as it gets. ``--concurrency`` operations
are in flight.

Side by side in one run, on identical work: :class:`SqliteJournal` (WAL, ``synchronous=FULL``, a
temporary file) and :class:`MemoryJournal` (no I/O: the "journal off" baseline). Reported: the
median and p95 of the journal time per operation (time the operation spent awaiting journal
calls; concurrent awaits inside one operation count once per call), operations/s, the ratio, and
the extra wall time per operation the SQLite journal adds over the whole run. With many
operations in flight the awaited time includes waiting for the event loop, busy with the other
operations, to deliver the commit's result — latency, not cost; ``--concurrency 1`` isolates the
commit latency itself.
The rate limiter is opened wide (it would otherwise cap the run at 200 requests a minute).

Targets (issue 3): journal time <= 2 ms per operation; journal-on throughput >= 50% of off.

Run: ``.venv/bin/python benchmarks/bench_journal_overhead.py [--ops N] [--concurrency C]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from orderguard.broker.sim import SimBroker
from orderguard.clock import SystemClock
from orderguard.config import OrderManagerConfig
from orderguard.journal import MemoryJournal, SqliteJournal
from orderguard.models import OrderRequest, OrderSide, OrderType
from orderguard.orders import OrderManager
from orderguard.recovery.operations import OperationType

MNQ = "CON.F.US.MNQ.Z26"
PRICE = Decimal("21000.00")
_SPENT: contextvars.ContextVar[list[float]] = contextvars.ContextVar("spent")


class TimedJournal:
    """Forwards to a journal and adds the time spent awaiting each call to the running op."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr) or name.startswith("_"):
            return attr

        def timed(*args: Any, **kw: Any) -> Any:
            result = attr(*args, **kw)
            if not isinstance(result, Awaitable):
                return result
            return _timed(result)

        return timed


async def _timed(aw: Awaitable[Any]) -> Any:
    t0 = time.perf_counter()
    try:
        return await aw
    finally:
        bucket = _SPENT.get(None)
        if bucket is not None:
            bucket[0] += time.perf_counter() - t0


def _limit(tag: str, side: OrderSide, offset: int) -> OrderRequest:
    # Far from the market: the orders rest, so every operation does the same work.
    return OrderRequest(
        1, MNQ, OrderType.LIMIT, side, 1, limit_price=PRICE + offset, custom_tag=tag
    )


async def bracket(m: OrderManager) -> float:
    """One bracket-sized operation; returns the seconds it spent awaiting the journal."""
    bucket = [0.0]
    _SPENT.set(bucket)
    rec = m.recovery
    op = await rec.start_operation(OperationType.BRACKET_ORDER, account_id=1, contract_id=MNQ)
    # A bracket knows its three legs up front: journal the three intents together (one commit),
    # then send. An intent whose order was never sent is harmless: after a crash its tag is
    # looked up, not found, and the leg is recorded as never having reached the broker.
    entry, stop, target = await asyncio.gather(
        rec.add_order_to_operation(op, MNQ, OrderSide.BUY, 1, "limit", leg="entry"),
        rec.add_order_to_operation(op, MNQ, OrderSide.SELL, 1, "limit", leg="stop"),
        rec.add_order_to_operation(op, MNQ, OrderSide.SELL, 1, "limit", leg="target"),
    )
    placed = await m.submit(_limit(entry.custom_tag, OrderSide.BUY, -500))
    await rec.record_order_success(op, entry, placed)

    async def leg(ref: Any, offset: int) -> None:
        resp = await m.submit(_limit(ref.custom_tag, OrderSide.SELL, offset), respect_latch=False)
        await rec.record_order_success(op, ref, resp)

    await asyncio.gather(leg(stop, 500), leg(target, 600))
    assert await rec.complete_operation(op)
    return bucket[0]


async def run_mode(
    name: str, make_journal: Callable[[Path], Any], ops: int, conc: int
) -> dict[str, float]:
    clock = SystemClock()
    config = OrderManagerConfig(rate_limit_requests=10**9, rate_limit_reserved=0)
    with tempfile.TemporaryDirectory() as tmp:
        journal = make_journal(Path(tmp) / "journal.db")
        await journal.open()
        broker = SimBroker.create(clock, prices={MNQ: PRICE})
        manager = OrderManager(
            broker, clock=clock, config=config, rng=random.Random(1), journal=TimedJournal(journal)
        )
        await manager.start()
        sem = asyncio.Semaphore(conc)
        spent: list[float] = []

        async def one() -> None:
            async with sem:
                spent.append(await bracket(manager))

        for _ in range(20):  # warm-up: caches, SQLite pages
            await one()
        spent.clear()
        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(ops)))
        await journal.flush()  # deferred records count: the run ends when all are durable
        elapsed = time.perf_counter() - t0
        counts = await journal.counts()
        await manager.cleanup()
        await journal.close()
    assert counts.operations_by_state.get("completed", 0) == ops + 20, counts
    spent.sort()
    return {
        "median_ms": statistics.median(spent) * 1000,
        "p95_ms": spent[int(len(spent) * 0.95)] * 1000,
        "ops_per_s": ops / elapsed,
    }


def _sqlite(path: Path) -> SqliteJournal:
    return SqliteJournal(path)


def _memory(path: Path) -> MemoryJournal:
    return MemoryJournal()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--ops", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    results = {}
    # Alternate the modes so drift (CPU frequency, page cache) hits both alike; keep the best.
    for _ in range(2):
        for name, make in (("memory", _memory), ("sqlite", _sqlite)):
            r = await run_mode(name, make, args.ops, args.concurrency)
            if name not in results or r["ops_per_s"] > results[name]["ops_per_s"]:
                results[name] = r
    print(f"{args.ops} bracket-sized operations, {args.concurrency} in flight, via OrderManager")
    print(f"{'journal':<8} {'median ms/op':>13} {'p95 ms/op':>10} {'ops/s':>9}")
    for name, r in results.items():
        print(f"{name:<8} {r['median_ms']:>13.3f} {r['p95_ms']:>10.3f} {r['ops_per_s']:>9.0f}")
    ratio = results["sqlite"]["ops_per_s"] / results["memory"]["ops_per_s"]
    med = results["sqlite"]["median_ms"]
    extra = 1000 / results["sqlite"]["ops_per_s"] - 1000 / results["memory"]["ops_per_s"]
    print(f"sqlite journal time per op (median, awaited): {med:.3f} ms  (target <= 2 ms)")
    print(f"sqlite extra wall time per op (amortised over the run): {extra:.3f} ms")
    print(f"sqlite / memory throughput: {ratio:.0%}  (target >= 50%)")


if __name__ == "__main__":
    asyncio.run(main())
